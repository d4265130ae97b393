// Package sqlite is the embedded storage backend: one SQLite database
// (modernc.org/sqlite, pure Go, WAL) for metadata and the directory, and
// files for message bodies, encrypted at rest. It implements storage.Store
// and directory.Store.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Options configure a DB.
type Options struct {
	// Key is the 32-byte AES-256 key that encrypts bodies at rest.
	Key []byte
}

// DB is an open data directory.
type DB struct {
	dir string
	key []byte
	// w is the single writer connection: SQLite allows one writer at a
	// time, so all writes queue here (and can be committed in groups).
	w *sql.DB
	// r serves reads concurrently (WAL readers never block the writer).
	r *sql.DB
}

// Open opens (creating it if needed) the database in dir/carepost.db and the
// body store in dir/blobs, and applies pending migrations.
func Open(dir string, opts Options) (*DB, error) {
	if len(opts.Key) != 32 {
		return nil, fmt.Errorf("sqlite: the at-rest key must be 32 bytes, got %d", len(opts.Key))
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "carepost.db")
	// synchronous=FULL: a commit is on disk when it returns (WAL fsync).
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)&_pragma=busy_timeout(10000)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn+"&mode=ro")
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(8)
	db := &DB{dir: dir, key: opts.Key, w: w, r: r}
	if err := db.migrate(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	return db, nil
}

func (db *DB) migrate(ctx context.Context) error {
	var version int
	if err := db.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	for i := version; i < len(migrations); i++ {
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("step %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	err := db.r.Close()
	if err2 := db.w.Close(); err == nil {
		err = err2
	}
	return err
}
