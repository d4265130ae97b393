package sqlite

import (
	"context"
	"time"
)

// Checkpoints copy the pages of the WAL back into the database file, so
// that the WAL can start over. SQLite runs one inside a commit once the
// WAL holds 1,000 pages: under imaptest's stress load that was a
// checkpoint every tenth of a second, with its two fsyncs, inside the
// committer, holding every write behind it. Here the writer has
// wal_autocheckpoint=0, and a goroutine checkpoints on a connection of its
// own (PASSIVE: it copies what no reader still needs, and neither waits
// for nor blocks the writer or the readers) every checkpointEvery when
// something was committed or fsynced meanwhile. The WAL starts over at the first write after a checkpoint that
// copied everything; journal_size_limit then trims its file to 64 MiB.

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
			db.ckpt.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}
