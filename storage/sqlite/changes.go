package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/carepost/carepost/storage"
)

// What changed since a MODSEQ (storage.Store.Changes) and since an
// account's change counter (AccountChanges), from the tables of
// mailSchemaV5: the messages table gives the messages changed after a
// MODSEQ (messages_modseq), the tombstones those expunged after it, and
// account_changes the log of mailbox and subscription changes. Every write
// that expunges (Expunge, Move, the rename of INBOX) buries its UIDs in
// the same transaction, and every write that changes the mailbox list or
// the subscriptions logs it there, so that what Changes reads is exactly
// what committed, from this DB or from another process on the directory.

// DefaultChangeWindow is how long tombstones and account changes are kept
// when Options.ChangeWindow is 0: a client that comes back within it
// resynchronises with the changes alone (RFC 7162 §3.2.5), an older one in
// full.
const DefaultChangeWindow = 30 * 24 * time.Hour

// pruneEvery bounds the time between two prunes of the change tables;
// a smaller window prunes more often.
const pruneEvery = time.Hour

func changeWindow(w time.Duration) time.Duration {
	if w <= 0 {
		return DefaultChangeWindow
	}
	return w
}

// bury leaves a tombstone for each of uids, expunged from mailboxID at
// modseq (one statement, whatever the count).
func bury(t *wtx, mailboxID int64, modseq uint64, uids []uint32) error {
	if len(uids) == 0 {
		return nil
	}
	_, err := t.ExecContext(t.ctx, "INSERT INTO tombstones (mailbox_id, modseq, uid, at) SELECT ?, ?, value, ? FROM json_each(?)",
		mailboxID, modseq, time.Now().UnixNano(), uidsJSON(uids))
	return err
}

// logAccount appends a change to the account's log and bumps its counter.
func logAccount(t *wtx, accountID int64, kind storage.AccountChangeKind, mailboxID int64, name, oldName string) error {
	var seq int64
	if err := t.QueryRowContext(t.ctx, "UPDATE accounts SET change_seq = change_seq + 1 WHERE id = ? RETURNING change_seq", accountID).Scan(&seq); err != nil {
		return err
	}
	_, err := t.ExecContext(t.ctx, "INSERT INTO account_changes (account_id, seq, kind, mailbox_id, name, old_name, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		accountID, seq, int(kind), mailboxID, name, oldName, time.Now().UnixNano())
	if err != nil || !t.audit {
		return err
	}
	action := accountChangeActions[kind]
	if action == "" {
		return nil // subscriptions are no access to health data
	}
	var account string
	if err := t.QueryRowContext(t.ctx, "SELECT name FROM accounts WHERE id = ?", accountID).Scan(&account); err != nil {
		return err
	}
	d := map[string]string{"mailbox": strconv.FormatInt(mailboxID, 10)}
	if oldName != "" {
		d["old_name"] = oldName
	}
	return t.eventIn(accountID, action, account+"/"+name, d)
}

// accountChangeActions are the audit actions of the account changes that
// are recorded (logAccount).
var accountChangeActions = map[storage.AccountChangeKind]string{
	storage.AccountMailboxCreated: "mailbox.create",
	storage.AccountMailboxDeleted: "mailbox.delete",
	storage.AccountMailboxRenamed: "mailbox.rename",
}

// The reads of Changes: the mailbox row, then the messages whose MODSEQ
// is above since (a range of messages_modseq, or the whole mailbox for
// since = 0) and the tombstones above it (a range of their primary key).
const (
	qChangesMailbox = "SELECT uidvalidity, uidnext, highest_modseq, expunged_modseq FROM mailboxes WHERE id = ?"
	qChangedSince   = "SELECT uid, flags, keywords, internal_date, date_offset, size, modseq FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid"
	qExpungedSince  = "SELECT uid FROM tombstones WHERE mailbox_id = ? AND modseq > ? ORDER BY uid"
)

// Changes implements storage.Store, in one read transaction.
func (db *DB) Changes(ctx context.Context, mailboxID int64, since uint64) (storage.Changes, error) {
	var c storage.Changes
	err := db.read(ctx, func(tx stx) error {
		var floor uint64
		err := tx.QueryRowContext(ctx, qChangesMailbox, mailboxID).Scan(&c.UIDValidity, &c.UIDNext, &c.HighestModSeq, &floor)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: id %d", storage.ErrNoMailbox, mailboxID)
		}
		if err != nil {
			return err
		}
		if since == c.HighestModSeq {
			return nil
		}
		if since > c.HighestModSeq {
			// A MODSEQ this mailbox never had (a restore from a backup):
			// nothing since it can be trusted.
			c.Truncated, since = true, 0
		} else if since > 0 && since < floor {
			c.Truncated = true
		}
		var rows *sql.Rows
		if since == 0 {
			rows, err = tx.QueryContext(ctx, qMessagesAll, mailboxID)
		} else {
			rows, err = tx.QueryContext(ctx, qChangedSince, mailboxID, since)
		}
		if err != nil {
			return err
		}
		c.Messages, err = scanMessages(rows)
		if err != nil || since == 0 || c.Truncated {
			return err
		}
		rows, err = tx.QueryContext(ctx, qExpungedSince, mailboxID, since)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var uid int64
			if err := rows.Scan(&uid); err != nil {
				return err
			}
			c.Expunged = append(c.Expunged, uint32(uid))
		}
		return rows.Err()
	})
	if err != nil {
		return storage.Changes{}, err
	}
	return c, nil
}

// scanMessages reads rows of (uid, flags, keywords, internal_date,
// date_offset, size, modseq) and closes them.
func scanMessages(rows *sql.Rows) ([]storage.Message, error) {
	defer rows.Close()
	var zones storage.ZoneCache
	var out []storage.Message
	for rows.Next() {
		var uid, flags, nanos, off, size, modseq int64
		var keywords string
		if err := rows.Scan(&uid, &flags, &keywords, &nanos, &off, &size, &modseq); err != nil {
			return nil, err
		}
		out = append(out, storage.Message{
			UID:          uint32(uid),
			Flags:        formatFlags(flags, keywords),
			InternalDate: zones.Date(nanos, int(off)),
			Size:         size,
			ModSeq:       uint64(modseq),
		})
	}
	return out, rows.Err()
}

// AccountChanges implements storage.Store, in one read transaction.
func (db *DB) AccountChanges(ctx context.Context, account string, since uint64) (storage.AccountChanges, error) {
	var c storage.AccountChanges
	err := db.read(ctx, func(tx stx) error {
		var id int64
		var floor uint64
		err := tx.QueryRowContext(ctx, "SELECT id, change_seq, change_floor FROM accounts WHERE name = ?", account).Scan(&id, &c.Seq, &floor)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %s", storage.ErrNoAccount, account)
		}
		if err != nil {
			return err
		}
		if since == c.Seq {
			return nil
		}
		if since > c.Seq || since < floor {
			c.Truncated = true
			return nil
		}
		rows, err := tx.QueryContext(ctx, "SELECT seq, kind, mailbox_id, name, old_name FROM account_changes WHERE account_id = ? AND seq > ? ORDER BY seq", id, since)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e storage.AccountChange
			if err := rows.Scan(&e.Seq, &e.Kind, &e.MailboxID, &e.Name, &e.OldName); err != nil {
				return err
			}
			c.Events = append(c.Events, e)
		}
		return rows.Err()
	})
	if err != nil {
		return storage.AccountChanges{}, err
	}
	return c, nil
}

// PruneChanges implements storage.Store: the floors first (the highest
// MODSEQ and counter forgotten, per mailbox and per account), then the
// rows, one range of the "at" indexes each, in one lazy op (a prune
// undone by a power cut is done again at the next).
func (db *DB) PruneChanges(ctx context.Context, before time.Time) error {
	cut := before.UnixNano()
	return db.writeLazy(ctx, func(t *wtx) error {
		for _, q := range []string{
			`UPDATE mailboxes SET expunged_modseq = max(expunged_modseq, x.m)
			FROM (SELECT mailbox_id, max(modseq) AS m FROM tombstones WHERE at < ? GROUP BY mailbox_id) AS x
			WHERE mailboxes.id = x.mailbox_id`,
			"DELETE FROM tombstones WHERE at < ?",
			`UPDATE accounts SET change_floor = max(change_floor, x.m)
			FROM (SELECT account_id, max(seq) AS m FROM account_changes WHERE at < ? GROUP BY account_id) AS x
			WHERE accounts.id = x.account_id`,
			"DELETE FROM account_changes WHERE at < ?",
			"DELETE FROM received_once WHERE at < ?",
		} {
			if _, err := t.ExecContext(t.ctx, q, cut); err != nil {
				return err
			}
		}
		return nil
	})
}

// pruneLoop keeps the change tables to the window: at Open, then every
// pruneEvery (or a quarter of a shorter window) until stop is closed.
// Every process on the directory prunes; a prune that finds nothing is
// one cheap op.
func (db *DB) pruneLoop(stop, done chan struct{}) {
	defer close(done)
	every := min(pruneEvery, max(db.window/4, time.Second))
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		// An error (a busy directory) is retried at the next round:
		// tombstones kept longer do no harm. Close waits for this op.
		db.PruneChanges(context.Background(), time.Now().Add(-db.window))
		timer.Reset(every)
	}
}

// Received implements storage.Store.
func (db *DB) Received(ctx context.Context, key string, mailboxIDs []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if key == "" || len(mailboxIDs) == 0 {
		return out, nil
	}
	ids, err := json.Marshal(mailboxIDs)
	if err != nil {
		return nil, err
	}
	err = db.read(ctx, func(tx stx) error {
		rows, err := tx.QueryContext(ctx, "SELECT mailbox_id FROM received_once WHERE key = ? AND mailbox_id IN (SELECT value FROM json_each(?))", key, string(ids))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			out[id] = true
		}
		return rows.Err()
	})
	return out, err
}
