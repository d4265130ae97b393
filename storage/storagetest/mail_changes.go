package storagetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
)

// Changes since a MODSEQ (RFC 7162 §3.1, §3.2.5): what every write reports
// and what another Store value on the same store reads afterwards.

func (h *harness) changes(id int64, since uint64) storage.Changes {
	h.t.Helper()
	c, err := h.s.Changes(h.ctx, id, since)
	if err != nil {
		h.t.Fatalf("Changes(%d, %d): %v", id, since, err)
	}
	return c
}

// second opens another Store value on the same store, as another process
// or another node would, closed at the end of the test.
func (h *harness) second() storage.Store {
	h.t.Helper()
	s := h.open(h.t, h.dir)
	h.t.Cleanup(func() { s.Close() })
	return s
}

// wantChanges checks c against the messages now in the mailbox: Messages
// must be exactly those of now with the given UIDs, as Messages reads them.
func wantChanges(t *testing.T, h *harness, what string, c storage.Changes, id int64, msgs, expunged []uint32) {
	t.Helper()
	if c.Truncated {
		t.Errorf("%s: Truncated", what)
	}
	if got := uidsOf(c.Messages); !slices.Equal(got, msgs) {
		t.Errorf("%s: messages %v, want %v", what, got, msgs)
	}
	if !slices.Equal(c.Expunged, expunged) {
		t.Errorf("%s: expunged %v, want %v", what, c.Expunged, expunged)
	}
	st := h.status(id)
	if c.HighestModSeq != st.HighestModSeq || c.UIDNext != st.UIDNext || c.UIDValidity != st.UIDValidity {
		t.Errorf("%s: %d/%d/%d, status %+v", what, c.HighestModSeq, c.UIDNext, c.UIDValidity, st)
	}
	if len(msgs) == 0 {
		return
	}
	now := h.messages(id, msgs)
	for i, m := range c.Messages {
		n := now[i]
		if !sameFlags(m.Flags, n.Flags) || !m.InternalDate.Equal(n.InternalDate) || m.Size != n.Size || m.ModSeq != n.ModSeq {
			t.Errorf("%s: %+v, Messages says %+v", what, m, n)
		}
	}
}

func testChanges(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	archive := h.mailbox(alice, "Archive")

	// Delivery: new messages, told apart by the UIDNEXT known with since.
	var last storage.Appended
	for range 4 {
		last = h.deliver("Subject: x\r\n\r\nx\r\n", nil, inbox.ID)[0]
	}
	if st := h.status(inbox.ID); last.ModSeq != st.HighestModSeq {
		t.Errorf("Appended.ModSeq %d, HIGHESTMODSEQ %d", last.ModSeq, st.HighestModSeq)
	}
	c := h.changes(inbox.ID, inbox.HighestModSeq)
	wantChanges(t, h, "after delivery", c, inbox.ID, []uint32{1, 2, 3, 4}, nil)
	if added, changed := c.Split(inbox.UIDNext); len(added) != 4 || len(changed) != 0 {
		t.Errorf("Split after delivery: %v added, %v changed", uidsOf(added), uidsOf(changed))
	}
	known := h.mailbox(alice, "INBOX")

	// since = HIGHESTMODSEQ: nothing; since = 0: everything, no expunges.
	wantChanges(t, h, "since now", h.changes(inbox.ID, known.HighestModSeq), inbox.ID, nil, nil)
	wantChanges(t, h, "since 0", h.changes(inbox.ID, 0), inbox.ID, []uint32{1, 2, 3, 4}, nil)

	// STORE: a flag change, told apart from an arrival.
	up, err := h.s.StoreFlags(h.ctx, inbox.ID, []uint32{2}, storage.FlagsAdd, []string{storage.FlagSeen})
	if err != nil || len(up) != 1 || up[0].ModSeq != h.status(inbox.ID).HighestModSeq {
		t.Fatalf("StoreFlags = %+v, %v", up, err)
	}
	h.deliver("Subject: y\r\n\r\ny\r\n", nil, inbox.ID) // UID 5
	c = h.changes(inbox.ID, known.HighestModSeq)
	wantChanges(t, h, "after STORE", c, inbox.ID, []uint32{2, 5}, nil)
	if added, changed := c.Split(known.UIDNext); !slices.Equal(uidsOf(added), []uint32{5}) || !slices.Equal(uidsOf(changed), []uint32{2}) {
		t.Errorf("Split after STORE: %v added, %v changed", uidsOf(added), uidsOf(changed))
	}
	if !sameFlags(c.Messages[0].Flags, []string{storage.FlagSeen}) || c.Messages[0].ModSeq != up[0].ModSeq {
		t.Errorf("changed message %+v", c.Messages[0])
	}

	// EXPUNGE: tombstones, with the MODSEQ Expunge returned.
	if _, err := h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1, 3}, storage.FlagsAdd, []string{storage.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	flagged := h.status(inbox.ID).HighestModSeq
	ex, err := h.s.Expunge(h.ctx, inbox.ID, []uint32{1})
	if err != nil || !slices.Equal(ex.UIDs, []uint32{1}) || ex.ModSeq != h.status(inbox.ID).HighestModSeq || ex.ModSeq <= flagged {
		t.Fatalf("Expunge = %+v, %v (flags at %d)", ex, err, flagged)
	}
	wantChanges(t, h, "after EXPUNGE", h.changes(inbox.ID, flagged), inbox.ID, nil, []uint32{1})
	wantChanges(t, h, "EXPUNGE and STORE", h.changes(inbox.ID, known.HighestModSeq), inbox.ID, []uint32{2, 3, 5}, []uint32{1})
	wantChanges(t, h, "since EXPUNGE", h.changes(inbox.ID, ex.ModSeq), inbox.ID, nil, nil)

	// COPY: new messages in the destination, nothing in the source.
	arch := h.mailbox(alice, "Archive")
	srcBefore := h.status(inbox.ID).HighestModSeq
	cp, err := h.s.Copy(h.ctx, inbox.ID, []uint32{2, 3}, archive.ID)
	if err != nil || cp.ModSeq != h.status(archive.ID).HighestModSeq || cp.SourceModSeq != 0 {
		t.Fatalf("Copy = %+v, %v", cp, err)
	}
	wantChanges(t, h, "COPY destination", h.changes(archive.ID, arch.HighestModSeq), archive.ID, cp.DestUIDs, nil)
	wantChanges(t, h, "COPY source", h.changes(inbox.ID, srcBefore), inbox.ID, nil, nil)

	// MOVE: expunges in the source, arrivals in the destination, each
	// at the MODSEQ the result says.
	arch = h.mailbox(alice, "Archive")
	mv, err := h.s.Move(h.ctx, inbox.ID, []uint32{3, 5}, archive.ID)
	if err != nil || mv.ModSeq != h.status(archive.ID).HighestModSeq || mv.SourceModSeq != h.status(inbox.ID).HighestModSeq {
		t.Fatalf("Move = %+v, %v", mv, err)
	}
	wantChanges(t, h, "MOVE source", h.changes(inbox.ID, srcBefore), inbox.ID, nil, []uint32{3, 5})
	wantChanges(t, h, "MOVE destination", h.changes(archive.ID, arch.HighestModSeq), archive.ID, mv.DestUIDs, nil)
	// Within one mailbox: the expunges come after the copies.
	before := h.status(inbox.ID).HighestModSeq
	mv, err = h.s.Move(h.ctx, inbox.ID, []uint32{2}, inbox.ID)
	if err != nil || mv.SourceModSeq != h.status(inbox.ID).HighestModSeq || mv.SourceModSeq <= mv.ModSeq {
		t.Fatalf("Move into itself = %+v, %v", mv, err)
	}
	wantChanges(t, h, "MOVE into itself", h.changes(inbox.ID, before), inbox.ID, mv.DestUIDs, []uint32{2})
	// Writes that change nothing still say where the mailbox stands.
	if ex, err := h.s.Expunge(h.ctx, inbox.ID, nil); err != nil || len(ex.UIDs) != 0 || ex.ModSeq != h.status(inbox.ID).HighestModSeq {
		t.Errorf("empty Expunge = %+v, %v", ex, err)
	}
	if cp, err := h.s.Copy(h.ctx, inbox.ID, []uint32{99}, archive.ID); err != nil || cp.ModSeq != h.status(archive.ID).HighestModSeq {
		t.Errorf("empty Copy = %+v, %v", cp, err)
	}

	// A MODSEQ the mailbox never reached (a restore from a backup): no
	// list of expunges can be trusted.
	now := h.status(inbox.ID)
	c = h.changes(inbox.ID, now.HighestModSeq+10)
	if !c.Truncated || c.Expunged != nil || len(c.Messages) != int(now.Messages) {
		t.Errorf("Changes from the future = %+v, want Truncated with every message", c)
	}
	_, err = h.s.Changes(h.ctx, 1<<40, 0)
	wantErr(t, "Changes of a missing mailbox", err, storage.ErrNoMailbox)

	// Renaming INBOX carries its messages away: expunges in INBOX.
	left := uidsOf(h.messages(inbox.ID, nil))
	before = h.status(inbox.ID).HighestModSeq
	if err := h.s.RenameMailbox(h.ctx, alice, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	wantChanges(t, h, "rename of INBOX", h.changes(inbox.ID, before), inbox.ID, nil, left)
}

// Two Store values on one store (two processes on one data directory, two
// nodes of a cluster): what one writes, the other's Changes shows once the
// write returned.
func testChangesTwoHandles(t *testing.T, h *harness) {
	h.account(alice)
	s2 := h.second()
	inbox := h.mailbox(alice, "INBOX")
	seen := inbox.HighestModSeq

	res := h.deliver("Subject: one\r\n\r\n1\r\n", nil, inbox.ID)
	c, err := s2.Changes(h.ctx, inbox.ID, seen)
	if err != nil || !slices.Equal(uidsOf(c.Messages), []uint32{1}) || c.HighestModSeq != res[0].ModSeq {
		t.Fatalf("the second store's Changes after a delivery through the first = %+v, %v", c, err)
	}
	seen = c.HighestModSeq

	// The other way round, with a flag change and an expunge.
	if _, err := s2.StoreFlags(h.ctx, inbox.ID, []uint32{1}, storage.FlagsAdd, []string{storage.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	flagged := h.changes(inbox.ID, seen)
	if !slices.Equal(uidsOf(flagged.Messages), []uint32{1}) || !sameFlags(flagged.Messages[0].Flags, []string{storage.FlagDeleted}) {
		t.Fatalf("the first store's Changes after a STORE through the second = %+v", flagged)
	}
	ex, err := s2.Expunge(h.ctx, inbox.ID, nil)
	if err != nil || !slices.Equal(ex.UIDs, []uint32{1}) {
		t.Fatalf("Expunge through the second = %+v, %v", ex, err)
	}
	wantChanges(t, h, "expunged through the second", h.changes(inbox.ID, flagged.HighestModSeq), inbox.ID, nil, []uint32{1})

	// Account changes too.
	a, err := s2.AccountChanges(h.ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	mb := h.create(alice, "Projets")
	got, err := s2.AccountChanges(h.ctx, alice, a.Seq)
	if err != nil || len(got.Events) != 1 || got.Events[0].Kind != storage.AccountMailboxCreated || got.Events[0].MailboxID != mb.ID {
		t.Fatalf("the second store's AccountChanges after a CREATE through the first = %+v, %v", got, err)
	}
}

func testAccountChanges(t *testing.T, h *harness) {
	h.account(alice)
	_, err := h.s.AccountChanges(h.ctx, "nobody@ch-test.fr", 0)
	wantErr(t, "AccountChanges of a missing account", err, storage.ErrNoAccount)
	all, err := h.s.AccountChanges(h.ctx, alice, 0)
	if err != nil || all.Truncated || all.Seq == 0 {
		t.Fatalf("AccountChanges(0) = %+v, %v", all, err)
	}
	var created []string
	for _, e := range all.Events {
		if e.Kind == storage.AccountMailboxCreated {
			created = append(created, e.Name)
		}
	}
	for _, d := range storage.DefaultMailboxes {
		if !slices.Contains(created, d.Name) {
			t.Errorf("CreateAccount's %s is not among the changes %+v", d.Name, all.Events)
		}
	}
	since := all.Seq
	if c, err := h.s.AccountChanges(h.ctx, alice, since); err != nil || c.Truncated || len(c.Events) != 0 || c.Seq != since {
		t.Errorf("AccountChanges(now) = %+v, %v", c, err)
	}

	p := h.create(alice, "Projets")
	child := h.create(alice, "Projets/2026")
	for range 2 { // the second changes nothing
		if err := h.s.SetSubscribed(h.ctx, alice, "Projets", true); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.s.RenameMailbox(h.ctx, alice, "Projets", "Dossiers"); err != nil {
		t.Fatal(err)
	}
	if err := h.s.SetSubscribed(h.ctx, alice, "Dossiers", false); err != nil {
		t.Fatal(err)
	}
	if err := h.s.DeleteMailbox(h.ctx, alice, "Dossiers/2026"); err != nil {
		t.Fatal(err)
	}
	c, err := h.s.AccountChanges(h.ctx, alice, since)
	if err != nil || c.Truncated {
		t.Fatalf("AccountChanges = %+v, %v", c, err)
	}
	type ev struct {
		kind          storage.AccountChangeKind
		id            int64
		name, oldName string
	}
	want := []ev{
		{storage.AccountMailboxCreated, p.ID, "Projets", ""},
		{storage.AccountMailboxCreated, child.ID, "Projets/2026", ""},
		{storage.AccountSubscribed, 0, "Projets", ""},
		// The rename: both mailboxes, and the subscription follows.
		{storage.AccountMailboxRenamed, p.ID, "Dossiers", "Projets"},
		{storage.AccountMailboxRenamed, child.ID, "Dossiers/2026", "Projets/2026"},
		{storage.AccountUnsubscribed, 0, "Projets", ""},
		{storage.AccountSubscribed, 0, "Dossiers", ""},
		{storage.AccountUnsubscribed, 0, "Dossiers", ""},
		{storage.AccountMailboxDeleted, child.ID, "Dossiers/2026", ""},
	}
	var got []ev
	prev := since
	for _, e := range c.Events {
		if e.Seq <= prev {
			t.Errorf("change %+v after Seq %d", e, prev)
		}
		prev = e.Seq
		got = append(got, ev{e.Kind, e.MailboxID, e.Name, e.OldName})
	}
	if prev != c.Seq {
		t.Errorf("last change at %d, Seq %d", prev, c.Seq)
	}
	// The order inside the rename is the backend's; the rest is in
	// commit order.
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[len(got)-2] != want[len(want)-2] || got[len(got)-1] != want[len(want)-1] {
		t.Fatalf("changes:\n%+v\nwant\n%+v", got, want)
	}
	for _, w := range want[3:7] {
		if !slices.Contains(got[3:7], w) {
			t.Errorf("the rename's changes %+v lack %+v", got[3:7], w)
		}
	}
	if c, err := h.s.AccountChanges(h.ctx, alice, c.Seq+5); err != nil || !c.Truncated {
		t.Errorf("AccountChanges from the future = %+v, %v; want Truncated", c, err)
	}
}

// Past the retention window Changes and AccountChanges say Truncated
// rather than give a short list; within it they are exact.
func testChangesPruned(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	for range 3 {
		h.deliver("x", nil, inbox.ID)
	}
	since := h.status(inbox.ID).HighestModSeq
	acct, err := h.s.AccountChanges(h.ctx, alice, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1, 2}, storage.FlagsAdd, []string{storage.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	ex, err := h.s.Expunge(h.ctx, inbox.ID, []uint32{1})
	if err != nil {
		t.Fatal(err)
	}
	h.create(alice, "Projets")

	// Pruning what is older than an hour keeps all of it.
	if err := h.s.PruneChanges(h.ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantChanges(t, h, "within the window", h.changes(inbox.ID, since), inbox.ID, []uint32{2}, []uint32{1})
	if c, err := h.s.AccountChanges(h.ctx, alice, acct.Seq); err != nil || c.Truncated || len(c.Events) != 1 {
		t.Errorf("AccountChanges within the window = %+v, %v", c, err)
	}

	// Pruning everything recorded until now.
	if err := h.s.PruneChanges(h.ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c := h.changes(inbox.ID, since)
	if !c.Truncated || c.Expunged != nil || !slices.Equal(uidsOf(c.Messages), []uint32{2}) {
		t.Errorf("Changes past the window = %+v, want Truncated with message 2", c)
	}
	wantChanges(t, h, "since the last pruned expunge", h.changes(inbox.ID, ex.ModSeq), inbox.ID, nil, nil)
	wantChanges(t, h, "since 0 after a prune", h.changes(inbox.ID, 0), inbox.ID, []uint32{2, 3}, nil)
	if c, err := h.s.AccountChanges(h.ctx, alice, acct.Seq); err != nil || !c.Truncated || c.Events != nil {
		t.Errorf("AccountChanges past the window = %+v, %v; want Truncated", c, err)
	}
	now, err := h.s.AccountChanges(h.ctx, alice, 0)
	if err != nil || !now.Truncated {
		t.Errorf("AccountChanges(0) after a prune = %+v, %v; want Truncated", now, err)
	}

	// What comes after the prune is exact again.
	ex2, err := h.s.Expunge(h.ctx, inbox.ID, nil)
	if err != nil || !slices.Equal(ex2.UIDs, []uint32{2}) {
		t.Fatalf("Expunge = %+v, %v", ex2, err)
	}
	wantChanges(t, h, "after the prune", h.changes(inbox.ID, ex.ModSeq), inbox.ID, nil, []uint32{2})
	if err := h.s.SetSubscribed(h.ctx, alice, "Projets", true); err != nil {
		t.Fatal(err)
	}
	if c, err := h.s.AccountChanges(h.ctx, alice, now.Seq); err != nil || c.Truncated || len(c.Events) != 1 || c.Events[0].Kind != storage.AccountSubscribed {
		t.Errorf("AccountChanges after the prune = %+v, %v", c, err)
	}
}

// A mailbox ID names one mailbox for the life of the store: deleting the
// newest mailbox and creating another (also across a reopen) gives a new
// ID, and the old one stays unknown.
func testIDsNeverReused(t *testing.T, h *harness) {
	h.account(alice)
	seen := map[int64]bool{}
	list, err := h.s.ListMailboxes(h.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range list {
		seen[mb.ID] = true
	}
	var gone []int64
	for i := range 4 {
		mb := h.create(alice, "Tmp")
		if seen[mb.ID] {
			t.Fatalf("round %d: CreateMailbox gave ID %d again", i, mb.ID)
		}
		seen[mb.ID] = true
		h.deliver("x", nil, mb.ID)
		if err := h.s.DeleteMailbox(h.ctx, alice, "Tmp"); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, mb.ID)
		if i == 1 {
			h.reopen()
		}
	}
	for _, id := range gone {
		if _, err := h.s.Changes(h.ctx, id, 0); !errors.Is(err, storage.ErrNoMailbox) {
			t.Errorf("Changes of deleted mailbox %d: %v", id, err)
		}
	}
}

// Watch on one Store value hears of what another wrote: a hint
// (MailboxChanged with the new HIGHESTMODSEQ, or the change itself)
// arrives within seconds. The watcher then pulls Changes; sessions that
// lose every hint still converge through their periodic pulls (the imap
// package's TestOthersWritesWithoutHints).
func testWatchTwoHandles(t *testing.T, h *harness) {
	h.account(alice)
	s2 := h.second()
	inbox := h.mailbox(alice, "INBOX")
	hints := make(chan storage.Change, 16)
	stop := s2.Watch(inbox.ID, func(c storage.Change) {
		select {
		case hints <- c:
		default:
		}
	})
	defer stop()
	res := h.deliver("Subject: one\r\n\r\n1\r\n", nil, inbox.ID)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-hints:
			if c.MailboxID != inbox.ID {
				t.Fatalf("hint for mailbox %d, watching %d", c.MailboxID, inbox.ID)
			}
			if c.ModSeq < res[0].ModSeq {
				continue // a first reading, before the delivery
			}
			got, err := s2.Changes(h.ctx, inbox.ID, inbox.HighestModSeq)
			if err != nil || !slices.Equal(uidsOf(got.Messages), []uint32{1}) {
				t.Fatalf("Changes after the hint = %+v, %v", got, err)
			}
			return
		case <-deadline:
			t.Fatal("the second Store's Watch never heard of a delivery through the first")
		}
	}
}
