package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/carepost/carepost/storage"
)

// Accounts, mailboxes and subscriptions (RFC 9051 §6.3).

// read runs fn in a read transaction: everything fn reads is one snapshot.
func (db *DB) read(ctx context.Context, fn func(tx stx) error) error {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(stx{tx, db.rstmts})
}

// querier is a *sql.Tx of either pool.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func accountID(ctx context.Context, q querier, account string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, "SELECT id FROM accounts WHERE name = ?", account).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: %s", storage.ErrNoAccount, account)
	}
	return id, err
}

const mailboxColumns = `m.id, a.name, m.name, m.special_use,
	EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = m.account_id AND s.name = m.name),
	m.uidvalidity, m.uidnext, m.highest_modseq`

const mailboxFrom = ` FROM mailboxes m JOIN accounts a ON a.id = m.account_id `

func scanMailbox(row interface{ Scan(...any) error }) (storage.Mailbox, error) {
	var mb storage.Mailbox
	err := row.Scan(&mb.ID, &mb.Account, &mb.Name, &mb.SpecialUse, &mb.Subscribed,
		&mb.UIDValidity, &mb.UIDNext, &mb.HighestModSeq)
	return mb, err
}

// mailboxByName finds a mailbox of an existing account; name is canonical.
func mailboxByName(ctx context.Context, q querier, accountID int64, name string) (storage.Mailbox, error) {
	mb, err := scanMailbox(q.QueryRowContext(ctx, "SELECT "+mailboxColumns+mailboxFrom+
		"WHERE m.account_id = ? AND m.name = ?", accountID, name))
	if errors.Is(err, sql.ErrNoRows) {
		return mb, fmt.Errorf("%w: %s", storage.ErrNoMailbox, name)
	}
	return mb, err
}

// CreateAccount implements storage.Store. The default mailboxes are also
// subscribed: most clients show only subscribed folders.
func (db *DB) CreateAccount(ctx context.Context, account string) error {
	if account == "" {
		return fmt.Errorf("%w: empty account name", storage.ErrNoAccount)
	}
	return db.write(ctx, func(t *wtx) error {
		var id int64
		err := t.QueryRowContext(t.ctx, "INSERT INTO accounts (name) VALUES (?) ON CONFLICT (name) DO NOTHING RETURNING id", account).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // exists: idempotent
		}
		if err != nil {
			return err
		}
		for _, d := range storage.DefaultMailboxes {
			if _, err := createMailbox(t, id, d.Name, d.SpecialUse); err != nil {
				return err
			}
			if _, err := t.ExecContext(t.ctx, "INSERT INTO subscriptions (account_id, name) VALUES (?, ?)", id, d.Name); err != nil {
				return err
			}
			if err := logAccount(t, id, storage.AccountSubscribed, 0, d.Name, ""); err != nil {
				return err
			}
		}
		return nil
	})
}

// createMailbox inserts a mailbox with a fresh UIDVALIDITY: the greater of
// the account's last one + 1 and the current time in seconds, so that it
// exceeds every UIDVALIDITY the account ever used (RFC 9051 §2.3.1.1: a
// re-created name must not reuse one), also across a restore of an older
// database. Its ID is new too (AUTOINCREMENT, mailSchemaV5). The creation
// is logged for AccountChanges.
func createMailbox(t *wtx, accountID int64, name, specialUse string) (storage.Mailbox, error) {
	var exists bool
	if err := t.QueryRowContext(t.ctx, "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?)", accountID, name).Scan(&exists); err != nil {
		return storage.Mailbox{}, err
	}
	if exists {
		return storage.Mailbox{}, fmt.Errorf("%w: %s", storage.ErrMailboxExists, name)
	}
	var uidValidity int64
	if err := t.QueryRowContext(t.ctx, "UPDATE accounts SET last_uidvalidity = max(last_uidvalidity + 1, ?) WHERE id = ? RETURNING last_uidvalidity",
		time.Now().Unix(), accountID).Scan(&uidValidity); err != nil {
		return storage.Mailbox{}, err
	}
	if uidValidity > math.MaxUint32 {
		return storage.Mailbox{}, errors.New("sqlite: the account has used every UIDVALIDITY")
	}
	var id int64
	if err := t.QueryRowContext(t.ctx, "INSERT INTO mailboxes (account_id, name, special_use, uidvalidity) VALUES (?, ?, ?, ?) RETURNING id",
		accountID, name, specialUse, uidValidity).Scan(&id); err != nil {
		return storage.Mailbox{}, err
	}
	if err := logAccount(t, accountID, storage.AccountMailboxCreated, id, name, ""); err != nil {
		return storage.Mailbox{}, err
	}
	return mailboxByName(t.ctx, t, accountID, name)
}

// ListMailboxes implements storage.Store. Like GetMailbox and
// Subscriptions, one statement outside a transaction (poolQ): clients call
// them at every LIST, STATUS and APPEND; the account is looked up apart
// only to tell a missing account from an empty answer.
func (db *DB) ListMailboxes(ctx context.Context, account string) ([]storage.Mailbox, error) {
	q := poolQ{db.rstmts}
	rows, err := q.QueryContext(ctx, "SELECT "+mailboxColumns+mailboxFrom+"WHERE a.name = ? ORDER BY m.name", account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list []storage.Mailbox
	for rows.Next() {
		mb, err := scanMailbox(rows)
		if err != nil {
			return nil, err
		}
		list = append(list, mb)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		if _, err := accountID(ctx, q, account); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// GetMailbox implements storage.Store.
func (db *DB) GetMailbox(ctx context.Context, account, name string) (storage.Mailbox, error) {
	name, err := canonName(name)
	if err != nil {
		return storage.Mailbox{}, err
	}
	q := poolQ{db.rstmts}
	mb, err := scanMailbox(q.QueryRowContext(ctx, "SELECT "+mailboxColumns+mailboxFrom+"WHERE a.name = ? AND m.name = ?", account, name))
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := accountID(ctx, q, account); err != nil {
			return storage.Mailbox{}, err
		}
		return storage.Mailbox{}, fmt.Errorf("%w: %s", storage.ErrNoMailbox, name)
	}
	return mb, err
}

func validSpecialUse(s string) bool {
	if s == "" {
		return true
	}
	for _, d := range storage.DefaultMailboxes {
		if d.SpecialUse == s {
			return true
		}
	}
	return false
}

// CreateMailbox implements storage.Store.
func (db *DB) CreateMailbox(ctx context.Context, account, name, specialUse string) (storage.Mailbox, error) {
	name, err := canonName(name)
	if err != nil {
		return storage.Mailbox{}, err
	}
	if !validSpecialUse(specialUse) {
		return storage.Mailbox{}, fmt.Errorf("sqlite: unknown special-use attribute %q", specialUse)
	}
	var mb storage.Mailbox
	err = db.write(ctx, func(t *wtx) error {
		id, err := accountID(t.ctx, t, account)
		if err != nil {
			return err
		}
		mb, err = createMailbox(t, id, name, specialUse)
		return err
	})
	return mb, err
}

// DeleteMailbox implements storage.Store. A mailbox with children is
// deleted too: its messages and its row go, the children stay where they
// are and the protocol shows the name as a \Noselect parent (RFC 9051
// §6.3.5 lets the server keep it as a \Noselect name; imaptest and most
// clients delete a parent before its children). Subscriptions are kept
// (RFC 9051 §6.3.7: the server must not remove them on its own).
func (db *DB) DeleteMailbox(ctx context.Context, account, name string) error {
	name, err := canonName(name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return storage.ErrSpecialMailbox
	}
	return db.write(ctx, func(t *wtx) error {
		aid, err := accountID(t.ctx, t, account)
		if err != nil {
			return err
		}
		mb, err := mailboxByName(t.ctx, t, aid, name)
		if err != nil {
			return err
		}
		if _, err := t.ExecContext(t.ctx, "DELETE FROM messages WHERE mailbox_id = ?", mb.ID); err != nil {
			return err
		}
		// Its tombstones go with it: its ID is never used again, so
		// nobody can ask for its changes.
		if _, err := t.ExecContext(t.ctx, "DELETE FROM tombstones WHERE mailbox_id = ?", mb.ID); err != nil {
			return err
		}
		if err := logAccount(t, aid, storage.AccountMailboxDeleted, mb.ID, mb.Name, ""); err != nil {
			return err
		}
		if _, err := t.ExecContext(t.ctx, "DELETE FROM mailboxes WHERE id = ?", mb.ID); err != nil {
			return err
		}
		t.publish(storage.Change{Kind: storage.MailboxDeleted, MailboxID: mb.ID, ModSeq: mb.HighestModSeq + 1})
		return t.collectGarbage()
	})
}

// RenameMailbox implements storage.Store. Children are renamed with their
// parent and keep their IDs, UIDVALIDITY and messages (RFC 9051 §6.3.6);
// subscriptions of the renamed names follow them. Renaming INBOX makes a
// new mailbox, moves every message of INBOX into it with the same UIDs (the
// new mailbox has its own UIDVALIDITY) and leaves INBOX empty, its UIDNEXT
// unchanged; children of INBOX stay where they are.
func (db *DB) RenameMailbox(ctx context.Context, account, oldName, newName string) error {
	oldName, err := canonName(oldName)
	if err != nil {
		return err
	}
	newName, err = canonName(newName)
	if err != nil {
		return err
	}
	if newName == "INBOX" {
		return fmt.Errorf("%w: INBOX", storage.ErrMailboxExists)
	}
	// A mailbox cannot move under itself; INBOX can, as its rename only
	// moves its messages (to "INBOX/Old", say).
	if oldName != "INBOX" && strings.HasPrefix(newName, oldName+string(storage.Delimiter)) {
		return fmt.Errorf("%w: %q cannot be moved inside itself", storage.ErrInvalidName, oldName)
	}
	return db.write(ctx, func(t *wtx) error {
		aid, err := accountID(t.ctx, t, account)
		if err != nil {
			return err
		}
		src, err := mailboxByName(t.ctx, t, aid, oldName)
		if err != nil {
			return err
		}
		if oldName == "INBOX" {
			return db.renameInbox(t, aid, src, newName)
		}
		lo, hi := childRange(oldName)
		rows, err := t.QueryContext(t.ctx, "SELECT id, name FROM mailboxes WHERE account_id = ? AND (name = ? OR (name >= ? AND name < ?)) ORDER BY name", aid, oldName, lo, hi)
		if err != nil {
			return err
		}
		type rename struct {
			id       int64
			old, new string
		}
		var list []rename
		for rows.Next() {
			var r rename
			if err := rows.Scan(&r.id, &r.old); err != nil {
				rows.Close()
				return err
			}
			r.new = newName + r.old[len(oldName):]
			list = append(list, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		renamed := make(map[string]bool, len(list))
		for _, r := range list {
			renamed[r.old] = true
		}
		for _, r := range list {
			if renamed[r.new] {
				continue // freed by this rename
			}
			var taken bool
			if err := t.QueryRowContext(t.ctx, "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE account_id = ? AND name = ?)", aid, r.new).Scan(&taken); err != nil {
				return err
			}
			if taken {
				return fmt.Errorf("%w: %s", storage.ErrMailboxExists, r.new)
			}
		}
		// Two passes: a new name may be the old name of another renamed
		// mailbox ("a/b" to "a": "a/b/b" becomes "a/b").
		for _, r := range list {
			if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET name = ? WHERE id = ?", fmt.Sprintf("\x00rename %d", r.id), r.id); err != nil {
				return err
			}
		}
		for _, r := range list {
			if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET name = ? WHERE id = ?", r.new, r.id); err != nil {
				return err
			}
			if err := logAccount(t, aid, storage.AccountMailboxRenamed, r.id, r.new, r.old); err != nil {
				return err
			}
			res, err := t.ExecContext(t.ctx, "DELETE FROM subscriptions WHERE account_id = ? AND name = ?", aid, r.old)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				if err := logAccount(t, aid, storage.AccountUnsubscribed, 0, r.old, ""); err != nil {
					return err
				}
				res, err := t.ExecContext(t.ctx, "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)", aid, r.new)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n > 0 {
					if err := logAccount(t, aid, storage.AccountSubscribed, 0, r.new, ""); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
}

func (db *DB) renameInbox(t *wtx, aid int64, inbox storage.Mailbox, newName string) error {
	dst, err := createMailbox(t, aid, newName, "")
	if err != nil {
		return err
	}
	var modseq uint64
	if err := t.QueryRowContext(t.ctx, "UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq", inbox.ID).Scan(&modseq); err != nil {
		return err
	}
	// The moved messages get the first modseq of the new mailbox.
	rows, err := t.QueryContext(t.ctx, "UPDATE messages SET mailbox_id = ?, modseq = 2 WHERE mailbox_id = ? RETURNING uid", dst.ID, inbox.ID)
	if err != nil {
		return err
	}
	var uids []uint32
	for rows.Next() {
		var uid uint32
		if err := rows.Scan(&uid); err != nil {
			rows.Close()
			return err
		}
		uids = append(uids, uid)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if _, err := t.ExecContext(t.ctx, `UPDATE mailboxes SET (uidnext, highest_modseq, recent_uid, keywords) =
		(SELECT uidnext, 2, recent_uid, keywords FROM mailboxes WHERE id = ?) WHERE id = ?`, inbox.ID, dst.ID); err != nil {
		return err
	}
	// With the claims not written yet (recent.go).
	if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET recent_uid = max(recent_uid, ?) WHERE id = ?",
		db.recent.seen(inbox.ID, inbox.UIDValidity, 0), dst.ID); err != nil {
		return err
	}
	sortUIDs(uids)
	if err := bury(t, inbox.ID, modseq, uids); err != nil {
		return err
	}
	for _, uid := range uids {
		t.publish(storage.Change{Kind: storage.MessageExpunged, MailboxID: inbox.ID, UID: uid, ModSeq: modseq})
	}
	return nil
}

// SetSubscribed implements storage.Store.
func (db *DB) SetSubscribed(ctx context.Context, account, name string, subscribed bool) error {
	name, err := canonName(name)
	if err != nil {
		return err
	}
	return db.write(ctx, func(t *wtx) error {
		aid, err := accountID(t.ctx, t, account)
		if err != nil {
			return err
		}
		var res sql.Result
		kind := storage.AccountSubscribed
		if subscribed {
			res, err = t.ExecContext(t.ctx, "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)", aid, name)
		} else {
			kind = storage.AccountUnsubscribed
			res, err = t.ExecContext(t.ctx, "DELETE FROM subscriptions WHERE account_id = ? AND name = ?", aid, name)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // no change, nothing to log
		}
		return logAccount(t, aid, kind, 0, name, "")
	})
}

// Subscriptions implements storage.Store.
func (db *DB) Subscriptions(ctx context.Context, account string) ([]string, error) {
	q := poolQ{db.rstmts}
	rows, err := q.QueryContext(ctx, "SELECT s.name FROM subscriptions s JOIN accounts a ON a.id = s.account_id WHERE a.name = ? ORDER BY s.name", account)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if _, err := accountID(ctx, q, account); err != nil {
			return nil, err
		}
	}
	return names, nil
}
