package imap_test

import (
	"context"
	"strings"
	"testing"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage"
)

// TestSharedMailboxRoles is ISSUE 19's "tried as a new user would" over
// real IMAPS connections: an organisational mailbox with one manager and
// one member. The member opens the shared INBOX, reads, flags and files
// into it, and is refused with NO [NOPERM] and a sentence when it expunges
// or shapes the folders; the manager may do all of it. A role changed or
// a membership removed meanwhile is seen at the next SELECT without a new
// login. The store's changes name their actor.
func TestSharedMailboxRoles(t *testing.T) {
	srv, users := start(t, "dupont", "martin", "bob")
	manager, member, bob := users[0], users[1], users[2]
	const org = "cardiologie@carepost.test"
	ctx := context.Background()
	if _, err := srv.AddMailbox(ctx, directory.KindOrganisational, org, []string{member, manager}, "Cardiologie"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Dir.AddMember(ctx, org, manager, directory.RoleManager); err != nil {
		t.Fatal(err)
	}
	deliver(t, srv, bob, []string{org}, simple(bob, org, "Avis 1", "Premier avis demandé."))
	deliver(t, srv, bob, []string{org}, simple(bob, org, "Avis 2", "Second avis demandé."))
	inbox := "Shared/" + org + "/INBOX"

	box, err := srv.Store.GetMailbox(ctx, org, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan storage.Change, 64)
	stop := srv.Store.Watch(box.ID, func(c storage.Change) {
		select {
		case changes <- c:
		default:
		}
	})
	defer stop()

	// The member reads, flags and inserts.
	m := login(t, srv, member)
	if u := m.sel(inbox); find(u, "* 2 EXISTS") == "" {
		t.Fatalf("member SELECT: %q", u)
	}
	if u := m.ok(`FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])`); find(u, "Subject: Avis 1") == "" {
		t.Errorf("member FETCH: %q", u)
	}
	if u := m.ok(`STORE 1 +FLAGS (\Seen \Flagged \Deleted)`); find(u, `\Deleted`, `\Flagged`, `\Seen`) == "" {
		t.Errorf("member STORE: %q", u)
	}
	// The change the store published names the member as its actor
	// (after any hint the store's poller sent, storage.MailboxChanged).
	c := <-changes
	for c.Kind == storage.MailboxChanged {
		c = <-changes
	}
	if c.Kind != storage.FlagsChanged || c.Actor == nil || c.Actor.Address != member ||
		c.Actor.Mechanism != auth.MechPlain || !strings.HasPrefix(c.Actor.Source, "127.0.0.1:") {
		t.Errorf("change %+v, actor %+v: want FlagsChanged by %s over PLAIN from 127.0.0.1", c, c.Actor, member)
	}
	m.mustAppend(inbox, `\Seen`, "", simple(member, org, "Note", "Compte rendu déposé par un membre."))
	m.ok(`COPY 2 INBOX`) // into its own INBOX: read here, insert there

	// It may not expunge, nor move out (which expunges), nor shape the
	// folders, and is told why.
	sentence := func(what string) string {
		return "NO [NOPERM] You may not " + what + " in the mailbox " + org + ": only its managers may do this."
	}
	for _, c := range []struct{ cmd, want string }{
		{"EXPUNGE", sentence("remove the messages marked deleted")},
		{"UID EXPUNGE 1", sentence("remove the messages marked deleted")},
		{"MOVE 1 INBOX", sentence("move messages out of this folder")},
		{`CREATE "Shared/` + org + `/Dossiers"`, sentence(`create the folder "Dossiers"`)},
		{`DELETE "Shared/` + org + `/Archive"`, sentence(`delete the folder "Archive"`)},
		{`RENAME "Shared/` + org + `/Archive" "Shared/` + org + `/Ancien"`, sentence(`rename the folder "Archive"`)},
	} {
		if st := m.no("%s", c.cmd); st != c.want {
			t.Errorf("member %s:\n got %s\nwant %s", c.cmd, st, c.want)
		}
	}
	// CLOSE without the expunge right closes and removes nothing (RFC
	// 4314 §4).
	m.ok("CLOSE")
	if u := m.ok(`STATUS %s (MESSAGES)`, quote(inbox)); find(u, "MESSAGES 3") == "" {
		t.Errorf("after the member's CLOSE: %q", u)
	}
	if u := m.ok(`LIST "Shared/` + org + `/" "*"`); find(u, "Archive") == "" || find(u, "Dossiers") != "" || find(u, "Ancien") != "" {
		t.Errorf("folders after the member's refusals: %q", u)
	}

	// The manager may do all of it.
	g := login(t, srv, manager)
	g.sel(inbox)
	if u := g.ok("EXPUNGE"); find(u, "* 1 EXPUNGE") == "" {
		t.Errorf("manager EXPUNGE: %q", u)
	}
	g.ok(`CREATE "Shared/%s/Dossiers"`, org)
	g.ok(`RENAME "Shared/%s/Dossiers" "Shared/%s/Dossiers 2026"`, org, org)
	g.ok(`MOVE 1 "Shared/%s/Dossiers 2026"`, org)
	g.ok(`DELETE "Shared/%s/Archive"`, org)
	if u := g.ok(`LIST "Shared/` + org + `/" "*"`); find(u, "Dossiers 2026") == "" || find(u, `/Archive"`) != "" {
		t.Errorf("folders after the manager's changes: %q", u)
	}

	// Promoted, the member may expunge at its next SELECT, without a new
	// login; removed, the mailbox is gone for it.
	if err := srv.Dir.AddMember(ctx, org, member, directory.RoleManager); err != nil {
		t.Fatal(err)
	}
	m.sel(inbox)
	m.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if u := m.ok("EXPUNGE"); find(u, "* 1 EXPUNGE") == "" {
		t.Errorf("promoted member EXPUNGE: %q", u)
	}
	if err := srv.Dir.RemoveMember(ctx, org, member); err != nil {
		t.Fatal(err)
	}
	if st := m.no("SELECT %s", quote(inbox)); !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("removed member SELECT: %s", st)
	}
	if u := m.ok(`LIST "" "*"`); find(u, "Shared") != "" {
		t.Errorf("removed member LIST: %q", u)
	}
}
