package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/server/servertest"
)

// TestAdminCommandsEndSessions is issue 20's "ending sessions": with
// `carepost serve` running (in-process here), the administrative commands
// run as another OS process on the same data directory, as an operator
// would run them beside the server. `dir suspend`, `user set-password` and
// `user revoke-app-password` end the account's open sessions: an IMAP
// session in IDLE gets a BYE that says why without sending anything, as
// does a selected session that is not idling, and a submission session
// gets 421 4.7.0. Another account's sessions stay. Then the login that
// should work works, and the one that should not does not.
func TestAdminCommandsEndSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command line as child processes")
	}
	inst := servertest.Start(t)
	const pw, newPW, bobPW = "alice: a long passphrase", "alice: the new passphrase", "bob: a long passphrase"
	alice := inst.AddProfessional("alice", pw)
	bob := inst.AddProfessional("bob", bobPW)
	data := inst.Config.Data

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// admin runs one command line as a child process of this test binary
	// (TestMain), on the server's data directory.
	admin := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(exe, append(args, "--data", data)...)
		cmd.Env = append(os.Environ(), "CAREPOST_TEST_MAIN=1")
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("carepost %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
		}
		return out.String()
	}

	// Bob's sessions, which no change touches.
	bobIMAP := dialIMAP(t, inst, bob, bobPW)
	bobIMAP.ok("SELECT INBOX")
	bobSMTP := dialSubmission(t, inst, bob, bobPW)
	bobStays := func(after string) {
		t.Helper()
		if lines := bobIMAP.cmd("NOOP"); !strings.HasPrefix(lines[len(lines)-1], bobIMAP.lastTag+" OK") {
			t.Fatalf("after %s, bob's IMAP session: %q", after, lines)
		}
		if reply := bobSMTP.cmd2("NOOP"); !strings.HasPrefix(reply, "250") {
			t.Fatalf("after %s, bob's SMTP session: %q", after, reply)
		}
	}

	// step opens alice's sessions (login with imapPW and smtpPW), runs the
	// command, and waits for every session to end saying want.
	step := func(name, imapPW, smtpPW, want, stdin string, args ...string) {
		t.Helper()
		idle := dialIMAP(t, inst, alice, imapPW)
		idle.ok("SELECT INBOX")
		idle.startIdle()
		selected := dialIMAP(t, inst, alice, pw)
		selected.ok("EXAMINE INBOX")
		sub := dialSubmission(t, inst, alice, smtpPW)
		ends := []<-chan ended{idle.awaitEnd("* BYE"), selected.awaitEnd("* BYE"), sub.awaitEnd("421 4.7.0")}
		start := time.Now()
		admin(stdin, args...)
		done := time.Now()
		for i, what := range []string{"IMAP in IDLE", "IMAP selected", "submission"} {
			var e ended
			select {
			case e = <-ends[i]:
			case <-time.After(15 * time.Second):
				t.Fatalf("%s: the %s session was not ended within 15 s", name, what)
			}
			if e.err != nil {
				t.Fatalf("%s: the %s session: %v (lines before: %q)", name, what, e.err, e.before)
			}
			if !strings.Contains(e.line, want) {
				t.Fatalf("%s: the %s session ended with %q, want it to say %q", name, what, e.line, want)
			}
			t.Logf("%s: %s ended %v after the command exited (%v after it started): %s", name, what,
				e.at.Sub(done).Round(time.Millisecond), e.at.Sub(start).Round(time.Millisecond), e.line)
		}
		bobStays(name)
	}

	step("dir suspend", pw, pw, "This account was suspended", "", "dir", "suspend", alice)
	if err := tryIMAPLogin(t, inst, alice, pw); err == nil {
		t.Fatal("a suspended account could log in")
	}
	admin("", "dir", "activate", alice)

	step("user set-password", pw, pw, "The password of this account was changed", newPW+"\n", "user", "set-password", alice)
	if err := tryIMAPLogin(t, inst, alice, pw); err == nil {
		t.Fatal("the old password still works")
	}
	if err := tryIMAPLogin(t, inst, alice, newPW); err != nil {
		t.Fatalf("the new password: %v", err)
	}

	app := strings.TrimSpace(admin("", "user", "app-password", alice, "--label", "Phone"))
	if list := admin("", "user", "app-passwords", alice); !strings.Contains(list, "Phone") || strings.Contains(list, app) {
		t.Fatalf("user app-passwords:\n%s", list)
	}
	// The selected session logs in with the account's password (pw in
	// step): set it back first.
	admin(pw+"\n", "user", "set-password", alice)
	step("user revoke-app-password", app, app, "An application password of this account was revoked", "",
		"user", "revoke-app-password", alice, "phone")
	if err := tryIMAPLogin(t, inst, alice, app); err == nil {
		t.Fatal("the revoked application password still works")
	}
	if err := tryIMAPLogin(t, inst, alice, pw); err != nil {
		t.Fatalf("the password after revoking an application password: %v", err)
	}
	if list := admin("", "user", "app-passwords", alice); !strings.Contains(list, "no application passwords") {
		t.Fatalf("user app-passwords after revoking:\n%s", list)
	}
}

// lineConn is a text protocol client on a TLS connection, for reading the
// server's lines exactly as sent.
type lineConn struct {
	t       *testing.T
	c       *tls.Conn
	r       *bufio.Reader
	n       int
	lastTag string
}

func dialTLS(t *testing.T, inst *servertest.Instance, listener string) *lineConn {
	t.Helper()
	c, err := tls.Dial("tcp", inst.AddrOf(listener), inst.ClientTLS())
	if err != nil {
		t.Fatalf("dial %s: %v", listener, err)
	}
	t.Cleanup(func() { c.Close() })
	return &lineConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (l *lineConn) readLine() (string, error) {
	l.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	s, err := l.r.ReadString('\n')
	return strings.TrimRight(s, "\r\n"), err
}

func (l *lineConn) write(s string) {
	l.t.Helper()
	if _, err := io.WriteString(l.c, s+"\r\n"); err != nil {
		l.t.Fatalf("write %q: %v", s, err)
	}
}

// cmd sends an IMAP command and returns its responses, the tagged one
// last.
func (l *lineConn) cmd(command string) []string {
	l.t.Helper()
	l.n++
	l.lastTag = fmt.Sprintf("a%d", l.n)
	l.write(l.lastTag + " " + command)
	var lines []string
	for {
		s, err := l.readLine()
		if err != nil {
			l.t.Fatalf("%s: %v after %q", command, err, lines)
		}
		lines = append(lines, s)
		if strings.HasPrefix(s, l.lastTag+" ") {
			return lines
		}
	}
}

func (l *lineConn) ok(command string) {
	l.t.Helper()
	if lines := l.cmd(command); !strings.HasPrefix(lines[len(lines)-1], l.lastTag+" OK") {
		l.t.Fatalf("%s: %q", command, lines)
	}
}

func (l *lineConn) startIdle() {
	l.t.Helper()
	l.n++
	l.write(fmt.Sprintf("a%d IDLE", l.n))
	if s, err := l.readLine(); err != nil || !strings.HasPrefix(s, "+") {
		l.t.Fatalf("IDLE: %q, %v", s, err)
	}
}

// ended is how a session ended: the line starting with the expected
// prefix, when it came, and whether the connection closed after it.
type ended struct {
	line   string
	at     time.Time
	before []string
	err    error
}

// awaitEnd reads, in the background, until a line starting with prefix,
// then expects the connection to close.
func (l *lineConn) awaitEnd(prefix string) <-chan ended {
	ch := make(chan ended, 1)
	go func() {
		var e ended
		for {
			s, err := l.readLine()
			if err != nil {
				e.err = fmt.Errorf("no %q before %v", prefix, err)
				ch <- e
				return
			}
			if strings.HasPrefix(s, prefix) {
				e.line, e.at = s, time.Now()
				break
			}
			e.before = append(e.before, s)
		}
		if s, err := l.readLine(); err == nil {
			e.err = fmt.Errorf("the connection stayed open after %q: then %q", e.line, s)
		}
		ch <- e
	}()
	return ch
}

func dialIMAP(t *testing.T, inst *servertest.Instance, user, password string) *lineConn {
	t.Helper()
	l := dialTLS(t, inst, "imaps")
	if s, err := l.readLine(); err != nil || !strings.HasPrefix(s, "* OK") {
		t.Fatalf("IMAP greeting %q, %v", s, err)
	}
	l.ok(fmt.Sprintf("LOGIN %q %q", user, password))
	return l
}

func tryIMAPLogin(t *testing.T, inst *servertest.Instance, user, password string) error {
	t.Helper()
	l := dialTLS(t, inst, "imaps")
	defer l.c.Close()
	if s, err := l.readLine(); err != nil || !strings.HasPrefix(s, "* OK") {
		t.Fatalf("IMAP greeting %q, %v", s, err)
	}
	if lines := l.cmd(fmt.Sprintf("LOGIN %q %q", user, password)); !strings.HasPrefix(lines[len(lines)-1], l.lastTag+" OK") {
		return fmt.Errorf("%q", lines)
	}
	return nil
}

// dialSubmission opens an authenticated session on the implicit TLS
// submission port.
func dialSubmission(t *testing.T, inst *servertest.Instance, user, password string) *lineConn {
	t.Helper()
	l := dialTLS(t, inst, "submissions")
	if s, err := l.readLine(); err != nil || !strings.HasPrefix(s, "220") {
		t.Fatalf("SMTP greeting %q, %v", s, err)
	}
	l.write("EHLO client.test")
	for {
		s, err := l.readLine()
		if err != nil || !strings.HasPrefix(s, "250") {
			t.Fatalf("EHLO: %q, %v", s, err)
		}
		if strings.HasPrefix(s, "250 ") {
			break
		}
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if reply := l.cmd2("AUTH PLAIN " + auth); !strings.HasPrefix(reply, "235") {
		t.Fatalf("AUTH PLAIN %s: %q", user, reply)
	}
	return l
}

// cmd2 sends an SMTP command and returns its (one-line) reply.
func (l *lineConn) cmd2(command string) string {
	l.t.Helper()
	l.write(command)
	s, err := l.readLine()
	if err != nil {
		l.t.Fatalf("%s: %v", command, err)
	}
	return s
}

// TestAppPasswordCommands: the listing shows labels and IDs, never the
// passwords, also as JSON; revoke-app-password takes an ID or a label and
// says what a wrong one is.
func TestAppPasswordCommands(t *testing.T) {
	data := newData(t)
	const a = "marie.curie@carepost.test"
	if _, errs, code := carepost(t, data, "", "dir", "add-professional", "--id", "810001045367", "--first", "Marie", "--last", "Curie",
		"--profession", "10", "--address", a); code != 0 {
		t.Fatal(errs)
	}
	out, _, _ := carepost(t, data, "", "user", "app-passwords", a)
	if !strings.Contains(out, "has no application passwords") {
		t.Fatalf("app-passwords with none: %q", out)
	}
	var pws []string
	for _, label := range []string{"Thunderbird", "Phone"} {
		out, errs, code := carepost(t, data, "", "user", "app-password", a, "--label", label)
		if code != 0 {
			t.Fatal(errs)
		}
		pws = append(pws, strings.TrimSpace(out))
	}
	out, _, code := carepost(t, data, "", "user", "app-passwords", a, "--json")
	if code != 0 || !strings.Contains(out, `"label": "Thunderbird"`) || !strings.Contains(out, `"id": 2`) ||
		strings.Contains(out, pws[0]) || strings.Contains(out, "argon2") {
		t.Fatalf("app-passwords --json:\n%s", out)
	}
	if _, errs, code := carepost(t, data, "", "user", "revoke-app-password", a); code != 2 || !strings.Contains(errs, "give ADDRESS ID|LABEL") {
		t.Fatalf("revoke-app-password without ID: exit %d, %q", code, errs)
	}
	if _, errs, code := carepost(t, data, "", "user", "revoke-app-password", a, "laptop"); code == 0 || !strings.Contains(errs, `"laptop"`) {
		t.Fatalf("revoke-app-password laptop: exit %d, %q", code, errs)
	}
	if out, errs, code := carepost(t, data, "", "user", "revoke-app-password", a, "1"); code != 0 || !strings.Contains(out, "application password 1 (Thunderbird)") {
		t.Fatalf("revoke-app-password 1: exit %d, %q %q", code, out, errs)
	}
	out, _, _ = carepost(t, data, "", "user", "app-passwords", a)
	if strings.Contains(out, "Thunderbird") || !strings.Contains(out, "Phone") {
		t.Fatalf("after revoking Thunderbird:\n%s", out)
	}
}
