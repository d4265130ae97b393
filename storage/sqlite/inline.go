package sqlite

import (
	"bytes"
	"io"

	"carepost/crypto"
)

// Small bodies live inside the database (issue #8, group commit).
//
// A body in a file of its own costs two fsyncs before its metadata can
// commit (the file, then its directory), one message at a time: on this
// machine kind's disk (about 3,000 fsyncs/s) that alone caps durable
// delivery near 1,500 messages/s whatever the batching of the metadata.
// Most health messages are small (a referral letter, a lab result: a few
// to a few hundred kilobytes), so a body up to InlineLimit is sealed in
// memory and written into its blobs row: it becomes durable with the one
// WAL fsync that commits the whole batch. Larger bodies stream to a file
// as before, so that memory stays bounded: a body is held in memory at
// most twice (plaintext and sealed) and only when it is small.
//
// Sealing is the same format either way (crypto.NewSealWriter), so the
// encryption at rest and its tests do not depend on where a body lives.

// DefaultInlineLimit is the InlineLimit when Options leaves it zero.
const DefaultInlineLimit = 256 << 10

func inlineLimit(n int64) int64 {
	switch {
	case n == 0:
		return DefaultInlineLimit
	case n < 0:
		return -1
	}
	return n
}

// sealedBody is a body ready to be referenced by a blobs row: either in a
// file (data == nil) or inline (data holds the sealed bytes), with its
// header section sealed apart (header.go; nil if too long).
type sealedBody struct {
	name   string
	size   int64
	data   []byte
	header []byte
}

// sealBody reads body and seals it inline when it fits, else into a file
// (writeBlob), which is then durable before this returns.
func (db *DB) sealBody(body io.Reader) (sealedBody, error) {
	var hc headerCapture
	body = io.TeeReader(body, &hc)
	sb, err := db.sealContent(body)
	if err != nil {
		return sb, err
	}
	if sec := hc.section(); sec != nil {
		if sb.header, err = db.sealBytes(sec); err != nil {
			if sb.data == nil {
				removeFile(db.blobPath(sb.name))
			}
			return sealedBody{}, err
		}
	}
	return sb, nil
}

func (db *DB) sealContent(body io.Reader) (sealedBody, error) {
	if db.inline < 0 {
		name, size, err := db.writeBlob(body)
		return sealedBody{name: name, size: size}, err
	}
	var plain bytes.Buffer
	n, err := plain.ReadFrom(io.LimitReader(body, db.inline+1))
	if err != nil {
		return sealedBody{}, err
	}
	if n > db.inline {
		name, size, err := db.writeBlob(io.MultiReader(&plain, body))
		return sealedBody{name: name, size: size}, err
	}
	sealed, err := db.sealBytes(plain.Bytes())
	if err != nil {
		return sealedBody{}, err
	}
	name, err := newBlobName()
	if err != nil {
		return sealedBody{}, err
	}
	return sealedBody{name: name, size: n, data: sealed}, nil
}

// openInline opens a body kept in its blobs row.
func (db *DB) openInline(name string, size int64, data []byte) (*body, error) {
	sr, err := crypto.OpenSealed(bytes.NewReader(data), int64(len(data)), db.key)
	if err != nil {
		return nil, err
	}
	return checkSize(name, size, sr)
}
