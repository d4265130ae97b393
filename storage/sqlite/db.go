// Package sqlite is the embedded storage backend: one SQLite database
// (modernc.org/sqlite, pure Go, WAL) for metadata and the directory, and
// a storage.BlobStore for large message bodies (files by default),
// everything encrypted at rest. It implements storage.Store and
// directory.Store.
//
// Implementation notes (mail store):
//   - every write of the mail store is an op run by one committer goroutine
//     (commit.go), which runs whatever ops are queued in one transaction
//     (group commit), publishes their changes to watchers in commit order
//     (watch.go) and answers the callers; the caller of a durable op then
//     fsyncs the WAL (one fsync for every commit before it), and lazy ops
//     (flags and expunges with DeferFlagSync, \Recent) are fsynced within
//     FlagSyncDelay; checkpoints run on their own connection
//     (checkpoint.go);
//   - reads use the reader pool db.r, in a read transaction where one
//     method reads more than one statement, so that what it returns is
//     one snapshot (WAL readers never wait for the writer);
//   - bodies are sealed into their row up to the inline limit (inline.go),
//     or put in the blob store (blobs.go; files under dir/blobs/xx/ by
//     default), durable before the metadata that references them is
//     committed, and deleted once the commit that drops their last
//     reference is on disk; every sealed value is bound to its body
//     (seal.go).
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carepost/carepost/storage"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

var _ storage.Store = (*DB)(nil)

// Options configure a DB.
type Options struct {
	// Key is the 32-byte AES-256 key that encrypts bodies at rest.
	Key []byte
	// Blobs keeps the bodies over InlineLimit. It must seal them
	// (blobs.Sealed) and be this store's alone: the sweep at Open
	// deletes the names of this backend's form that no row references.
	// Nil means files in dir/blobs sealed with Key, purpose "body".
	Blobs storage.BlobStore
	// InlineLimit is the largest body (plaintext bytes) kept inside the
	// database rather than in a file of its own; 0 means DefaultInlineLimit,
	// a negative value keeps every body in a file.
	InlineLimit int64
	// Summarize, when set, is called at delivery for every body kept
	// inline; its value is sealed beside the body (Digests).
	Summarize storage.Summarizer
	// DeferFlagSync commits changes of flags and expunges without
	// waiting for the disk: they are written (a crash of the process
	// loses none) and fsynced with the next durable commit or within
	// FlagSyncDelay, so that a power cut can undo the last moments of
	// them, never a message (see writeState). Off: every one is fsynced
	// before the call returns, like deliveries always are.
	DeferFlagSync bool
	// ChangeWindow is how long the tombstones of expunged messages and
	// the log of account changes are kept for Changes and
	// AccountChanges (changes.go); 0 means DefaultChangeWindow.
	ChangeWindow time.Duration
	// WatchInterval is how often the store looks for writes made through
	// another handle on the same file, to hint its watchers (watch.go); 0
	// means DefaultWatchInterval.
	WatchInterval time.Duration
	// ObserveFsync, when set, is told how long each fsync of the WAL took
	// (the server's carepost_store_fsync_seconds). It runs on the path of
	// every durable commit: it must be cheap.
	ObserveFsync func(time.Duration)
	// Audit, when set, records an audit event (storage.AuditLog) in the
	// transaction of every change of the mail store (audit.go).
	Audit bool
}

// busyTimeout is how long a connection waits for a lock held by another.
const busyTimeout = 10 * time.Second

// FlagSyncDelay bounds how long a deferred change (Options.DeferFlagSync,
// the \Recent watermark) waits for its fsync.
const FlagSyncDelay = time.Second

// DB is an open data directory.
type DB struct {
	dir       string
	key       []byte
	blobs     storage.BlobStore // see Options.Blobs
	inline    int64             // see Options.InlineLimit
	summarize storage.Summarizer
	// wstmts and rstmts are the prepared statements of each pool
	// (stmts.go).
	wstmts, rstmts *stmtCache
	// w is the single writer connection: SQLite allows one writer at a
	// time, so all writes queue here; the mail store's go through the
	// committer (commit.go), which commits them in groups.
	w *sql.DB
	// r serves reads concurrently (WAL readers never block the writer).
	r *sql.DB
	// ckpt is the checkpointer's connection (checkpoint.go).
	ckpt *sql.DB
	// ckptStop stops the checkpointer; ckptDone is closed when it has.
	ckptStop, ckptDone chan struct{}
	// ckptFinish: the committer is to finish a checkpoint (checkpoint.go).
	ckptFinish atomic.Bool

	lock *os.File // flock on dir/carepost.lock, see lockDir

	// The committer (commit.go).
	ops       chan *op
	closeMu   sync.RWMutex // held for reading while submitting an op
	closed    bool
	committed chan struct{} // closed when the committer has exited
	commits   atomic.Int64  // transactions committed by the committer (tests, metrics)
	deferFlag bool          // Options.DeferFlagSync
	audit     bool          // Options.Audit
	// observeFsync is Options.ObserveFsync, or nil.
	observeFsync func(time.Duration)
	sync         syncer // the syncer (commit.go)
	// lazyOutside: a lazy commit outside the committer awaits its fsync.
	lazyOutside atomic.Bool

	watchers watchers // watch.go
	// The poller of writes from other handles (watch.go).
	path       string
	watchEvery time.Duration
	pollStart  sync.Once
	pollMu     sync.Mutex
	pollConn   *sql.DB
	pollStop   chan struct{}
	pollDone   chan struct{}
	// window is Options.ChangeWindow; pruneStop stops the pruner
	// (changes.go), pruneDone is closed when it has.
	window               time.Duration
	pruneStop, pruneDone chan struct{}
	stopPruner           sync.Once
	recent               recentClaims // recent.go
}

// Open opens (creating it if needed) the database in dir/carepost.db and the
// body store in dir/blobs, and applies pending migrations.
func Open(dir string, opts Options) (*DB, error) {
	if len(opts.Key) != 32 {
		return nil, fmt.Errorf("sqlite: the at-rest key must be 32 bytes, got %d", len(opts.Key))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	bs := opts.Blobs
	if bs == nil {
		var err error
		if bs, err = openBlobs(filepath.Join(dir, "blobs"), opts.Key); err != nil {
			return nil, fmt.Errorf("sqlite: body store: %w", err)
		}
	}
	lock, exclusive, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "carepost.db")
	if err := createPrivate(dir, path); err != nil {
		lock.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	pragmas := fmt.Sprintf("_pragma=journal_mode(WAL)&_pragma=foreign_keys(ON)&_pragma=busy_timeout(%d)", busyTimeout.Milliseconds())
	// The writer: synchronous=NORMAL, a commit is written to the WAL and
	// made durable by the syncer's fsync of that file (commit.go), or by
	// durable() for the writes outside the committer. _txlock=immediate: a
	// write transaction takes the write lock at BEGIN, so it never fails
	// half-way on a lock upgrade.
	// wal_autocheckpoint(0): checkpoints run on their own connection
	// (checkpoint.go), not inside the committer's commits.
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=synchronous(NORMAL)&_pragma=wal_autocheckpoint(0)&_pragma=journal_size_limit(67108864)&_txlock=immediate")
	if err != nil {
		lock.Close()
		return nil, err
	}
	w.SetMaxOpenConns(1)
	// Readers: read-only connections; their transactions are plain
	// (deferred) BEGINs that take a WAL snapshot at the first read.
	// (Mapping the file, mmap_size, was tried: with a database that
	// grows at every commit, each read transaction unmapped and mapped
	// it again, which cost more than the reads it saved.)
	r, err := sql.Open("sqlite", "file:"+path+"?mode=ro&"+pragmas)
	if err != nil {
		w.Close()
		lock.Close()
		return nil, err
	}
	ckpt, err := sql.Open("sqlite", "file:"+path+"?"+pragmas+"&_pragma=synchronous(NORMAL)")
	if err != nil {
		r.Close()
		w.Close()
		lock.Close()
		return nil, err
	}
	ckpt.SetMaxOpenConns(1)
	r.SetMaxOpenConns(8)
	// Keep every reader open: database/sql keeps 2 idle connections by
	// default, and under load the others were closed and reopened, each
	// time with its statements prepared again (a profile of imaptest's
	// stress load had 17 % of the CPU there).
	r.SetMaxIdleConns(8)
	r.SetConnMaxIdleTime(0)
	db := &DB{
		dir: dir, key: opts.Key, blobs: bs, w: w, r: r, ckpt: ckpt, lock: lock, inline: inlineLimit(opts.InlineLimit), summarize: opts.Summarize, deferFlag: opts.DeferFlagSync, observeFsync: opts.ObserveFsync, audit: opts.Audit,
		wstmts: newStmtCache(w), rstmts: newStmtCache(r),
		window: changeWindow(opts.ChangeWindow),
		path:   path, watchEvery: watchInterval(opts.WatchInterval),
		ops:       make(chan *op, maxBatch),
		committed: make(chan struct{}),
	}
	db.sync.wake = make(chan struct{}, 1)
	db.sync.stopped = make(chan struct{})
	if err := db.migrate(context.Background()); err != nil {
		db.closeFiles()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	if err := db.reseal(context.Background()); err != nil {
		db.closeFiles()
		return nil, fmt.Errorf("sqlite: seal again the data of %s: %w", dir, err)
	}
	if exclusive {
		if err := db.sweepBlobs(context.Background()); err != nil {
			db.closeFiles()
			return nil, fmt.Errorf("sqlite: body store of %s: %w", dir, err)
		}
		if err := db.sweepDMPBlobs(context.Background()); err != nil { // dmp.go
			db.closeFiles()
			return nil, fmt.Errorf("sqlite: DMP documents of %s: %w", dir, err)
		}
	}
	if exclusive {
		if err := shareLock(lock); err != nil {
			db.closeFiles()
			return nil, err
		}
	}
	// The migrations, the new seals and the sweep committed without an
	// fsync.
	if err := db.syncWAL(); err != nil {
		db.closeFiles()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	db.ckptStop, db.ckptDone = make(chan struct{}), make(chan struct{})
	go db.checkpointLoop()
	go db.syncLoop()
	go db.commitLoop()
	db.pruneStop, db.pruneDone = make(chan struct{}), make(chan struct{})
	go db.pruneLoop(db.pruneStop, db.pruneDone)
	return db, nil
}

// foreignKeysOff starts a migration step that rebuilds a table other
// tables reference: SQLite's twelve-step ALTER runs with foreign keys off
// (PRAGMA foreign_keys is a no-op inside a transaction, so migrate sets
// it around the step) and checks them all before the commit.
const foreignKeysOff = "-- foreign keys off\n"

func (db *DB) migrate(ctx context.Context) error {
	// One connection for every step: the pragma is per connection.
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var version int
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	for i := version; i < len(migrations); i++ {
		fkOff := strings.HasPrefix(migrations[i], foreignKeysOff)
		if fkOff {
			if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = OFF"); err != nil {
				return err
			}
		}
		if err := migrateStep(ctx, conn, i, fkOff); err != nil {
			return err
		}
		if fkOff {
			if _, err := conn.ExecContext(ctx, "PRAGMA foreign_keys = ON"); err != nil {
				return err
			}
		}
	}
	return nil
}

// migrateStep runs migrations[i] in a transaction of its own.
func migrateStep(ctx context.Context, conn *sql.Conn, i int, checkFK bool) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
		return fmt.Errorf("step %d: %w", i+1, err)
	}
	if checkFK {
		rows, err := tx.QueryContext(ctx, "PRAGMA foreign_key_check")
		if err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
		bad := rows.Next()
		rows.Close()
		if bad {
			return fmt.Errorf("step %d: a foreign key no longer holds", i+1)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
		return err
	}
	return tx.Commit()
}

// Close waits for the queued writes to commit and closes the database.
// Calls made after Close fail.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	if db.pruneStop != nil {
		// The pruner's op, if under way, needs the committer: let it
		// finish before the queue closes.
		db.closeMu.Unlock()
		db.stopPruner.Do(func() { close(db.pruneStop) })
		<-db.pruneDone
		db.closeMu.Lock()
		if db.closed {
			db.closeMu.Unlock()
			return nil
		}
	}
	db.closed = true
	close(db.ops)
	db.closeMu.Unlock()
	<-db.committed
	db.stopPoller()
	return db.closeFiles()
}

func (db *DB) closeFiles() error {
	if db.wstmts != nil {
		db.wstmts.close()
		db.rstmts.close()
	}
	if db.ckptStop != nil {
		close(db.ckptStop)
		<-db.ckptDone
	}
	err := db.r.Close()
	if err2 := db.ckpt.Close(); err == nil {
		err = err2
	}
	if err2 := db.w.Close(); err == nil {
		err = err2
	}
	if db.lock != nil {
		db.lock.Close()
	}
	return err
}

func watchInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultWatchInterval
	}
	return d
}
