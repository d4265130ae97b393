package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage"
)

// Sealed is a BlobStore that encrypts at rest (SPEC §10) what it keeps in
// another one: each blob in crypto's sealed-blob format, bound to
// Context(purpose, name), so that a blob copied or renamed to another name
// in the inner store, or used for another purpose, fails authentication
// when opened. Sizes, reads and offsets are those of the plaintext; a
// ReadAt decrypts only the 64 KiB chunks it touches.
type Sealed struct {
	inner   storage.BlobStore
	key     []byte
	purpose string
}

var _ storage.BlobStore = (*Sealed)(nil)

// Seal wraps inner. key is the 32-byte at-rest key; purpose names what the
// store keeps ("body"), see Context.
func Seal(inner storage.BlobStore, key []byte, purpose string) *Sealed {
	return &Sealed{inner: inner, key: key, purpose: purpose}
}

// Context is the context (crypto.SealBytes) a blob is sealed for: its
// purpose and its name, which the store never gives to another blob. A
// backend that seals small blobs itself (storage/sqlite keeps small bodies
// in its rows) uses the same, so that where a blob lives does not change
// how it is sealed.
func Context(purpose, name string) string { return purpose + ":" + name }

// Put implements storage.BlobStore; it returns the plaintext size.
func (s *Sealed) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	sr, err := crypto.NewSealReader(r, s.key, Context(s.purpose, name))
	if err != nil {
		return 0, err
	}
	if _, err := s.inner.Put(ctx, name, sr); err != nil {
		return 0, err
	}
	return sr.Plaintext(), nil
}

// Open implements storage.BlobStore. A blob that is not this store's (other
// key, other name, altered, truncated, or of format version 1) gives
// crypto.ErrSealed (wrapped).
func (s *Sealed) Open(ctx context.Context, name string) (storage.Blob, error) {
	return s.open(ctx, name, crypto.OpenSealed)
}

// OpenV1 is Open that also accepts blobs sealed in version 1 of the format,
// bound to nothing: for the migration that seals them again
// (storage/sqlite/reseal.go), never for serving.
func (s *Sealed) OpenV1(ctx context.Context, name string) (storage.Blob, error) {
	return s.open(ctx, name, crypto.OpenSealedV1)
}

func (s *Sealed) open(ctx context.Context, name string, open func(io.ReaderAt, int64, []byte, string) (crypto.SealedReader, error)) (storage.Blob, error) {
	b, err := s.inner.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	sr, err := open(b, b.Size(), s.key, Context(s.purpose, name))
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("blobs: open %s: %w", name, err)
	}
	return &sealedBlob{inner: b, sr: sr}, nil
}

// Delete implements storage.BlobStore.
func (s *Sealed) Delete(ctx context.Context, name string) error { return s.inner.Delete(ctx, name) }

// List implements storage.BlobStore.
func (s *Sealed) List(ctx context.Context, prefix string, fn func(string) error) error {
	return s.inner.List(ctx, prefix, fn)
}

type sealedBlob struct {
	inner storage.Blob
	sr    crypto.SealedReader
	off   int64 // of Read
}

func (b *sealedBlob) Size() int64 { return b.sr.Size() }

func (b *sealedBlob) ReadAt(p []byte, off int64) (int, error) { return b.sr.ReadAt(p, off) }

func (b *sealedBlob) Read(p []byte) (int, error) {
	if b.off >= b.sr.Size() {
		return 0, io.EOF
	}
	n, err := b.sr.ReadAt(p, b.off)
	b.off += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

func (b *sealedBlob) Close() error { return b.inner.Close() }
