package smtp_test

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/textproto"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/smtp"
)

func TestSubmissionSTARTTLSDeliversToInbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeSubmission, false)

	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	// Before TLS: STARTTLS offered, AUTH not (RFC 4954 §4), SIZE with the
	// limit, and the extensions we support.
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered before STARTTLS")
	}
	for _, ext := range []string{"STARTTLS", "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("%s not offered", ext)
		}
	}
	// The limit plus the byte go-smtp keeps for itself (TestExactSize).
	if ok, p := c.Extension("SIZE"); !ok || p != "1048577" {
		t.Errorf("SIZE = %v %q, want 1048577", ok, p)
	}
	if ok, _ := c.Extension("SMTPUTF8"); ok {
		t.Error("SMTPUTF8 offered but the directory refuses non-ASCII addresses")
	}
	// MAIL before STARTTLS is told to start TLS (issue 22), not to log
	// in: AUTH is not offered yet.
	wantCode(t, c.Mail(alice, nil), 530, "5.7.0", "Must issue a STARTTLS command first: this port takes mail over TLS, from a client logged in.")

	c.Close()

	c, err = gosmtp.DialStartTLS(addr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.SupportsAuth("PLAIN") {
		t.Fatal("AUTH PLAIN not offered after STARTTLS")
	}
	wantCode(t, c.Mail(alice, nil), 530, "5.7.0", "Authentication required")
	if err := c.Auth(sasl.NewPlainClient("", alice, e.alicePass)); err != nil {
		t.Fatal(err)
	}
	// A body with a line starting with a dot checks dot-stuffing, 8-bit
	// text checks 8BITMIME, and X-MSS headers must stay as they are.
	msg := "X-MSS-CODECDA: 11488-4\r\nX-MSS-INS: N\r\n" +
		message(alice, bob, "STARTTLS test", "Bonjour,\r\n.point initial\r\nrésultats en pièce jointe\r\n")
	if err := send(c, alice, []string{bob}, msg); err != nil {
		t.Fatal(err)
	}
	got := e.inbox(bob)
	if len(got) != 1 {
		t.Fatalf("%d messages in bob's INBOX", len(got))
	}
	added := splitStored(t, got[0], msg)
	if !strings.Contains(added, "with ESMTPSA id ") || !strings.Contains(added, "for <"+bob+">") ||
		!strings.Contains(added, "by mail.ch-test.fr") {
		t.Errorf("Received: %q", added)
	}
	if strings.Count(added, "\r\n") != strings.Count(added, "\n") {
		t.Errorf("bare LF in added fields: %q", added)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if logs := e.logs.String(); strings.Contains(logs, e.alicePass) || strings.Contains(logs, "point initial") {
		t.Fatalf("password or body in the logs:\n%s", logs)
	} else if !strings.Contains(logs, "message accepted") || !strings.Contains(logs, "rcpts=1") {
		t.Fatalf("no transaction line in the logs:\n%s", logs)
	}
}

func TestSubmissionImplicitTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeSubmission, true)
	c, err := gosmtp.DialTLS(addr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered inside implicit TLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", alice, e.alicePass)); err != nil {
		t.Fatal(err)
	}
	// No Message-ID and no Date: the MSA adds them (RFC 6409 §8).
	msg := "From: Alice <" + alice + ">\r\nTo: " + bob + "\r\nSubject: implicit\r\n\r\nHello\r\n"
	if err := send(c, alice, []string{bob}, msg); err != nil {
		t.Fatal(err)
	}
	got := e.inbox(bob)
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	s := string(got[0])
	hdr, body, ok := strings.Cut(s, "\r\n\r\n")
	if !ok || body != "Hello\r\n" {
		t.Fatalf("body %q", body)
	}
	if !strings.HasPrefix(hdr, "Received: ") || !strings.Contains(hdr, "\r\nMessage-ID: <") ||
		!strings.Contains(hdr, "@mail.ch-test.fr>\r\nDate: ") {
		t.Fatalf("header %q", hdr)
	}
	if !strings.Contains(hdr, "\r\nFrom: Alice <"+alice+">\r\nTo: "+bob+"\r\nSubject: implicit\r\n") {
		t.Fatalf("original fields changed: %q", hdr)
	}
}

// rawSession speaks SMTP by hand, for what go-smtp's client will not do.
type rawSession struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

func dialRaw(t *testing.T, addr string) *rawSession {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return newRaw(t, conn)
}

func newRaw(t *testing.T, conn net.Conn) *rawSession {
	t.Helper()
	t.Cleanup(func() { conn.Close() })
	r := &rawSession{t: t, conn: conn, tp: textproto.NewConn(conn)}
	r.expect(220)
	return r
}

// plain is the base64 SASL PLAIN initial response (RFC 4616).
func plain(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func (r *rawSession) cmd(format string, args ...any) {
	r.t.Helper()
	if err := r.tp.PrintfLine(format, args...); err != nil {
		r.t.Fatal(err)
	}
}

// expect reads a reply and checks its code; it returns the text.
func (r *rawSession) expect(code int) string {
	r.t.Helper()
	got, msg, err := r.tp.ReadResponse(code)
	if err != nil {
		r.t.Fatalf("want %d, got %d %q: %v", code, got, msg, err)
	}
	return msg
}

func TestAuthRefusedBeforeTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeSubmission, false)
	r := dialRaw(t, addr)
	r.cmd("EHLO client.test")
	if caps := r.expect(250); strings.Contains(caps, "AUTH") {
		t.Fatalf("AUTH offered before TLS: %q", caps)
	}
	r.cmd("AUTH PLAIN %s", plain(alice, e.alicePass))
	// go-smtp's reply: 523 5.7.10 "TLS is required" (RFC 5248 X.7.10,
	// "Encryption Needed").
	if msg := r.expect(523); !strings.Contains(msg, "5.7.10") {
		t.Fatalf("reply %q", msg)
	}
	r.cmd("MAIL FROM:<%s>", alice)
	if msg := r.expect(530); !strings.HasPrefix(msg, "5.7.0 Must issue a STARTTLS command first") {
		t.Fatalf("reply %q", msg)
	}
	if strings.Contains(e.logs.String(), e.alicePass) {
		t.Fatal("password in the logs")
	}
}

func TestBadPassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeSubmission, false)
	for _, tc := range []struct{ name, user, pass, authz string }{
		{"wrong password", alice, "not the password at all", ""},
		{"unknown user", "nobody@ch-test.fr", e.alicePass, ""},
		{"suspended", carol, e.alicePass, ""},
		{"other identity", alice, e.alicePass, bob},
		{"garbage user", "\x01\x02", e.alicePass, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := gosmtp.DialStartTLS(addr, e.clientTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Auth(sasl.NewPlainClient(tc.authz, tc.user, tc.pass))
			wantCode(t, err, 535, "5.7.8", "Authentication failed")
			// The session goes on: a good login after a bad one works.
			if err := c.Auth(sasl.NewPlainClient("", alice, e.alicePass)); err != nil {
				t.Fatal(err)
			}
		})
	}
	if strings.Contains(e.logs.String(), "not the password at all") {
		t.Fatal("password in the logs")
	}
}

func TestMalformedAuthData(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeSubmission, true)
	conn, err := tls.Dial("tcp", addr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	r := newRaw(t, conn)
	r.cmd("EHLO client.test")
	r.expect(250)
	r.cmd("AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("no separators")))
	if msg := r.expect(501); strings.Contains(msg, "sasl:") {
		t.Fatalf("library error text sent to the peer: %q", msg)
	}
	r.cmd("AUTH LOGIN")
	r.expect(504)
	r.cmd("QUIT")
	r.expect(221)
}

// TestPipelining sends a whole transaction in one write (RFC 2920): each
// command gets its own reply, in order, refusals included.
func TestPipelining(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeSubmission, true)
	conn, err := tls.Dial("tcp", addr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	r := newRaw(t, conn)
	r.cmd("EHLO client.test")
	if caps := r.expect(250); !strings.Contains(caps, "PIPELINING") {
		t.Fatalf("PIPELINING not offered: %q", caps)
	}
	r.cmd("AUTH PLAIN %s", plain(alice, e.alicePass))
	r.expect(235)
	msg := message(alice, bob, "pipelined", "one write\r\n")
	batch := "MAIL FROM:<" + alice + ">\r\nRCPT TO:<" + bob + ">\r\nRCPT TO:<ghost@ch-test.fr>\r\nRCPT TO:<" + cardio + ">\r\nDATA\r\n"
	if _, err := conn.Write([]byte(batch)); err != nil {
		t.Fatal(err)
	}
	r.expect(250)
	r.expect(250)
	if msg := r.expect(550); !strings.HasPrefix(msg, "5.1.1 ") {
		t.Fatalf("reply %q", msg)
	}
	r.expect(250)
	r.expect(354)
	if _, err := conn.Write([]byte(msg + ".\r\n")); err != nil {
		t.Fatal(err)
	}
	r.expect(250)
	for _, a := range []string{bob, cardio} {
		if n := e.inboxCount(a); n != 1 {
			t.Fatalf("%s has %d messages", a, n)
		}
	}
}
