package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// CheckWritable tells whether the store can take a write now, for the
// server's readiness (/readyz): a transaction goes through the committer,
// as every write of mail does (the store is open, its committer runs, the
// write lock can be taken, the WAL can be fsynced), and a small file is
// written, fsynced and removed beside the database (the file system is
// neither full nor read-only, and its permissions allow it). It changes
// nothing a reader sees.
func (db *DB) CheckWritable(ctx context.Context) error {
	if err := db.write(ctx, func(t *wtx) error { return nil }); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	var b [8]byte
	rand.Read(b[:])
	name := filepath.Join(db.dir, ".writable-"+hex.EncodeToString(b[:]))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write a file in %s: %w", db.dir, err)
	}
	_, err = f.Write([]byte("carepost readiness check\n"))
	if err == nil {
		err = datasync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("write a file in %s: %w", db.dir, err)
	}
	return nil
}
