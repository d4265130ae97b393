package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"time"
)

// Checkpoints copy the pages of the WAL back into the database file, so
// that the WAL can start over. SQLite runs one inside a commit once the
// WAL holds 1,000 pages: under imaptest's stress load that was a
// checkpoint every tenth of a second, with its two fsyncs, inside the
// committer, holding every write behind it. Here the writer has
// wal_autocheckpoint=0, and checkpoints run in two steps:
//
//  1. every checkpointEvery, when something was committed or fsynced
//     meanwhile, a goroutine checkpoints on a connection of its own
//     (PASSIVE: it copies what no reader still needs, and neither waits
//     for nor blocks the writer or the readers): the bulk of the copying;
//  2. then the committer, before its next batch, checkpoints on the
//     writer's connection (finishCheckpoint): it copies only the pages
//     committed since, and with no commit between its checkpoint and its
//     next transaction, that transaction finds the WAL copied to its end
//     and starts it over from the beginning. Without this step, under a
//     steady load the WAL never started over, and grew by some 50 MB a
//     second.
//
// journal_size_limit trims the WAL file to 64 MiB when it starts over.

const checkpointEvery = 100 * time.Millisecond

func (db *DB) checkpointLoop() {
	defer close(db.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-db.ckptStop:
			return
		case <-t.C:
		}
		if n := db.commits.Load() + db.sync.fsyncs.Load(); n != last {
			last = n
			// An error (the disk full, say) leaves the pages in the WAL,
			// where they are safe; the next tick tries again.
			if _, err := db.ckpt.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)"); err == nil {
				db.ckptFinish.Store(true)
			}
		}
	}
}

// finishCheckpoint is step 2, run by the committer between batches. It is
// a RESTART checkpoint: once the pages are copied it waits until no reader
// still reads from the WAL, so that the next write starts it over; a
// reader that keeps it more than restartWait makes it give up until the
// next round (a commit waits no longer than that).
func (db *DB) finishCheckpoint() {
	if !db.ckptFinish.Swap(false) {
		return
	}
	ctx := context.Background()
	c, err := db.w.Conn(ctx)
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", restartWait.Milliseconds())); err != nil {
		return
	}
	c.ExecContext(ctx, "PRAGMA wal_checkpoint(RESTART)")
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeout.Milliseconds())); err != nil {
		// Never leave the writer with the short timeout (an admin
		// command's write would make its commits fail): the pool drops
		// this connection and opens a new one with the DSN's pragmas.
		c.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// restartWait bounds how long the committer waits for readers in
// finishCheckpoint.
const restartWait = 5 * time.Millisecond
