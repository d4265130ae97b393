package storagetest

import (
	"slices"
	"strings"
	"testing"

	"github.com/carepost/carepost/storage"
)

func names(t *testing.T, h *harness, account string) []string {
	t.Helper()
	list, err := h.s.ListMailboxes(h.ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mb := range list {
		out = append(out, mb.Name)
	}
	return out
}

func testMailboxCreateDelete(t *testing.T, h *harness) {
	h.account(alice)
	a := h.create(alice, "Projets")
	if a.UIDNext != 1 || a.UIDValidity == 0 || a.SpecialUse != "" || a.Subscribed {
		t.Errorf("new mailbox = %+v", a)
	}
	_, err := h.s.CreateMailbox(h.ctx, alice, "Projets", "")
	wantErr(t, "create twice", err, storage.ErrMailboxExists)
	_, err = h.s.CreateMailbox(h.ctx, alice, "inbox", "")
	wantErr(t, "create inbox", err, storage.ErrMailboxExists)
	_, err = h.s.CreateMailbox(h.ctx, "nobody@x.fr", "A", "")
	wantErr(t, "create for a missing account", err, storage.ErrNoAccount)
	for _, bad := range []string{"", "/a", "a/", "a//b", "a\x01b", "a*", "b%", "\xff"} {
		_, err := h.s.CreateMailbox(h.ctx, alice, bad, "")
		wantErr(t, "create "+bad, err, storage.ErrInvalidName)
	}
	child := h.create(alice, "Projets/2026")
	if child.UIDValidity <= a.UIDValidity {
		t.Errorf("UIDVALIDITY of a later mailbox %d <= %d", child.UIDValidity, a.UIDValidity)
	}
	sp, err := h.s.CreateMailbox(h.ctx, alice, "Envoyés", storage.SpecialSent)
	if err != nil || sp.SpecialUse != storage.SpecialSent {
		t.Errorf("create with special-use: %+v, %v", sp, err)
	}
	if got := h.mailbox(alice, "Envoyés"); got.ID != sp.ID {
		t.Errorf("UTF-8 name lookup: %+v", got)
	}

	// Deleting a parent deletes it alone: the child stays, with its
	// messages (RFC 9051 §6.3.5).
	h.deliver("in the parent", nil, a.ID)
	h.deliver("in the child", nil, child.ID)
	if err := h.s.DeleteMailbox(h.ctx, alice, "Projets"); err != nil {
		t.Fatalf("delete a parent: %v", err)
	}
	if got := names(t, h, alice); slices.Contains(got, "Projets") || !slices.Contains(got, "Projets/2026") {
		t.Errorf("after deleting the parent: %v", got)
	}
	_, err = h.s.Status(h.ctx, a.ID)
	wantErr(t, "Status of the deleted parent", err, storage.ErrNoMailbox)
	if st := h.status(child.ID); st.Messages != 1 {
		t.Errorf("the child lost its messages: %+v", st)
	}
	wantErr(t, "delete the parent twice", h.s.DeleteMailbox(h.ctx, alice, "Projets"), storage.ErrNoMailbox)
	// The parent's name can be created again, with a new UIDVALIDITY.
	a2 := h.create(alice, "Projets")
	if a2.UIDValidity <= child.UIDValidity || a2.ID == a.ID {
		t.Errorf("re-created parent %+v, deleted %+v", a2, a)
	}
	if st := h.status(a2.ID); st.Messages != 0 {
		t.Errorf("re-created parent holds %d messages", st.Messages)
	}
	wantErr(t, "delete INBOX", h.s.DeleteMailbox(h.ctx, alice, "Inbox"), storage.ErrSpecialMailbox)
	wantErr(t, "delete a missing mailbox", h.s.DeleteMailbox(h.ctx, alice, "Nope"), storage.ErrNoMailbox)

	h.deliver("x", nil, child.ID)
	if err := h.s.DeleteMailbox(h.ctx, alice, "Projets/2026"); err != nil {
		t.Fatal(err)
	}
	_, err = h.s.Status(h.ctx, child.ID)
	wantErr(t, "Status of a deleted mailbox", err, storage.ErrNoMailbox)
	_, err = h.s.Deliver(h.ctx, strings.NewReader("x"), []storage.Target{{MailboxID: child.ID}})
	if err == nil {
		t.Error("Deliver to a deleted mailbox succeeded")
	}
	again := h.create(alice, "Projets/2026")
	if again.UIDValidity <= child.UIDValidity || again.ID == child.ID || again.UIDNext != 1 {
		t.Errorf("re-created %+v, deleted was %+v", again, child)
	}
	if st := h.status(again.ID); st.Messages != 0 {
		t.Errorf("re-created mailbox holds %d messages", st.Messages)
	}
	if err := h.s.DeleteMailbox(h.ctx, alice, "Projets/2026"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.DeleteMailbox(h.ctx, alice, "Projets"); err != nil {
		t.Fatalf("delete the parent once the child is gone: %v", err)
	}
	if slices.Contains(names(t, h, alice), "Projets") {
		t.Error("Projets still listed")
	}
}

func testMailboxRename(t *testing.T, h *harness) {
	h.account(alice)
	a := h.create(alice, "A")
	ab := h.create(alice, "A/B")
	abc := h.create(alice, "A/B/C")
	h.create(alice, "AB") // not a child of A
	h.deliver("in A/B", []string{`\Flagged`}, ab.ID)
	if err := h.s.SetSubscribed(h.ctx, alice, "A/B", true); err != nil {
		t.Fatal(err)
	}

	wantErr(t, "rename onto an existing name", h.s.RenameMailbox(h.ctx, alice, "A", "AB"), storage.ErrMailboxExists)
	wantErr(t, "rename into itself", h.s.RenameMailbox(h.ctx, alice, "A", "A/B/X"), storage.ErrInvalidName)
	wantErr(t, "rename a missing mailbox", h.s.RenameMailbox(h.ctx, alice, "Nope", "X"), storage.ErrNoMailbox)
	wantErr(t, "rename onto INBOX", h.s.RenameMailbox(h.ctx, alice, "A", "inbox"), storage.ErrMailboxExists)

	if err := h.s.RenameMailbox(h.ctx, alice, "A", "Z/Y"); err != nil {
		t.Fatal(err)
	}
	got := names(t, h, alice)
	for _, n := range []string{"Z/Y", "Z/Y/B", "Z/Y/B/C", "AB"} {
		if !slices.Contains(got, n) {
			t.Errorf("after rename, %s missing from %v", n, got)
		}
	}
	for _, n := range []string{"A", "A/B", "A/B/C"} {
		if slices.Contains(got, n) {
			t.Errorf("after rename, %s still in %v", n, got)
		}
	}
	// IDs, UIDVALIDITY and messages follow the rename.
	for old, mb := range map[string]storage.Mailbox{"Z/Y": a, "Z/Y/B": ab, "Z/Y/B/C": abc} {
		now := h.mailbox(alice, old)
		if now.ID != mb.ID || now.UIDValidity != mb.UIDValidity {
			t.Errorf("%s = %+v, was %+v", old, now, mb)
		}
	}
	if msgs := h.messages(ab.ID, nil); len(msgs) != 1 || !slices.Contains(msgs[0].Flags, `\Flagged`) {
		t.Errorf("messages after rename: %+v", msgs)
	}
	if mb := h.mailbox(alice, "Z/Y/B"); !mb.Subscribed {
		t.Error("the subscription did not follow the rename")
	}
	// A rename whose new name is under the old parent's level.
	if err := h.s.RenameMailbox(h.ctx, alice, "Z/Y/B", "Z/Y/B2"); err != nil {
		t.Fatal(err)
	}
	if h.mailbox(alice, "Z/Y/B2/C").ID != abc.ID {
		t.Error("child not renamed")
	}

	// Up one level, a child taking its parent's old name: "P/Q" to "P"
	// makes "P/Q/Q" the new "P/Q". (A child may exist without its parent:
	// parents are not created implicitly.)
	pq := h.create(alice, "P/Q")
	pqq := h.create(alice, "P/Q/Q")
	if err := h.s.RenameMailbox(h.ctx, alice, "P/Q", "P"); err != nil {
		t.Fatal(err)
	}
	if h.mailbox(alice, "P").ID != pq.ID || h.mailbox(alice, "P/Q").ID != pqq.ID {
		t.Errorf("after P/Q -> P: %v", names(t, h, alice))
	}

	// Renaming INBOX moves its messages to a new mailbox and leaves INBOX
	// empty, with its UIDVALIDITY and UIDNEXT.
	inbox := h.mailbox(alice, "INBOX")
	sub := h.create(alice, "INBOX/Sub")
	h.deliver("m1", []string{`\Seen`}, inbox.ID)
	h.deliver("m2", nil, inbox.ID)
	if err := h.s.RenameMailbox(h.ctx, alice, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	after := h.mailbox(alice, "INBOX")
	if after.ID != inbox.ID || after.UIDValidity != inbox.UIDValidity || after.UIDNext != 3 {
		t.Errorf("INBOX after rename: %+v", after)
	}
	if st := h.status(inbox.ID); st.Messages != 0 {
		t.Errorf("INBOX still holds %d messages", st.Messages)
	}
	if after.HighestModSeq <= inbox.HighestModSeq {
		t.Errorf("INBOX modseq did not grow")
	}
	old := h.mailbox(alice, "Old")
	msgs := h.messages(old.ID, nil)
	if len(msgs) != 2 || old.UIDValidity == inbox.UIDValidity || old.UIDNext <= msgs[1].UID {
		t.Errorf("Old = %+v with %+v", old, msgs)
	}
	if string(h.body(old.ID, msgs[0].UID)) != "m1" || !slices.Contains(msgs[0].Flags, `\Seen`) {
		t.Errorf("moved message: %+v", msgs[0])
	}
	if h.mailbox(alice, "INBOX/Sub").ID != sub.ID {
		t.Error("children of INBOX must stay")
	}
	// New mail goes on with the next UID.
	if res := h.deliver("m3", nil, inbox.ID); res[0].UID != 3 {
		t.Errorf("UID after INBOX rename = %d", res[0].UID)
	}
	// INBOX may be renamed under itself.
	if err := h.s.RenameMailbox(h.ctx, alice, "inbox", "INBOX/Old"); err != nil {
		t.Fatalf("rename INBOX to INBOX/Old: %v", err)
	}
	if m := h.messages(h.mailbox(alice, "INBOX/Old").ID, nil); len(m) != 1 || m[0].UID != 3 {
		t.Errorf("INBOX/Old holds %+v", m)
	}
	if st := h.status(inbox.ID); st.Messages != 0 || st.UIDNext != 4 {
		t.Errorf("INBOX after the second rename: %+v", st)
	}
}

func testSubscriptions(t *testing.T, h *harness) {
	h.account(alice)
	subs, err := h.s.Subscriptions(h.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range storage.DefaultMailboxes {
		if !slices.Contains(subs, d.Name) {
			t.Errorf("default mailbox %s not subscribed: %v", d.Name, subs)
		}
	}
	h.create(alice, "Lists")
	if err := h.s.SetSubscribed(h.ctx, alice, "Lists", true); err != nil {
		t.Fatal(err)
	}
	if err := h.s.SetSubscribed(h.ctx, alice, "Lists", true); err != nil {
		t.Fatalf("subscribe twice: %v", err)
	}
	// A name that does not exist may be subscribed (RFC 9051 §6.3.7).
	if err := h.s.SetSubscribed(h.ctx, alice, "Ghost", true); err != nil {
		t.Fatal(err)
	}
	if err := h.s.SetSubscribed(h.ctx, alice, "Trash", false); err != nil {
		t.Fatal(err)
	}
	subs, _ = h.s.Subscriptions(h.ctx, alice)
	if !slices.Contains(subs, "Lists") || !slices.Contains(subs, "Ghost") || slices.Contains(subs, "Trash") || !slices.IsSorted(subs) {
		t.Errorf("Subscriptions = %v", subs)
	}
	if !h.mailbox(alice, "Lists").Subscribed || h.mailbox(alice, "Trash").Subscribed {
		t.Error("Mailbox.Subscribed does not follow SetSubscribed")
	}
	_, err = h.s.Subscriptions(h.ctx, "nobody@x.fr")
	wantErr(t, "Subscriptions of a missing account", err, storage.ErrNoAccount)
	wantErr(t, "subscribe a bad name", h.s.SetSubscribed(h.ctx, alice, "a//b", true), storage.ErrInvalidName)
}
