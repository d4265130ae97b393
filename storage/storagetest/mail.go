// Package storagetest is the conformance suite of storage.Store: every
// backend (storage/sqlite today, PostgreSQL later) runs RunMail from its own
// tests and must pass all of it.
package storagetest

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
)

// OpenFunc opens the store kept at dir. Opening the same dir again after
// Close must give back the same data (the suite checks durability across a
// reopen); a fresh t.TempDir() gives an empty store. A backend whose data is
// not in files (PostgreSQL) maps dir to a database or schema of its own.
// The store must be opened with Summarize as its storage.Summarizer.
// OpenFunc is also called for a dir whose store is open already: the
// suite then works with two Store values on one store, as two processes
// on one data directory or two nodes of a cluster would.
type OpenFunc func(t *testing.T, dir string) storage.Store

// RunMail runs the mail store conformance suite.
func RunMail(t *testing.T, open OpenFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"CreateAccount", testCreateAccount},
		{"Deliver", testDeliver},
		{"Select", testSelect},
		{"ClaimRecent", testClaimRecent},
		{"Watch", testWatch},
		{"WatchKinds", testWatchKinds},
		{"MailboxCreateDelete", testMailboxCreateDelete},
		{"MailboxRename", testMailboxRename},
		{"Subscriptions", testSubscriptions},
		{"StoreFlags", testStoreFlags},
		{"CopyMove", testCopyMove},
		{"Expunge", testExpunge},
		{"LargeBody", testLargeBody},
		{"OpenHeader", testOpenHeader},
		{"Digests", testDigests},
		{"Reopen", testReopen},
		{"ConcurrentDelivery", testConcurrentDelivery},
		{"Changes", testChanges},
		{"ChangesTwoHandles", testChangesTwoHandles},
		{"WatchTwoHandles", testWatchTwoHandles},
		{"AccountChanges", testAccountChanges},
		{"ChangesPruned", testChangesPruned},
		{"IDsNeverReused", testIDsNeverReused},
		{"MoveRace", testMoveRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t, open))
		})
	}
}

// harness holds a store for one test and can reopen it.
type harness struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	open OpenFunc
	mu   sync.Mutex
	s    storage.Store
}

func newHarness(t *testing.T, open OpenFunc) *harness {
	h := &harness{t: t, ctx: t.Context(), dir: t.TempDir(), open: open}
	h.s = open(t, h.dir)
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.s != nil {
			h.s.Close()
		}
	})
	return h
}

// reopen closes the store and opens it again from the same dir.
func (h *harness) reopen() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	h.s = nil
	h.s = h.open(h.t, h.dir)
}

func (h *harness) account(name string) {
	h.t.Helper()
	if err := h.s.CreateAccount(h.ctx, name); err != nil {
		h.t.Fatalf("CreateAccount(%s): %v", name, err)
	}
}

func (h *harness) mailbox(account, name string) storage.Mailbox {
	h.t.Helper()
	mb, err := h.s.GetMailbox(h.ctx, account, name)
	if err != nil {
		h.t.Fatalf("GetMailbox(%s, %s): %v", account, name, err)
	}
	return mb
}

func (h *harness) create(account, name string) storage.Mailbox {
	h.t.Helper()
	mb, err := h.s.CreateMailbox(h.ctx, account, name, "")
	if err != nil {
		h.t.Fatalf("CreateMailbox(%s, %s): %v", account, name, err)
	}
	return mb
}

// deliver stores body in each mailbox with flags.
func (h *harness) deliver(body string, flags []string, mailboxes ...int64) []storage.Appended {
	h.t.Helper()
	var targets []storage.Target
	for _, id := range mailboxes {
		targets = append(targets, storage.Target{MailboxID: id, Flags: flags})
	}
	res, err := h.s.Deliver(h.ctx, strings.NewReader(body), targets)
	if err != nil {
		h.t.Fatalf("Deliver: %v", err)
	}
	if len(res) != len(mailboxes) {
		h.t.Fatalf("Deliver to %d mailboxes returned %d results", len(mailboxes), len(res))
	}
	return res
}

func (h *harness) messages(id int64, uids []uint32) []storage.Message {
	h.t.Helper()
	msgs, err := h.s.Messages(h.ctx, id, uids)
	if err != nil {
		h.t.Fatalf("Messages: %v", err)
	}
	return msgs
}

func (h *harness) status(id int64) storage.MailboxStatus {
	h.t.Helper()
	st, err := h.s.Status(h.ctx, id)
	if err != nil {
		h.t.Fatalf("Status: %v", err)
	}
	return st
}

func (h *harness) body(id int64, uid uint32) []byte {
	h.t.Helper()
	b, err := h.s.OpenBody(h.ctx, id, uid)
	if err != nil {
		h.t.Fatalf("OpenBody(%d, %d): %v", id, uid, err)
	}
	defer b.Close()
	data, err := io.ReadAll(b)
	if err != nil {
		h.t.Fatalf("read body: %v", err)
	}
	if int64(len(data)) != b.Size() {
		h.t.Fatalf("body is %d bytes, Size says %d", len(data), b.Size())
	}
	return data
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func uidsOf(msgs []storage.Message) []uint32 {
	var out []uint32
	for _, m := range msgs {
		out = append(out, m.UID)
	}
	return out
}

func sameFlags(got, want []string) bool {
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// changeLog collects the changes a Watch sees.
type changeLog struct {
	mu      sync.Mutex
	changes []storage.Change
	signal  chan struct{}
}

func newChangeLog() *changeLog { return &changeLog{signal: make(chan struct{}, 1)} }

// add records a change written through the watched Store value. Hints
// (MailboxChanged) are left out: a backend may send one at any time
// (Store.Watch: a first reading, or a write it sees from its poller
// before its committer published it), and the suite's expectations are
// about the changes that come in full.
func (l *changeLog) add(c storage.Change) {
	if c.Kind == storage.MailboxChanged {
		return
	}
	l.mu.Lock()
	l.changes = append(l.changes, c)
	l.mu.Unlock()
	select {
	case l.signal <- struct{}{}:
	default:
	}
}

// wait returns once n changes arrived (the test's own deadline bounds it).
func (l *changeLog) wait(t *testing.T, n int) []storage.Change {
	t.Helper()
	for {
		l.mu.Lock()
		if len(l.changes) >= n {
			out := slices.Clone(l.changes)
			l.mu.Unlock()
			return out
		}
		l.mu.Unlock()
		select {
		case <-l.signal:
		case <-t.Context().Done():
			t.Fatalf("waited for %d changes", n)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d changes after 10 s, want %d", len(l.changes), n)
		}
	}
}
