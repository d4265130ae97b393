package sqlite

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"carepost/crypto"
	"carepost/storage"
)

// The body store: one sealed file per body (crypto/atrest.go), named by 16
// random bytes in hex, in one of 256 directories blobs/00 … blobs/ff (the
// first two digits of the name) so that no directory grows huge. A file is
// written and fsynced, with its directory, before the transaction that
// references it commits; it is immutable; it is removed after the commit
// that drops its last reference. A crash can thus leave only unreferenced
// files, which the sweep at Open removes.

func (db *DB) blobPath(name string) string {
	return filepath.Join(db.dir, "blobs", name[:2], name)
}

func (db *DB) initBlobs(ctx context.Context, sweep bool) error {
	root := filepath.Join(db.dir, "blobs")
	created := false
	for i := range 256 {
		d := filepath.Join(root, fmt.Sprintf("%02x", i))
		if _, err := os.Stat(d); err == nil {
			continue
		}
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		created = true
	}
	if created {
		if err := syncDir(root); err != nil {
			return err
		}
	}
	if !sweep {
		return nil
	}
	return db.sweepBlobs(ctx)
}

// sweepBlobs removes the files no blob row references: bodies written by a
// delivery that crashed before its commit, or whose removal after the last
// reference failed. It runs at Open, before any write, and only when no
// other process has the directory open (lockDir), one directory at a time
// so that memory stays small.
func (db *DB) sweepBlobs(ctx context.Context) error {
	root := filepath.Join(db.dir, "blobs")
	for i := range 256 {
		prefix := fmt.Sprintf("%02x", i)
		entries, err := os.ReadDir(filepath.Join(root, prefix))
		if err != nil {
			return err
		}
		if len(entries) == 0 {
			continue
		}
		known := make(map[string]bool)
		rows, err := db.w.QueryContext(ctx, "SELECT name FROM blobs WHERE name >= ? AND name < ?", prefix, prefix+"~")
		if err != nil {
			return err
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return err
			}
			known[name] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, e := range entries {
			if !known[e.Name()] && isBlobName(e.Name()) {
				os.Remove(filepath.Join(root, prefix, e.Name()))
			}
		}
	}
	return nil
}

func isBlobName(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// writeBlob seals body into a new file and makes it durable. It returns the
// name and the plaintext size. Memory use is bounded (two 64 KiB chunks and
// a write buffer) whatever the size of the body.
func (db *DB) writeBlob(body io.Reader) (name string, size int64, err error) {
	if name, err = newBlobName(); err != nil {
		return "", 0, err
	}
	path := db.blobPath(name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", 0, fmt.Errorf("sqlite: store body: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	bw := bufio.NewWriterSize(f, 128<<10)
	sw, err := crypto.NewSealWriter(bw, db.key)
	if err != nil {
		return "", 0, err
	}
	size, err = io.Copy(sw, body)
	if err != nil {
		return "", 0, fmt.Errorf("sqlite: store body: %w", err)
	}
	if err := sw.Close(); err != nil {
		return "", 0, fmt.Errorf("sqlite: store body: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return "", 0, fmt.Errorf("sqlite: store body: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("sqlite: store body: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, fmt.Errorf("sqlite: store body: %w", err)
	}
	// The new directory entry must be durable too, or a crash after the
	// commit could lose a file that the database references.
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", 0, fmt.Errorf("sqlite: store body: %w", err)
	}
	return name, size, nil
}

// newBlobName returns a fresh random name (32 hex characters) for a body,
// in a file or inline.
func newBlobName() (string, error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(rnd[:]), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if err2 := d.Close(); err == nil {
		err = err2
	}
	return err
}

// body is an open stored body.
type body struct {
	f    *os.File // nil for an inline body
	sr   crypto.SealedReader
	off  int64
	size int64
}

// openBlob opens a sealed file and checks that its plaintext has the size
// recorded at delivery.
func (db *DB) openBlob(name string, size int64) (storage.Body, error) {
	f, err := os.Open(db.blobPath(name))
	if errors.Is(err, os.ErrNotExist) {
		// Expunged (last reference) between our read and the open.
		return nil, storage.ErrNoMessage
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: open body: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sqlite: open body: %w", err)
	}
	sr, err := crypto.OpenSealed(f, fi.Size(), db.key)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("sqlite: open body %s: %w", name, err)
	}
	b, err := checkSize(name, size, sr)
	if err != nil {
		f.Close()
		return nil, err
	}
	b.f = f
	return b, nil
}

// checkSize checks that a sealed body has the plaintext size recorded at
// delivery.
func checkSize(name string, size int64, sr crypto.SealedReader) (*body, error) {
	if sr.Size() != size {
		return nil, fmt.Errorf("sqlite: open body %s: %w: %d bytes, %d recorded", name, crypto.ErrSealed, sr.Size(), size)
	}
	return &body{sr: sr, size: size}, nil
}

func (b *body) Size() int64 { return b.size }

func (b *body) ReadAt(p []byte, off int64) (int, error) { return b.sr.ReadAt(p, off) }

func (b *body) Read(p []byte) (int, error) {
	if b.off >= b.size {
		return 0, io.EOF
	}
	n, err := b.sr.ReadAt(p, b.off)
	b.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (b *body) Close() error {
	if b.f == nil { // inline
		return nil
	}
	return b.f.Close()
}

func removeFile(path string) { os.Remove(path) }
