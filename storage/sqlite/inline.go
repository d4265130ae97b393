package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage"
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
// in the blob store (blobs.go), so that memory stays bounded: a body is
// held in memory at most twice (plaintext and sealed) and only when it is
// small.
//
// Sealing is the same format and context either way (seal.go), so the
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

// sealedBody is a body ready to be referenced by a blobs row: either in the
// blob store (data == nil) or inline (data holds the sealed bytes), with its
// header section sealed apart (header.go; nil if too long).
type sealedBody struct {
	name    string
	size    int64
	data    []byte
	header  []byte
	summary []byte // sealed summary (storage.Summarizer), nil if none
}

// sealBody reads body and seals it inline when it fits, else puts it in the
// blob store, where it is durable before this returns. summary, when
// not nil, is the message path's summary of body, kept whatever the size
// of the body; nil runs the store's own summarizer on small bodies.
func (db *DB) sealBody(body io.Reader, summary []byte) (sealedBody, error) {
	var hc headerCapture
	body = io.TeeReader(body, &hc)
	sb, err := db.sealContent(body, summary == nil)
	if err != nil {
		return sb, err
	}
	if summary != nil {
		if sb.summary, err = db.sealBytes(summary, summaryContext(sb.name)); err != nil {
			if sb.data == nil {
				db.deleteBlob(sb.name)
			}
			return sealedBody{}, err
		}
	}
	if sec := hc.section(); sec != nil {
		if sb.header, err = db.sealBytes(sec, headerContext(sb.name)); err != nil {
			if sb.data == nil {
				db.deleteBlob(sb.name)
			}
			return sealedBody{}, err
		}
	}
	return sb, nil
}

func (db *DB) sealContent(body io.Reader, summarize bool) (sealedBody, error) {
	// A body is read into memory up to the larger of the inline limit
	// and summaryLimit: if it all fits, it is summarized from there.
	// The buffer comes from a pool: growing a new one by doubling was
	// 8 % of the server's allocations under imaptest's stress load.
	plain := plainPool.Get().(*bytes.Buffer)
	defer func() {
		if plain.Cap() <= 2*summaryLimit {
			plain.Reset()
			plainPool.Put(plain)
		}
	}()
	limit := db.inline
	if summarize {
		limit = max(limit, summaryLimit)
	}
	n, err := plain.ReadFrom(io.LimitReader(body, limit+1))
	if err != nil {
		return sealedBody{}, err
	}
	// The name comes first: every sealed value of the body is bound to
	// it (seal.go).
	var sb sealedBody
	if sb.name, err = newBlobName(); err != nil {
		return sealedBody{}, err
	}
	if summarize && n <= limit {
		if sum := db.summary(plain.Bytes()); sum != nil {
			if sb.summary, err = db.sealBytes(sum, summaryContext(sb.name)); err != nil {
				return sealedBody{}, err
			}
		}
	}
	if n > db.inline {
		sb.size, err = db.blobs.Put(context.Background(), sb.name, io.MultiReader(plain, body))
		if err != nil {
			return sealedBody{}, fmt.Errorf("sqlite: store body: %w", err)
		}
		return sb, nil
	}
	if sb.data, err = db.sealBytes(plain.Bytes(), bodyContext(sb.name)); err != nil {
		return sealedBody{}, err
	}
	sb.size = n
	return sb, nil
}

var plainPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// summaryLimit is the largest body summarized at delivery (whatever the
// inline limit): larger ones would have to be held in memory whole.
const summaryLimit = DefaultInlineLimit

// maxSummary bounds a kept summary: a message with thousands of parts is
// summarized again when asked rather than kept with a huge summary.
const maxSummary = 64 << 10

// summary runs the summarizer on a body; its panics keep no summary.
func (db *DB) summary(plain []byte) (sum []byte) {
	if db.summarize == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			sum = nil
		}
	}()
	if sum = db.summarize(plain); len(sum) > maxSummary {
		return nil
	}
	return sum
}

// openInline opens a body kept in its blobs row: it is small, so it is
// decrypted whole at once.
func (db *DB) openInline(name string, size int64, data []byte) (storage.Body, error) {
	plain, err := db.unsealBytes(data, bodyContext(name))
	if err != nil {
		return nil, err
	}
	if int64(len(plain)) != size {
		return nil, fmt.Errorf("%w: %d bytes, %d recorded", crypto.ErrSealed, len(plain), size)
	}
	return inlineBody{bytes.NewReader(plain)}, nil
}
