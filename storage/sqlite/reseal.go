package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage"
)

// The migration to sealed format version 2 (seal.go): what version 1 sealed
// (inline bodies, bodies in the blob store, header sections, summaries) is
// opened and sealed again, bound to its body, at Open while the task
// 'reseal-v2' is pending (mailSchemaV6).
//
// Why at Open rather than a command or in the background: no process ever
// serves from a store that holds version 1 values, so the ordinary openers
// refuse version 1 outright (crypto.ErrSealedV1), and an old unbound blob
// cannot be put in place of a bound one. The cost is one pass over the
// store at the first start after the upgrade: every body is read and
// written once, as a backup would.
//
// Safety:
//   - inline values are rewritten in place, in one transaction per body;
//   - a body in the blob store cannot be rewritten (blobs are immutable):
//     it is put again under a new name (names are never reused), the row
//     takes the new name, and the old blob is deleted only once that
//     commit is on disk (syncWAL). A crash leaves the old row and an
//     orphan, or the new row and an orphan; the sweep deletes orphans;
//   - each transaction checks that the row is still what was read, so
//     two processes opening the store at once (the server and an
//     administrative command) cannot undo each other;
//   - a value that cannot be opened (a wrong key, corruption) fails Open
//     and leaves the task pending: nothing is dropped, and the next Open
//     tries again once the key is right.

const resealTask = "reseal-v2"

// resealBatch bounds the rows read at once: inline bodies are up to
// InlineLimit each.
const resealBatch = 32

// v1Opener is a blob store that can open blobs of format version 1
// (blobs.Sealed).
type v1Opener interface {
	OpenV1(ctx context.Context, name string) (storage.Blob, error)
}

type resealRow struct {
	id                    int64
	name                  string
	data, header, summary []byte
	hasDigests            bool
}

func (db *DB) reseal(ctx context.Context) error {
	var pending bool
	if err := db.w.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM store_tasks WHERE task = ?)", resealTask).Scan(&pending); err != nil {
		return err
	}
	if !pending {
		return nil
	}
	var failed int
	var first error
	for last := int64(0); ; {
		rows, err := db.resealRows(ctx, last)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		last = rows[len(rows)-1].id
		var drop []string // old blobs, deleted once the renames are durable
		for _, r := range rows {
			old, err := db.resealOne(ctx, r)
			if err != nil {
				failed++
				if first == nil {
					first = fmt.Errorf("body %s: %w", r.name, err)
				}
				continue
			}
			if old != "" {
				drop = append(drop, old)
			}
		}
		if len(drop) > 0 {
			if err := db.syncWAL(); err != nil {
				return err
			}
			for _, name := range drop {
				db.deleteBlob(name)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d bodies could not be opened to be sealed again (first: %w); is the at-rest key the one this data was sealed with?", failed, first)
	}
	_, err := db.w.ExecContext(ctx, "DELETE FROM store_tasks WHERE task = ?", resealTask)
	return err
}

func (db *DB) resealRows(ctx context.Context, after int64) ([]resealRow, error) {
	rows, err := db.w.QueryContext(ctx, `SELECT b.id, b.name, b.data, d.header, d.summary, d.blob_id IS NOT NULL
		FROM blobs b LEFT JOIN digests d ON d.blob_id = b.id WHERE b.id > ? ORDER BY b.id LIMIT ?`, after, resealBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []resealRow
	for rows.Next() {
		var r resealRow
		if err := rows.Scan(&r.id, &r.name, &r.data, &r.header, &r.summary, &r.hasDigests); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func isV1(sealed []byte) bool { return sealed != nil && crypto.SealedVersion(sealed) == 1 }

// resealOne seals again the values of one body that need it. It returns
// the old name of a body put again in the blob store under a new one.
func (db *DB) resealOne(ctx context.Context, r resealRow) (oldName string, err error) {
	inStore := false
	if r.data == nil {
		b, err := db.blobs.Open(ctx, r.name)
		switch {
		case err == nil:
			b.Close()
		case errors.Is(err, crypto.ErrSealedV1):
			inStore = true
		case errors.Is(err, storage.ErrNoBlob):
			// Missing already: OpenBody reports it; nothing to seal.
		default:
			return "", err
		}
	}
	if !inStore && !isV1(r.data) && !isV1(r.header) && !isV1(r.summary) {
		return "", nil
	}
	name := r.name
	if inStore {
		if name, err = db.putAgain(ctx, r.name); err != nil {
			return "", err
		}
		defer func() {
			if err != nil || oldName == "" {
				db.deleteBlob(name)
			}
		}()
	}
	// Values still bound to the old name (version 2 under a renamed body)
	// are sealed again too: OpenBytesV1 opens both versions.
	again := func(v []byte, old, now string) ([]byte, error) {
		if v == nil || (!isV1(v) && old == now) {
			return v, nil
		}
		plain, err := crypto.OpenBytesV1(v, db.key, old)
		if err != nil {
			return nil, err
		}
		return db.sealBytes(plain, now)
	}
	data, err := again(r.data, bodyContext(r.name), bodyContext(name))
	if err != nil {
		return "", err
	}
	header, err := again(r.header, headerContext(r.name), headerContext(name))
	if err != nil {
		return "", err
	}
	summary, err := again(r.summary, summaryContext(r.name), summaryContext(name))
	if err != nil {
		return "", err
	}
	changed, err := db.resealCommit(ctx, r, name, data, header, summary)
	if err != nil || !changed || !inStore {
		return "", err
	}
	return r.name, nil
}

// putAgain copies a version 1 body to a new name, sealed in version 2.
func (db *DB) putAgain(ctx context.Context, name string) (string, error) {
	o, ok := db.blobs.(v1Opener)
	if !ok {
		return "", errors.New("the body store cannot open format version 1 (Options.Blobs is not a blobs.Sealed)")
	}
	src, err := o.OpenV1(ctx, name)
	if err != nil {
		return "", err
	}
	defer src.Close()
	fresh, err := newBlobName()
	if err != nil {
		return "", err
	}
	if _, err := db.blobs.Put(ctx, fresh, io.NewSectionReader(src, 0, src.Size())); err != nil {
		return "", err
	}
	return fresh, nil
}

// resealCommit writes the new values if the row is still what was read
// (another process may have sealed it again meanwhile); it reports whether
// it did.
func (db *DB) resealCommit(ctx context.Context, r resealRow, name string, data, header, summary []byte) (bool, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var cur resealRow
	err = tx.QueryRowContext(ctx, `SELECT b.name, b.data, d.header, d.summary FROM blobs b LEFT JOIN digests d ON d.blob_id = b.id WHERE b.id = ?`, r.id).
		Scan(&cur.name, &cur.data, &cur.header, &cur.summary)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // expunged meanwhile
	}
	if err != nil {
		return false, err
	}
	if cur.name != r.name || !bytes.Equal(cur.data, r.data) || !bytes.Equal(cur.header, r.header) || !bytes.Equal(cur.summary, r.summary) {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, "UPDATE blobs SET name = ?, data = ? WHERE id = ?", name, data, r.id); err != nil {
		return false, err
	}
	if r.hasDigests {
		if _, err := tx.ExecContext(ctx, "UPDATE digests SET header = ?, summary = ? WHERE blob_id = ?", header, summary, r.id); err != nil {
			return false, err
		}
	}
	return true, tx.Commit()
}
