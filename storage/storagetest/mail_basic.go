package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/carepost/carepost/storage"
)

const alice = "alice@ch-test.fr"

func testCreateAccount(t *testing.T, h *harness) {
	_, err := h.s.ListMailboxes(h.ctx, alice)
	wantErr(t, "ListMailboxes before CreateAccount", err, storage.ErrNoAccount)
	_, err = h.s.GetMailbox(h.ctx, alice, "INBOX")
	wantErr(t, "GetMailbox before CreateAccount", err, storage.ErrNoAccount)

	h.account(alice)
	list, err := h.s.ListMailboxes(h.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(storage.DefaultMailboxes) {
		t.Fatalf("%d mailboxes, want %d: %+v", len(list), len(storage.DefaultMailboxes), list)
	}
	if !slices.IsSortedFunc(list, func(a, b storage.Mailbox) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("ListMailboxes not sorted by name: %+v", list)
	}
	seen := map[uint32]bool{}
	for _, d := range storage.DefaultMailboxes {
		i := slices.IndexFunc(list, func(m storage.Mailbox) bool { return m.Name == d.Name })
		if i < 0 {
			t.Fatalf("no %s in %+v", d.Name, list)
		}
		mb := list[i]
		if mb.SpecialUse != d.SpecialUse || mb.Account != alice || mb.UIDNext != 1 || mb.UIDValidity == 0 || mb.ID == 0 {
			t.Errorf("%s = %+v", d.Name, mb)
		}
		if seen[mb.UIDValidity] {
			t.Errorf("UIDVALIDITY %d used twice", mb.UIDValidity)
		}
		seen[mb.UIDValidity] = true
		if got := h.mailbox(alice, d.Name); got != mb {
			t.Errorf("GetMailbox(%s) = %+v, ListMailboxes says %+v", d.Name, got, mb)
		}
	}
	// INBOX in any case.
	if got := h.mailbox(alice, "inBox"); got.Name != "INBOX" {
		t.Errorf("GetMailbox(inBox) = %+v", got)
	}
	_, err = h.s.GetMailbox(h.ctx, alice, "Nope")
	wantErr(t, "GetMailbox(Nope)", err, storage.ErrNoMailbox)

	// Idempotent: a second CreateAccount changes nothing, not even after
	// a default mailbox was deleted.
	if err := h.s.DeleteMailbox(h.ctx, alice, "Junk"); err != nil {
		t.Fatal(err)
	}
	inbox := h.mailbox(alice, "INBOX")
	h.deliver("Subject: x\r\n\r\nx\r\n", nil, inbox.ID)
	h.account(alice)
	list2, _ := h.s.ListMailboxes(h.ctx, alice)
	if len(list2) != len(list)-1 {
		t.Errorf("second CreateAccount changed the mailboxes: %+v", list2)
	}
	if st := h.status(inbox.ID); st.Messages != 1 {
		t.Errorf("second CreateAccount changed INBOX: %+v", st)
	}
	// Accounts are separate.
	h.account("bob@ch-test.fr")
	bobInbox := h.mailbox("bob@ch-test.fr", "INBOX")
	if bobInbox.ID == inbox.ID || h.status(bobInbox.ID).Messages != 0 {
		t.Errorf("bob's INBOX %+v shares alice's", bobInbox)
	}
}

func testDeliver(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	archive := h.mailbox(alice, "Archive")
	body := "From: a@b.fr\r\nSubject: hello\r\n\r\nbody\r\n"
	res := h.deliver(body, []string{`\seen`, "$Label1", `\Recent`}, inbox.ID, archive.ID)
	for i, mb := range []storage.Mailbox{inbox, archive} {
		a := res[i]
		if a.MailboxID != mb.ID || a.UID != 1 || a.UIDValidity != mb.UIDValidity || a.ModSeq <= mb.HighestModSeq {
			t.Errorf("Appended[%d] = %+v for %+v", i, a, mb)
		}
		msgs := h.messages(mb.ID, nil)
		if len(msgs) != 1 {
			t.Fatalf("%s holds %d messages", mb.Name, len(msgs))
		}
		m := msgs[0]
		if m.UID != 1 || m.Size != int64(len(body)) || m.ModSeq != a.ModSeq || !sameFlags(m.Flags, []string{`\Seen`, "$Label1"}) {
			t.Errorf("%s: %+v", mb.Name, m)
		}
		if m.InternalDate.IsZero() {
			t.Errorf("%s: zero internal date", mb.Name)
		}
		if got := string(h.body(mb.ID, 1)); got != body {
			t.Errorf("%s body = %q", mb.Name, got)
		}
		after := h.mailbox(alice, mb.Name)
		if after.UIDNext != 2 || after.HighestModSeq != a.ModSeq {
			t.Errorf("%s after delivery: %+v (appended %+v)", mb.Name, after, a)
		}
	}
	_, err := h.s.Deliver(h.ctx, strings.NewReader(body), []storage.Target{{MailboxID: inbox.ID}, {MailboxID: 1 << 40}})
	wantErr(t, "Deliver to a missing mailbox", err, storage.ErrNoMailbox)
	if st := h.status(inbox.ID); st.Messages != 1 || st.UIDNext != 2 {
		t.Errorf("a failed delivery left a copy: %+v", st)
	}
	_, err = h.s.Deliver(h.ctx, strings.NewReader(body), []storage.Target{{MailboxID: inbox.ID, Flags: []string{"bad flag"}}})
	wantErr(t, "Deliver with a bad keyword", err, storage.ErrInvalidFlag)
	_, err = h.s.OpenBody(h.ctx, inbox.ID, 99)
	wantErr(t, "OpenBody of a missing UID", err, storage.ErrNoMessage)
	_, err = h.s.OpenBody(h.ctx, 1<<40, 1)
	wantErr(t, "OpenBody in a missing mailbox", err, storage.ErrNoMailbox)
	_, err = h.s.Messages(h.ctx, 1<<40, nil)
	wantErr(t, "Messages of a missing mailbox", err, storage.ErrNoMailbox)

	// Messages with a UID list: only existing ones, ascending.
	for i := 2; i <= 5; i++ {
		h.deliver(fmt.Sprintf("Subject: %d\r\n\r\n%d\r\n", i, i), nil, inbox.ID)
	}
	if got := uidsOf(h.messages(inbox.ID, []uint32{5, 3, 42, 1, 3})); !slices.Equal(got, []uint32{1, 3, 5}) {
		t.Errorf("Messages(5,3,42,1,3) = %v", got)
	}
	if got := h.messages(inbox.ID, []uint32{}); len(got) != 0 {
		t.Errorf("Messages(empty list) = %v", got)
	}
}

func testSelect(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	h.deliver("a", []string{`\Seen`}, inbox.ID)
	h.deliver("bb", nil, inbox.ID)
	h.deliver("ccc", []string{`\Deleted`, "Urgent"}, inbox.ID)

	st, msgs, first, err := h.s.Select(h.ctx, inbox.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	// Select's metadata is that of Messages, in the same snapshot.
	if all := h.messages(inbox.ID, nil); fmt.Sprint(all) != fmt.Sprint(msgs) {
		t.Errorf("Select's messages %+v, Messages %+v", msgs, all)
	}
	uids := uidsOf(msgs)
	if !slices.Equal(uids, []uint32{1, 2, 3}) || st.Messages != 3 || st.Unseen != 2 || st.Deleted != 1 ||
		st.Size != 6 || st.FirstUnseen != 2 || st.UIDNext != 4 || st.Recent != 3 || first != 1 {
		t.Errorf("Select = %+v, %v, first recent %d", st, uids, first)
	}
	for _, f := range []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, "Urgent"} {
		if !slices.Contains(st.Flags, f) {
			t.Errorf("FLAGS %v lacks %s", st.Flags, f)
		}
	}
	// Recent is claimed once.
	st, _, first, _ = h.s.Select(h.ctx, inbox.ID, true)
	if st.Recent != 0 || first != 0 {
		t.Errorf("second SELECT: Recent %d, first %d", st.Recent, first)
	}
	h.deliver("dddd", nil, inbox.ID)
	if st := h.status(inbox.ID); st.Recent != 1 || st.Messages != 4 || st.Unseen != 3 || st.FirstUnseen != 2 || st.Size != 10 || st.Deleted != 1 {
		t.Errorf("Status = %+v", st)
	}
	// EXAMINE does not claim.
	st, _, first, _ = h.s.Select(h.ctx, inbox.ID, false)
	if st.Recent != 1 || first != 4 {
		t.Errorf("EXAMINE: Recent %d, first %d", st.Recent, first)
	}
	st, _, first, _ = h.s.Select(h.ctx, inbox.ID, true)
	if st.Recent != 1 || first != 4 {
		t.Errorf("SELECT after a delivery: Recent %d, first %d", st.Recent, first)
	}
	st, _, _, _ = h.s.Select(h.ctx, inbox.ID, true)
	if st.Recent != 0 {
		t.Errorf("third SELECT: Recent %d", st.Recent)
	}
	// Concurrent claims: each new message is recent for exactly one.
	for range 10 {
		h.deliver("e", nil, inbox.ID)
	}
	var wg sync.WaitGroup
	recent := make([]uint32, 8)
	for i := range recent {
		wg.Go(func() {
			st, _, _, err := h.s.Select(h.ctx, inbox.ID, true)
			if err != nil {
				t.Error(err)
			}
			recent[i] = st.Recent
		})
	}
	wg.Wait()
	var sum uint32
	for _, r := range recent {
		sum += r
	}
	if sum != 10 {
		t.Errorf("concurrent SELECTs claimed %v, %d in all, want 10", recent, sum)
	}

	_, _, _, err = h.s.Select(h.ctx, 1<<40, true)
	wantErr(t, "Select of a missing mailbox", err, storage.ErrNoMailbox)
	_, err = h.s.Status(h.ctx, 1<<40)
	wantErr(t, "Status of a missing mailbox", err, storage.ErrNoMailbox)

	// Empty mailbox.
	st, msgs, first, err = h.s.Select(h.ctx, h.mailbox(alice, "Trash").ID, true)
	uids = uidsOf(msgs)
	if err != nil || len(uids) != 0 || st.Messages != 0 || st.FirstUnseen != 0 || first != 0 || st.UIDNext != 1 {
		t.Errorf("empty Select = %+v, %v, %d, %v", st, uids, first, err)
	}
}

func testWatch(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	other := h.mailbox(alice, "Sent")
	log := newChangeLog()
	stop := h.s.Watch(inbox.ID, log.add)
	defer stop()

	h.deliver("one", nil, inbox.ID, other.ID)
	h.deliver("two", []string{"$Work"}, inbox.ID)
	changes := log.wait(t, 2)
	if len(changes) != 2 {
		t.Fatalf("changes = %+v", changes)
	}
	for i, c := range changes {
		if c.Kind != storage.MessageAdded || c.MailboxID != inbox.ID || c.UID != uint32(i+1) {
			t.Errorf("change %d = %+v", i, c)
		}
		if i > 0 && c.ModSeq <= changes[i-1].ModSeq {
			t.Errorf("modseq does not grow: %+v", changes)
		}
	}
	if !slices.Equal(changes[1].Flags, []string{"$Work"}) {
		t.Errorf("Added flags = %v", changes[1].Flags)
	}
	if last := changes[len(changes)-1].ModSeq; last != h.status(inbox.ID).HighestModSeq {
		t.Errorf("last change modseq %d, mailbox %d", last, h.status(inbox.ID).HighestModSeq)
	}
	stop()
	h.deliver("three", nil, inbox.ID)
	// The delivery returned after publishing: a stopped watch saw nothing.
	if n := len(log.wait(t, 2)); n != 2 {
		t.Errorf("stopped watch got %d changes", n)
	}
}
