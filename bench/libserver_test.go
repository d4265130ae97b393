package bench

// Servers of the libraries themselves, in-process on loopback, to test the
// generators against something independent of Carepost: a go-smtp server
// that counts what it accepts, and go-imap's in-memory server.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/carepost/carepost/crypto"
)

// testPKI makes a development CA and a server TLS configuration for
// localhost and 127.0.0.1; it returns the configuration and the CA's path.
func testPKI(t *testing.T) (*tls.Config, string) {
	t.Helper()
	pki, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	return crypto.ServerTLSConfig(cert), pki.CAPath()
}

// sink is a go-smtp backend that checks and counts every message.
type sink struct {
	user, pass string

	mu       sync.Mutex
	messages int
	rcpts    map[string]int // deliveries per recipient
	ids      map[string]bool
	sizes    []int
	problems []string
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

type sinkSession struct {
	s      *sink
	authed bool
	to     []string
}

func (ss *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != ss.s.user || pass != ss.s.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error {
	if ss.s.user != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if to == "refused@bench.test" {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	switch {
	case err != nil:
		s.problems = append(s.problems, "unparsable message: "+err.Error())
	case s.ids[msg.Header.Get("Message-ID")]:
		s.problems = append(s.problems, "duplicate Message-ID "+msg.Header.Get("Message-ID"))
	default:
		s.ids[msg.Header.Get("Message-ID")] = true
	}
	s.messages++
	s.sizes = append(s.sizes, len(raw))
	for _, to := range ss.to {
		s.rcpts[to]++
	}
	return nil
}

func (ss *sinkSession) Reset()        { ss.to = nil }
func (ss *sinkSession) Logout() error { return nil }

// startSink serves SMTP on loopback: plain with STARTTLS offered, or
// implicit TLS.
func startSink(t *testing.T, sec Security, user, pass string) (*sink, string, string) {
	t.Helper()
	tlsCfg, ca := testPKI(t)
	s := &sink{user: user, pass: pass, rcpts: map[string]int{}, ids: map[string]bool{}}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = sec == Plain
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = discardLogger{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if sec == ImplicitTLS {
		ln = tls.NewListener(ln, tlsCfg)
	} else {
		srv.TLSConfig = tlsCfg
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s, ln.Addr().String(), ca
}

// startMemIMAP serves go-imap's in-memory server on loopback with users
// user1..userN (password "pass"), each with an empty INBOX.
func startMemIMAP(t *testing.T, sec Security, users int) (string, string) {
	t.Helper()
	tlsCfg, ca := testPKI(t)
	mem := imapmemserver.New()
	for i := 1; i <= users; i++ {
		u := imapmemserver.NewUser(userName(i), "pass")
		if err := u.Create("INBOX", nil); err != nil {
			t.Fatal(err)
		}
		mem.AddUser(u)
	}
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		Logger:       discardLogger{},
		InsecureAuth: sec == Plain,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if sec == ImplicitTLS {
		ln = tls.NewListener(ln, tlsCfg)
	} else if sec == StartTLS {
		opts.TLSConfig = tlsCfg
	}
	srv := imapserver.New(opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Logf("imap serve: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String(), ca
}

func userName(i int) string { return fmt.Sprintf("user%d@bench.test", i) }

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}
