package storagetest

import (
	"slices"
	"testing"

	"github.com/carepost/carepost/storage"
)

func flagsOf(t *testing.T, h *harness, id int64, uid uint32) []string {
	t.Helper()
	msgs := h.messages(id, []uint32{uid})
	if len(msgs) != 1 {
		t.Fatalf("no message %d", uid)
	}
	return msgs[0].Flags
}

func testStoreFlags(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	for range 3 {
		h.deliver("x", nil, inbox.ID)
	}
	ms0 := h.status(inbox.ID).HighestModSeq

	// Add, canonicalising system flags; \Recent is never stored.
	up, err := h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1, 2, 9}, storage.FlagsAdd, []string{`\SEEN`, "$Label1", `\recent`, "$label1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(up) != 2 || up[0].UID != 1 || up[1].UID != 2 {
		t.Fatalf("add: %+v", up)
	}
	ms1 := up[0].ModSeq
	if ms1 <= ms0 || up[1].ModSeq != ms1 || !sameFlags(up[0].Flags, []string{`\Seen`, "$Label1"}) {
		t.Errorf("add: %+v (modseq before %d)", up, ms0)
	}
	if got := h.status(inbox.ID).HighestModSeq; got != ms1 {
		t.Errorf("HIGHESTMODSEQ %d, want %d", got, ms1)
	}
	if m := h.messages(inbox.ID, []uint32{1, 3}); m[0].ModSeq != ms1 || m[1].ModSeq >= ms1 || len(m[1].Flags) != 0 {
		t.Errorf("per-message modseq: %+v", m)
	}

	// Adding what is there (keyword in another case) changes nothing.
	up, err = h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1}, storage.FlagsAdd, []string{`\Seen`, "$LABEL1"})
	if err != nil || len(up) != 0 {
		t.Errorf("no-op add: %+v, %v", up, err)
	}
	if got := h.status(inbox.ID).HighestModSeq; got != ms1 {
		t.Errorf("a no-op STORE bumped HIGHESTMODSEQ to %d", got)
	}

	// Remove, keyword matched case-insensitively.
	up, err = h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1, 2, 3}, storage.FlagsRemove, []string{"$LABEL1"})
	if err != nil || len(up) != 2 || up[0].ModSeq <= ms1 {
		t.Fatalf("remove: %+v, %v", up, err)
	}
	if f := flagsOf(t, h, inbox.ID, 1); !sameFlags(f, []string{`\Seen`}) {
		t.Errorf("after remove: %v", f)
	}

	// Set replaces, and returns every message.
	up, err = h.s.StoreFlags(h.ctx, inbox.ID, nil, storage.FlagsSet, []string{`\Flagged`})
	if err != nil || len(up) != 0 {
		t.Errorf("set on no UID: %+v, %v", up, err)
	}
	up, err = h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1, 2, 3}, storage.FlagsSet, []string{`\flagged`, `\draft`, "Todo", "TODO"})
	if err != nil || len(up) != 3 {
		t.Fatalf("set: %+v, %v", up, err)
	}
	for _, u := range up {
		if !sameFlags(u.Flags, []string{`\Flagged`, `\Draft`, "Todo"}) {
			t.Errorf("set: %+v", u)
		}
	}
	up, _ = h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1, 2, 3}, storage.FlagsSet, []string{`\Flagged`, `\Draft`, "todo"})
	if len(up) != 3 {
		t.Errorf("FlagsSet must return every message, got %+v", up)
	}
	st := h.status(inbox.ID)
	if !slices.Contains(st.Flags, "$Label1") || !slices.Contains(st.Flags, "Todo") {
		t.Errorf("FLAGS %v must list the keywords used", st.Flags)
	}
	if st.Unseen != 3 {
		t.Errorf("Unseen = %d", st.Unseen)
	}

	_, err = h.s.StoreFlags(h.ctx, inbox.ID, []uint32{1}, storage.FlagsAdd, []string{"a(b"})
	wantErr(t, "bad keyword", err, storage.ErrInvalidFlag)
	_, err = h.s.StoreFlags(h.ctx, 1<<40, []uint32{1}, storage.FlagsAdd, []string{`\Seen`})
	wantErr(t, "StoreFlags in a missing mailbox", err, storage.ErrNoMailbox)
}

func testCopyMove(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	archive := h.mailbox(alice, "Archive")
	for i := range 5 {
		h.deliver(string(rune('a'+i)), []string{"K" + string(rune('a'+i))}, inbox.ID)
	}
	h.deliver("z", nil, archive.ID) // archive UIDNEXT is 2
	h.s.StoreFlags(h.ctx, inbox.ID, []uint32{2}, storage.FlagsAdd, []string{`\Seen`})
	src := h.messages(inbox.ID, nil)

	res, err := h.s.Copy(h.ctx, inbox.ID, []uint32{4, 2, 99}, archive.ID)
	if err != nil {
		t.Fatal(err)
	}
	if res.UIDValidity != archive.UIDValidity || !slices.Equal(res.SourceUIDs, []uint32{2, 4}) || !slices.Equal(res.DestUIDs, []uint32{2, 3}) {
		t.Fatalf("Copy = %+v", res)
	}
	dst := h.messages(archive.ID, res.DestUIDs)
	for i, m := range dst {
		s := src[res.SourceUIDs[i]-1]
		if !sameFlags(m.Flags, s.Flags) || !m.InternalDate.Equal(s.InternalDate) || m.Size != s.Size {
			t.Errorf("copy %d = %+v, source %+v", i, m, s)
		}
		if string(h.body(archive.ID, m.UID)) != string(h.body(inbox.ID, s.UID)) {
			t.Errorf("copy %d has another body", i)
		}
	}
	if st := h.status(inbox.ID); st.Messages != 5 {
		t.Errorf("Copy changed the source: %+v", st)
	}
	if st := h.status(archive.ID); !slices.Contains(st.Flags, "Kd") {
		t.Errorf("destination FLAGS %v lack the copied keywords", st.Flags)
	}

	res, err = h.s.Move(h.ctx, inbox.ID, []uint32{1, 3, 5}, archive.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.SourceUIDs, []uint32{1, 3, 5}) || !slices.Equal(res.DestUIDs, []uint32{4, 5, 6}) {
		t.Fatalf("Move = %+v", res)
	}
	if got := uidsOf(h.messages(inbox.ID, nil)); !slices.Equal(got, []uint32{2, 4}) {
		t.Errorf("source after Move: %v", got)
	}
	if got := uidsOf(h.messages(archive.ID, nil)); !slices.Equal(got, []uint32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("destination after Move: %v", got)
	}
	if string(h.body(archive.ID, 5)) != "c" {
		t.Error("moved body differs")
	}
	// Move within one mailbox: new UIDs, old ones gone.
	res, err = h.s.Move(h.ctx, inbox.ID, []uint32{2}, inbox.ID)
	if err != nil || !slices.Equal(res.DestUIDs, []uint32{6}) {
		t.Fatalf("Move to self = %+v, %v", res, err)
	}
	if got := uidsOf(h.messages(inbox.ID, nil)); !slices.Equal(got, []uint32{4, 6}) {
		t.Errorf("after Move to self: %v", got)
	}
	// Nothing to copy: empty result, no error.
	res, err = h.s.Copy(h.ctx, inbox.ID, []uint32{100}, archive.ID)
	if err != nil || len(res.DestUIDs) != 0 || res.UIDValidity != archive.UIDValidity {
		t.Errorf("Copy of nothing = %+v, %v", res, err)
	}
	_, err = h.s.Copy(h.ctx, inbox.ID, []uint32{4}, 1<<40)
	wantErr(t, "Copy to a missing mailbox", err, storage.ErrNoMailbox)
	_, err = h.s.Move(h.ctx, 1<<40, []uint32{4}, archive.ID)
	wantErr(t, "Move from a missing mailbox", err, storage.ErrNoMailbox)
	if got := uidsOf(h.messages(inbox.ID, nil)); !slices.Equal(got, []uint32{4, 6}) {
		t.Errorf("a failed Move changed the source: %v", got)
	}
	// A copy outlives the expunge of its source.
	h.s.StoreFlags(h.ctx, inbox.ID, []uint32{4}, storage.FlagsAdd, []string{`\Deleted`})
	if _, err := h.s.Expunge(h.ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	if string(h.body(archive.ID, 3)) != "d" {
		t.Error("the copy lost its body when the source was expunged")
	}
}

func testExpunge(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	for range 6 {
		h.deliver("x", nil, inbox.ID)
	}
	h.s.StoreFlags(h.ctx, inbox.ID, []uint32{2, 3, 5, 6}, storage.FlagsAdd, []string{`\Deleted`})
	before := h.status(inbox.ID).HighestModSeq

	got, err := h.s.Expunge(h.ctx, inbox.ID, []uint32{1, 3, 5})
	if err != nil || !slices.Equal(got.UIDs, []uint32{3, 5}) {
		t.Fatalf("Expunge(1,3,5) = %v, %v", got, err)
	}
	if after := h.status(inbox.ID).HighestModSeq; after <= before || got.ModSeq != after {
		t.Errorf("Expunge: HIGHESTMODSEQ %d -> %d, returned %d", before, after, got.ModSeq)
	}
	got, err = h.s.Expunge(h.ctx, inbox.ID, nil)
	if err != nil || !slices.Equal(got.UIDs, []uint32{2, 6}) {
		t.Fatalf("Expunge(all) = %v, %v", got, err)
	}
	if uids := uidsOf(h.messages(inbox.ID, nil)); !slices.Equal(uids, []uint32{1, 4}) {
		t.Errorf("left: %v", uids)
	}
	st := h.status(inbox.ID)
	got, err = h.s.Expunge(h.ctx, inbox.ID, nil)
	if err != nil || len(got.UIDs) != 0 || got.ModSeq != st.HighestModSeq || h.status(inbox.ID).HighestModSeq != st.HighestModSeq {
		t.Errorf("empty Expunge = %v, %v, modseq %d -> %d", got, err, st.HighestModSeq, h.status(inbox.ID).HighestModSeq)
	}
	if st.UIDNext != 7 {
		t.Errorf("UIDNEXT after expunge = %d", st.UIDNext)
	}
	// UIDs are never reused.
	if res := h.deliver("y", nil, inbox.ID); res[0].UID != 7 {
		t.Errorf("UID after expunge = %d", res[0].UID)
	}
	_, err = h.s.Expunge(h.ctx, 1<<40, nil)
	wantErr(t, "Expunge of a missing mailbox", err, storage.ErrNoMailbox)
}
