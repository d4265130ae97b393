package imap_test

import (
	"strings"
	"testing"
)

// Issue 21: syntax errors get BAD, with a sentence after login, and the
// session goes on. go-imap answers an invalid modified UTF-7 mailbox name
// and a command over its 50 KiB NO [SERVERBUG], and ends the session after
// the latter (imap/syntax.go): this test fails if a release changes what
// the guard relies on.
func TestSyntaxErrorsGetBAD(t *testing.T) {
	lt := &logTB{TB: t}
	srv, users := start(lt, "alice")
	alice := users[0]
	megabyte := strings.Repeat("p", 1<<20)

	t.Run("after login", func(t *testing.T) {
		r := login(t, srv, alice)
		for _, cmd := range []string{
			`SELECT "&Jjo"`, `CREATE &AGE-`, `LIST "" "&Jjo"`, `RENAME INBOX "a&Jjo!"`, `STATUS "&ZeVnLIqe" (MESSAGES)`,
			`UID COPY 1 "&Jjo"`, `APPEND "&Jjo" {3}`,
		} {
			_, st := r.do("%s", cmd)
			if !strings.HasPrefix(st, "BAD [CLIENTBUG] The mailbox name is not valid modified UTF-7") {
				t.Errorf("%s: %q", cmd, st)
			}
			r.ok("NOOP")
		}
		// Valid names in modified UTF-7 still work.
		r.ok(`CREATE "&ZeVnLIqe-"`)
		r.ok(`CREATE "Caf&AOk- &- th&AOk-"`)
		if u := r.ok(`LIST "" "*"`); find(u, "Caf&AOk- &- th&AOk-") == "" {
			t.Errorf("LIST: %q", u)
		}
		// A command over the limit.
		_, st := r.do("SEARCH TEXT %q", megabyte)
		if !strings.HasPrefix(st, "BAD [CLIENTBUG] The command is longer") {
			t.Errorf("1 MB SEARCH: %q", st)
		}
		r.ok("NOOP")
		r.ok("SELECT INBOX")
	})
	t.Run("1 MB password", func(t *testing.T) {
		r := dialRaw(t, srv, "imaps")
		_, st := r.do("LOGIN %s %q", alice, megabyte)
		if !strings.HasPrefix(st, "BAD ") {
			t.Errorf("quoted: %q", st)
		}
		r.ok("NOOP")
		r.write("a1 LOGIN " + alice + " {1048576+}\r\n" + megabyte + "\r\n")
		if got := outcome(r); !strings.HasPrefix(got, "a1 BAD ") {
			t.Errorf("non-synchronizing literal: %q", got)
		}
		r.ok("NOOP")
		r.write("a2 LOGIN " + alice + " {1048576}\r\n")
		if got := outcome(r); !strings.HasPrefix(got, "a2 BAD ") {
			t.Errorf("synchronizing literal: %q", got)
		}
		r.ok("NOOP")
		r.ok("LOGIN %s %s", quote(alice), quote(password))
	})
	t.Run("after STARTTLS", func(t *testing.T) {
		r := dialRaw(t, srv, "imap")
		r.starttls(srv.ClientTLS().Clone())
		_, st := r.do("LOGIN %s %q", alice, megabyte)
		if !strings.HasPrefix(st, "BAD ") {
			t.Errorf("quoted: %q", st)
		}
		r.ok("LOGIN %s %s", quote(alice), quote(password))
		_, st = r.do(`SELECT "&Jjo"`)
		if !strings.HasPrefix(st, "BAD [CLIENTBUG]") {
			t.Errorf("SELECT: %q", st)
		}
		r.ok("SELECT INBOX")
	})
	if l := lt.logged(); strings.Contains(l, "SERVERBUG") || strings.Contains(l, "failed to read command") || strings.Contains(l, "cannot guard") {
		t.Errorf("the library met the bad input:\n%s", l)
	}
}
