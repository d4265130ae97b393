package storage

import (
	"context"
	"errors"
	"io"
)

// BlobStore keeps immutable byte strings (message bodies, later portal
// documents) under names chosen by the caller. Files implement it today
// (storage/blobs.Files); PostgreSQL and S3-compatible implementations come
// with the cluster (SPEC §5), and at-rest sealing wraps any of them
// (storage/blobs.Sealed). A backend keeps the metadata that references a
// blob (its rows) and decides when a blob is garbage; a BlobStore only
// stores.
//
// Contracts every implementation keeps (storagetest.RunBlobs checks them):
//   - Put is durable when it returns nil: the bytes and the name survive
//     a crash or a power cut (fsync of the file and of its directory, a
//     committed row, an acknowledged object). A caller may then commit
//     metadata that references the name.
//   - A blob is immutable. Put of a name that exists fails (wrapped
//     ErrBlobExists) and leaves the existing blob as it was.
//   - Names are never reused: the caller names each blob once for the
//     life of the store (storage's contract on identifiers; sqlite uses
//     128 random bits), so a reader of a deleted blob never gets another
//     one's bytes. The name is also what at-rest sealing binds a blob to.
//   - Delete of a missing name is not an error: removal after the last
//     reference may run twice (a retry, a sweep after a crash).
//   - A blob opened before its Delete stays readable through that Blob
//     where the medium allows it (files on Unix do); a reader must
//     otherwise expect ErrNoBlob or a read error, never other bytes.
//   - Every method honours ctx for what may block long (network stores);
//     errors are wrapped with %w, so errors.Is works through them.
//
// Names are 2 to 128 characters of [0-9a-z_-]: safe as file names, object
// keys and SQL text everywhere. Implementations are safe for concurrent use.
type BlobStore interface {
	// Put stores everything read from r under name and returns the
	// number of bytes read from r. On error nothing is stored under
	// name (a partial write is removed or was never visible).
	Put(ctx context.Context, name string, r io.Reader) (int64, error)
	// Open opens a blob for reading. A missing name gives ErrNoBlob
	// (wrapped).
	Open(ctx context.Context, name string) (Blob, error)
	// Delete removes a blob; see the contracts for a missing name.
	Delete(ctx context.Context, name string) error
	// List calls fn with the name of every blob that starts with prefix,
	// in no stated order, until fn returns an error (returned as is).
	// A backend uses it to find blobs no row references (a Put whose
	// commit never came). Blobs put or deleted during List may or may
	// not be seen.
	List(ctx context.Context, prefix string, fn func(name string) error) error
}

// Blob is an open blob: ReadAt reads at any offset and is safe for
// concurrent use; Read reads on from the start (one reader at a time).
// Size is the size of its bytes, as Put read them.
type Blob = Body

var (
	// ErrNoBlob: no blob of that name (deleted, or never put).
	ErrNoBlob = errors.New("storage: no such blob")
	// ErrBlobExists: Put of a name already in use.
	ErrBlobExists = errors.New("storage: blob name already in use")
	// ErrBlobName: a name outside the alphabet of BlobStore.
	ErrBlobName = errors.New("storage: invalid blob name")
)

// ValidBlobName reports whether name follows BlobStore's naming rule.
func ValidBlobName(name string) bool {
	if len(name) < 2 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
