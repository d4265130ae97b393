package queue_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/queue"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
)

// receiver is a real SMTP server (go-smtp) on loopback, requiring
// STARTTLS and a client certificate of the development CA, whose backend
// writes down what it received. Recipients named in tempfail get a 451 as
// many times as their count says; nobody@ gets a 550.
type receiver struct {
	addr string

	mu       sync.Mutex
	conns    map[*smtp.Conn]bool // connections that sent MAIL (go-smtp makes a session at each EHLO)
	got      []received
	tempfail map[string]int
	peers    []string // the CN of each client certificate
}

type received struct {
	from  string
	rcpts []string
	data  []byte
}

type session struct {
	r     *receiver
	c     *smtp.Conn
	from  string
	rcpts []string
}

func (s *session) Reset()        { s.from, s.rcpts = "", nil }
func (s *session) Logout() error { return nil }
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	st, ok := s.c.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "TLS with a client certificate required"}
	}
	s.r.mu.Lock()
	s.r.peers = append(s.r.peers, st.PeerCertificates[0].Subject.CommonName)
	s.r.conns[s.c] = true
	s.r.mu.Unlock()
	s.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	if n := s.r.tempfail[to]; n > 0 {
		s.r.tempfail[to] = n - 1
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "mailbox busy, try later"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	s.r.got = append(s.r.got, received{s.from, s.rcpts, b})
	s.r.mu.Unlock()
	return nil
}

func startReceiver(t *testing.T, pki *crypto.PKI) *receiver {
	t.Helper()
	cert, err := pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{tempfail: map[string]int{}, conns: map[*smtp.Conn]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{r: r, c: c}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pki.CertPool()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r.addr = ln.Addr().String()
	return r
}

func (r *receiver) snapshot() (int, []received) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns), append([]received(nil), r.got...)
}

type dsn struct {
	rcpt string
	msg  []byte
}

type fixture struct {
	store *sqlite.DB
	pki   *crypto.PKI
	mu    sync.Mutex
	dsns  []dsn
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pki, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: db, pki: pki}
}

func (f *fixture) runner(t *testing.T, addr string, anchors *x509.CertPool, o func(*queue.Options)) *queue.Runner {
	t.Helper()
	cert, err := f.pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	opts := queue.Options{
		Store: f.store, Hostname: "mx.a.test",
		Routes:            map[string]string{"b.test": addr},
		TrustAnchors:      func() (*x509.CertPool, error) { return anchors, nil },
		ClientCertificate: func() (*tls.Certificate, error) { return &cert, nil },
		Notify: func(ctx context.Context, rcpt string, msg []byte) error {
			f.mu.Lock()
			f.dsns = append(f.dsns, dsn{rcpt, msg})
			f.mu.Unlock()
			return nil
		},
		RetryInitial: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, Lifetime: time.Hour,
		PollInterval: 50 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	}
	if o != nil {
		o(&opts)
	}
	r := queue.New(opts)
	r.Start()
	t.Cleanup(func() { r.Close() })
	return r
}

func (f *fixture) enqueue(t *testing.T, from string, rcpts []string, body string) {
	t.Helper()
	if _, err := f.store.DeliverAll(context.Background(), []storage.Delivery{{Body: strings.NewReader(body),
		Queue: &storage.Enqueue{From: from, Recipients: rcpts}}}); err != nil {
		t.Fatal(err)
	}
}

func waitEmpty(t *testing.T, q storage.Queue) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		l, err := q.ListQueued(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue not empty after 15s: %+v", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const body = "From: <alice@a.test>\r\nTo: <ok@b.test>\r\nSubject: lab\r\nMessage-ID: <m1@a.test>\r\n\r\nresult\r\n"

// One message to three recipients of one server: ok@ accepts, later@ is
// busy twice (451), nobody@ does not exist (550). ok@ gets the message
// once, later@ once it is free, and the sender a DSN for nobody@ alone.
func TestTransientFailureOfOneRecipient(t *testing.T) {
	f := newFixture(t)
	rcv := startReceiver(t, f.pki)
	rcv.tempfail["later@b.test"] = 2
	f.enqueue(t, "alice@a.test", []string{"ok@b.test", "later@b.test", "nobody@b.test"}, body)
	f.runner(t, rcv.addr, f.pki.CertPool(), nil)
	waitEmpty(t, f.store)

	_, got := rcv.snapshot()
	count := map[string]int{}
	for _, g := range got {
		if g.from != "alice@a.test" || string(g.data) != body {
			t.Fatalf("received %+v", g)
		}
		for _, r := range g.rcpts {
			count[r]++
		}
	}
	if count["ok@b.test"] != 1 || count["later@b.test"] != 1 || count["nobody@b.test"] != 0 || len(got) != 2 {
		t.Fatalf("deliveries per recipient %v in %d transactions", count, len(got))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.dsns) != 1 || f.dsns[0].rcpt != "alice@a.test" {
		t.Fatalf("DSNs %+v", f.dsns)
	}
	m := string(f.dsns[0].msg)
	if !strings.Contains(m, "Final-Recipient: rfc822; nobody@b.test") || strings.Contains(m, "Final-Recipient: rfc822; ok@") ||
		strings.Contains(m, "Final-Recipient: rfc822; later@") || !strings.Contains(m, "Status: 5.1.1") ||
		!strings.Contains(m, "Diagnostic-Code: smtp; 550 5.1.1 no such mailbox") {
		t.Fatalf("DSN:\n%s", m)
	}
}

// Several messages to one destination go over one connection, with our
// certificate presented; the null sender never gets a DSN.
func TestConnectionReused(t *testing.T) {
	f := newFixture(t)
	rcv := startReceiver(t, f.pki)
	for range 5 {
		f.enqueue(t, "alice@a.test", []string{"ok@b.test"}, body)
	}
	f.enqueue(t, "", []string{"nobody@b.test"}, body)
	f.runner(t, rcv.addr, f.pki.CertPool(), func(o *queue.Options) { o.Concurrency = 1 })
	waitEmpty(t, f.store)
	sessions, got := rcv.snapshot()
	if len(got) != 5 || sessions != 1 {
		t.Fatalf("%d messages over %d connections, want 5 over 1", len(got), sessions)
	}
	if rcv.peers[0] != "localhost" {
		t.Fatalf("client certificate %q", rcv.peers[0])
	}
	if len(f.dsns) != 0 {
		t.Fatalf("a DSN for the null sender: %+v", f.dsns)
	}
}

// A server whose certificate does not chain to the trust anchors gets
// nothing; the entry waits with the reason.
func TestUntrustedServer(t *testing.T) {
	f := newFixture(t)
	rcv := startReceiver(t, f.pki)
	other, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f.enqueue(t, "alice@a.test", []string{"ok@b.test"}, body)
	f.runner(t, rcv.addr, other.CertPool(), nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := f.store.ListQueued(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 1 && l[0].Attempts >= 1 {
			if !strings.Contains(l[0].Recipients[0].LastError, "certificate") || l[0].Recipients[0].State != storage.QueuePending {
				t.Fatalf("entry %+v", l[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no attempt recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, got := rcv.snapshot(); len(got) != 0 {
		t.Fatal("delivered to an untrusted server")
	}
}
