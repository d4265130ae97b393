package cache_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/cache"
	"github.com/carepost/carepost/storage/sqlite"
	"github.com/carepost/carepost/storage/storagetest"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

func openDB(t *testing.T, dir string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(dir, sqlite.Options{Key: testKey, Summarize: storagetest.Summarize})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// The cache is a storage.Store: through it, a backend keeps every
// contract of the conformance suite (writes pass through, reads answer
// the same, Close closes the wrapped store).
func TestMailConformance(t *testing.T) {
	storagetest.RunMail(t, func(t *testing.T, dir string) storage.Store {
		return cache.New(openDB(t, dir), cache.Options{})
	})
}

// aliceInbox creates alice's account in db, delivers n small messages to
// her INBOX and returns its ID.
func aliceInbox(t *testing.T, db storage.Store, n int) int64 {
	t.Helper()
	ctx := t.Context()
	const alice = "alice@carepost.test"
	if err := db.CreateAccount(ctx, alice); err != nil {
		t.Fatal(err)
	}
	inbox, err := db.GetMailbox(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		msg := "Subject: m" + strings.Repeat("x", i) + "\r\n\r\nbody\r\n"
		if _, err := db.Deliver(ctx, strings.NewReader(msg), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	return inbox.ID
}

// countingDigests counts the UIDs the cache asks the wrapped store for.
type countingDigests struct {
	storage.Store
	asked atomic.Int64
}

func (c *countingDigests) Digests(ctx context.Context, mailboxID int64, uids []uint32, header, summary bool) ([]storage.Digest, error) {
	c.asked.Add(int64(len(uids)))
	return c.Store.Digests(ctx, mailboxID, uids, header, summary)
}

// Digests answers what the store answers, in UID order, reading from the
// store only the digests it does not hold.
func TestDigestsThroughCache(t *testing.T) {
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	inbox := storage.Mailbox{ID: aliceInbox(t, db, 5)}
	counting := &countingDigests{Store: db}
	c := cache.New(counting, cache.Options{})
	defer c.Stop()
	if _, err := c.Digests(ctx, inbox.ID, []uint32{1, 3}, true, true); err != nil {
		t.Fatal(err)
	}
	counting.asked.Store(0)
	all := []uint32{1, 2, 3, 4, 5, 99}
	got, err := c.Digests(ctx, inbox.ID, all, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := counting.asked.Load(); n != 4 {
		t.Errorf("the store was asked for %d UIDs, want 4 (2, 4, 5, 99)", n)
	}
	want, err := db.Digests(ctx, inbox.ID, all, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, func(a, b storage.Digest) bool {
		return a.UID == b.UID && bytes.Equal(a.Header, b.Header) && bytes.Equal(a.Summary, b.Summary)
	}) {
		t.Errorf("through the cache %+v, from the store %+v", got, want)
	}
	// A digest read whole answers for its header alone.
	counting.asked.Store(0)
	if _, err := c.Digests(ctx, inbox.ID, []uint32{2}, true, false); err != nil {
		t.Fatal(err)
	}
	if n := counting.asked.Load(); n != 0 {
		t.Errorf("a cached digest was read again (%d)", n)
	}
}

// An expunged message's digest leaves the cache when the mailbox state
// learns of the expunge, from this handle or another: under a steady
// append-and-expunge load the cache holds the live messages, not history.
func TestDigestsForgetExpunged(t *testing.T) {
	for _, mode := range []string{"same handle", "second handle"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, dir)
			t.Cleanup(func() { db.Close() })
			writer := storage.Store(db)
			if mode == "second handle" {
				other := openDB(t, dir)
				t.Cleanup(func() { other.Close() })
				writer = other
			}
			ctx := t.Context()
			inbox := storage.Mailbox{ID: aliceInbox(t, db, 4)}
			c := cache.New(db, cache.Options{})
			defer c.Stop()
			mb, err := c.Open(ctx, inbox.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Release()
			if _, err := c.Digests(ctx, inbox.ID, []uint32{1, 2, 3, 4}, true, true); err != nil {
				t.Fatal(err)
			}
			if n, _ := c.DigestsHeld(); n != 4 {
				t.Fatalf("%d digests held after reading 4", n)
			}
			if _, err := writer.StoreFlags(ctx, inbox.ID, []uint32{2, 3}, storage.FlagsAdd, []string{storage.FlagDeleted}); err != nil {
				t.Fatal(err)
			}
			res, err := writer.Expunge(ctx, inbox.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := mb.Ensure(ctx, res.ModSeq); err != nil {
				t.Fatal(err)
			}
			if n, _ := c.DigestsHeld(); n != 2 {
				t.Errorf("%d digests held after 2 of 4 were expunged, want 2", n)
			}
		})
	}
}
