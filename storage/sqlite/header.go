package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"carepost/crypto"
	"carepost/storage"
)

// The header section of every body is also kept on its own, sealed, in the
// blobs row (issue #8). Mail clients ask for headers far more often than
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

// sealBytes seals a small plaintext in memory.
func (db *DB) sealBytes(plain []byte) ([]byte, error) {
	return crypto.SealBytes(plain, db.key)
}

func (db *DB) unsealBytes(sealed []byte) ([]byte, error) {
	sr, err := crypto.OpenSealed(bytes.NewReader(sealed), int64(len(sealed)), db.key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, sr.Size())
	if _, err := sr.ReadAt(out, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return out, nil
}

const qOpenHeader = "SELECT b.header FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?"

// OpenHeader implements storage.Store.
func (db *DB) OpenHeader(ctx context.Context, mailboxID int64, uid uint32) ([]byte, error) {
	var sealed []byte
	err := db.read(ctx, func(tx stx) error {
		err := tx.QueryRowContext(ctx, qOpenHeader, mailboxID, uid).Scan(&sealed)
		if errors.Is(err, sql.ErrNoRows) {
			if err := mailboxExists(ctx, tx, mailboxID); err != nil {
				return err
			}
			return fmt.Errorf("%w: uid %d", storage.ErrNoMessage, uid)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if sealed != nil {
		h, err := db.unsealBytes(sealed)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open header of uid %d: %w", uid, err)
		}
		return h, nil
	}
	// Not kept apart (a very long header, or a body stored before the
	// header column existed): read it from the body.
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
