package imap_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/carepost/carepost/directory"
)

// The LIST responses of a fresh account: one mailbox per special use
// (RFC 6154), each with its CHILDREN attribute (RFC 3348).
func TestListSpecialUse(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	want := []string{
		`* LIST (\HasNoChildren \Archive) "/" "Archive"`,
		`* LIST (\HasNoChildren \Drafts) "/" "Drafts"`,
		`* LIST (\HasNoChildren) "/" INBOX`,
		`* LIST (\HasNoChildren \Junk) "/" "Junk"`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent"`,
		`* LIST (\HasNoChildren \Trash) "/" "Trash"`,
	}
	if got := r.ok(`LIST "" "*"`); !slices.Equal(got, want) {
		t.Errorf("LIST:\n got %q\nwant %q", got, want)
	}
	// RFC 6154 §3: LIST (SPECIAL-USE) selects only those with an attribute.
	got := r.ok(`LIST (SPECIAL-USE) "" "*"`)
	if len(got) != 5 || find(got, "INBOX") != "" {
		t.Errorf("LIST (SPECIAL-USE): %q", got)
	}
	// The delimiter query (RFC 9051 §6.3.9).
	if got := r.ok(`LIST "" ""`); len(got) != 1 || got[0] != `* LIST (\Noselect) "/" ""` {
		t.Errorf(`LIST "" "": %q`, got)
	}
}

// CREATE makes the missing parents; LIST shows the hierarchy with
// \HasChildren; a hierarchy without its parents (made by another client, or
// imported) shows implied \Noselect parents; DELETE and RENAME keep it
// right, children follow their parent.
func TestHierarchy(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	r.ok(`CREATE "Projets/2026/Q1"`)
	got := r.ok(`LIST "" "Projets*"`)
	want := []string{
		`* LIST (\HasChildren) "/" "Projets"`,
		`* LIST (\HasChildren) "/" "Projets/2026"`,
		`* LIST (\HasNoChildren) "/" "Projets/2026/Q1"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("after CREATE:\n got %q\nwant %q", got, want)
	}
	if st := r.no(`CREATE "Projets/2026"`); !strings.Contains(st, "[ALREADYEXISTS]") {
		t.Errorf("CREATE existing: %s", st)
	}
	if st := r.no(`CREATE INBOX`); !strings.Contains(st, "[ALREADYEXISTS]") {
		t.Errorf("CREATE INBOX: %s", st)
	}
	// A trailing delimiter only says the name will hold children.
	r.ok(`CREATE "Dossiers/"`)
	if got := r.ok(`LIST "" "Dossiers"`); len(got) != 1 || got[0] != `* LIST (\HasNoChildren) "/" "Dossiers"` {
		t.Errorf("CREATE with trailing delimiter: %q", got)
	}

	// "%" stops at the delimiter.
	if got := r.ok(`LIST "" "Projets/%%"`); len(got) != 1 || !strings.HasSuffix(got[0], `"/" "Projets/2026"`) {
		t.Errorf(`LIST "Projets/%%": %q`, got)
	}
	if got := r.ok(`LIST "Projets/" "%%"`); len(got) != 1 || !strings.HasSuffix(got[0], `"/" "Projets/2026"`) {
		t.Errorf(`LIST with a reference: %q`, got)
	}

	// A mailbox whose parent does not exist (made directly in the store).
	if _, err := srv.Store.CreateMailbox(context.Background(), users[0], "Import/Ancien", ""); err != nil {
		t.Fatal(err)
	}
	got = r.ok(`LIST "" "Import*"`)
	want = []string{
		`* LIST (\Noselect \HasChildren) "/" "Import"`,
		`* LIST (\HasNoChildren) "/" "Import/Ancien"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("implied parent:\n got %q\nwant %q", got, want)
	}
	if st := r.no(`SELECT Import`); !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("SELECT an implied parent: %s", st)
	}

	// DELETE: a leaf goes; INBOX cannot be deleted.
	r.ok(`DELETE "Projets/2026/Q1"`)
	if got := r.ok(`LIST "" "Projets*"`); !slices.Equal(got, []string{
		`* LIST (\HasChildren) "/" "Projets"`,
		`* LIST (\HasNoChildren) "/" "Projets/2026"`,
	}) {
		t.Errorf("after DELETE: %q", got)
	}
	if st := r.no(`DELETE INBOX`); !strings.Contains(st, "[CANNOT]") {
		t.Errorf("DELETE INBOX: %s", st)
	}
	if st := r.no(`DELETE Nothing`); !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("DELETE of a missing name: %s", st)
	}
	// A parent with children is deleted with its messages; the children
	// stay and the name remains as a \Noselect parent (RFC 9051 §6.3.5).
	r.ok(`CREATE "Vieux/Sub"`)
	r.mustAppend("Vieux", "", "", simple(users[0], users[0], "in the parent", "x"))
	r.mustAppend("Vieux/Sub", "", "", simple(users[0], users[0], "in the child", "y"))
	r.ok(`DELETE Vieux`)
	if got := r.ok(`LIST "" "Vieux*"`); !slices.Equal(got, []string{
		`* LIST (\Noselect \HasChildren) "/" "Vieux"`,
		`* LIST (\HasNoChildren) "/" "Vieux/Sub"`,
	}) {
		t.Errorf("after DELETE of a parent: %q", got)
	}
	if u := r.ok(`STATUS "Vieux/Sub" (MESSAGES)`); find(u, "MESSAGES 1") == "" {
		t.Errorf("the child lost its message: %q", u)
	}
	if st := r.no(`SELECT Vieux`); !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("SELECT of the deleted parent: %s", st)
	}
	if st := r.no(`DELETE Vieux`); !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("DELETE of a \\Noselect parent: %s", st)
	}
	r.ok(`CREATE Vieux`)
	if u := r.ok(`STATUS Vieux (MESSAGES)`); find(u, "MESSAGES 0") == "" {
		t.Errorf("re-created parent: %q", u)
	}

	// RENAME: the children follow, and so do their subscriptions; the new
	// parents are created.
	r.ok(`SUBSCRIBE "Projets/2026"`)
	r.ok(`RENAME Projets "Archives 2026/Projets"`)
	got = r.ok(`LIST "" "*Projets*"`)
	want = []string{
		`* LIST (\HasChildren) "/" "Archives 2026/Projets"`,
		`* LIST (\HasNoChildren) "/" "Archives 2026/Projets/2026"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("after RENAME:\n got %q\nwant %q", got, want)
	}
	if got := r.ok(`LIST "" "Archives 2026"`); len(got) != 1 || !strings.Contains(got[0], `\HasChildren`) {
		t.Errorf("new parent of a RENAME: %q", got)
	}
	if got := r.ok(`LSUB "" "*Projets*"`); len(got) != 1 || got[0] != `* LSUB () "/" "Archives 2026/Projets/2026"` {
		t.Errorf("subscription after RENAME: %q", got)
	}
	if st := r.no(`RENAME "Archives 2026" "Archives 2026/Sub"`); !strings.Contains(st, "[CANNOT]") {
		t.Errorf("RENAME into itself: %s", st)
	}
	r.no(`RENAME Nothing Other`)
	if st := r.no(`RENAME Sent Drafts`); !strings.Contains(st, "[ALREADYEXISTS]") {
		t.Errorf("RENAME onto an existing name: %s", st)
	}

	// RENAME INBOX moves its messages and leaves INBOX empty.
	r.mustAppend("INBOX", "", "", simple(users[0], users[0], "one", "x"))
	r.ok(`RENAME INBOX "Old Inbox"`)
	if st := r.ok(`STATUS INBOX (MESSAGES)`); find(st, "MESSAGES 0") == "" {
		t.Errorf("INBOX after RENAME: %q", st)
	}
	if st := r.ok(`STATUS "Old Inbox" (MESSAGES)`); find(st, "MESSAGES 1") == "" {
		t.Errorf("renamed INBOX: %q", st)
	}
	// The session wrote into INBOX before the rename: what it appends now
	// still goes into INBOX, not after the messages that moved away.
	r.mustAppend("INBOX", "", "", simple(users[0], users[0], "two", "y"))
	if st := r.ok(`STATUS INBOX (MESSAGES)`); find(st, "MESSAGES 1") == "" {
		t.Errorf("INBOX after an APPEND following its RENAME: %q", st)
	}
	if st := r.ok(`STATUS "Old Inbox" (MESSAGES)`); find(st, "MESSAGES 1") == "" {
		t.Errorf("renamed INBOX after an APPEND to INBOX: %q", st)
	}
}

// SUBSCRIBE, UNSUBSCRIBE and LSUB (RFC 9051 §6.3.7-8, RFC 3501 §6.3.9),
// and LIST (SUBSCRIBED) with \NonExistent (RFC 5258).
func TestSubscriptions(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	r.ok(`CREATE "Cabinet/Compta"`)
	r.ok(`SUBSCRIBE "Cabinet/Compta"`)
	r.ok(`SUBSCRIBE "Ghost"`) // allowed for a name that does not exist
	r.ok(`UNSUBSCRIBE Junk`)
	r.no(`UNSUBSCRIBE Junk`)

	got := r.ok(`LSUB "" "*"`)
	want := []string{
		`* LSUB () "/" "Archive"`,
		`* LSUB () "/" "Cabinet/Compta"`,
		`* LSUB () "/" "Drafts"`,
		`* LSUB (\Noselect) "/" "Ghost"`,
		`* LSUB () "/" INBOX`,
		`* LSUB () "/" "Sent"`,
		`* LSUB () "/" "Trash"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("LSUB *:\n got %q\nwant %q", got, want)
	}
	// "%" does not reach Cabinet/Compta: its unsubscribed parent is shown
	// \Noselect (RFC 3501 §6.3.9).
	if got := r.ok(`LSUB "" "Cab%%"`); len(got) != 1 || got[0] != `* LSUB (\Noselect) "/" "Cabinet"` {
		t.Errorf("LSUB %%: %q", got)
	}
	// LSUB and LIST (SUBSCRIBED) answer differently (isLSub reads an
	// unexported field of the library: these two checks fail if it breaks).
	got = r.ok(`LIST (SUBSCRIBED) "" "*"`)
	if l := find(got, "Ghost"); l != `* LIST (\Subscribed \NonExistent) "/" "Ghost"` {
		t.Errorf("LIST (SUBSCRIBED) of a missing name: %q", l)
	}
	if l := find(got, "Cabinet/Compta"); l != `* LIST (\Subscribed \HasNoChildren) "/" "Cabinet/Compta"` {
		t.Errorf("LIST (SUBSCRIBED): %q", l)
	}
	if find(got, "Junk") != "" || find(got, `"/" "Cabinet"`) != "" {
		t.Errorf("LIST (SUBSCRIBED) lists an unsubscribed name: %q", got)
	}
	got = r.ok(`LIST "" "*" RETURN (SUBSCRIBED)`)
	if l := find(got, `"/" "Junk"`); l != `* LIST (\HasNoChildren \Junk) "/" "Junk"` {
		t.Errorf("RETURN (SUBSCRIBED) of an unsubscribed mailbox: %q", l)
	}
	if l := find(got, `"/" INBOX`); l != `* LIST (\Subscribed \HasNoChildren) "/" INBOX` {
		t.Errorf("RETURN (SUBSCRIBED): %q", l)
	}
	if find(got, "Ghost") != "" {
		t.Errorf("LIST lists a subscription without mailbox: %q", got)
	}

	// RECURSIVEMATCH (RFC 5258 §3.5): an unsubscribed parent is listed
	// with CHILDINFO when a subscribed descendant is not itself matched.
	got = r.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "Cab%%"`)
	if want := `* LIST (\HasChildren) "/" "Cabinet" (CHILDINFO ("SUBSCRIBED"))`; len(got) != 1 || got[0] != want {
		t.Errorf("RECURSIVEMATCH of a parent:\n got %q\nwant %q", got, want)
	}
	got = r.ok(`LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Cabinet" "Cabinet/Compta")`)
	if want := `* LIST (\Subscribed \HasNoChildren) "/" "Cabinet/Compta"`; len(got) != 1 || got[0] != want {
		t.Errorf("RECURSIVEMATCH when the child is listed itself:\n got %q\nwant %q", got, want)
	}
	// Without RECURSIVEMATCH, no CHILDINFO and no unsubscribed parent.
	if got := r.ok(`LIST (SUBSCRIBED) "" "Cab%%"`); len(got) != 0 {
		t.Errorf("LIST (SUBSCRIBED) %%: %q", got)
	}
}

// STATUS and LIST RETURN (STATUS) report the counters, SIZE included
// (RFC 8438), for the mailbox named.
func TestStatus(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	m1 := simple(users[0], users[0], "un", "premier")
	m2 := simple(users[0], users[0], "deux", "second message")
	r.mustAppend("INBOX", `\Seen`, "", m1)
	uid2 := r.mustAppend("INBOX", `\Deleted`, "", m2)
	got := r.ok(`STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE RECENT)`)
	if len(got) != 1 {
		t.Fatalf("STATUS: %q", got)
	}
	re := regexp.MustCompile(`^\* STATUS INBOX \(MESSAGES 2 UIDNEXT (\d+) UIDVALIDITY \d+ UNSEEN 1 DELETED 1 SIZE (\d+) RECENT 2\)$`)
	m := re.FindStringSubmatch(got[0])
	if m == nil {
		t.Fatalf("STATUS: %q", got[0])
	}
	if m[1] != fmt.Sprint(uid2+1) || m[2] != fmt.Sprint(len(m1)+len(m2)) {
		t.Errorf("STATUS UIDNEXT %s SIZE %s, want %d %d", m[1], m[2], uid2+1, len(m1)+len(m2))
	}
	if st := r.no(`STATUS Nothing (MESSAGES)`); !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("STATUS of a missing mailbox: %s", st)
	}

	got = r.ok(`LIST "" "*" RETURN (STATUS (MESSAGES SIZE))`)
	i := slices.IndexFunc(got, func(l string) bool { return strings.HasSuffix(l, `"/" INBOX`) })
	if i < 0 || i+1 >= len(got) || got[i+1] != fmt.Sprintf("* STATUS INBOX (MESSAGES 2 SIZE %d)", len(m1)+len(m2)) {
		t.Errorf("LIST RETURN (STATUS): %q", got)
	}
	if n := count(got, `^\* STATUS `); n != 6 {
		t.Errorf("LIST RETURN (STATUS): %d STATUS responses, want 6: %q", n, got)
	}

	// APPENDLIMIT (RFC 7889) and DELETED-STORAGE (RFC 9208 §4.2, bytes of
	// the \Deleted messages) are answered, in STATUS and in LIST-STATUS.
	want := fmt.Sprintf("* STATUS INBOX (APPENDLIMIT %d DELETED-STORAGE %d)", 25<<20, len(m2))
	if got := r.ok(`STATUS INBOX (APPENDLIMIT DELETED-STORAGE)`); len(got) != 1 || got[0] != want {
		t.Errorf("STATUS APPENDLIMIT DELETED-STORAGE:\n got %q\nwant %q", got, want)
	}
	got = r.ok(`LIST "" "INBOX" RETURN (STATUS (DELETED-STORAGE APPENDLIMIT))`)
	if len(got) != 2 || got[1] != want {
		t.Errorf("LIST RETURN (STATUS (APPENDLIMIT DELETED-STORAGE)):\n got %q\nwant %q", got, want)
	}
	r.ok("NOOP")
}

// A member of an organisational mailbox sees it under Shared/ in LIST and
// NAMESPACE, can select it and read what was delivered to its address; a
// non-member cannot (RFC 2342).
func TestSharedMailbox(t *testing.T) {
	srv, users := start(t, "alice", "bob", "carol")
	alice, bob, carol := users[0], users[1], users[2]
	const org = "cardiologie@carepost.test"
	if _, err := srv.AddMailbox(context.Background(), directory.KindOrganisational, org, []string{alice}, ""); err != nil {
		t.Fatal(err)
	}
	deliver(t, srv, bob, []string{org}, simple(bob, org, "Pour le service", "Avis demandé."))

	r := login(t, srv, alice)
	if got := r.ok("NAMESPACE"); len(got) != 1 || got[0] != `* NAMESPACE (("" "/")) (("Shared/" "/")) NIL` {
		t.Errorf("NAMESPACE: %q", got)
	}
	got := r.ok(`LIST "" "Shared*"`)
	if l := find(got, `"/" "Shared"`); !strings.HasPrefix(l, `* LIST (\Noselect \HasChildren)`) || !strings.HasSuffix(l, `"/" "Shared"`) {
		t.Errorf("LIST Shared: %q", got)
	}
	inbox := "Shared/" + org + "/INBOX"
	if l := find(got, inbox); l != `* LIST (\HasNoChildren) "/" "`+inbox+`"` {
		t.Errorf("LIST of the shared INBOX: %q", got)
	}
	// Another account's folders are not this user's Sent or Trash: no
	// special-use attribute outside the personal namespace, or a client
	// would file its own mail there.
	if l := find(got, "Shared/"+org+"/Sent"); l != `* LIST (\HasNoChildren) "/" "Shared/`+org+`/Sent"` {
		t.Errorf("LIST of a shared Sent: %q", l)
	}
	if got := r.ok(`LIST "" "%%"`); find(got, `"/" "Shared"`) == "" {
		t.Errorf(`LIST "" "%%" misses Shared: %q`, got)
	}
	if got := r.ok(`LIST "Shared/" "%%"`); len(got) != 1 || got[0] != `* LIST (\Noselect \HasChildren) "/" "Shared/`+org+`"` {
		t.Errorf(`LIST "Shared/" "%%": %q`, got)
	}

	u := r.sel(inbox)
	if find(u, "* 1 EXISTS") == "" {
		t.Errorf("SELECT shared INBOX: %q", u)
	}
	u = r.ok(`FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])`)
	if find(u, "Subject: Pour le service") == "" {
		t.Errorf("FETCH in the shared INBOX: %q", u)
	}
	if st := r.ok(`STATUS %s (MESSAGES)`, quote(inbox)); find(st, "MESSAGES 1") == "" {
		t.Errorf("STATUS shared: %q", st)
	}
	r.no(`SELECT Shared`)
	r.no(`SELECT "Shared/%s"`, org)

	// A non-member sees nothing and cannot select it.
	c := login(t, srv, carol)
	if got := c.ok(`LIST "" "*"`); find(got, "Shared") != "" {
		t.Errorf("non-member LIST: %q", got)
	}
	if st := c.no("SELECT %s", quote(inbox)); !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("non-member SELECT: %s", st)
	}
	c.no("STATUS %s (MESSAGES)", quote(inbox))
	if st := c.appendMsg(inbox, "", "", simple(carol, org, "x", "y")); !strings.HasPrefix(st, "NO") {
		t.Errorf("non-member APPEND: %s", st)
	}
}
