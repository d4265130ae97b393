package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/carepost/carepost/storage"
)

// The header section of every body is also kept on its own, sealed, in the
// digests table (issue #8). Mail clients ask for headers far more often than
// for bodies (the message list: FETCH ENVELOPE, BODY.PEEK[HEADER.FIELDS
// …]), and SEARCH FROM/TO/SUBJECT reads only headers: with the header
// apart, these decrypt a kilobyte or two instead of the whole message, and
// never touch a body file.

// maxHeaderSection bounds the header section kept apart; a longer one (rare:
// a message whose header alone is over 64 KiB) is read from the body.
const maxHeaderSection = 64 << 10

// headerCapture records the first bytes written to it until the end of the
// header section (the first empty line) or maxHeaderSection.
type headerCapture struct {
	buf  []byte
	done bool // the end was found, or the limit reached
}

func (h *headerCapture) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	room := maxHeaderSection + 4 - len(h.buf)
	h.buf = append(h.buf, p[:min(len(p), room)]...)
	if end := headerEnd(h.buf); end >= 0 {
		h.buf, h.done = h.buf[:end], true
	} else if len(h.buf) > maxHeaderSection {
		h.buf, h.done = nil, true // too long: not kept apart
	}
	return len(p), nil
}

// section returns the header section, or nil when it was not found within
// the limit. A message without an empty line is all header (RFC 5322
// §2.1: the body is optional).
func (h *headerCapture) section() []byte {
	if h.done {
		return h.buf
	}
	if len(h.buf) <= maxHeaderSection {
		return h.buf
	}
	return nil
}

// headerEnd returns the length of the header section in b, the empty line
// included, or -1.
func headerEnd(b []byte) int {
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return 2
	}
	if bytes.HasPrefix(b, []byte("\n")) {
		return 1
	}
	crlf := bytes.Index(b, []byte("\r\n\r\n"))
	lf := bytes.Index(b, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf+2 <= lf):
		return crlf + 4
	case lf >= 0:
		return lf + 2
	}
	return -1
}

const (
	// The blob's name is read for the contexts the values are sealed
	// for (seal.go); it comes before the inline body in the blobs row,
	// so reading it does not walk the body's overflow pages.
	qDigestsAll = `SELECT m.uid, b.name, CASE WHEN ? THEN d.header END, CASE WHEN ? THEN d.summary END, d.header IS NULL
	FROM messages m JOIN blobs b ON b.id = m.blob_id LEFT JOIN digests d ON d.blob_id = m.blob_id WHERE m.mailbox_id = ? ORDER BY m.uid`
	qDigestsSome = `SELECT m.uid, b.name, CASE WHEN ? THEN d.header END, CASE WHEN ? THEN d.summary END, d.header IS NULL
	FROM messages m JOIN blobs b ON b.id = m.blob_id LEFT JOIN digests d ON d.blob_id = m.blob_id WHERE m.mailbox_id = ? AND m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid`
)

// Digests implements storage.Store: one statement reads the sealed values,
// decrypted once it is done. A header not kept apart (over 64 KiB,
// or stored before the header column) is read from its body.
func (db *DB) Digests(ctx context.Context, mailboxID int64, uids []uint32, header, summary bool) ([]storage.Digest, error) {
	if uids != nil && len(uids) == 0 {
		return nil, nil
	}
	out := make([]storage.Digest, 0, len(uids))
	var fromBody []int // indexes in out whose header is in the body only
	var names []string // of the blobs of out, for their contexts
	// One statement, no transaction (poolQ). An empty result is told
	// apart from an unknown mailbox afterwards.
	q := poolQ{db.rstmts}
	err := func() error {
		var rows *sql.Rows
		var err error
		if uids == nil {
			rows, err = q.QueryContext(ctx, qDigestsAll, header, summary, mailboxID)
		} else {
			rows, err = q.QueryContext(ctx, qDigestsSome, header, summary, mailboxID, uidsJSON(uids))
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d storage.Digest
			var uid int64
			var noHeader bool
			var name string
			if err := rows.Scan(&uid, &name, &d.Header, &d.Summary, &noHeader); err != nil {
				return err
			}
			names = append(names, name)
			d.UID = uint32(uid)
			if header && noHeader {
				fromBody = append(fromBody, len(out))
			}
			out = append(out, d)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return mailboxExists(ctx, q, mailboxID)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	for i := range out {
		d := &out[i]
		if d.Header != nil {
			if d.Header, err = db.unsealBytes(d.Header, headerContext(names[i])); err != nil {
				return nil, fmt.Errorf("sqlite: open header of uid %d: %w", d.UID, err)
			}
		}
		if d.Summary != nil {
			if d.Summary, err = db.unsealBytes(d.Summary, summaryContext(names[i])); err != nil {
				return nil, fmt.Errorf("sqlite: open summary of uid %d: %w", d.UID, err)
			}
		}
	}
	for _, i := range fromBody {
		h, err := db.headerFromBody(ctx, mailboxID, out[i].UID)
		if errors.Is(err, storage.ErrNoMessage) {
			continue // expunged since: left empty, as the caller will learn
		}
		if err != nil {
			return nil, err
		}
		out[i].Header = h
	}
	return out, nil
}

// OpenHeader implements storage.Store.
func (db *DB) OpenHeader(ctx context.Context, mailboxID int64, uid uint32) ([]byte, error) {
	ds, err := db.Digests(ctx, mailboxID, []uint32{uid}, true, false)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("%w: uid %d", storage.ErrNoMessage, uid)
	}
	if ds[0].Header == nil {
		return []byte{}, nil
	}
	return ds[0].Header, nil
}

// headerFromBody reads the header section of a message from its body: for
// a header not kept apart (a very long one, or a body stored before the
// header column existed).
func (db *DB) headerFromBody(ctx context.Context, mailboxID int64, uid uint32) ([]byte, error) {
	b, err := db.OpenBody(ctx, mailboxID, uid)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	var h headerCapture
	buf := make([]byte, 32<<10)
	for off := int64(0); !h.done && off < b.Size(); {
		n, err := b.ReadAt(buf, off)
		h.Write(buf[:n])
		off += int64(n)
		if err != nil && err != io.EOF {
			return nil, err
		}
		if n == 0 {
			break
		}
	}
	if sec := h.section(); sec != nil {
		return sec, nil
	}
	// Over the limit: the caller gets the first maxHeaderSection bytes.
	out := make([]byte, min(b.Size(), maxHeaderSection))
	_, err = b.ReadAt(out, 0)
	if err == io.EOF {
		err = nil
	}
	return out, err
}
