package sqlite

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/blobs"
)

// Bodies over the inline limit (inline.go) live in a storage.BlobStore,
// Options.Blobs: by default files under dir/blobs (blobs.Files), sealed
// with the at-rest key (blobs.Sealed, purpose "body"). A body is named by 16
// random bytes in hex, never reused; it is put (durable) before the
// transaction that references it commits, it is immutable, and it is
// deleted after the commit that drops its last reference is on disk. A
// crash can thus leave only unreferenced blobs, which the sweep at Open
// deletes.

// bodyPurpose is the purpose (blobs.Context) of message bodies, in the
// blob store and inline alike (seal.go).
const bodyPurpose = "body"

// openBlobs returns the default body store of dir.
func openBlobs(dir string, key []byte) (storage.BlobStore, error) {
	fs, err := blobs.OpenFiles(dir)
	if err != nil {
		return nil, err
	}
	prefixes := make([]string, 256)
	for i := range prefixes {
		prefixes[i] = fmt.Sprintf("%02x", i)
	}
	if err := fs.MakeDirs(prefixes...); err != nil {
		return nil, err
	}
	return blobs.Seal(fs, key, bodyPurpose), nil
}

// sweepBlobs deletes the blobs no blobs row references: bodies put by a
// delivery that crashed before its commit, or whose deletion after the
// last reference failed. It runs at Open, before any write, and only when
// no other process has the directory open (lockDir), one name prefix at a
// time so that memory stays small.
func (db *DB) sweepBlobs(ctx context.Context) error {
	for i := range 256 {
		prefix := fmt.Sprintf("%02x", i)
		var found []string
		if err := db.blobs.List(ctx, prefix, func(name string) error {
			if isBlobName(name) {
				found = append(found, name)
			}
			return nil
		}); err != nil {
			return err
		}
		if len(found) == 0 {
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
		for _, name := range found {
			if !known[name] {
				db.deleteBlob(name)
			}
		}
	}
	return nil
}

// isBlobName: the names this backend gives (newBlobName). Other names in
// the store are not its own, and the sweep leaves them alone.
func isBlobName(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// deleteBlob deletes a body that no committed row references. A failure
// leaves an orphan, which the sweep of a later Open deletes.
func (db *DB) deleteBlob(name string) {
	db.blobs.Delete(context.Background(), name)
}

// newBlobName returns a fresh random name (32 hex characters) for a body,
// in the blob store or inline.
func newBlobName() (string, error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(rnd[:]), nil
}

// openBlob opens a body in the blob store and checks that its plaintext
// has the size recorded at delivery.
func (db *DB) openBlob(ctx context.Context, name string, size int64) (storage.Body, error) {
	b, err := db.blobs.Open(ctx, name)
	if errors.Is(err, storage.ErrNoBlob) {
		// Expunged (last reference) between our read and the open.
		return nil, storage.ErrNoMessage
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: open body %s: %w", name, err)
	}
	if b.Size() != size {
		b.Close()
		return nil, fmt.Errorf("sqlite: open body %s: %w: %d bytes, %d recorded", name, crypto.ErrSealed, b.Size(), size)
	}
	return b, nil
}

// inlineBody is a body kept in its blobs row, decrypted whole (it is
// small).
type inlineBody struct {
	*bytes.Reader
}

func (inlineBody) Close() error { return nil }

func (b inlineBody) Size() int64 { return b.Reader.Size() }
