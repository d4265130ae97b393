package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/storage"
)

// Group commit (see BASELINES.md: one fsync per message caps delivery at
// some 1,600 msg/s on our machines; one fsync per batch does not), with the
// fsync taken off the committer.
//
// Every write of the mail store is an op: a function run inside a write
// transaction. Callers queue ops on db.ops and wait; one goroutine, the
// committer, takes whatever is queued (up to maxBatch), runs each op inside
// a SAVEPOINT of one transaction (so a failing op, such as a delivery to a
// mailbox deleted meanwhile, is rolled back alone), commits once,
// publishes the changes of the batch to watchers in commit order, and
// answers the callers. The writer connection runs with
// synchronous=NORMAL: a commit writes its pages to the WAL and does not
// wait for the disk. The caller of a durable op then makes it durable
// itself (syncUpTo): it fsyncs the WAL file (what synchronous=FULL does
// inside the commit), unless another caller's fsync, started after its
// commit, already did; callers waiting meanwhile share the next fsync.
// The committer meanwhile goes on with the next batch: the disk no longer
// holds up the ops queued behind, lazy ops (writeLazy) are done at their
// commit, and no goroutine stands between a commit and its fsync (on a
// busy two-core machine every hand-over between goroutines cost about a
// millisecond).
//
// A caller of a durable op thus never sees nil before its change is on
// disk. It sees an error for a change that was rolled back, or, should the
// fsync fail, for a change that committed but may not survive a power
// cut (the client retries; a duplicate is better than a loss). Other
// sessions see a change once it committed, possibly before its fsync:
// after a power cut, a message that was visible but never acknowledged to
// its sender may be gone, and its sender, who got no answer, sends it again.
//
// The syncer goroutine (syncLoop) fsyncs what lazy ops committed within
// FlagSyncDelay and removes the body files whose last reference went,
// only once their removal is durable.
//
// Bodies are written and fsynced by each caller before it queues its op
// (blobs.go). They could be batched too: callers would hand over unsynced
// files, and one fsync each (in parallel) and one of each blobs/xx
// directory would precede the fsync of the WAL.

// maxBatch bounds the ops of one transaction, so that one commit does not
// hold the write lock (and the readers' WAL growth) for too long.
const maxBatch = 256

var errClosed = errors.New("sqlite: the store is closed")

type op struct {
	ctx     context.Context
	run     func(t *wtx) error
	err     error
	changes []storage.Change
	garbage []string // blob names to remove after the commit
	done    chan struct{}
	// lazy: the op need not be durable when it returns (the \Recent
	// watermark, see writeLazy).
	lazy bool
	seq  int64 // the commit that holds it (DB.commits)
}

// syncer is the state of the fsyncs of the WAL.
type syncer struct {
	// run serializes fsyncs; synced is the last commit (DB.commits)
	// known to be on disk, under run.
	run    sync.Mutex
	synced int64

	mu      sync.Mutex
	garbage []string // body files to remove after the next fsync
	lazy    bool     // a lazy commit awaits an fsync (FlagSyncDelay)
	closing bool     // the committer has exited: sync what is left and stop
	wake    chan struct{}
	stopped chan struct{}
	fsyncs  atomic.Int64 // fsyncs of the WAL (tests, metrics)
}

// wtx is the write transaction as an op sees it.
type wtx struct {
	stx
	ctx context.Context
	o   *op
	// audit: record the op's events (Options.Audit, audit.go).
	audit bool
	// accounts maps the mailboxes reserve touched to their account
	// (accounts.id), for the account of the op's events (audit.go).
	accounts map[int64]int64
}

// publish records a change, published once the transaction commits.
func (t *wtx) publish(c storage.Change) {
	c.Origin = storage.OriginOf(t.o.ctx)
	c.Actor = auth.FromContext(t.o.ctx)
	t.o.changes = append(t.o.changes, c)
}

// collectGarbage deletes the blobs that lost their last reference in this
// op; their files are removed after the commit.
func (t *wtx) collectGarbage() error {
	rows, err := t.QueryContext(t.ctx, "DELETE FROM blobs WHERE refs <= 0 RETURNING name, data IS NULL")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var inFile bool
		if err := rows.Scan(&name, &inFile); err != nil {
			return err
		}
		if inFile { // an inline body goes with its row
			t.o.garbage = append(t.o.garbage, name)
		}
	}
	return rows.Err()
}

// write runs fn in the committer and returns once its transaction committed
// (nil) or was rolled back (the error). fn may run together with other ops
// in one transaction; its own statements are all or nothing.
func (db *DB) write(ctx context.Context, fn func(t *wtx) error) error {
	return db.queue(&op{ctx: ctx, run: fn, done: make(chan struct{})})
}

// writeLazy is write for a change that may be lost in a power cut
// without harm: the \Recent watermark (ClaimRecent), claimed by a session
// after each arrival it learns of, a second commit after every APPEND; and,
// with Options.DeferFlagSync, changes of flags and expunges (writeState).
// It returns at the commit, before the fsync: the change is in the WAL,
// so that a crash of the process loses nothing and every reader sees it,
// and it is on disk at the next fsync, within FlagSyncDelay at the latest.
// Body files freed by a lazy op are removed only after that fsync: a
// power cut could otherwise bring back a message whose file is gone.
func (db *DB) writeLazy(ctx context.Context, fn func(t *wtx) error) error {
	return db.queue(&op{ctx: ctx, run: fn, done: make(chan struct{}), lazy: true})
}

// post queues a lazy op and does not wait for it (the \Recent
// watermark, recent.go); it blocks only while the queue is full. After
// Close it does nothing.
func (db *DB) post(fn func(t *wtx) error) {
	o := &op{ctx: context.Background(), run: fn, done: make(chan struct{}), lazy: true}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if !db.closed {
		db.ops <- o
	}
}

// writeState is the write of a change of state, flags or expunge: lazy
// with Options.DeferFlagSync, durable otherwise.
func (db *DB) writeState(ctx context.Context, fn func(t *wtx) error) error {
	if db.deferFlag {
		return db.writeLazy(ctx, fn)
	}
	return db.write(ctx, fn)
}

func (db *DB) queue(o *op) error {
	ctx := o.ctx
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return errClosed
	}
	select {
	case db.ops <- o:
	case <-ctx.Done():
		db.closeMu.RUnlock()
		return ctx.Err()
	}
	db.closeMu.RUnlock()
	// Once queued, wait for the outcome whatever ctx does: returning early
	// could report a failure for a change that then commits.
	<-o.done
	if o.err == nil && !o.lazy {
		if err := db.syncUpTo(o.seq); err != nil {
			if len(o.garbage) > 0 {
				db.syncLater(o.garbage)
			}
			return fmt.Errorf("sqlite: the change was written but could not be made durable: %w", err)
		}
		for _, name := range o.garbage {
			// A file left behind (crash, error) is an orphan that the
			// sweep of the next Open removes.
			db.deleteBlob(name)
		}
	}
	return o.err
}

// syncUpTo returns once commit seq is on disk: at once when an fsync that
// started after it has ended, else after an fsync of its own, which
// covers every commit made before it started.
func (db *DB) syncUpTo(seq int64) error {
	db.sync.run.Lock()
	defer db.sync.run.Unlock()
	if db.sync.synced >= seq {
		return nil
	}
	return db.syncLocked()
}

// syncLocked fsyncs the WAL; db.sync.run is held.
func (db *DB) syncLocked() error {
	upTo := db.commits.Load()
	if err := db.syncWAL(); err != nil {
		return err
	}
	db.sync.synced = max(db.sync.synced, upTo)
	return nil
}

func (db *DB) commitLoop() {
	defer func() {
		db.sync.mu.Lock()
		db.sync.closing = true
		db.sync.mu.Unlock()
		db.wakeSyncer()
		<-db.sync.stopped
		close(db.committed)
	}()
	for o := range db.ops {
		db.finishCheckpoint()
		batch := []*op{o}
	fill:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-db.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		db.commitBatch(batch)
	}
}

func (db *DB) wakeSyncer() {
	select {
	case db.sync.wake <- struct{}{}:
	default:
	}
}

// syncLoop is the syncer: FlagSyncDelay after a lazy commit or a commit
// that freed body files, it fsyncs the WAL (unless a durable op's fsync
// did meanwhile) and removes those files.
func (db *DB) syncLoop() {
	defer close(db.sync.stopped)
	timer := time.NewTimer(FlagSyncDelay)
	timer.Stop()
	timing := false
	for {
		fired := false
		select {
		case <-db.sync.wake:
		case <-timer.C:
			fired, timing = true, false
		}
		db.sync.mu.Lock()
		garbage, lazy, closing := db.sync.garbage, db.sync.lazy, db.sync.closing
		if !fired && !closing {
			if lazy && !timing {
				timer.Reset(FlagSyncDelay)
				timing = true
			}
			db.sync.mu.Unlock()
			continue
		}
		db.sync.garbage, db.sync.lazy = nil, false
		upTo := db.commits.Load() // every commit that freed those files
		db.sync.mu.Unlock()
		err := db.syncUpTo(upTo)
		if err == nil && db.lazyOutside.Swap(false) {
			// A lazy commit outside the committer (lazyCommitted) is
			// not counted in DB.commits: an fsync of its own.
			db.sync.run.Lock()
			err = db.syncLocked()
			db.sync.run.Unlock()
		}
		if err != nil {
			// Lazy commits and garbage wait for the next fsync that works.
			db.sync.mu.Lock()
			db.sync.garbage = append(db.sync.garbage, garbage...)
			db.sync.lazy = true
			db.sync.mu.Unlock()
		} else {
			for _, name := range garbage {
				// A file left behind (crash, error) is an orphan that the
				// sweep of the next Open removes.
				db.deleteBlob(name)
			}
		}
		if closing {
			return
		}
		if err != nil && !timing {
			timer.Reset(FlagSyncDelay)
			timing = true
		}
	}
}

// syncWAL fsyncs the WAL file, which SQLite has written the commits to
// (what a commit with synchronous=FULL does). fsync works on the file,
// whatever descriptor asks: SQLite's own writes are covered. A WAL that is
// gone was checkpointed into the database, with fsyncs, and removed when
// the last connection closed.
func (db *DB) syncWAL() error {
	f, err := os.OpenFile(filepath.Join(db.dir, "carepost.db-wal"), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	start := time.Now()
	err = datasync(f)
	if err == nil && db.observeFsync != nil {
		db.observeFsync(time.Since(start))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		db.sync.fsyncs.Add(1)
	}
	return err
}

// commitDurable commits tx, outside the committer, and waits for its fsync.
func (db *DB) commitDurable(tx *sql.Tx) error {
	if err := tx.Commit(); err != nil {
		return err
	}
	return db.durable()
}

// lazyCommitted: a commit made outside the committer is to be fsynced
// within FlagSyncDelay.
func (db *DB) lazyCommitted() {
	db.lazyOutside.Store(true)
	db.syncLater(nil)
}

// syncLater has the syncer fsync within FlagSyncDelay, then remove the
// garbage files. The syncer is woken only when nothing waits for it yet:
// lazy commits come by the thousand a second, its timer by the second.
func (db *DB) syncLater(garbage []string) {
	db.sync.mu.Lock()
	db.sync.garbage = append(db.sync.garbage, garbage...)
	wake := !db.sync.lazy
	db.sync.lazy = true
	db.sync.mu.Unlock()
	if wake {
		db.wakeSyncer()
	}
}

// durable fsyncs the WAL: for the writes that do not go through the
// committer (the directory), whose commits DB.commits does not count.
func (db *DB) durable() error {
	db.sync.run.Lock()
	defer db.sync.run.Unlock()
	return db.syncLocked()
}

func (db *DB) commitBatch(batch []*op) {
	defer func() {
		for _, o := range batch {
			close(o.done)
		}
	}()
	ctx := context.Background() // one caller's cancellation must not abort the others
	fail := func(err error) {
		for _, o := range batch {
			if o.err == nil {
				o.err = fmt.Errorf("sqlite: commit: %w", err)
			}
			o.changes, o.garbage = nil, nil
		}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	if err := db.runBatch(ctx, tx, batch); err != nil {
		tx.Rollback()
		if err != errOpFailed {
			fail(err)
		}
		return
	}
	if err := tx.Commit(); err != nil {
		fail(err)
		return
	}
	seq := db.commits.Add(1)
	for _, o := range batch {
		o.seq = seq
	}
	var garbage []string
	lazy := false
	for _, o := range batch {
		if o.err != nil {
			continue
		}
		if o.lazy {
			// A durable op's caller removes its files after its fsync.
			garbage = append(garbage, o.garbage...)
			lazy = true
		}
		db.watchers.publish(o.changes)
	}
	if len(garbage) > 0 || lazy {
		db.syncLater(garbage)
	}
}

// errOpFailed: the op of a batch of one failed (its error is its own).
var errOpFailed = errors.New("sqlite: the op failed")

// runBatch runs the ops of a batch in tx. On error tx must be rolled back:
// errOpFailed, or the failure of a savepoint, which fails the batch.
func (db *DB) runBatch(ctx context.Context, tx *sql.Tx, batch []*op) error {
	st := stx{tx, db.wstmts}
	if len(batch) == 1 {
		// Alone in its transaction, an op needs no savepoint: a failure
		// rolls the transaction back (most batches hold one op or two).
		o := batch[0]
		err := o.ctx.Err()
		if err == nil {
			err = runOp(&wtx{stx: st, ctx: ctx, o: o, audit: db.audit})
		}
		if err != nil {
			o.err, o.changes, o.garbage = err, nil, nil
			return errOpFailed
		}
		return nil
	}
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		if _, err := st.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			return err
		}
		if err := runOp(&wtx{stx: st, ctx: ctx, o: o, audit: db.audit}); err != nil {
			o.err, o.changes, o.garbage = err, nil, nil
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO op; RELEASE op"); err != nil {
				return err
			}
			continue
		}
		if _, err := st.ExecContext(ctx, "RELEASE op"); err != nil {
			return err
		}
	}
	return nil
}

// runOp runs one op, turning a panic (a bug) into an error for that op
// rather than a crash of the server.
func runOp(t *wtx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: internal error: %v", r)
		}
	}()
	return t.o.run(t)
}
