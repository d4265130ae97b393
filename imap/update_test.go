package imap_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/carepost/carepost/imap"
	"github.com/carepost/carepost/server"
)

var flagsRe = regexp.MustCompile(`FLAGS \(([^)]*)\)`)

// flagsIn returns the sorted flags of a FETCH response, nil if it has none.
func flagsIn(line string) []string {
	m := flagsRe.FindStringSubmatch(line)
	if m == nil {
		return nil
	}
	f := strings.Fields(m[1])
	slices.Sort(f)
	return f
}

func sorted(f ...string) []string {
	slices.Sort(f)
	return f
}

// setup appends n messages to INBOX and selects it.
func setup(t *testing.T, n int) (*raw, string) {
	t.Helper()
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	for i := range n {
		r.mustAppend("INBOX", "", "", simple(users[0], users[0], fmt.Sprintf("m%d", i+1), "x"))
	}
	r.sel("INBOX")
	return r, users[0]
}

// STORE +FLAGS, -FLAGS and FLAGS answer one FETCH per message named with
// its new flags; .SILENT answers none (RFC 9051 §6.4.6). \Recent cannot be
// stored and stays shown to the session that owns it.
func TestStore(t *testing.T) {
	r, _ := setup(t, 3)

	u := r.ok(`STORE 1:2 +FLAGS (\Flagged \Seen)`)
	if len(u) != 2 || !strings.HasPrefix(u[0], "* 1 FETCH") || !strings.HasPrefix(u[1], "* 2 FETCH") {
		t.Fatalf("STORE +FLAGS: %q", u)
	}
	for _, l := range u {
		if got := flagsIn(l); !slices.Equal(got, sorted(`\Flagged`, `\Seen`, `\Recent`)) {
			t.Errorf("STORE +FLAGS: %q", l)
		}
	}
	u = r.ok(`STORE 2 -FLAGS (\Seen)`)
	if len(u) != 1 || !slices.Equal(flagsIn(u[0]), sorted(`\Flagged`, `\Recent`)) {
		t.Errorf("STORE -FLAGS: %q", u)
	}
	u = r.ok(`STORE 3 FLAGS (\Answered \Draft \Recent)`)
	if len(u) != 1 || !slices.Equal(flagsIn(u[0]), sorted(`\Answered`, `\Draft`, `\Recent`)) {
		t.Errorf("STORE FLAGS: %q", u)
	}
	// A STORE that changes nothing still reports the flags.
	if u := r.ok(`STORE 1 +FLAGS (\Seen)`); len(u) != 1 || !slices.Equal(flagsIn(u[0]), sorted(`\Flagged`, `\Seen`, `\Recent`)) {
		t.Errorf("STORE without change: %q", u)
	}
	// UID STORE names the UID in its FETCH responses (RFC 9051 §6.4.9).
	if u := r.ok(`UID STORE 1:* -FLAGS.SILENT (\Flagged)`); len(u) != 0 {
		t.Errorf("STORE .SILENT answered %q", u)
	}
	u = r.ok(`FETCH 1:3 FLAGS`)
	want := [][]string{sorted(`\Seen`, `\Recent`), {`\Recent`}, sorted(`\Answered`, `\Draft`, `\Recent`)}
	for i, l := range u {
		if !slices.Equal(flagsIn(l), want[i]) {
			t.Errorf("after .SILENT, message %d: %q, want %v", i+1, l, want[i])
		}
	}
	if u := r.ok(`UID STORE 2 +FLAGS ($Label1)`); len(u) != 2 || !strings.Contains(u[1], "UID 2 ") {
		t.Errorf("UID STORE: %q", u)
	}
	// An invalid keyword is refused.
	if _, st := r.do(`STORE 1 +FLAGS (bad\flag)`); !strings.HasPrefix(st, "BAD") && !strings.HasPrefix(st, "NO") {
		t.Errorf("STORE of an invalid flag: %s", st)
	}
	// EXAMINE: no STORE.
	r.ok("EXAMINE INBOX")
	if st := r.no(`STORE 1 +FLAGS (\Deleted)`); !strings.Contains(st, "READ-ONLY") {
		t.Errorf("STORE after EXAMINE: %s", st)
	}
}

// A new keyword is announced by an untagged FLAGS before the FETCH that
// uses it (RFC 9051 §7.3.5), in the session that stored it and in the
// others; PERMANENTFLAGS allows new keywords (\*).
func TestStoreNewKeyword(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	r.mustAppend("INBOX", "", "", simple(users[0], users[0], "m", "x"))
	u := r.sel("INBOX")
	if find(u, `PERMANENTFLAGS (`, `\*)`) == "" || find(u, "$Urgent") != "" {
		t.Fatalf("SELECT: %q", u)
	}
	o := login(t, srv, users[0])
	o.sel("INBOX")

	u = r.ok(`STORE 1 +FLAGS ($Urgent)`)
	if len(u) != 2 || !strings.HasPrefix(u[0], "* FLAGS (") || !strings.Contains(u[0], "$Urgent") ||
		!strings.HasPrefix(u[1], "* 1 FETCH") || !strings.Contains(u[1], "$Urgent") {
		t.Errorf("STORE of a new keyword: %q", u)
	}
	// The other session: FLAGS first, then the FETCH.
	u = o.ok("NOOP")
	if len(u) != 2 || !strings.HasPrefix(u[0], "* FLAGS (") || !strings.Contains(u[0], "$Urgent") ||
		!strings.Contains(u[1], "$Urgent") {
		t.Errorf("other session: %q", u)
	}
	// Announced once: no FLAGS for the second use.
	if u := r.ok(`STORE 1 -FLAGS ($Urgent)`); len(u) != 1 {
		t.Errorf("second STORE: %q", u)
	}
	// A FETCH by a session that was not yet told of the keyword does not
	// show it before the FLAGS that announces it.
	r.ok(`STORE 1 +FLAGS ($Autre)`)
	u = o.ok("FETCH 1 FLAGS")
	flagsAt, keywordAt := -1, -1
	for i, l := range u {
		if strings.HasPrefix(l, "* FLAGS") && strings.Contains(l, "$Autre") && flagsAt < 0 {
			flagsAt = i
		}
		if strings.HasPrefix(l, "* 1 FETCH") && strings.Contains(l, "$Autre") && keywordAt < 0 {
			keywordAt = i
		}
	}
	if flagsAt < 0 || keywordAt < flagsAt {
		t.Errorf("FETCH after another session's new keyword: %q", u)
	}
}

var copyUIDRe = regexp.MustCompile(`\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]`)

// COPY answers COPYUID with the destination UIDs (RFC 4315); MOVE answers
// COPYUID, then the EXPUNGEs (RFC 6851 §4.3).
func TestCopyMove(t *testing.T) {
	r, _ := setup(t, 3)
	r.ok(`STORE 2 +FLAGS ($Dossier \Flagged)`)
	u, st := r.do("COPY 1:2 Archive")
	m := copyUIDRe.FindStringSubmatch(st)
	if !strings.HasPrefix(st, "OK") || m == nil || m[2] != "1:2" || len(u) != 0 {
		t.Fatalf("COPY: %s %q", st, u)
	}
	a := r.ok("STATUS Archive (UIDVALIDITY UIDNEXT MESSAGES)")
	if find(a, "UIDVALIDITY "+m[1]) == "" || find(a, "MESSAGES 2") == "" {
		t.Errorf("COPYUID %q, STATUS %q", st, a)
	}
	u, st = r.do("MOVE 3 Archive")
	if !strings.HasPrefix(st, "OK") || len(u) != 2 || !strings.HasPrefix(u[0], "* OK [COPYUID "+m[1]+" 3 ") || u[1] != "* 3 EXPUNGE" {
		t.Fatalf("MOVE: %s %q", st, u)
	}
	m3 := copyUIDRe.FindStringSubmatch(u[0])
	if st := r.no("COPY 1 Nowhere"); !strings.Contains(st, "[TRYCREATE]") {
		t.Errorf("COPY to a missing mailbox: %s", st)
	}
	if st := r.no("MOVE 1 Nowhere"); !strings.Contains(st, "[TRYCREATE]") {
		t.Errorf("MOVE to a missing mailbox: %s", st)
	}

	// The copies keep flags and dates, under the UIDs COPYUID gave.
	r.ok("EXAMINE Archive")
	got := r.ok("UID FETCH 1:* (FLAGS)")
	uids := []string{strings.Split(m[3], ":")[0], m3[3]}
	if len(got) != 3 || !strings.Contains(got[0], "UID "+uids[0]+" ") || !strings.Contains(got[2], "UID "+uids[1]+" ") {
		t.Errorf("Archive: %q, COPYUID %v", got, uids)
	}
	if !slices.Contains(flagsIn(got[1]), "$Dossier") || !slices.Contains(flagsIn(got[1]), `\Flagged`) {
		t.Errorf("copy lost its flags: %q", got[1])
	}
	// MOVE into the selected mailbox itself gives a new UID (RFC 6851).
	r.sel("Archive")
	u, st = r.do("MOVE 1 Archive")
	if !strings.HasPrefix(st, "OK") || len(u) != 4 || !strings.HasPrefix(u[0], "* OK [COPYUID") || u[1] != "* 1 EXPUNGE" ||
		u[2] != "* 3 EXISTS" || u[3] != "* 3 RECENT" {
		t.Errorf("MOVE to the same mailbox: %s %q", st, u)
	}
}

var appendUIDRe = regexp.MustCompile(`^OK \[APPENDUID (\d+) (\d+)\]`)

// APPEND answers APPENDUID and keeps the flags and internal date given
// (RFC 9051 §6.3.12, RFC 4315); a missing mailbox is NO [TRYCREATE].
func TestAppend(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	msg := simple(users[0], users[0], "appended", "body")
	st := r.appendMsg("Drafts", `\Seen \Draft $Brouillon`, "14-Jul-2026 10:30:00 +0200", msg)
	m := appendUIDRe.FindStringSubmatch(st)
	if m == nil {
		t.Fatalf("APPEND: %s", st)
	}
	if u := r.ok("STATUS Drafts (UIDVALIDITY)"); find(u, "UIDVALIDITY "+m[1]) == "" {
		t.Errorf("APPENDUID %s, STATUS %q", st, u)
	}
	r.ok("EXAMINE Drafts")
	u := r.ok("UID FETCH %s (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])", m[2])
	if len(u) != 1 || !slices.Equal(flagsIn(u[0]), sorted(`\Seen`, `\Draft`, "$Brouillon", `\Recent`)) ||
		!strings.Contains(u[0], `INTERNALDATE "14-Jul-2026 10:30:00 +0200"`) ||
		!strings.Contains(u[0], fmt.Sprintf("RFC822.SIZE %d ", len(msg))) || !strings.HasSuffix(u[0], msg+")") {
		t.Errorf("appended message: %q", u)
	}
	if st := r.appendMsg("Nowhere", "", "", msg); !strings.HasPrefix(st, "NO [TRYCREATE]") {
		t.Errorf("APPEND to a missing mailbox: %s", st)
	}
	// \Recent cannot be appended, only given by the server.
	st = r.appendMsg("Drafts", `\Recent`, "", msg)
	if appendUIDRe.FindStringSubmatch(st) == nil {
		t.Errorf("APPEND with \\Recent: %s", st)
	}
}

// A message over max_message_size is refused with [TOOBIG] (RFC 7889),
// announced in APPENDLIMIT. Sent as a non-synchronizing literal, its bytes
// are read and dropped, never taken as commands (RFC 7888 §4).
func TestAppendTooBig(t *testing.T) {
	const limit = 2048
	srv, users := startWith(t, func(c *server.Config) { c.MaxMessageSize = limit }, "alice")
	r := dialRaw(t, srv, "imaps")
	u := r.ok("LOGIN %s %s", quote(users[0]), quote(password))
	if caps := r.ok("CAPABILITY"); find(caps, fmt.Sprintf("APPENDLIMIT=%d", limit)) == "" {
		t.Errorf("CAPABILITY: %q (login %q)", caps, u)
	}
	big := simple(users[0], users[0], "big", strings.Repeat("t1 DELETE Archive\r\n", 200))
	if st := r.appendMsg("INBOX", "", "", big); !strings.HasPrefix(st, "NO [TOOBIG]") {
		t.Errorf("non-synchronizing APPEND over the limit: %s", st)
	}
	// Synchronizing literal: refused after the data, which is dropped too.
	r.tag++
	tag := fmt.Sprintf("t%d", r.tag)
	r.write(fmt.Sprintf("%s APPEND INBOX {%d}\r\n", tag, len(big)))
	if l := r.line(); strings.HasPrefix(l, "+") {
		r.write(big + "\r\n")
		l = r.line()
		if !strings.HasPrefix(l, tag+" NO [TOOBIG]") {
			t.Errorf("synchronizing APPEND over the limit: %s", l)
		}
	} else if !strings.HasPrefix(l, tag+" NO [TOOBIG]") {
		t.Errorf("synchronizing APPEND over the limit: %s", l)
	}
	u = r.ok(`LIST "" Archive`)
	if len(u) != 1 {
		t.Errorf("the literal was run as commands: %q", u)
	}
	if u := r.ok("STATUS INBOX (MESSAGES)"); find(u, "MESSAGES 0") == "" {
		t.Errorf("STATUS: %q", u)
	}
	if st := r.appendMsg("INBOX", "", "", simple(users[0], users[0], "small", "ok")); !strings.HasPrefix(st, "OK [APPENDUID") {
		t.Errorf("APPEND under the limit: %s", st)
	}
}

// EXPUNGE removes every \Deleted message, UID EXPUNGE only those named
// (RFC 4315); CLOSE expunges without EXPUNGE responses, UNSELECT does not
// expunge (RFC 9051 §6.4.1, §6.4.2), CLOSE of an EXAMINEd mailbox removes
// nothing and succeeds.
func TestExpungeCloseUnselect(t *testing.T) {
	r, _ := setup(t, 6)
	r.ok(`STORE 1,3,5 +FLAGS.SILENT (\Deleted)`)
	if u := r.ok("UID EXPUNGE 3:4"); !slices.Equal(u, []string{"* 3 EXPUNGE"}) {
		t.Errorf("UID EXPUNGE: %q", u)
	}
	if u := r.ok("EXPUNGE"); !slices.Equal(u, []string{"* 1 EXPUNGE", "* 3 EXPUNGE"}) {
		t.Errorf("EXPUNGE: %q", u)
	}
	if u := r.ok("UID FETCH 1:* UID"); len(u) != 3 || !strings.Contains(u[0], "UID 2)") || !strings.Contains(u[2], "UID 6)") {
		t.Errorf("left: %q", u)
	}

	r.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if u := r.ok("UNSELECT"); len(u) != 0 {
		t.Errorf("UNSELECT: %q", u)
	}
	if u := r.ok("STATUS INBOX (MESSAGES DELETED)"); find(u, "MESSAGES 3") == "" || find(u, "DELETED 1") == "" {
		t.Errorf("after UNSELECT: %q", u)
	}
	r.ok("EXAMINE INBOX")
	if st := r.no("EXPUNGE"); !strings.Contains(st, "[READ-ONLY]") {
		t.Errorf("EXPUNGE after EXAMINE: %s", st)
	}
	if u := r.ok("CLOSE"); len(u) != 0 {
		t.Errorf("CLOSE after EXAMINE: %q", u)
	}
	if u := r.ok("STATUS INBOX (MESSAGES)"); find(u, "MESSAGES 3") == "" {
		t.Errorf("CLOSE after EXAMINE expunged: %q", u)
	}
	r.sel("INBOX")
	if u := r.ok("CLOSE"); len(u) != 0 {
		t.Errorf("CLOSE: %q", u)
	}
	if u := r.ok("STATUS INBOX (MESSAGES DELETED)"); find(u, "MESSAGES 2") == "" || find(u, "DELETED 0") == "" {
		t.Errorf("after CLOSE: %q", u)
	}
	// CLOSE leaves the selected state: FETCH is refused.
	if _, st := r.do("FETCH 1 FLAGS"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("FETCH after CLOSE: %s", st)
	}
}

// A session that lets more than the bound of updates pile up (it never
// reads while another session changes the mailbox) is ended with BYE at
// its next command, rather than holding them all in memory.
func TestUpdateQueueBound(t *testing.T) {
	defer imap.SetMaxQueued(10)()
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	r.mustAppend("INBOX", "", "", simple(users[0], users[0], "m1", "x"))
	r.sel("INBOX")
	other := login(t, srv, users[0])
	other.sel("INBOX")
	for i := range 12 {
		other.ok(`STORE 1 %sFLAGS (\Flagged)`, map[bool]string{true: "+", false: "-"}[i%2 == 0])
	}
	// The other session, under the bound, is unaffected.
	other.ok("NOOP")
	tag := r.send("NOOP")
	var lines []string
	for {
		l, err := r.readLine()
		if err != nil {
			break
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "* BYE") || strings.Contains(strings.Join(lines, "\n"), tag+" OK") {
		t.Fatalf("after the queue overflowed, NOOP got %q", lines)
	}
}
