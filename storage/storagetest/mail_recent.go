package storagetest

import (
	"sync"
	"testing"

	"github.com/carepost/carepost/storage"
)

// testClaimRecent: a session with the mailbox selected claims the messages
// that arrive after its SELECT (RFC 3501 §2.3.2: \Recent for exactly one
// session); Select and ClaimRecent share one watermark.
func testClaimRecent(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	h.deliver("a", nil, inbox.ID)
	if _, _, first, err := h.s.Select(h.ctx, inbox.ID, true); err != nil || first != 1 {
		t.Fatalf("Select: first recent %d, %v", first, err)
	}
	if first, err := h.s.ClaimRecent(h.ctx, inbox.ID, 1); err != nil || first != 0 {
		t.Errorf("ClaimRecent of what Select claimed = %d, %v", first, err)
	}
	h.deliver("b", nil, inbox.ID)
	h.deliver("c", nil, inbox.ID)
	if st := h.status(inbox.ID); st.Recent != 2 {
		t.Errorf("Status before the claim: Recent %d, want 2", st.Recent)
	}
	// Claim up to 2 only: 3 stays unclaimed.
	if first, err := h.s.ClaimRecent(h.ctx, inbox.ID, 2); err != nil || first != 2 {
		t.Errorf("ClaimRecent(2) = %d, %v, want 2", first, err)
	}
	if st := h.status(inbox.ID); st.Recent != 1 {
		t.Errorf("Status after claiming 2: Recent %d, want 1", st.Recent)
	}
	if first, err := h.s.ClaimRecent(h.ctx, inbox.ID, 2); err != nil || first != 0 {
		t.Errorf("second ClaimRecent(2) = %d, %v, want 0", first, err)
	}
	// A claiming Select takes the rest.
	if st, _, first, err := h.s.Select(h.ctx, inbox.ID, true); err != nil || first != 3 || st.Recent != 1 {
		t.Errorf("Select after ClaimRecent: Recent %d, first %d, %v", st.Recent, first, err)
	}
	if first, err := h.s.ClaimRecent(h.ctx, inbox.ID, 3); err != nil || first != 0 {
		t.Errorf("ClaimRecent after Select = %d, %v", first, err)
	}
	// Expunged messages inside the range do not matter: the watermark moves.
	res := h.deliver("d", []string{storage.FlagDeleted}, inbox.ID)
	h.deliver("e", nil, inbox.ID)
	if _, err := h.s.Expunge(h.ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	if first, err := h.s.ClaimRecent(h.ctx, inbox.ID, res[0].UID+1); err != nil || first != res[0].UID {
		t.Errorf("ClaimRecent over an expunged message = %d, %v, want %d", first, err, res[0].UID)
	}
	if st := h.status(inbox.ID); st.Recent != 0 {
		t.Errorf("Status after every claim: Recent %d", st.Recent)
	}
	if first, err := h.s.ClaimRecent(h.ctx, inbox.ID, 0); err != nil || first != 0 {
		t.Errorf("ClaimRecent(0) = %d, %v", first, err)
	}
	_, err := h.s.ClaimRecent(h.ctx, 1<<40, 5)
	wantErr(t, "ClaimRecent of a missing mailbox", err, storage.ErrNoMailbox)

	// Concurrent claims of the same arrivals: each UID to one caller.
	const n = 12
	for range n {
		h.deliver("f", nil, inbox.ID)
	}
	top := h.status(inbox.ID).UIDNext - 1
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[uint32]int{}
	)
	for i := range 8 {
		wg.Go(func() {
			// Callers claim up to different points, as sessions that saw
			// different numbers of arrivals would.
			upTo := top - uint32(i%3)
			first, err := h.s.ClaimRecent(h.ctx, inbox.ID, upTo)
			if err != nil {
				t.Error(err)
				return
			}
			if first == 0 {
				return
			}
			mu.Lock()
			for u := first; u <= upTo; u++ {
				got[u]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for u, c := range got {
		if c != 1 {
			t.Errorf("UID %d claimed %d times", u, c)
		}
	}
	if st := h.status(inbox.ID); st.Recent != 0 {
		t.Errorf("after concurrent claims: Recent %d", st.Recent)
	}
	if got[top] != 1 {
		t.Errorf("the last arrival %d was not claimed: %v", top, got)
	}
}
