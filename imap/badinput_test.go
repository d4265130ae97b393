package imap_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/imap"
)

// logTB keeps what the server logs, to look for panics.
type logTB struct {
	testing.TB
	mu  sync.Mutex
	log strings.Builder
}

func (l *logTB) Logf(format string, args ...any) {
	l.mu.Lock()
	fmt.Fprintf(&l.log, format+"\n", args...)
	l.mu.Unlock()
	l.TB.Logf(format, args...)
}

func (l *logTB) logged() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.log.String()
}

// outcome reads what the server answers to bad input: the first line, or
// "closed" when it ends the connection.
func outcome(r *raw) string {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(ioTimeout))
	l, err := r.r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed") {
			return "closed"
		}
		r.t.Fatalf("read: %v (after %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// Bad input gets BAD, NO or BYE, or the connection is closed; the server
// never panics and every other session goes on (RFC 9051 §7.1.3, §7.1.5).
func TestBadInput(t *testing.T) {
	lt := &logTB{TB: t}
	srv, users := start(lt, "alice")
	alice := users[0]
	keeper := login(t, srv, alice)
	keeper.mustAppend("INBOX", "", "", simple(alice, alice, "kept", "x"))
	keeper.sel("INBOX")

	cases := []struct {
		name   string
		login  bool
		input  func(r *raw)
		accept []string // prefixes of acceptable first lines
	}{
		{"binary garbage before login", false, func(r *raw) { r.write("\x00\xff\xfe\x01 garbage \x00\r\n") }, []string{"* BAD", "* BYE", "closed"}},
		{"binary garbage", true, func(r *raw) { r.write("\x00\xff\xfe\x01 garbage \x00\r\n") }, []string{"* BAD", "* BYE", "closed"}},
		{"garbage after a tag", true, func(r *raw) { r.write("a1 \x00\x01\x02\r\n") }, []string{"a1 BAD", "* BYE", "closed"}},
		{"10 MB line without CRLF", true, func(r *raw) {
			go func() {
				r.c.SetWriteDeadline(time.Now().Add(ioTimeout))
				r.c.Write([]byte(strings.Repeat("x", 10<<20))) // fails once the server closes
			}()
		}, []string{"* BAD", "* BYE", "closed"}},
		{"huge literal in LOGIN", false, func(r *raw) {
			// The server may refuse and close before the bytes that
			// follow are written: their write may fail.
			r.c.Write([]byte("a1 LOGIN {999999999}\r\n"))
			r.c.Write([]byte(strings.Repeat("y", 100<<10)))
		}, []string{"a1 NO", "a1 BAD", "* BYE", "closed"}},
		{"huge non-synchronizing literal in LOGIN", false, func(r *raw) {
			r.c.Write([]byte("a1 LOGIN {999999999+}\r\n"))
			r.c.Write([]byte(strings.Repeat("y", 100<<10)))
		}, []string{"a1 NO", "a1 BAD", "* BYE", "closed"}},
		{"huge literal in APPEND", true, func(r *raw) { r.write("a1 APPEND INBOX {999999999}\r\n") }, []string{"+", "a1 NO [TOOBIG]"}},
		{"huge literal in SEARCH", true, func(r *raw) {
			r.write("a1 SELECT INBOX\r\n")
			r.wait("a1")
			r.c.Write([]byte("a2 SEARCH TEXT {999999999}\r\n"))
			r.c.Write([]byte(strings.Repeat("y", 100<<10))) // may fail once refused
		}, []string{"a2 NO", "a2 BAD", "* BYE", "closed"}},
		{"unknown command before login", false, func(r *raw) { r.write("a1 FROBNICATE\r\n") }, []string{"a1 BAD"}},
		{"unknown command", true, func(r *raw) { r.write("a1 FROBNICATE x y\r\n") }, []string{"a1 BAD"}},
		{"command in the wrong state", true, func(r *raw) { r.write("a1 FETCH 1 FLAGS\r\n") }, []string{"a1 BAD"}},
		{"bad sequence set", true, func(r *raw) {
			r.write("a1 SELECT INBOX\r\n")
			r.wait("a1")
			// go-imap answers a set it cannot parse NO [SERVERBUG]
			// (imapwire.ParseSeqSet's error is not a syntax error to
			// imapserver/conn.go), where BAD is meant: a library defect.
			r.write("a2 FETCH 0:-1 FLAGS\r\n")
		}, []string{"a2 BAD", "a2 NO"}},
		{"unknown SEARCH key", true, func(r *raw) {
			r.write("a1 SELECT INBOX\r\n")
			r.wait("a1")
			// go-imap reads an unknown key as a sequence set and answers
			// its parse error NO [SERVERBUG] (imapserver/search.go), where
			// BAD is meant (RFC 9051 §6.4.4): a library defect.
			r.write("a2 SEARCH FROBNICATE\r\n")
		}, []string{"a2 BAD", "a2 NO"}},
		{"unterminated quoted string", true, func(r *raw) {
			r.c.Write([]byte("a1 SELECT \"INBOX\r\n"))
			r.c.Write([]byte(strings.Repeat("z", 100<<10))) // may fail once refused
		}, []string{"a1 BAD", "a1 NO", "* BYE", "closed"}},
		{"deep parentheses", true, func(r *raw) {
			r.write("a1 SELECT INBOX\r\n")
			r.wait("a1")
			r.write("a2 SEARCH " + strings.Repeat("(", 5000) + "ALL" + strings.Repeat(")", 5000) + "\r\n")
		}, []string{"a2 OK", "a2 BAD", "a2 NO", "* SEARCH", "* BYE", "closed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *raw
			if tc.login {
				r = login(t, srv, alice)
			} else {
				r = dialRaw(t, srv, "imaps")
			}
			tc.input(r)
			got := outcome(r)
			ok := false
			for _, p := range tc.accept {
				ok = ok || strings.HasPrefix(got, p)
			}
			if !ok {
				t.Errorf("answer %q, want one of %q", got, tc.accept)
			}
			r.c.Close()
			// The other session is unaffected.
			if u := keeper.ok("FETCH 1 (FLAGS)"); len(u) != 1 {
				t.Errorf("keeper: %q", u)
			}
		})
	}
	// A session that got BAD for an unknown command goes on.
	r := login(t, srv, alice)
	r.do("FROBNICATE")
	r.ok("NOOP")
	if l := lt.logged(); strings.Contains(strings.ToLower(l), "panic") {
		t.Errorf("the server panicked:\n%s", l)
	}
}

// A panic in a command answers that command NO [SERVERBUG], logged with
// its stack; the connection and the server go on (RFC 5530).
func TestPanicRecovery(t *testing.T) {
	lt := &logTB{TB: t}
	srv, users := start(lt, "alice", "bob")
	alice, bob := users[0], users[1]
	b := login(t, srv, bob)
	r := login(t, srv, alice)
	undo := imap.PanicOn(alice)
	defer undo()
	for _, cmd := range []string{`LIST "" "*"`, "STATUS INBOX (MESSAGES)", "SELECT INBOX", "CREATE Nouveau"} {
		if st := r.no("%s", cmd); !strings.Contains(st, "[SERVERBUG]") {
			t.Errorf("%s: %s", cmd, st)
		}
	}
	r.ok("NOOP")
	b.ok("SELECT INBOX")
	undo()
	r.ok("SELECT INBOX")
	if l := lt.logged(); !strings.Contains(l, "panic in a command") || !strings.Contains(l, "goroutine") {
		t.Errorf("the panic was not logged with its stack:\n%s", l)
	}
}
