package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/carepost/carepost/storage"
)

// The outbound queue (storage.Queue).
//
// An entry's body is a blobs row like a message body (inline, or a file
// in the blob store), sealed bound to its blob name: 128 random bits that
// belong to this entry alone, since each enqueued version gets a body of
// its own and no message ever references it. The queue_ref trigger counts
// the entry as the body's one reference, so that deleting the entry frees
// the body by the same path as an expunge (collectGarbage, then the file
// after the commit is on disk).
//
// Claims are written by the committer like every write, inside SQLite's
// write lock, which is held across processes: two runners, in this
// process or in two processes on the same data directory, cannot claim the
// same entry while its lease runs.

// queueSchemaV1: the outbound queue. Written to run again harmlessly
// (tests of earlier steps roll user_version back over it).
const queueSchemaV1 = `
CREATE TABLE IF NOT EXISTS queue (
	id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
	blob_id      INTEGER NOT NULL,
	sender       TEXT NOT NULL,
	size         INTEGER NOT NULL,
	created      INTEGER NOT NULL, -- Unix nanoseconds
	next_attempt INTEGER NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	owner        TEXT NOT NULL DEFAULT '',
	lease_until  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_due ON queue(next_attempt);

CREATE TABLE IF NOT EXISTS queue_rcpts (
	entry_id   INTEGER NOT NULL REFERENCES queue(id),
	address    TEXT NOT NULL,
	state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
	last_error TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (entry_id, address)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS queue_ref AFTER INSERT ON queue BEGIN
	UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob_id;
END;
CREATE TRIGGER IF NOT EXISTS queue_unref AFTER DELETE ON queue BEGIN
	DELETE FROM queue_rcpts WHERE entry_id = OLD.id;
	UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob_id;
END;
`

// queueSchemaV2: an entry's Message-ID (storage.QueueEntry.MessageID),
// the object of its audit events (relay attempts, DSN).
const queueSchemaV2 = `
ALTER TABLE queue ADD COLUMN message_id TEXT NOT NULL DEFAULT '';
`

var _ storage.Queue = (*DB)(nil)

// insertQueued adds a queue entry for the body blobID, inside DeliverAll's
// op.
func insertQueued(t *wtx, blobID, size int64, q *storage.Enqueue, messageID string, now time.Time) error {
	next := q.NextAttempt
	if next.IsZero() {
		next = now
	}
	var id int64
	if err := t.QueryRowContext(t.ctx, `INSERT INTO queue (blob_id, sender, size, created, next_attempt, message_id)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, blobID, q.From, size, now.UnixNano(), next.UnixNano(), messageID).Scan(&id); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range q.Recipients {
		if seen[r] {
			continue
		}
		seen[r] = true
		if _, err := t.ExecContext(t.ctx, "INSERT INTO queue_rcpts (entry_id, address) VALUES (?, ?)", id, r); err != nil {
			return err
		}
	}
	return nil
}

const queueColumns = "id, sender, size, created, next_attempt, attempts, last_error, owner, lease_until, message_id"

func scanQueued(rows interface{ Scan(...any) error }) (storage.QueueEntry, error) {
	var e storage.QueueEntry
	var created, next, lease int64
	err := rows.Scan(&e.ID, &e.From, &e.Size, &created, &next, &e.Attempts, &e.LastError, &e.Owner, &lease, &e.MessageID)
	e.Created, e.NextAttempt = time.Unix(0, created), time.Unix(0, next)
	if lease > 0 {
		e.LeaseUntil = time.Unix(0, lease)
	}
	return e, err
}

// queuedRows reads the entries a query selects, with their recipients.
func queuedRows(ctx context.Context, q querier, query string, args ...any) ([]storage.QueueEntry, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var out []storage.QueueEntry
	for rows.Next() {
		e, err := scanQueued(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Recipients, err = queuedRecipients(ctx, q, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func queuedRecipients(ctx context.Context, q querier, id int64) ([]storage.QueueRecipient, error) {
	rows, err := q.QueryContext(ctx, "SELECT address, state, last_error FROM queue_rcpts WHERE entry_id = ? ORDER BY address", id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storage.QueueRecipient
	for rows.Next() {
		var r storage.QueueRecipient
		if err := rows.Scan(&r.Address, &r.State, &r.LastError); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// NextQueued implements storage.Queue.
func (db *DB) NextQueued(ctx context.Context) (time.Time, bool, error) {
	var at sql.NullInt64
	err := db.read(ctx, func(tx stx) error {
		// A claimed entry is due again when its lease ends.
		return tx.QueryRowContext(ctx, "SELECT min(max(next_attempt, lease_until)) FROM queue").Scan(&at)
	})
	if err != nil || !at.Valid {
		return time.Time{}, false, err
	}
	return time.Unix(0, at.Int64), true, nil
}

// ClaimQueued implements storage.Queue.
func (db *DB) ClaimQueued(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]storage.QueueEntry, error) {
	if owner == "" || limit <= 0 {
		return nil, errors.New("sqlite: claim needs an owner and a limit")
	}
	var out []storage.QueueEntry
	err := db.write(ctx, func(t *wtx) error {
		n := now.UnixNano()
		var err error
		out, err = queuedRows(t.ctx, t, `UPDATE queue SET owner = ?, lease_until = ?
			WHERE id IN (SELECT id FROM queue WHERE next_attempt <= ? AND lease_until <= ? ORDER BY next_attempt, id LIMIT ?)
			RETURNING `+queueColumns, owner, now.Add(lease).UnixNano(), n, n, limit)
		return err
	})
	return out, err
}

// OpenQueued implements storage.Queue.
func (db *DB) OpenQueued(ctx context.Context, id int64) (storage.Body, error) {
	var name string
	var size int64
	var data []byte
	err := db.read(ctx, func(tx stx) error {
		return tx.QueryRowContext(ctx, "SELECT b.name, b.size, b.data FROM queue q JOIN blobs b ON b.id = q.blob_id WHERE q.id = ?", id).
			Scan(&name, &size, &data)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %d", storage.ErrNoQueued, id)
	}
	if err != nil {
		return nil, err
	}
	if data != nil {
		return db.openInline(name, size, data)
	}
	b, err := db.openBlob(ctx, name, size)
	if errors.Is(err, storage.ErrNoMessage) {
		return nil, fmt.Errorf("%w: %d", storage.ErrNoQueued, id)
	}
	return b, err
}

// holds checks, inside a write, that owner holds the claim of entry id.
func holds(t *wtx, id int64, owner string) error {
	var got string
	err := t.QueryRowContext(t.ctx, "SELECT owner FROM queue WHERE id = ?", id).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %d", storage.ErrNoQueued, id)
	}
	if err != nil {
		return err
	}
	if got != owner {
		return fmt.Errorf("%w: entry %d", storage.ErrQueueClaim, id)
	}
	return nil
}

// UpdateQueued implements storage.Queue.
func (db *DB) UpdateQueued(ctx context.Context, id int64, owner string, u storage.QueueUpdate) error {
	return db.write(ctx, func(t *wtx) error {
		if err := holds(t, id, owner); err != nil {
			return err
		}
		for _, r := range u.Recipients {
			switch r.State {
			case storage.QueuePending, storage.QueueDelivered, storage.QueueFailed:
			default:
				return fmt.Errorf("sqlite: queue recipient state %q", r.State)
			}
			if _, err := t.ExecContext(t.ctx, "UPDATE queue_rcpts SET state = ?, last_error = ? WHERE entry_id = ? AND address = ?",
				r.State, r.LastError, id, r.Address); err != nil {
				return err
			}
		}
		_, err := t.ExecContext(t.ctx, `UPDATE queue SET attempts = attempts + 1, last_error = ?, next_attempt = ?,
			owner = '', lease_until = 0 WHERE id = ?`, u.LastError, u.NextAttempt.UnixNano(), id)
		return err
	})
}

// RemoveQueued implements storage.Queue.
func (db *DB) RemoveQueued(ctx context.Context, id int64, owner string) error {
	return db.write(ctx, func(t *wtx) error {
		if owner != "" {
			if err := holds(t, id, owner); err != nil {
				return err
			}
		}
		res, err := t.ExecContext(t.ctx, "DELETE FROM queue WHERE id = ?", id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %d", storage.ErrNoQueued, id)
		}
		return t.collectGarbage()
	})
}

// ListQueued implements storage.Queue.
func (db *DB) ListQueued(ctx context.Context) ([]storage.QueueEntry, error) {
	var out []storage.QueueEntry
	err := db.read(ctx, func(tx stx) error {
		var err error
		out, err = queuedRows(ctx, tx, "SELECT "+queueColumns+" FROM queue ORDER BY created, id")
		return err
	})
	return out, err
}

// GetQueued implements storage.Queue.
func (db *DB) GetQueued(ctx context.Context, id int64) (storage.QueueEntry, error) {
	var out []storage.QueueEntry
	err := db.read(ctx, func(tx stx) error {
		var err error
		out, err = queuedRows(ctx, tx, "SELECT "+queueColumns+" FROM queue WHERE id = ?", id)
		return err
	})
	if err != nil {
		return storage.QueueEntry{}, err
	}
	if len(out) == 0 {
		return storage.QueueEntry{}, fmt.Errorf("%w: %d", storage.ErrNoQueued, id)
	}
	return out[0], nil
}

// RetryQueued implements storage.Queue.
func (db *DB) RetryQueued(ctx context.Context, id int64, now time.Time) error {
	return db.write(ctx, func(t *wtx) error {
		res, err := t.ExecContext(t.ctx, "UPDATE queue SET next_attempt = min(next_attempt, ?) WHERE id = ?", now.UnixNano(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: %d", storage.ErrNoQueued, id)
		}
		return nil
	})
}

// ReleaseQueued implements storage.Queue.
func (db *DB) ReleaseQueued(ctx context.Context, ownerPrefix string) (int, error) {
	if ownerPrefix == "" {
		return 0, errors.New("sqlite: release needs an owner prefix")
	}
	var n int64
	err := db.write(ctx, func(t *wtx) error {
		res, err := t.ExecContext(t.ctx, "UPDATE queue SET owner = '', lease_until = 0 WHERE owner != '' AND substr(owner, 1, ?) = ?",
			len(ownerPrefix), ownerPrefix)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return int(n), err
}
