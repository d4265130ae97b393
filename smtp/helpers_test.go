package smtp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/smtp"
	"github.com/carepost/carepost/storage/sqlite"
)

// The test world: one server hosting ch-test.fr, a trust space with one
// other operator (op-other.fr), and these mailboxes.
const (
	domain      = "ch-test.fr"
	otherDomain = "op-other.fr" // another operator of the trust space
	alice       = "alice@ch-test.fr"
	bob         = "bob@ch-test.fr"
	carol       = "carol@ch-test.fr"  // suspended
	dan         = "dan@ch-test.fr"    // closed
	cardio      = "cardio@ch-test.fr" // ORG, alice is a member
)

// env is a real server stack on loopback: SQLite store in a temp dir,
// directory, pipeline, dev PKI, and SMTP listeners started on demand.
type env struct {
	t         *testing.T
	db        *sqlite.DB
	dir       *directory.Directory
	pipeline  *delivery.Pipeline
	serverTLS *tls.Config
	clientTLS *tls.Config
	// mxTLS is the TLS configuration of another operator's server: the
	// client certificate of op-other.fr's operator, from a CA of its own
	// (operatorPKI) that the directory holds as a trust anchor.
	mxTLS    *tls.Config
	operator *crypto.PKI
	logs     *syncBuffer
	logger   *slog.Logger
	maxSize  int64
	// Application passwords of alice and bob (cheap to hash, unlike a
	// main password, which keeps the setup of each test short).
	alicePass, bobPass string
}

type envOption func(*env)

func withMaxSize(n int64) envOption { return func(e *env) { e.maxSize = n } }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, logs: &syncBuffer{}, maxSize: 1 << 20}
	for _, o := range opts {
		o(e)
	}
	e.logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	key := bytes.Repeat([]byte{7}, 32)
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.dir = directory.New(db, directory.Config{Domains: []string{domain}, PatientDomain: "patient.ch-test.fr"})

	ctx := context.Background()
	for i, a := range []string{alice, bob, carol, dan} {
		local, _, _ := strings.Cut(a, "@")
		_, err := e.dir.AddProfessional(ctx, directory.ProfessionalInput{
			NationalID: "01234567" + string(rune('0'+i)) + "0",
			FirstName:  strings.ToUpper(local[:1]) + local[1:],
			LastName:   "Test",
			Profession: "10",
			Address:    a,
		})
		if err != nil {
			t.Fatalf("add %s: %v", a, err)
		}
	}
	if e.alicePass, err = e.dir.NewAppPassword(ctx, alice, "test"); err != nil {
		t.Fatal(err)
	}
	if e.bobPass, err = e.dir.NewAppPassword(ctx, bob, "test"); err != nil {
		t.Fatal(err)
	}
	must(t, e.dir.SetStatus(ctx, carol, directory.StatusSuspended))
	must(t, e.dir.SetStatus(ctx, dan, directory.StatusClosed))
	if _, err := e.dir.AddMailbox(ctx, directory.KindOrganisational, cardio, []string{alice}, "Cardiologie"); err != nil {
		t.Fatal(err)
	}
	must(t, e.dir.AddTrustedDomain(ctx, otherDomain, "another operator"))

	e.pipeline = delivery.New(e.dir, db, delivery.Options{Hostname: "mail.ch-test.fr", MaxMessageSize: e.maxSize, Logger: e.logger})

	pki, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	e.serverTLS = crypto.ServerTLSConfig(cert)
	e.clientTLS = &tls.Config{RootCAs: pki.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	e.operator, e.mxTLS = e.operatorTLS("mx."+otherDomain, true)
	return e
}

// operatorTLS makes another operator's PKI (a CA of its own) and the TLS
// configuration of its server named host, presenting its client
// certificate; trusted adds the CA to our trust anchors.
func (e *env) operatorTLS(host string, trusted bool) (*crypto.PKI, *tls.Config) {
	e.t.Helper()
	op, err := crypto.OpenPKI(e.t.TempDir())
	if err != nil {
		e.t.Fatal(err)
	}
	cert, err := op.ServerCertificate(host)
	if err != nil {
		e.t.Fatal(err)
	}
	if trusted {
		if _, err := e.dir.AddTrustAnchor(context.Background(), op.CAPEM()); err != nil {
			e.t.Fatal(err)
		}
	}
	cfg := e.clientTLS.Clone()
	cfg.Certificates = []tls.Certificate{cert}
	return op, cfg
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start runs an SMTP server on a fresh loopback port and returns its
// address; it is closed when the test ends.
func (e *env) start(mode smtp.Mode, implicitTLS bool, mods ...func(*smtp.Options)) string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	if implicitTLS {
		ln = tls.NewListener(ln, e.serverTLS)
	}
	opts := smtp.Options{
		Mode: mode, Hostname: "mail.ch-test.fr", TLSConfig: e.serverTLS, ImplicitTLS: implicitTLS,
		MaxMessageSize: e.maxSize, Logger: e.logger,
	}
	for _, m := range mods {
		m(&opts)
	}
	srv := smtp.New(e.pipeline, e.dir, opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	e.t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			e.t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// submit dials a submission server with STARTTLS and logs in.
func (e *env) submit(addr, user, pass string) *gosmtp.Client {
	e.t.Helper()
	c, err := gosmtp.DialStartTLS(addr, e.clientTLS)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
		e.t.Fatalf("auth %s: %v", user, err)
	}
	return c
}

// mx dials an MX server with STARTTLS, as another operator would, with
// the client certificate of op-other.fr's operator.
func (e *env) mx(addr string) *gosmtp.Client {
	return e.mxWith(addr, e.mxTLS)
}

// mxWith dials an MX server with STARTTLS and the client configuration
// cfg (a certificate or none).
func (e *env) mxWith(addr string, cfg *tls.Config) *gosmtp.Client {
	e.t.Helper()
	c, err := gosmtp.DialStartTLS(addr, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// send runs one transaction; it returns the first error.
func send(c *gosmtp.Client, from string, rcpts []string, msg string) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			c.Reset()
			return err
		}
	}
	return data(c, msg)
}

func data(c *gosmtp.Client, msg string) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// wantCode checks that err is the SMTP reply code/enhanced code, and that
// its text contains each of contains.
func wantCode(t *testing.T, err error, code int, enh string, contains ...string) {
	t.Helper()
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("want %d %s, got %v", code, enh, err)
	}
	got := se.EnhancedCode
	gotEnh := strings.Join([]string{itoa(got[0]), itoa(got[1]), itoa(got[2])}, ".")
	if se.Code != code || gotEnh != enh {
		t.Fatalf("want %d %s, got %d %s %q", code, enh, se.Code, gotEnh, se.Message)
	}
	for _, c := range contains {
		if !strings.Contains(se.Message, c) {
			t.Fatalf("reply %q does not contain %q", se.Message, c)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// inbox returns the bodies in account's INBOX, in UID order.
func (e *env) inbox(account string) [][]byte {
	e.t.Helper()
	ctx := context.Background()
	mb, err := e.db.GetMailbox(ctx, account, "INBOX")
	if err != nil {
		e.t.Fatalf("INBOX of %s: %v", account, err)
	}
	_, uids, _, err := e.db.Select(ctx, mb.ID, false)
	if err != nil {
		e.t.Fatal(err)
	}
	var out [][]byte
	for _, uid := range uids {
		b, err := e.db.OpenBody(ctx, mb.ID, uid.UID)
		if err != nil {
			e.t.Fatal(err)
		}
		data, err := io.ReadAll(b)
		b.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// inboxCount is len(inbox) without failing on an account not created yet.
func (e *env) inboxCount(account string) int {
	e.t.Helper()
	mb, err := e.db.GetMailbox(context.Background(), account, "INBOX")
	if err != nil {
		return 0
	}
	st, err := e.db.Status(context.Background(), mb.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return int(st.Messages)
}

// splitStored checks that stored is Received: (and maybe other added
// fields) followed by the original message, and returns the added part.
func splitStored(t *testing.T, stored []byte, original string) string {
	t.Helper()
	if !bytes.HasSuffix(stored, []byte(original)) {
		t.Fatalf("stored message does not end with the original:\nstored %q\noriginal %q", stored, original)
	}
	added := string(stored[:len(stored)-len(original)])
	if !strings.HasPrefix(added, "Received: from ") {
		t.Fatalf("stored message does not start with Received: %q", added)
	}
	return added
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// message builds a small RFC 5322 message with CRLF line ends.
func message(from, to, subject, body string) string {
	return "From: " + from + "\r\n" +
		"To: " + to + "\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0100\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" + body
}

func errAs(err error, target any) bool { return errors.As(err, target) }
