package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"carepost/storage"
)

// Group commit (see BASELINES.md: one fsync per message caps delivery at
// some 1,600 msg/s on our machines; one fsync per batch does not).
//
// Every write of the mail store is an op: a function run inside a write
// transaction. Callers queue ops on db.ops and wait; one goroutine, the
// committer, takes whatever is queued (up to maxBatch), runs each op inside
// a SAVEPOINT of one transaction (so a failing op, such as a delivery to a
// mailbox deleted meanwhile, is rolled back alone), commits once (one WAL
// fsync, synchronous=FULL), removes the body files whose last reference
// went, publishes the changes of the batch to watchers in commit order, and
// only then answers each caller. A caller thus never sees nil before its
// change is durable, and never sees an error for a change that committed.
//
// Bodies are written and fsynced by each caller before it queues its op
// (blobs.go). They could be batched too: callers would hand over unsynced
// files, and the committer would fsync them all (in parallel) and each
// blobs/xx directory once just before the COMMIT of the batch.

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
}

// wtx is the write transaction as an op sees it.
type wtx struct {
	stx
	ctx context.Context
	o   *op
}

// publish records a change, published once the transaction commits.
func (t *wtx) publish(c storage.Change) {
	c.Origin = storage.OriginOf(t.o.ctx)
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
// A batch of such ops only commits without the WAL fsync
// (synchronous=NORMAL): the change is written to the WAL at once, so
// that a crash of the process loses nothing and every reader sees it, and
// it is on disk at the next durable commit or within FlagSyncDelay
// (commitLoop). A batch that holds any other op is durable as a whole.
// Body files freed by a lazy op are removed only after that fsync: a
// power cut could otherwise bring back a message whose file is gone.
func (db *DB) writeLazy(ctx context.Context, fn func(t *wtx) error) error {
	return db.queue(&op{ctx: ctx, run: fn, done: make(chan struct{}), lazy: true})
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
	return o.err
}

func (db *DB) commitLoop() {
	defer close(db.committed)
	flush := time.NewTimer(FlagSyncDelay)
	flush.Stop()
	for {
		var o *op
		var ok bool
		if db.unsynced {
			select {
			case o, ok = <-db.ops:
			case <-flush.C:
				db.syncWAL()
				continue
			}
		} else {
			o, ok = <-db.ops
		}
		if !ok {
			break
		}
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
		was := db.unsynced
		db.commitBatch(batch)
		if db.unsynced && !was {
			flush.Reset(FlagSyncDelay)
		}
	}
	if db.unsynced {
		db.syncWAL()
	}
}

// syncWAL makes the lazy commits durable: an fsync of the WAL file, which
// SQLite has written them to (what a commit with synchronous=FULL does),
// then the removal of the body files they freed. On failure the lazy
// commits stay pending; the next durable commit fsyncs them.
func (db *DB) syncWAL() {
	f, err := os.OpenFile(filepath.Join(db.dir, "carepost.db-wal"), os.O_RDWR, 0)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return
	}
	db.walSyncs.Add(1)
	db.synced()
}

// synced: every commit so far is on disk.
func (db *DB) synced() {
	db.unsynced = false
	for _, name := range db.pendingGarbage {
		os.Remove(db.blobPath(name))
	}
	db.pendingGarbage = nil
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
	lazy := true
	for _, o := range batch {
		lazy = lazy && o.lazy
	}
	if lazy != db.lazySync {
		// On the writer's only connection, so it holds for the commits
		// that follow. Should that connection ever be replaced, the new
		// one starts with synchronous=FULL: stricter, never looser.
		mode := "FULL"
		if lazy {
			mode = "NORMAL"
		}
		if _, err := db.w.ExecContext(ctx, "PRAGMA synchronous = "+mode); err != nil {
			fail(err)
			return
		}
		db.lazySync = lazy
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	for _, o := range batch {
		if err := o.ctx.Err(); err != nil {
			o.err = err
			continue
		}
		if _, err := (stx{tx, db.wstmts}).ExecContext(ctx, "SAVEPOINT op"); err != nil {
			tx.Rollback()
			fail(err)
			return
		}
		if err := runOp(&wtx{stx: stx{tx, db.wstmts}, ctx: ctx, o: o}); err != nil {
			o.err, o.changes, o.garbage = err, nil, nil
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO op; RELEASE op"); err != nil {
				tx.Rollback()
				fail(err)
				return
			}
			continue
		}
		if _, err := (stx{tx, db.wstmts}).ExecContext(ctx, "RELEASE op"); err != nil {
			tx.Rollback()
			fail(err)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		fail(err)
		return
	}
	db.commits.Add(1)
	for _, o := range batch {
		if o.err != nil {
			continue
		}
		// A file left behind (crash, error) is an orphan that the sweep
		// of the next Open removes.
		db.pendingGarbage = append(db.pendingGarbage, o.garbage...)
		db.watchers.publish(o.changes)
	}
	if lazy {
		db.unsynced = true
	} else {
		db.synced()
	}
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
