package audit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
	"github.com/carepost/carepost/storage/storagetest"
)

func openAudited(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: testKey, Summarize: storagetest.Summarize, Audit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func readEvent(i int) storage.AuditRecord {
	return storage.AuditRecord{Actor: "alice@a.test", Mechanism: "PLAIN", Source: "192.0.2.1:1000",
		Action: "message.read", Object: "mailbox:1", Details: map[string]string{"uids": strconv.Itoa(i + 1)}}
}

// checkOrder: the events are those recorded, in the order recorded.
func checkOrder(t *testing.T, recs []storage.AuditRecord, n int) {
	t.Helper()
	if len(recs) != n {
		t.Fatalf("%d events in the store, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.Details["uids"] != strconv.Itoa(i+1) || r.Actor != "alice@a.test" || r.Action != "message.read" {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
}

// Events are written by Flush, by the timer and by Close, in order, with
// the time Record took.
func TestRecorderWrites(t *testing.T) {
	db := openAudited(t)
	r := audit.NewRecorder(db, quiet())
	before := time.Now().Add(-time.Millisecond)
	for i := range 10 {
		r.Record(readEvent(i))
	}
	r.Flush()
	recs, err := db.AuditEvents(t.Context(), storage.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, recs, 10)
	if recs[0].Time.Before(before.Truncate(time.Millisecond)) || recs[9].Time.After(time.Now()) {
		t.Errorf("times %v..%v", recs[0].Time, recs[9].Time)
	}
	// The timer writes without Flush.
	r.Record(readEvent(10))
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Written < 11 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := r.Stats().Written; got != 11 {
		t.Fatalf("written %d after the timer, want 11", got)
	}
	r.Record(readEvent(11))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// After Close, at once.
	r.Record(readEvent(12))
	recs, err = db.AuditEvents(t.Context(), storage.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, recs, 13)
	if st := r.Stats(); st.Written != 13 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// With RecorderMax events waiting, Record writes them before it returns
// (back-pressure, never loss); many goroutines keep each one's order.
func TestRecorderBound(t *testing.T) {
	db := openAudited(t)
	g := &gated{AuditLog: db, open: make(chan struct{})}
	r := audit.NewRecorder(g, quiet())
	defer r.Close()
	// The first write holds (a slow disk): the buffer fills, and the
	// Record that reaches the bound waits for the store.
	r.Record(readEvent(0))
	go r.Flush()
	for !g.waiting() {
		time.Sleep(time.Millisecond)
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := 1; i < audit.RecorderMax+1; i++ {
			r.Record(readEvent(i))
		}
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-returned:
		t.Fatal("Record returned with the buffer full and the store not written")
	default:
	}
	close(g.open)
	<-returned
	if got := r.Stats().Written; got < audit.RecorderMax {
		t.Fatalf("written %d once the buffer was full, want at least %d", got, audit.RecorderMax)
	}
	r.Flush()
	recs, err := db.AuditEvents(t.Context(), storage.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, recs, audit.RecorderMax+1)

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				r.Record(storage.AuditRecord{Actor: fmt.Sprint(g), Action: "imap.connect", Details: map[string]string{"n": strconv.Itoa(i)}})
			}
		})
	}
	wg.Wait()
	r.Flush()
	recs, err = db.AuditEvents(t.Context(), storage.AuditQuery{Action: "imap.connect"})
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	for _, e := range recs {
		if e.Details["n"] != strconv.Itoa(next[e.Actor]) {
			t.Fatalf("goroutine %s: event %s after %d", e.Actor, e.Details["n"], next[e.Actor]-1)
		}
		next[e.Actor]++
	}
	if len(recs) != 2000 {
		t.Errorf("%d events, want 2000", len(recs))
	}
}

// gated is a store whose writes wait until open is closed.
type gated struct {
	storage.AuditLog
	open    chan struct{}
	mu      sync.Mutex
	blocked bool
}

func (g *gated) AppendAudit(ctx context.Context, recs []storage.AuditRecord) error {
	g.mu.Lock()
	g.blocked = true
	g.mu.Unlock()
	<-g.open
	return g.AuditLog.AppendAudit(ctx, recs)
}

func (g *gated) waiting() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.blocked
}

// failing is a store whose writes fail while fail is set.
type failing struct {
	storage.AuditLog
	mu   sync.Mutex
	fail bool
}

func (f *failing) AppendAudit(ctx context.Context, recs []storage.AuditRecord) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return f.AuditLog.AppendAudit(ctx, recs)
}

func (f *failing) set(v bool) {
	f.mu.Lock()
	f.fail = v
	f.mu.Unlock()
}

// A failed write keeps its events for the next one, in order; only past
// the bound, with the store still failing, do events go to the log.
func TestRecorderFailure(t *testing.T) {
	db := openAudited(t)
	f := &failing{AuditLog: db, fail: true}
	r := audit.NewRecorder(f, quiet())
	defer r.Close()
	for i := range 5 {
		r.Record(readEvent(i))
	}
	r.Flush()
	for i := 5; i < 8; i++ {
		r.Record(readEvent(i))
	}
	r.Flush()
	if st := r.Stats(); st.Written != 0 || st.Failed != 0 {
		t.Fatalf("stats while failing %+v", st)
	}
	f.set(false)
	r.Flush()
	recs, err := db.AuditEvents(t.Context(), storage.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	checkOrder(t, recs, 8)

	f.set(true)
	for i := range audit.RecorderMax + 10 {
		r.Record(readEvent(i))
	}
	// A write under way when the loop ends (the timer's) is waited for.
	r.Flush()
	if st := r.Stats(); st.Failed != 10 {
		t.Errorf("failed %d with 10 events past the bound, want 10", st.Failed)
	}
}

// A nil Recorder records nothing and does not fail.
func TestRecorderNil(t *testing.T) {
	var r *audit.Recorder
	r.Record(readEvent(0))
	r.Flush()
	if err := r.Close(); err != nil || r.Stats() != (audit.RecorderStats{}) {
		t.Errorf("nil recorder: %v %+v", err, r.Stats())
	}
}

func TestUIDList(t *testing.T) {
	for _, tc := range []struct {
		in   []uint32
		want string
	}{
		{nil, ""},
		{[]uint32{7}, "7"},
		{[]uint32{1, 2, 3}, "1,2,3"},
		{[]uint32{9, 3, 4, 5, 7, 4}, "3,4,5,7,9"},
		{[]uint32{4294967295, 1}, "1,4294967295"},
	} {
		if got := audit.UIDList(tc.in); got != tc.want {
			t.Errorf("UIDList(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
