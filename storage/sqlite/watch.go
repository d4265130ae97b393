package sqlite

import (
	"context"
	"database/sql"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/carepost/carepost/storage"
)

// watchers is the in-process change bus: the committer publishes the
// changes of each committed transaction, in commit order, before it answers
// the callers (so a session that gets nil from a write and then waits on
// its watch sees its own change first).
//
// Writes made through another DB on the same file (the command line beside
// `carepost serve`, a second handle in tests) reach watchers as
// storage.MailboxChanged hints: one goroutine per DB (pollLoop) reads
// PRAGMA data_version every WatchInterval, and when another connection
// committed, reads the HIGHESTMODSEQ of the watched mailboxes in one query
// and sends a hint for each that moved past what this DB published.
// data_version also moves for this DB's own commits (they are another
// connection's): those are recognised by their MODSEQ and cost one query.
type watchers struct {
	mu sync.RWMutex
	m  map[int64]map[*watcher]struct{}
	// seen is, per watched mailbox, the highest MODSEQ published or
	// hinted; absent until the poller first read it.
	seen map[int64]uint64
}

type watcher struct{ fn func(storage.Change) }

// Watch implements storage.Store. fn is called from the committer with
// db's watch lock held: it must not block, nor call Watch or a stop
// function; it queues the change and returns. Each call gets its own copy of
// Change.Flags.
func (db *DB) Watch(mailboxID int64, fn func(storage.Change)) (stop func()) {
	w := &watcher{fn: fn}
	ws := &db.watchers
	ws.mu.Lock()
	if ws.m == nil {
		ws.m = make(map[int64]map[*watcher]struct{})
	}
	if ws.m[mailboxID] == nil {
		ws.m[mailboxID] = make(map[*watcher]struct{})
	}
	ws.m[mailboxID][w] = struct{}{}
	ws.mu.Unlock()
	db.startPoller()
	var once sync.Once
	return func() {
		once.Do(func() {
			ws.mu.Lock()
			delete(ws.m[mailboxID], w)
			if len(ws.m[mailboxID]) == 0 {
				delete(ws.m, mailboxID)
				delete(ws.seen, mailboxID)
			}
			ws.mu.Unlock()
		})
	}
}

// publish calls the watchers of each change. Holding the lock during
// the calls means that once stop returns, fn is not called again.
func (ws *watchers) publish(changes []storage.Change) {
	if len(changes) == 0 {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, c := range changes {
		if _, ok := ws.m[c.MailboxID]; !ok {
			continue
		}
		if ws.seen == nil {
			ws.seen = map[int64]uint64{}
		}
		switch {
		case c.Kind == storage.MailboxDeleted:
			// Told already: the poller, finding it gone, stays quiet.
			ws.seen[c.MailboxID] = math.MaxUint64
		case c.ModSeq > ws.seen[c.MailboxID]:
			ws.seen[c.MailboxID] = c.ModSeq
		}
		for w := range ws.m[c.MailboxID] {
			c := c
			c.Flags = slices.Clone(c.Flags)
			w.fn(c)
		}
	}
}

// DefaultWatchInterval is how often a DB looks for writes made through
// another handle when Options.WatchInterval is zero: a change made by
// another process reaches the sessions within about that long.
const DefaultWatchInterval = 500 * time.Millisecond

// pollLoop sends MailboxChanged hints for the writes of other handles
// (see watchers) until stop is closed.
func (db *DB) pollLoop(conn *sql.DB, every time.Duration, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	last := int64(-1)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		last = db.pollOnce(ctx, conn, last)
		cancel()
	}
}

// pollOnce reads data_version and, if it moved, sends the hints; it
// returns the data_version read (last on error).
func (db *DB) pollOnce(ctx context.Context, conn *sql.DB, last int64) int64 {
	var v int64
	if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		return last
	}
	ws := &db.watchers
	ws.mu.RLock()
	ids := make([]int64, 0, len(ws.m))
	fresh := false
	for id := range ws.m {
		ids = append(ids, id)
		if _, ok := ws.seen[id]; !ok {
			fresh = true
		}
	}
	ws.mu.RUnlock()
	if len(ids) == 0 || (v == last && !fresh) {
		return v
	}
	rows, err := conn.QueryContext(ctx, "SELECT id, highest_modseq FROM mailboxes WHERE id IN (SELECT value FROM json_each(?))", idsJSON(ids))
	if err != nil {
		return last
	}
	current := make(map[int64]uint64, len(ids))
	for rows.Next() {
		var id int64
		var ms uint64
		if rows.Scan(&id, &ms) == nil {
			current[id] = ms
		}
	}
	rows.Close()
	if rows.Err() != nil {
		return last
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, id := range ids {
		watchers, ok := ws.m[id]
		if !ok {
			continue
		}
		ms, exists := current[id]
		seen, known := ws.seen[id]
		if (exists && known && ms <= seen) || (!exists && seen == math.MaxUint64) {
			continue
		}
		if ws.seen == nil {
			ws.seen = map[int64]uint64{}
		}
		if exists {
			ws.seen[id] = ms
		} else {
			ws.seen[id] = math.MaxUint64
		}
		// A first reading, a MODSEQ past what was published here, or a
		// mailbox gone: the watchers pull Changes and learn which.
		kind := storage.MailboxChanged
		if !exists {
			kind = storage.MailboxDeleted
			ms = seen + 1
		}
		for w := range watchers {
			w.fn(storage.Change{Kind: kind, MailboxID: id, ModSeq: ms})
		}
	}
	return v
}

func idsJSON(ids []int64) string {
	b := make([]byte, 0, len(ids)*6+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// startPoller starts pollLoop on its own read-only connection at the
// first Watch.
func (db *DB) startPoller() {
	db.pollStart.Do(func() {
		conn, err := sql.Open("sqlite", "file:"+db.path+"?mode=ro&_pragma=busy_timeout(1000)")
		if err != nil {
			return // no hints from other handles; sessions still pull periodically
		}
		conn.SetMaxOpenConns(1)
		db.pollMu.Lock()
		defer db.pollMu.Unlock()
		if db.pollStop != nil {
			conn.Close()
			return
		}
		db.pollConn = conn
		db.pollStop, db.pollDone = make(chan struct{}), make(chan struct{})
		go db.pollLoop(conn, db.watchEvery, db.pollStop, db.pollDone)
	})
}

// stopPoller stops pollLoop and closes its connection.
func (db *DB) stopPoller() {
	db.pollMu.Lock()
	stop, done, conn := db.pollStop, db.pollDone, db.pollConn
	db.pollStop = make(chan struct{}) // a later startPoller does nothing
	db.pollMu.Unlock()
	if done != nil {
		close(stop)
		<-done
		conn.Close()
	}
}
