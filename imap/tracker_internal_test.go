package imap

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/cache"
)

// feedStore gives a cache.Mailbox a snapshot of the first UIDs and lets
// the test drive its change feed (Watch) by hand. Nothing else of the
// store is called: the changes come in MODSEQ order, so the Mailbox never
// pulls (it would call the nil Store and the test would fail).
type feedStore struct {
	storage.Store
	msgs []storage.Message
	feed func(storage.Change)
}

func (f *feedStore) Watch(_ int64, fn func(storage.Change)) func() {
	f.feed = fn
	return func() {}
}

func (f *feedStore) Select(context.Context, int64, bool) (storage.MailboxStatus, []storage.Message, uint32, error) {
	return storage.MailboxStatus{Mailbox: storage.Mailbox{UIDValidity: 1, HighestModSeq: 1}}, f.msgs, 0, nil
}

// TestTrackerModel drives one view with random arrivals, expunges and flag
// changes, and checks against a model of the client (the list of UIDs it
// knows, changed only by what it is sent) that sequence numbers translate
// both ways at every step and that every response refers to the right
// message; after a poll that may send EXPUNGE, the client's list is the
// server's.
func TestTrackerModel(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		fs := &feedStore{}
		var client []uint32
		for uid := uint32(1); uid <= uint32(rng.IntN(5)); uid++ {
			fs.msgs = append(fs.msgs, storage.Message{UID: uid, ModSeq: 1})
			client = append(client, uid)
		}
		c := cache.New(fs, cache.Options{})
		sm, err := c.Open(t.Context(), 1)
		if err != nil {
			t.Fatal(err)
		}
		uids := func() []uint32 {
			sm.Lock()
			defer sm.Unlock()
			return slices.Clone(sm.UIDsLocked())
		}
		v := &view{sm: sm, notify: make(chan struct{}, 1), known: uint32(len(client))}
		sm.Lock()
		sm.SubscribeLocked(v)
		sm.Unlock()
		other := &view{sm: sm, notify: make(chan struct{}, 1)}
		next := uint32(len(client)) + 1
		// modseq follows the snapshot's: every change below comes in
		// MODSEQ order, as the store's feed gives them (storage/cache
		// pulls on gaps).
		modseq := uint64(1)
		for step := range 60 {
			switch op := rng.IntN(10); {
			case op < 3:
				modseq++
				fs.feed(storage.Change{Kind: storage.MessageAdded, UID: next, ModSeq: modseq})
				next++
			case op < 6 && len(uids()) > 0:
				all := uids()
				modseq++
				fs.feed(storage.Change{Kind: storage.MessageExpunged, UID: all[rng.IntN(len(all))], ModSeq: modseq})
			case op < 8 && len(uids()) > 0:
				all := uids()
				var origin any
				if rng.IntN(3) == 0 {
					origin = other
				}
				modseq++
				fs.feed(storage.Change{Kind: storage.FlagsChanged, UID: all[rng.IntN(len(all))], Flags: []string{"$k"}, ModSeq: modseq, Origin: origin})
			default:
				sm.Lock()
				checkTranslation(t, seed, step, v, client)
				allow := rng.IntN(2) == 0
				for _, o := range v.drainLocked(allow) {
					client = applyOutput(t, seed, step, client, o, allow)
				}
				sm.Unlock()
				if allow && !slices.Equal(client, uids()) {
					t.Fatalf("seed %d step %d: client %v, server %v", seed, step, client, uids())
				}
				if v.known != uint32(len(client)) {
					t.Fatalf("seed %d step %d: known %d, client has %d", seed, step, v.known, len(client))
				}
			}
		}
		sm.Lock()
		checkTranslation(t, seed, -1, v, client)
		for _, o := range v.drainLocked(true) {
			client = applyOutput(t, seed, -1, client, o, true)
		}
		sm.Unlock()
		if !slices.Equal(client, uids()) || len(v.queue) != 0 {
			t.Fatalf("seed %d end: client %v, server %v, queue %d", seed, client, uids(), len(v.queue))
		}
		sm.Release()
		c.Stop()
	}
}

func checkTranslation(t *testing.T, seed uint64, step int, v *view, client []uint32) {
	t.Helper()
	sm := v.sm
	uids := sm.UIDsLocked()
	for c := uint32(1); c <= uint32(len(client)); c++ {
		s := v.serverSeqLocked(c)
		uid := client[c-1]
		_, exists := sm.IndexLocked(uid)
		switch {
		case s == 0 && exists:
			t.Fatalf("seed %d step %d: client seq %d (uid %d) not found though it exists", seed, step, c, uid)
		case s != 0 && uids[s-1] != uid:
			t.Fatalf("seed %d step %d: client seq %d is uid %d, server seq %d is uid %d", seed, step, c, uid, s, uids[s-1])
		}
	}
	for s := uint32(1); s <= uint32(len(uids)); s++ {
		c := v.clientSeqLocked(s)
		uid := uids[s-1]
		switch {
		case c == 0 && slices.Contains(client, uid):
			t.Fatalf("seed %d step %d: uid %d known to the client but not translated", seed, step, uid)
		case c != 0 && (int(c) > len(client) || client[c-1] != uid):
			t.Fatalf("seed %d step %d: server seq %d (uid %d) translated to client seq %d of %v", seed, step, s, uid, c, client)
		}
	}
}

func applyOutput(t *testing.T, seed uint64, step int, client []uint32, o output, allowExpunge bool) []uint32 {
	t.Helper()
	switch o.kind {
	case updExists:
		if int(o.n) != len(client)+len(o.uids) || o.n <= uint32(len(client)) {
			t.Fatalf("seed %d step %d: EXISTS %d with %v new, client had %d", seed, step, o.n, o.uids, len(client))
		}
		return append(client, o.uids...)
	case updExpunge:
		if !allowExpunge {
			t.Fatalf("seed %d step %d: EXPUNGE sent when not allowed", seed, step)
		}
		if o.n == 0 || int(o.n) > len(client) {
			t.Fatalf("seed %d step %d: EXPUNGE %d of %d", seed, step, o.n, len(client))
		}
		return slices.Delete(client, int(o.n-1), int(o.n))
	case updFlags:
		if o.n == 0 || int(o.n) > len(client) || client[o.n-1] != o.uid {
			t.Fatalf("seed %d step %d: FETCH %d (uid %d) on %v", seed, step, o.n, o.uid, client)
		}
	}
	return client
}
