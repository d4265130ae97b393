package imap_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

const password = "correct horse battery staple"

// ioTimeout only keeps a broken test from hanging; no assertion depends on
// timing.
const ioTimeout = 30 * time.Second

// start boots a server with the given professionals and returns their
// addresses in order.
func start(t testing.TB, locals ...string) (*servertest.Instance, []string) {
	t.Helper()
	return startWith(t, nil, locals...)
}

func startWith(t testing.TB, opt func(*server.Config), locals ...string) (*servertest.Instance, []string) {
	t.Helper()
	var opts []func(*server.Config)
	if opt != nil {
		opts = append(opts, opt)
	}
	srv := servertest.Start(t, opts...)
	var addrs []string
	for _, l := range locals {
		addrs = append(addrs, srv.AddProfessional(l, password))
	}
	return srv, addrs
}

// raw is an IMAP connection read line by line, to see exactly what the
// server sends.
type raw struct {
	t   testing.TB
	c   net.Conn
	r   *bufio.Reader
	tag int
	// greeting is the server's first line.
	greeting string
}

// dialRaw connects to the "imaps" (TLS) or "imap" (plain) listener and reads
// the greeting.
func dialRaw(t testing.TB, srv *servertest.Instance, listener string) *raw {
	t.Helper()
	var c net.Conn
	var err error
	if listener == "imaps" {
		c, err = tls.Dial("tcp", srv.AddrOf("imaps"), srv.ClientTLS())
	} else {
		c, err = net.Dial("tcp", srv.AddrOf(listener))
	}
	if err != nil {
		t.Fatalf("dial %s: %v", listener, err)
	}
	t.Cleanup(func() { c.Close() })
	r := &raw{t: t, c: c, r: bufio.NewReader(c)}
	r.greeting = r.line()
	if !strings.HasPrefix(r.greeting, "* OK") {
		t.Fatalf("greeting %q", r.greeting)
	}
	return r
}

// login dials IMAPS and logs in.
func login(t testing.TB, srv *servertest.Instance, user string) *raw {
	t.Helper()
	r := dialRaw(t, srv, "imaps")
	r.ok("LOGIN %s %s", quote(user), quote(password))
	return r
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// starttls upgrades a plain connection.
func (r *raw) starttls(cfg *tls.Config) {
	r.t.Helper()
	r.ok("STARTTLS")
	tc := tls.Client(r.c, cfg)
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("STARTTLS handshake: %v", err)
	}
	r.c = tc
	r.r = bufio.NewReader(tc)
}

func (r *raw) write(s string) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := r.c.Write([]byte(s)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

var literalAtEnd = regexp.MustCompile(`\{(\d+)\}$`)

// line reads one response, with the literals it holds inlined after their
// "{n}\r\n" announcement.
func (r *raw) line() string {
	r.t.Helper()
	s, err := r.readLine()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return s
}

func (r *raw) readLine() (string, error) {
	r.c.SetReadDeadline(time.Now().Add(ioTimeout))
	var b strings.Builder
	for {
		l, err := r.r.ReadString('\n')
		if err != nil {
			return b.String() + l, err
		}
		l = strings.TrimSuffix(l, "\r\n")
		b.WriteString(l)
		m := literalAtEnd.FindStringSubmatch(l)
		if m == nil {
			return b.String(), nil
		}
		n, _ := strconv.Atoi(m[1])
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.r, buf); err != nil {
			return b.String(), err
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// send writes a tagged command and returns its tag.
func (r *raw) send(format string, args ...any) string {
	r.t.Helper()
	r.tag++
	tag := fmt.Sprintf("t%d", r.tag)
	r.write(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	return tag
}

// wait reads responses until the tagged one; it returns the untagged ones
// and the tagged status line without the tag.
func (r *raw) wait(tag string) (untagged []string, status string) {
	r.t.Helper()
	for {
		l := r.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

// do runs a command and returns the untagged responses and the status.
func (r *raw) do(format string, args ...any) ([]string, string) {
	r.t.Helper()
	return r.wait(r.send(format, args...))
}

// ok runs a command that must succeed and returns its untagged responses.
func (r *raw) ok(format string, args ...any) []string {
	r.t.Helper()
	u, st := r.do(format, args...)
	if !strings.HasPrefix(st, "OK") {
		r.t.Fatalf("%s: %s (untagged %q)", fmt.Sprintf(format, args...), st, u)
	}
	return u
}

// no runs a command that must fail with NO and returns the status line.
func (r *raw) no(format string, args ...any) string {
	r.t.Helper()
	u, st := r.do(format, args...)
	if !strings.HasPrefix(st, "NO") {
		r.t.Fatalf("%s: want NO, got %s (untagged %q)", fmt.Sprintf(format, args...), st, u)
	}
	return st
}

// appendMsg appends a message with a non-synchronizing literal (LITERAL+)
// and returns the status line.
func (r *raw) appendMsg(mailbox, flags, date, msg string) string {
	r.t.Helper()
	args := quote(mailbox)
	if flags != "" {
		args += " (" + flags + ")"
	}
	if date != "" {
		args += " " + quote(date)
	}
	r.tag++
	tag := fmt.Sprintf("t%d", r.tag)
	r.write(fmt.Sprintf("%s APPEND %s {%d+}\r\n%s\r\n", tag, args, len(msg), msg))
	_, st := r.wait(tag)
	return st
}

// mustAppend appends and returns the UID from APPENDUID.
func (r *raw) mustAppend(mailbox, flags, date, msg string) uint32 {
	r.t.Helper()
	st := r.appendMsg(mailbox, flags, date, msg)
	m := regexp.MustCompile(`^OK \[APPENDUID \d+ (\d+)\]`).FindStringSubmatch(st)
	if m == nil {
		r.t.Fatalf("APPEND: %s", st)
	}
	n, _ := strconv.ParseUint(m[1], 10, 32)
	return uint32(n)
}

// sel selects a mailbox and returns the untagged responses.
func (r *raw) sel(mailbox string) []string {
	r.t.Helper()
	return r.ok("SELECT %s", quote(mailbox))
}

// find returns the first response containing all parts, or "".
func find(lines []string, parts ...string) string {
next:
	for _, l := range lines {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				continue next
			}
		}
		return l
	}
	return ""
}

// count returns how many responses match re.
func count(lines []string, re string) int {
	rx := regexp.MustCompile(re)
	n := 0
	for _, l := range lines {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}

// simple returns a small text message.
func simple(from, to, subject, body string) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Wed, 25 Nov 2026 10:00:00 +0100\r\nMessage-ID: <%d.%s@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		from, to, subject, time.Now().UnixNano(), strings.ReplaceAll(subject, " ", "."), body)
}

// deliver sends a message over submission (STARTTLS, authenticated).
func deliver(t testing.TB, srv *servertest.Instance, from string, to []string, msg string) {
	t.Helper()
	c, err := gosmtp.DialStartTLS(srv.AddrOf("submission"), srv.ClientTLS())
	if err != nil {
		t.Fatalf("dial submission: %v", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", from, password)); err != nil {
		t.Fatalf("smtp auth: %v", err)
	}
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// client logs in with go-imap's client.
func client(t testing.TB, srv *servertest.Instance, user string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	return srv.DialIMAP(t, user, password, opts)
}
