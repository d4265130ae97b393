package storagetest

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/carepost/carepost/storage"
)

// testMoveRace: MOVE A→B racing MOVE B→A, and deliveries to B and A
// (named in that order), through two Store values on one store, many
// times at once. storage's lock order (ascending mailbox IDs) is what
// keeps a row-locking backend from deadlocking here; every call must
// succeed, and every message must end up in exactly one of A and B.
func testMoveRace(t *testing.T, h *harness) {
	h.account(alice)
	s2 := h.second()
	a := h.create(alice, "A")
	b := h.create(alice, "B")
	const n = 10
	var want []string
	for i := range n {
		for _, mb := range []storage.Mailbox{a, b} {
			body := fmt.Sprintf("Subject: %s%d\r\n\r\n.\r\n", mb.Name, i)
			h.deliver(body, nil, mb.ID)
			want = append(want, body)
		}
	}
	const rounds = 25
	var wg sync.WaitGroup
	errs := make(chan error, 8*rounds)
	move := func(s storage.Store, src, dst int64) {
		defer wg.Done()
		for range rounds {
			msgs, err := s.Messages(h.ctx, src, nil)
			if err != nil {
				errs <- err
				return
			}
			// Half of them, so that both directions keep work to do.
			uids := uidsOf(msgs)
			if _, err := s.Move(h.ctx, src, uids[:len(uids)/2+len(uids)%2], dst); err != nil {
				errs <- fmt.Errorf("move %d→%d: %w", src, dst, err)
				return
			}
		}
	}
	deliver := func(s storage.Store, i int) {
		defer wg.Done()
		for r := range rounds / 5 {
			body := fmt.Sprintf("Subject: both %d.%d\r\n\r\n.\r\n", i, r)
			if _, err := s.Deliver(h.ctx, strings.NewReader(body), []storage.Target{{MailboxID: b.ID}, {MailboxID: a.ID}}); err != nil {
				errs <- fmt.Errorf("deliver to B and A: %w", err)
				return
			}
		}
	}
	for i, s := range []storage.Store{h.s, s2} {
		wg.Add(3)
		go move(s, a.ID, b.ID)
		go move(s, b.ID, a.ID)
		go deliver(s, i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 2 {
		for r := range rounds / 5 {
			body := fmt.Sprintf("Subject: both %d.%d\r\n\r\n.\r\n", i, r)
			want = append(want, body, body)
		}
	}
	var got []string
	for _, mb := range []storage.Mailbox{a, b} {
		c := h.changes(mb.ID, 0)
		if msgs := h.messages(mb.ID, nil); !slices.Equal(uidsOf(msgs), uidsOf(c.Messages)) {
			t.Errorf("%s: Changes(0) has %v, Messages %v", mb.Name, uidsOf(c.Messages), uidsOf(msgs))
		}
		for _, m := range c.Messages {
			body, err := h.s.OpenBody(h.ctx, mb.ID, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(data))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after the race A and B hold %d messages, want %d:\n%q\nwant\n%q", len(got), len(want), got, want)
	}
}
