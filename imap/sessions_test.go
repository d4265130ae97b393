package imap_test

import (
	"slices"
	"strings"
	"testing"
)

// Two sessions on one mailbox: what one does, and what arrives by SMTP or
// APPEND, the other learns at its next command (RFC 9051 §7: untagged
// updates). A new message is \Recent for exactly one session, the first
// with the mailbox selected read-write to learn of it (RFC 3501 §2.3.2),
// with a RECENT response after EXISTS; STATUS elsewhere then counts it no
// more.
func TestTwoSessions(t *testing.T) {
	srv, users := start(t, "alice")
	alice := users[0]
	a := login(t, srv, alice)
	for _, s := range []string{"one", "two", "three"} {
		a.mustAppend("INBOX", "", "", simple(alice, alice, s, "x"))
	}
	if u := a.sel("INBOX"); find(u, "* 3 RECENT") == "" {
		t.Errorf("first SELECT: %q", u)
	}
	b := login(t, srv, alice)
	if u := b.sel("INBOX"); find(u, "* 0 RECENT") == "" || find(u, "* 3 EXISTS") == "" {
		t.Errorf("second SELECT: %q", u)
	}
	c := login(t, srv, alice) // never selects INBOX

	// A flag change.
	a.ok(`STORE 1 +FLAGS.SILENT (\Seen)`)
	if u := b.ok("NOOP"); len(u) != 1 || !strings.HasPrefix(u[0], "* 1 FETCH") || !slices.Equal(flagsIn(u[0]), []string{`\Seen`}) {
		t.Errorf("B after A's STORE: %q", u)
	}
	if u := a.ok("NOOP"); len(u) != 0 {
		t.Errorf("A is told of its own .SILENT STORE: %q", u)
	}

	// A delivery by SMTP: A learns of it first and gets it \Recent.
	deliver(t, srv, alice, []string{alice}, simple(alice, alice, "four", "x"))
	if u := a.ok("NOOP"); !slices.Equal(u, []string{"* 4 EXISTS", "* 4 RECENT"}) {
		t.Errorf("A after a delivery: %q", u)
	}
	if u := b.ok("NOOP"); !slices.Equal(u, []string{"* 4 EXISTS", "* 0 RECENT"}) {
		t.Errorf("B after a delivery: %q", u)
	}
	if u := c.ok("STATUS INBOX (MESSAGES RECENT)"); find(u, "MESSAGES 4 RECENT 0") == "" {
		t.Errorf("STATUS after the claim: %q", u)
	}
	if u := a.ok("FETCH 4 FLAGS"); len(u) != 1 || !slices.Equal(flagsIn(u[0]), []string{`\Recent`}) {
		t.Errorf("A: %q", u)
	}
	if u := b.ok("FETCH 4 FLAGS"); len(u) != 1 || len(flagsIn(u[0])) != 0 {
		t.Errorf("B: %q", u)
	}
	if u := b.ok(`SEARCH RECENT`); !slices.Equal(u, []string{"* SEARCH"}) {
		t.Errorf("B SEARCH RECENT: %q", u)
	}
	if u := a.ok(`SEARCH RECENT`); !slices.Equal(u, []string{"* SEARCH 1 2 3 4"}) {
		t.Errorf("A SEARCH RECENT: %q", u)
	}

	// An APPEND by B: B's own poll claims it.
	b.mustAppend("INBOX", `\Flagged`, "", simple(alice, alice, "five", "x"))
	if u := a.ok("NOOP"); !slices.Equal(u, []string{"* 5 EXISTS", "* 4 RECENT"}) {
		t.Errorf("A after B's APPEND: %q", u)
	}
	if u := b.ok("FETCH 5 FLAGS"); len(u) != 1 || !slices.Equal(flagsIn(u[0]), sorted(`\Flagged`, `\Recent`)) {
		t.Errorf("B's appended message: %q", u)
	}

	// An expunge by A.
	a.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	if u := a.ok("EXPUNGE"); !slices.Equal(u, []string{"* 2 EXPUNGE"}) {
		t.Errorf("A EXPUNGE: %q", u)
	}
	u := b.ok("NOOP")
	if len(u) != 2 || !strings.HasPrefix(u[0], "* 2 FETCH") || u[1] != "* 2 EXPUNGE" {
		t.Errorf("B after A's EXPUNGE: %q", u)
	}
	if u := b.ok("FETCH 2:4 UID"); len(u) != 3 || !strings.Contains(u[0], "UID 3") || !strings.Contains(u[2], "UID 5") {
		t.Errorf("B's numbering after the EXPUNGE: %q", u)
	}
}

// A session that only EXAMINEs claims nothing: the message stays \Recent
// for the next SELECT (RFC 3501 §6.3.2).
func TestRecentExamine(t *testing.T) {
	srv, users := start(t, "alice")
	alice := users[0]
	e := login(t, srv, alice)
	e.ok("EXAMINE INBOX")
	deliver(t, srv, alice, []string{alice}, simple(alice, alice, "new", "x"))
	if u := e.ok("NOOP"); !slices.Equal(u, []string{"* 1 EXISTS", "* 0 RECENT"}) {
		t.Errorf("EXAMINE after a delivery: %q", u)
	}
	c := login(t, srv, alice)
	if u := c.ok("STATUS INBOX (RECENT)"); find(u, "RECENT 1") == "" {
		t.Errorf("STATUS: %q", u)
	}
	if u := c.sel("INBOX"); find(u, "* 1 RECENT") == "" {
		t.Errorf("SELECT: %q", u)
	}
	if u := e.ok("STATUS INBOX (RECENT)"); find(u, "RECENT 0") == "" {
		t.Errorf("STATUS after SELECT: %q", u)
	}
}

// IDLE pushes flag changes, arrivals and expunges without a command
// (RFC 2177), the new keyword after its FLAGS.
func TestIdlePush(t *testing.T) {
	srv, users := start(t, "alice")
	alice := users[0]
	a := login(t, srv, alice)
	a.mustAppend("INBOX", "", "", simple(alice, alice, "one", "x"))
	a.mustAppend("INBOX", "", "", simple(alice, alice, "two", "x"))
	a.sel("INBOX")
	b := login(t, srv, alice)
	b.sel("INBOX")
	tag := b.send("IDLE")
	if l := b.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %s", l)
	}

	a.ok(`STORE 2 +FLAGS ($Suivi)`)
	if l := b.line(); !strings.HasPrefix(l, "* FLAGS (") || !strings.Contains(l, "$Suivi") {
		t.Errorf("IDLE, keyword: %s", l)
	}
	if l := b.line(); !strings.HasPrefix(l, "* 2 FETCH") || !strings.Contains(l, "$Suivi") {
		t.Errorf("IDLE, flags: %s", l)
	}
	deliver(t, srv, alice, []string{alice}, simple(alice, alice, "three", "x"))
	if l := b.line(); l != "* 3 EXISTS" {
		t.Errorf("IDLE, delivery: %s", l)
	}
	if l := b.line(); l != "* 1 RECENT" {
		t.Errorf("IDLE, recent: %s", l)
	}
	a.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if l := b.line(); !strings.HasPrefix(l, "* 1 FETCH") {
		t.Errorf("IDLE, \\Deleted: %s", l)
	}
	a.ok("EXPUNGE")
	if l := b.line(); l != "* 1 EXPUNGE" {
		t.Errorf("IDLE, expunge: %s", l)
	}
	b.write("DONE\r\n")
	if u, st := b.wait(tag); !strings.HasPrefix(st, "OK") || len(u) != 0 {
		t.Errorf("DONE: %s %q", st, u)
	}
	if u := b.ok("FETCH 1:* UID"); len(u) != 2 || !strings.Contains(u[0], "UID 2") || !strings.Contains(u[1], "UID 3") {
		t.Errorf("after IDLE: %q", u)
	}
}

// No EXPUNGE is sent during FETCH, STORE or SEARCH (RFC 9051 §7.5.1): the
// session keeps numbering as it knows the mailbox, and learns of the
// expunge at its next NOOP; UID commands may carry it.
func TestNoExpungeDuringFetchStoreSearch(t *testing.T) {
	srv, users := start(t, "alice")
	alice := users[0]
	a := login(t, srv, alice)
	for _, s := range []string{"1", "2", "3", "4", "5"} {
		a.mustAppend("INBOX", "", "", simple(alice, alice, s, "x"))
	}
	a.sel("INBOX")
	b := login(t, srv, alice)
	b.sel("INBOX")

	a.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	a.ok("EXPUNGE")
	deliver(t, srv, alice, []string{alice}, simple(alice, alice, "6", "x"))

	noExpunge := func(what string, u []string) {
		t.Helper()
		if find(u, "EXPUNGE") != "" {
			t.Errorf("%s sent EXPUNGE: %q", what, u)
		}
	}
	u := b.ok("FETCH 1:* (UID)")
	noExpunge("FETCH", u)
	want := map[string]string{"* 1 ": "UID 1)", "* 3 ": "UID 3)", "* 4 ": "UID 4)", "* 5 ": "UID 5)"}
	n := 0
	for _, l := range u {
		for p, w := range want {
			if strings.HasPrefix(l, p+"FETCH") {
				n++
				if !strings.Contains(l, w) {
					t.Errorf("FETCH: %s, want %s", l, w)
				}
			}
		}
	}
	if n != 4 {
		t.Errorf("FETCH 1:*: %q", u)
	}
	u = b.ok(`STORE 4 +FLAGS (\Flagged)`)
	noExpunge("STORE", u)
	if l := find(u, "* 4 FETCH"); !strings.Contains(l, "UID 4 ") || !slices.Contains(flagsIn(l), `\Flagged`) {
		t.Errorf("STORE while an EXPUNGE waits: %q", u)
	}
	u = b.ok("SEARCH ALL")
	noExpunge("SEARCH", u)
	if find(u, "* SEARCH 1 3 4 5") == "" {
		t.Errorf("SEARCH ALL: %q", u)
	}
	if u := b.ok(`SEARCH FLAGGED`); find(u, "* SEARCH 4") == "" {
		t.Errorf("SEARCH FLAGGED: %q", u)
	}
	u = b.ok("NOOP")
	// B is the first read-write session to learn of the delivery.
	if !slices.Equal(u, []string{"* 2 EXPUNGE", "* 5 EXISTS", "* 1 RECENT"}) {
		t.Errorf("NOOP: %q", u)
	}
	if u := b.ok("FETCH 3 UID"); len(u) != 1 || !strings.Contains(u[0], "UID 4)") {
		t.Errorf("numbering after NOOP: %q", u)
	}

	// UID FETCH may carry the EXPUNGE, after its own responses.
	a.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	a.ok("EXPUNGE")
	u = b.ok("UID FETCH 3:4 FLAGS")
	if len(u) != 4 || !strings.HasPrefix(u[0], "* 2 FETCH (UID 3 ") || !strings.HasPrefix(u[1], "* 3 FETCH (UID 4 ") ||
		!strings.HasPrefix(u[2], "* 1 FETCH (UID 1 FLAGS (\\Deleted))") || u[3] != "* 1 EXPUNGE" {
		t.Errorf("UID FETCH: %q", u)
	}
}

// An IMAP4rev2 client (ENABLE IMAP4rev2) is sent neither \Recent nor
// RECENT: RFC 9051 removed both (Appendix E).
func TestRecentHiddenFromIMAP4rev2(t *testing.T) {
	srv, users := start(t, "alice")
	alice := users[0]
	r := login(t, srv, alice)
	r.mustAppend("INBOX", "", "", simple(alice, alice, "one", "x"))
	if u := r.ok("ENABLE IMAP4rev2"); find(u, "ENABLED IMAP4rev2") == "" {
		t.Fatalf("ENABLE: %q", u)
	}
	if u := r.sel("INBOX"); find(u, "RECENT") != "" || find(u, "* 1 EXISTS") == "" {
		t.Errorf("SELECT: %q", u)
	}
	if u := r.ok("FETCH 1 FLAGS"); len(u) != 1 || len(flagsIn(u[0])) != 0 {
		t.Errorf("FETCH: %q", u)
	}
	deliver(t, srv, alice, []string{alice}, simple(alice, alice, "two", "x"))
	if u := r.ok("NOOP"); !slices.Equal(u, []string{"* 2 EXISTS"}) {
		t.Errorf("NOOP: %q", u)
	}
	if u := r.ok(`STORE 2 +FLAGS (\Seen)`); len(u) != 1 || !slices.Equal(flagsIn(u[0]), []string{`\Seen`}) {
		t.Errorf("STORE: %q", u)
	}
}

// A mailbox deleted while another session has it selected: that session
// sees every message expunged, and nothing of a new mailbox of the same
// name (which may get the same internal ID) until it selects it.
func TestSelectedMailboxDeleted(t *testing.T) {
	srv, users := start(t, "alice")
	alice := users[0]
	a := login(t, srv, alice)
	a.ok("CREATE Projets")
	a.mustAppend("Projets", "", "", simple(alice, alice, "one", "x"))
	a.mustAppend("Projets", "", "", simple(alice, alice, "two", "x"))
	b := login(t, srv, alice)
	b.sel("Projets")
	a.ok("DELETE Projets")
	if u := b.ok("NOOP"); !slices.Equal(u, []string{"* 2 EXPUNGE", "* 1 EXPUNGE"}) {
		t.Errorf("after DELETE: %q", u)
	}
	a.ok("CREATE Projets")
	a.mustAppend("Projets", "", "", simple(alice, alice, "new", "x"))
	if u := b.ok("NOOP"); len(u) != 0 {
		t.Errorf("the deleted mailbox's session sees the new one: %q", u)
	}
	if u := b.ok("FETCH 1:* UID"); len(u) != 0 {
		t.Errorf("FETCH in the deleted mailbox: %q", u)
	}
	if u := b.sel("Projets"); find(u, "* 1 EXISTS") == "" {
		t.Errorf("SELECT of the new mailbox: %q", u)
	}
	if u := b.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"); len(u) != 1 || !strings.Contains(u[0], "Subject: new") {
		t.Errorf("FETCH in the new mailbox: %q", u)
	}
}
