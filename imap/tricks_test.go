package imap_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/carepost/carepost/directory"
)

// TestMailboxNameTricks: a user tries to reach another user's mailboxes,
// or a shared mailbox it is not a member of, through every spelling of a
// mailbox name we could think of (part of the adversarial pack,
// docs/security.md). Each attempt fails (NO or BAD), the session goes on,
// and nothing of the others changes or shows.
func TestMailboxNameTricks(t *testing.T) {
	lt := &logTB{TB: t}
	srv, users := start(lt, "alice", "bob")
	alice, bob := users[0], users[1]
	domain := strings.SplitN(alice, "@", 2)[1]
	cardio := "cardio@" + domain
	if _, err := srv.Dir.AddMailbox(context.Background(), directory.KindOrganisational, cardio, []string{alice}, "team"); err != nil {
		t.Fatal(err)
	}
	deliver(t, srv, alice, []string{cardio}, simple(alice, cardio, "team", "secret of the team"))
	a := login(t, srv, alice)
	a.mustAppend("INBOX", "", "", simple(alice, alice, "private", "secret of alice"))
	a.ok(`CREATE "Projets"`)

	b := login(t, srv, bob)
	names := []string{
		"Shared/" + alice + "/INBOX",
		"Shared/" + cardio + "/INBOX",
		"Shared/" + strings.ToUpper(cardio) + "/INBOX",
		"Shared/" + cardio,
		"Shared/" + cardio + "/",
		"Shared//" + cardio + "/INBOX",
		"Shared/" + cardio + "/../INBOX",
		"Shared/./" + cardio + "/INBOX",
		"shared/" + cardio + "/INBOX",
		"../" + alice + "/INBOX",
		"INBOX/../../" + alice + "/INBOX",
		"/" + alice + "/INBOX",
		"~" + alice + "/INBOX",
		"#shared/" + cardio + "/INBOX",
		"Other Users/" + alice + "/INBOX",
		alice + "/INBOX",
		alice,
		"Projets",
		"Shared/" + alice + "/Projets",
		"Shared/" + cardio + "%",
		"Shared/*",
		"Shared/%/INBOX",
		strings.Repeat("../", 300) + "INBOX",
		strings.Repeat("a/", 2000) + "b",
	}
	// Every command that names a mailbox. A name outside the Shared/
	// namespace is a name in bob's own account ("../alice/INBOX" is a
	// folder bob may create, a name like any other: the store knows no
	// paths); the commands on those may succeed, on bob's own folders.
	// Under Shared/ every one must fail.
	cmds := []string{"SELECT %s", "EXAMINE %s", "STATUS %s (MESSAGES)", "DELETE %s", "RENAME %s Stolen",
		"APPEND %s {5+}\r\nhello", "CREATE %s/x"}
	for _, n := range names {
		shared := strings.HasPrefix(strings.ToLower(n), "shared/")
		for _, c := range cmds {
			cmd := fmt.Sprintf(c, quote(n))
			u, st := b.do("%s", cmd)
			if shared && strings.HasPrefix(st, "OK") {
				t.Errorf("bob: %q answered %s", cmd, st)
			}
			for _, l := range u {
				if strings.Contains(l, "EXISTS") && !strings.HasPrefix(l, "* 0 ") {
					t.Errorf("bob: %q shows messages: %q", cmd, l)
				}
			}
		}
		if shared {
			if _, st := b.do("RENAME INBOX %s", quote(n)); strings.HasPrefix(st, "OK") {
				t.Errorf("bob: RENAME INBOX %q answered %s", n, st)
			}
		}
		b.ok("NOOP") // the session goes on
	}
	// COPY and MOVE out of bob's INBOX into the others' names.
	b.mustAppend("INBOX", "", "", simple(bob, bob, "mine", "bob's"))
	b.sel("INBOX")
	for _, n := range names[:9] {
		for _, c := range []string{"COPY 1 %s", "MOVE 1 %s", "UID COPY 1 %s"} {
			if _, st := b.do(c, quote(n)); strings.HasPrefix(st, "OK") {
				t.Errorf("bob: %s answered %s", fmt.Sprintf(c, quote(n)), st)
			}
		}
	}
	// Nothing of alice's or the team's shows in bob's LIST, LSUB or STATUS.
	for _, c := range []string{`LIST "" "*"`, `LIST "" "%"`, `LIST "" "Shared/*"`, `LIST "Shared/" "*"`, `LSUB "" "*"`,
		`LIST (SUBSCRIBED) "" "*"`, `LIST "" "*" RETURN (STATUS (MESSAGES))`} {
		u, st := b.do("%s", c)
		if !strings.HasPrefix(st, "OK") {
			t.Errorf("bob: %s answered %s", c, st)
		}
		for _, l := range u {
			// bob's own folders may carry the others' names (above);
			// the team's shared mailbox must not show.
			if strings.Contains(strings.ToLower(l), "shared/"+cardio) {
				t.Errorf("bob: %s shows %q", c, l)
			}
		}
	}
	// Alice's and the team's mailboxes are as they were.
	for mb, want := range map[string]string{"INBOX": "1", "Shared/" + cardio + "/INBOX": "1", "Projets": "0"} {
		u := a.ok("STATUS %s (MESSAGES)", quote(mb))
		if len(u) != 1 || !strings.Contains(u[0], "MESSAGES "+want+")") {
			t.Errorf("alice's %s: %q", mb, u)
		}
	}
	if l := lt.logged(); strings.Contains(strings.ToLower(l), "panic") {
		t.Errorf("the server panicked:\n%s", l)
	}
}
