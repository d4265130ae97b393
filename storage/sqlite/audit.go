package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/storage"
)

// The audit trail (storage.AuditLog). Events of a change are inserted by
// the op that makes it (wtx.event), inside its transaction or savepoint:
// a rolled-back op leaves no event, a committed one always has its
// events. seq is an INTEGER PRIMARY KEY: SQLite gives a new row the
// highest seq + 1, and the newest event is never deleted (retention
// removes the oldest), so a number is never given twice. An event's row is
// written once: the sealer (package audit) appends its hash to
// audit_hashes, keyed by the same seq, rather than rewriting the row (a
// row that grows is moved within its page, and a partial index of the
// unsealed rows cost two more updates an event: together a 16 % more CPU
// per durable submission, measured in BENCHMARKS.md). The unsealed
// events are those after the newest hash.
const auditSchemaV1 = `
CREATE TABLE audit_events (
	seq       INTEGER PRIMARY KEY,
	at        INTEGER NOT NULL, -- Unix milliseconds
	actor     TEXT NOT NULL,
	mechanism TEXT NOT NULL DEFAULT '',
	source    TEXT NOT NULL DEFAULT '',
	action    TEXT NOT NULL,
	object    TEXT NOT NULL DEFAULT '',
	outcome   TEXT NOT NULL DEFAULT 'ok',
	details   TEXT NOT NULL DEFAULT '' -- a JSON object of strings, or ''
);
CREATE TABLE audit_hashes (
	seq  INTEGER PRIMARY KEY, -- audit_events.seq
	hash BLOB NOT NULL
);
CREATE TABLE audit_checkpoints (
	seq       INTEGER PRIMARY KEY,
	hash      BLOB NOT NULL,
	at        INTEGER NOT NULL, -- Unix milliseconds
	signature BLOB NOT NULL
);
`

// auditSchemaV2: the account each event concerns (storage.AuditRecord.
// Account), for a mailbox owner's access history: accounts.id, NULL for
// none (accounts are never deleted, so an ID always names the same
// account). The partial index serves "this account's events, newest
// first" without reading the others.
const auditSchemaV2 = `
ALTER TABLE audit_events ADD COLUMN account INTEGER;
CREATE INDEX audit_account ON audit_events(account, seq) WHERE account IS NOT NULL;
`

const insertAudit = "INSERT INTO audit_events (at, actor, mechanism, source, action, object, outcome, details, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"

// event records an event of this op's change that concerns no account
// (a queue entry), in its transaction, with the op's principal as the
// actor. It does nothing when the store keeps no audit trail.
func (t *wtx) event(action, object string, details map[string]string) error {
	return t.eventIn(0, action, object, details)
}

// mailboxEvent records an event about the messages of mailboxID: it
// concerns the mailbox's account.
func (t *wtx) mailboxEvent(mailboxID int64, action, object string, details map[string]string) error {
	if !t.audit {
		return nil
	}
	account, ok := t.accounts[mailboxID]
	if !ok {
		// A mailbox the op did not reserve (the source of a COPY): one
		// lookup by primary key.
		if err := t.QueryRowContext(t.ctx, "SELECT account_id FROM mailboxes WHERE id = ?", mailboxID).Scan(&account); err != nil {
			return err
		}
	}
	return t.eventIn(account, action, object, details)
}

// noteAccount remembers the account of a mailbox the op wrote (reserve),
// for its events.
func (t *wtx) noteAccount(mailboxID, account int64) {
	if !t.audit {
		return
	}
	if t.accounts == nil {
		t.accounts = make(map[int64]int64, 2)
	}
	t.accounts[mailboxID] = account
}

// eventIn records an event that concerns account (accounts.id, 0 for
// none).
func (t *wtx) eventIn(account int64, action, object string, details map[string]string) error {
	if !t.audit {
		return nil
	}
	actor, mech, source := auth.FromContext(t.o.ctx).Actor()
	d, err := encodeDetails(details)
	if err != nil {
		return err
	}
	_, err = t.ExecContext(t.ctx, insertAudit, time.Now().UnixMilli(), actor, mech, source, action, object, "ok", d,
		sql.NullInt64{Int64: account, Valid: account != 0})
	return err
}

func encodeDetails(d map[string]string) (string, error) {
	if len(d) == 0 {
		return "", nil
	}
	b, err := json.Marshal(d) // keys sorted
	return string(b), err
}

// AppendAudit implements storage.AuditLog: one lazy op for all of recs.
func (db *DB) AppendAudit(ctx context.Context, recs []storage.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	rows := make([][]any, len(recs))
	for i, r := range recs {
		if r.Action == "" {
			return errors.New("sqlite: an audit event without an action")
		}
		d, err := encodeDetails(r.Details)
		if err != nil {
			return err
		}
		at := r.Time
		if at.IsZero() {
			at = time.Now()
		}
		outcome := r.Outcome
		if outcome == "" {
			outcome = "ok"
		}
		actor := r.Actor
		if actor == "" {
			actor = "system"
		}
		rows[i] = []any{at.UnixMilli(), actor, r.Mechanism, r.Source, r.Action, r.Object, outcome, d, r.Account}
	}
	return db.writeLazy(ctx, func(t *wtx) error {
		stmt, err := t.PrepareContext(t.ctx, insertAppendedAudit)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, args := range rows {
			if _, err := stmt.ExecContext(t.ctx, args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// insertAppendedAudit is insertAudit for AppendAudit, whose events name
// their account by address: an address that is no account is NULL.
const insertAppendedAudit = "INSERT INTO audit_events (at, actor, mechanism, source, action, object, outcome, details, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT id FROM accounts WHERE name = ?))"

// auditColumns and auditFrom read events with their hashes (NULL while
// unsealed).
const (
	auditColumns = "e.seq, e.at, e.actor, e.mechanism, e.source, e.action, e.object, e.outcome, e.details, h.hash, e.account"
	auditFrom    = " FROM audit_events e LEFT JOIN audit_hashes h ON h.seq = e.seq"
)

// scanAudit reads events with the IDs of their accounts (0 for none);
// nameAccounts then names those once per distinct account, rather than
// joining accounts on every row (verify reads the whole trail).
func scanAudit(rows *sql.Rows) ([]storage.AuditRecord, []int64, error) {
	defer rows.Close()
	var out []storage.AuditRecord
	var ids []int64
	for rows.Next() {
		var r storage.AuditRecord
		var at int64
		var details string
		var account sql.NullInt64
		if err := rows.Scan(&r.Seq, &at, &r.Actor, &r.Mechanism, &r.Source, &r.Action, &r.Object, &r.Outcome, &details, &r.Hash, &account); err != nil {
			return nil, nil, err
		}
		r.Time = time.UnixMilli(at).UTC()
		if details != "" {
			if err := json.Unmarshal([]byte(details), &r.Details); err != nil {
				return nil, nil, fmt.Errorf("sqlite: audit event %d: details: %w", r.Seq, err)
			}
		}
		out = append(out, r)
		ids = append(ids, account.Int64)
	}
	return out, ids, rows.Err()
}

// nameAccounts sets the Account of recs from their account IDs.
func nameAccounts(ctx context.Context, tx stx, recs []storage.AuditRecord, ids []int64) error {
	names := map[int64]string{0: ""}
	for i, id := range ids {
		name, ok := names[id]
		if !ok {
			if err := tx.QueryRowContext(ctx, "SELECT name FROM accounts WHERE id = ?", id).Scan(&name); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			names[id] = name
		}
		recs[i].Account = name
	}
	return nil
}

// UnsealedAudit implements storage.AuditLog.
func (db *DB) UnsealedAudit(ctx context.Context, limit int) (prev []byte, recs []storage.AuditRecord, err error) {
	if limit <= 0 {
		limit = 1000
	}
	err = db.read(ctx, func(tx stx) error {
		var last int64
		err := tx.QueryRowContext(ctx, "SELECT seq, hash FROM audit_hashes ORDER BY seq DESC LIMIT 1").Scan(&last, &prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT "+auditColumns+auditFrom+" WHERE e.seq > ? ORDER BY e.seq LIMIT ?", last, limit)
		if err != nil {
			return err
		}
		var ids []int64
		if recs, ids, err = scanAudit(rows); err != nil || len(recs) == 0 {
			return err
		}
		return nameAccounts(ctx, tx, recs, ids)
	})
	return prev, recs, err
}

// SealAudit implements storage.AuditLog, in one transaction.
func (db *DB) SealAudit(ctx context.Context, recs []storage.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	return db.write(ctx, func(t *wtx) error {
		var last int64
		if err := t.QueryRowContext(t.ctx, "SELECT coalesce(max(seq), 0) FROM audit_hashes").Scan(&last); err != nil {
			return err
		}
		if recs[0].Seq <= last {
			return fmt.Errorf("sqlite: audit event %d is sealed already", recs[0].Seq)
		}
		var between bool
		if err := t.QueryRowContext(t.ctx, "SELECT EXISTS (SELECT 1 FROM audit_events WHERE seq > ? AND seq < ?)", last, recs[0].Seq).Scan(&between); err != nil {
			return err
		}
		if between {
			return fmt.Errorf("sqlite: audit event %d: the event before it is not sealed", recs[0].Seq)
		}
		for i, r := range recs {
			if len(r.Hash) == 0 {
				return fmt.Errorf("sqlite: audit event %d: no hash to seal", r.Seq)
			}
			if i > 0 && r.Seq <= recs[i-1].Seq {
				return errors.New("sqlite: audit events sealed out of order")
			}
			res, err := t.ExecContext(t.ctx, "INSERT INTO audit_hashes (seq, hash) SELECT seq, ? FROM audit_events WHERE seq = ?", r.Hash, r.Seq)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("sqlite: audit event %d is gone", r.Seq)
			}
		}
		return nil
	})
}

// AuditEvents implements storage.AuditLog.
func (db *DB) AuditEvents(ctx context.Context, q storage.AuditQuery) ([]storage.AuditRecord, error) {
	query, args := auditQuery(q)
	var out []storage.AuditRecord
	err := db.read(ctx, func(tx stx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		var ids []int64
		if out, ids, err = scanAudit(rows); err != nil {
			return err
		}
		return nameAccounts(ctx, tx, out, ids)
	})
	return out, err
}

// auditQuery is the SELECT of AuditEvents. A query by account reads the
// audit_account index (auditSchemaV2), newest first or oldest first,
// without visiting the other accounts' events.
func auditQuery(q storage.AuditQuery) (string, []any) {
	where := []string{"e.seq > ?"}
	args := []any{q.After}
	if !q.Since.IsZero() {
		where = append(where, "e.at >= ?")
		args = append(args, q.Since.UnixMilli())
	}
	if q.Actor != "" {
		where = append(where, "e.actor = ?")
		args = append(args, q.Actor)
	}
	if q.Action != "" {
		where = append(where, "e.action = ?")
		args = append(args, q.Action)
	}
	if q.Account != "" {
		where = append(where, "e.account = (SELECT id FROM accounts WHERE name = ?)")
		args = append(args, q.Account)
	}
	if q.Object != "" {
		where = append(where, "instr(e.object, ?) > 0")
		args = append(args, q.Object)
	}
	if q.Sealed {
		where = append(where, "h.hash IS NOT NULL")
	}
	order := " ORDER BY e.seq"
	if q.Newest {
		order += " DESC"
	}
	query := "SELECT " + auditColumns + auditFrom + " WHERE " + strings.Join(where, " AND ") + order
	if q.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, q.Limit)
	}
	return query, args
}

// AddAuditCheckpoint implements storage.AuditLog.
func (db *DB) AddAuditCheckpoint(ctx context.Context, c storage.AuditCheckpoint) error {
	return db.write(ctx, func(t *wtx) error {
		_, err := t.ExecContext(t.ctx, "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, at, signature) VALUES (?, ?, ?, ?)",
			c.Seq, c.Hash, c.Time.UnixMilli(), c.Signature)
		return err
	})
}

// AuditCheckpoints implements storage.AuditLog.
func (db *DB) AuditCheckpoints(ctx context.Context, after int64) ([]storage.AuditCheckpoint, error) {
	var out []storage.AuditCheckpoint
	err := db.read(ctx, func(tx stx) error {
		rows, err := tx.QueryContext(ctx, "SELECT seq, hash, at, signature FROM audit_checkpoints WHERE seq > ? ORDER BY seq", after)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c storage.AuditCheckpoint
			var at int64
			if err := rows.Scan(&c.Seq, &c.Hash, &at, &c.Signature); err != nil {
				return err
			}
			c.Time = time.UnixMilli(at).UTC()
			out = append(out, c)
		}
		return rows.Err()
	})
	return out, err
}

// PurgeAudit implements storage.AuditLog.
func (db *DB) PurgeAudit(ctx context.Context, through int64) (int64, error) {
	var n int64
	err := db.write(ctx, func(t *wtx) error {
		var cpHash, evHash []byte
		err := t.QueryRowContext(t.ctx, "SELECT hash FROM audit_checkpoints WHERE seq = ?", through).Scan(&cpHash)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: the audit trail is purged only up to a checkpoint, and there is none at event %d", through)
		}
		if err != nil {
			return err
		}
		err = t.QueryRowContext(t.ctx, "SELECT h.hash FROM audit_events e JOIN audit_hashes h ON h.seq = e.seq WHERE e.seq = ?", through).Scan(&evHash)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: audit event %d is not in the trail (purged already?)", through)
		}
		if err != nil {
			return err
		}
		if len(evHash) == 0 || string(evHash) != string(cpHash) {
			return fmt.Errorf("sqlite: the checkpoint at audit event %d does not hold that event's hash: nothing purged", through)
		}
		var newer bool
		if err := t.QueryRowContext(t.ctx, "SELECT EXISTS (SELECT 1 FROM audit_events WHERE seq > ?)", through).Scan(&newer); err != nil {
			return err
		}
		if !newer {
			return fmt.Errorf("sqlite: audit event %d is the newest: it is kept so that its number is never given again", through)
		}
		res, err := t.ExecContext(t.ctx, "DELETE FROM audit_events WHERE seq <= ?", through)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		// The hash of the last event purged stays: the chain goes on
		// from it (UnsealedAudit).
		if _, err := t.ExecContext(t.ctx, "DELETE FROM audit_hashes WHERE seq < ?", through); err != nil {
			return err
		}
		_, err = t.ExecContext(t.ctx, "DELETE FROM audit_checkpoints WHERE seq < ?", through)
		return err
	})
	return n, err
}

var _ storage.AuditLog = (*DB)(nil)
