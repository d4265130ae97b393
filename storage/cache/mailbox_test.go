package cache_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/cache"
)

// deaf loses every hint: Watch never calls back.
type deaf struct{ storage.Store }

func (deaf) Watch(int64, func(storage.Change)) func() { return func() {} }

// follower is a Listener that keeps the list of UIDs a subscriber knows,
// changed only by the events it hears, and checks that each event names
// the message at its number.
type follower struct {
	t    *testing.T
	uids []uint32
}

func (f *follower) MailboxEvent(e cache.Event) {
	switch e.Kind {
	case cache.Added:
		if int(e.Seq) != len(f.uids)+1 {
			f.t.Errorf("added at %d after %d messages", e.Seq, len(f.uids))
		}
		f.uids = append(f.uids, e.UID)
	case cache.Expunged, cache.FlagsChanged:
		if e.Seq == 0 || int(e.Seq) > len(f.uids) || f.uids[e.Seq-1] != e.UID {
			f.t.Errorf("event %v on %d (uid %d) of %v", e.Kind, e.Seq, e.UID, f.uids)
			return
		}
		if e.Kind == cache.Expunged {
			f.uids = slices.Delete(f.uids, int(e.Seq-1), int(e.Seq))
		}
	}
}

// A Mailbox follows the store through random deliveries, flag changes,
// expunges and copies, made through its own store (the feed brings them),
// through a second handle on the same database (hints from another
// writer), and with every hint lost (the writer's MODSEQ and Ensure):
// after each write its UIDs and metadata are the store's, and its
// listener's list of UIDs is its own.
func TestMailboxFollowsStore(t *testing.T) {
	for _, mode := range []string{"feed", "second handle", "deaf"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, dir)
			t.Cleanup(func() { db.Close() })
			var watched storage.Store = db
			writer := storage.Store(db)
			switch mode {
			case "second handle":
				db2 := openDB(t, dir)
				t.Cleanup(func() { db2.Close() })
				writer = db2
			case "deaf":
				watched = deaf{db}
			}
			ctx := t.Context()
			const alice = "alice@carepost.test"
			if err := db.CreateAccount(ctx, alice); err != nil {
				t.Fatal(err)
			}
			inbox, err := db.GetMailbox(ctx, alice, "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			other, err := db.GetMailbox(ctx, alice, "Archive")
			if err != nil {
				t.Fatal(err)
			}
			deliver := func(id int64, i int) uint64 {
				msg := fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", i))
				res, err := writer.Deliver(ctx, strings.NewReader(msg), []storage.Target{{MailboxID: id}})
				if err != nil {
					t.Fatal(err)
				}
				return res[0].ModSeq
			}
			for i := range 3 {
				deliver(inbox.ID, i)
				deliver(other.ID, i)
			}

			c := cache.New(watched, cache.Options{ResyncInterval: time.Hour})
			defer c.Stop()
			mb, err := c.Open(ctx, inbox.ID)
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Release()
			f := &follower{t: t}
			mb.Lock()
			f.uids = slices.Clone(mb.UIDsLocked())
			mb.SubscribeLocked(f)
			mb.Unlock()

			rng := rand.New(rand.NewPCG(3, 4))
			for step := range 40 {
				var modseq uint64
				uids := func() []uint32 {
					msgs, err := db.Messages(ctx, inbox.ID, nil)
					if err != nil {
						t.Fatal(err)
					}
					var out []uint32
					for _, m := range msgs {
						out = append(out, m.UID)
					}
					return out
				}()
				some := func() []uint32 {
					var out []uint32
					for _, u := range uids {
						if rng.IntN(3) == 0 {
							out = append(out, u)
						}
					}
					return out
				}
				switch op := rng.IntN(4); {
				case op == 0 || len(uids) == 0:
					modseq = deliver(inbox.ID, step)
				case op == 1:
					flag := []string{storage.FlagSeen, "$Label" + fmt.Sprint(rng.IntN(3)), storage.FlagDeleted}[rng.IntN(3)]
					ups, err := writer.StoreFlags(ctx, inbox.ID, some(), storage.FlagOp(rng.IntN(3)), []string{flag})
					if err != nil {
						t.Fatal(err)
					}
					for _, u := range ups {
						modseq = max(modseq, u.ModSeq)
					}
				case op == 2:
					res, err := writer.Expunge(ctx, inbox.ID, nil)
					if err != nil {
						t.Fatal(err)
					}
					modseq = res.ModSeq
				default:
					res, err := writer.Copy(ctx, other.ID, []uint32{1, 2}, inbox.ID)
					if err != nil {
						t.Fatal(err)
					}
					modseq = res.ModSeq
				}
				if err := mb.Ensure(ctx, modseq); err != nil {
					t.Fatal(err)
				}
				want, err := db.Messages(ctx, inbox.ID, nil)
				if err != nil {
					t.Fatal(err)
				}
				got := mb.Messages(nil)
				same := slices.EqualFunc(got, want, func(a, b storage.Message) bool {
					return a.UID == b.UID && slices.Equal(a.Flags, b.Flags) && a.ModSeq == b.ModSeq &&
						a.Size == b.Size && a.InternalDate.Equal(b.InternalDate)
				})
				if !same {
					t.Fatalf("step %d: the cache holds %+v, the store %+v", step, got, want)
				}
				mb.Lock()
				if !slices.Equal(f.uids, mb.UIDsLocked()) {
					t.Fatalf("step %d: the listener knows %v, the cache %v", step, f.uids, mb.UIDsLocked())
				}
				mb.Unlock()
			}
		})
	}
}

// The last Release frees the state; a later Open reads the mailbox again.
func TestOpenRelease(t *testing.T) {
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	inbox := storage.Mailbox{ID: aliceInbox(t, db, 0)}
	c := cache.New(db, cache.Options{})
	defer c.Stop()
	var wg sync.WaitGroup
	opened := make([]*cache.Mailbox, 8)
	for i := range opened {
		wg.Go(func() {
			mb, err := c.Open(ctx, inbox.ID)
			if err != nil {
				t.Error(err)
			}
			opened[i] = mb
		})
	}
	wg.Wait()
	for _, mb := range opened[1:] {
		if mb != opened[0] {
			t.Fatal("two states for one mailbox")
		}
	}
	if n := c.Opened(); n != 1 {
		t.Fatalf("Opened() = %d, want 1", n)
	}
	for _, mb := range opened {
		mb.Release()
	}
	if n := c.Opened(); n != 0 {
		t.Fatalf("Opened() = %d after every Release", n)
	}
	if _, err := c.Open(ctx, inbox.ID+1000); err == nil {
		t.Fatal("opened a mailbox that does not exist")
	}
	if n := c.Opened(); n != 0 {
		t.Fatalf("Opened() = %d after a failed Open", n)
	}
}
