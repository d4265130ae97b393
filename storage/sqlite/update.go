package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/carepost/carepost/storage"
)

// Changes to existing messages: STORE, COPY, MOVE, EXPUNGE. Each is one op
// of the committer, so each is atomic and published in commit order. One
// command bumps the mailbox's HIGHESTMODSEQ once, and every message it
// changed gets that MODSEQ (RFC 7162 §3.1: a command's changes may share
// one mod-sequence).

// StoreFlags implements storage.Store. A message whose flags do not change
// keeps its MODSEQ (RFC 7162 §3.1.3 bumps it on actual changes only); with
// FlagsSet it is still returned, with its current state.
func (db *DB) StoreFlags(ctx context.Context, mailboxID int64, uids []uint32, op storage.FlagOp, flags []string) ([]storage.FlagUpdate, error) {
	fs, err := parseFlags(flags)
	if err != nil {
		return nil, err
	}
	var out []storage.FlagUpdate
	err = db.writeState(ctx, func(t *wtx) error {
		out = out[:0]
		if len(uids) == 0 {
			return mailboxExists(t.ctx, t, mailboxID)
		}
		rows, err := t.QueryContext(t.ctx, `SELECT uid, flags, keywords, modseq FROM messages
			WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`, mailboxID, uidsJSON(uids))
		if err != nil {
			return err
		}
		type row struct {
			uid         uint32
			bits, nbits int64
			kw, nkw     string
			modseq      uint64
		}
		var list []row
		changed := 0
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.uid, &r.bits, &r.kw, &r.modseq); err != nil {
				rows.Close()
				return err
			}
			r.nbits, r.nkw = applyFlags(r.bits, r.kw, op, fs)
			if r.nbits != r.bits || !sameKeywords(r.kw, r.nkw) {
				changed++
			} else {
				r.nkw = r.kw
			}
			list = append(list, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var modseq uint64
		if changed == 0 {
			// Nothing to write: the mailbox must still exist. When
			// something changes, reserve fails for a mailbox that is gone.
			if err := mailboxExists(t.ctx, t, mailboxID); err != nil {
				return err
			}
		} else {
			var kw string
			if _, modseq, _, kw, err = reserve(t, mailboxID, 0); err != nil {
				return err
			}
			if op != storage.FlagsRemove {
				if err := addMailboxKeywords(t, mailboxID, kw, fs.keywords); err != nil {
					return err
				}
			}
		}
		stmt, err := t.PrepareContext(t.ctx, "UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?")
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, r := range list {
			same := r.nbits == r.bits && r.nkw == r.kw
			if same && op != storage.FlagsSet {
				continue
			}
			u := storage.FlagUpdate{UID: r.uid, Flags: formatFlags(r.nbits, r.nkw), ModSeq: r.modseq}
			if !same {
				u.ModSeq = modseq
				if _, err := stmt.ExecContext(t.ctx, r.nbits, r.nkw, modseq, mailboxID, r.uid); err != nil {
					return err
				}
				t.publish(storage.Change{Kind: storage.FlagsChanged, MailboxID: mailboxID, UID: r.uid, Flags: u.Flags, ModSeq: modseq})
			}
			out = append(out, u)
		}
		if changed == 0 {
			return nil
		}
		var uidsChanged []uint32
		for _, r := range list {
			if r.nbits != r.bits || r.nkw != r.kw {
				uidsChanged = append(uidsChanged, r.uid)
			}
		}
		return t.mailboxEvent(mailboxID, "message.flags", mailboxObject(mailboxID), map[string]string{
			"mailbox": strconv.FormatInt(mailboxID, 10), "uids": storage.FormatUIDs(uidsChanged),
			"op": flagOpNames[op], "flags": strings.Join(flags, " ")})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// flagOpNames name the flag operations in audit events.
var flagOpNames = map[storage.FlagOp]string{storage.FlagsSet: "set", storage.FlagsAdd: "add", storage.FlagsRemove: "remove"}

// mailboxObject is the object of an audit event about messages of a
// mailbox, by its ID (never reused, storage.Store).
func mailboxObject(id int64) string { return "mailbox:" + strconv.FormatInt(id, 10) }

// sameKeywords compares two keyword lists as sets, case-insensitively.
func sameKeywords(a, b string) bool {
	if a == b {
		return true
	}
	la, lb := splitKeywords(a), splitKeywords(b)
	if len(la) != len(lb) {
		return false
	}
	for _, k := range la {
		if !hasKeyword(lb, k) {
			return false
		}
	}
	return true
}

// Copy implements storage.Store.
func (db *DB) Copy(ctx context.Context, srcMailboxID int64, uids []uint32, dstMailboxID int64) (storage.CopyResult, error) {
	return db.copyMove(ctx, srcMailboxID, uids, dstMailboxID, false)
}

// Move implements storage.Store: one op, so the copy and the expunge commit
// together or not at all (RFC 6851 §3.3). Moving into the same mailbox is
// allowed: the messages get new UIDs there.
func (db *DB) Move(ctx context.Context, srcMailboxID int64, uids []uint32, dstMailboxID int64) (storage.CopyResult, error) {
	return db.copyMove(ctx, srcMailboxID, uids, dstMailboxID, true)
}

func (db *DB) copyMove(ctx context.Context, srcID int64, uids []uint32, dstID int64, move bool) (storage.CopyResult, error) {
	var zones storage.ZoneCache
	var res storage.CopyResult
	err := db.write(ctx, func(t *wtx) error {
		res = storage.CopyResult{}
		var srcModseq uint64
		err := t.QueryRowContext(t.ctx, "SELECT highest_modseq FROM mailboxes WHERE id = ?", srcID).Scan(&srcModseq)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: id %d", storage.ErrNoMailbox, srcID)
		}
		if err != nil {
			return err
		}
		err = t.QueryRowContext(t.ctx, "SELECT uidvalidity, highest_modseq FROM mailboxes WHERE id = ?", dstID).Scan(&res.UIDValidity, &res.ModSeq)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNoMailbox
		}
		if err != nil {
			return err
		}
		if move {
			res.SourceModSeq = srcModseq
		}
		if len(uids) == 0 {
			return nil
		}
		rows, err := t.QueryContext(t.ctx, `SELECT uid, blob_id, flags, keywords, internal_date, date_offset, size FROM messages
			WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`, srcID, uidsJSON(uids))
		if err != nil {
			return err
		}
		type row struct {
			uid               uint32
			blob, flags, date int64
			kw                string
			off               int
			size              int64
		}
		var list []row
		var keywords []string
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.uid, &r.blob, &r.flags, &r.kw, &r.date, &r.off, &r.size); err != nil {
				rows.Close()
				return err
			}
			for _, k := range splitKeywords(r.kw) {
				keywords = addKeyword(keywords, k)
			}
			list = append(list, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(list) == 0 {
			return nil
		}
		// The mailbox rows are written in ascending ID order (storage's
		// lock order): the source's first when its ID is lower. With one
		// write lock for the whole database SQLite cannot deadlock
		// anyway; the order is the one a row-locking backend must keep.
		if move && srcID < dstID {
			if _, res.SourceModSeq, _, _, err = reserve(t, srcID, 0); err != nil {
				return err
			}
		}
		first, modseq, _, kw, err := reserve(t, dstID, len(list))
		if err != nil {
			return err
		}
		res.ModSeq = modseq
		if err := addMailboxKeywords(t, dstID, kw, keywords); err != nil {
			return err
		}
		stmt, err := t.PrepareContext(t.ctx, insertMessage)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, r := range list {
			uid := first + uint32(i)
			if _, err := stmt.ExecContext(t.ctx, dstID, uid, r.blob, r.flags, r.kw, r.date, r.off, r.size, modseq); err != nil {
				return err
			}
			res.SourceUIDs = append(res.SourceUIDs, r.uid)
			res.DestUIDs = append(res.DestUIDs, uid)
			t.publish(storage.Change{Kind: storage.MessageAdded, MailboxID: dstID, UID: uid, Flags: formatFlags(r.flags, r.kw), ModSeq: modseq,
				InternalDate: zones.Date(r.date, r.off), Size: r.size})
		}
		if !move {
			return t.mailboxEvent(srcID, "message.copy", mailboxObject(srcID), copyDetails(srcID, dstID, res))
		}
		if _, err := t.ExecContext(t.ctx, "DELETE FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))",
			srcID, uidsJSON(res.SourceUIDs)); err != nil {
			return err
		}
		if srcID >= dstID {
			// The source after the destination; a move into the same
			// mailbox thus gives its expunges a MODSEQ above the copies'.
			if _, res.SourceModSeq, _, _, err = reserve(t, srcID, 0); err != nil {
				return err
			}
		}
		if err := bury(t, srcID, res.SourceModSeq, res.SourceUIDs); err != nil {
			return err
		}
		for _, uid := range res.SourceUIDs {
			t.publish(storage.Change{Kind: storage.MessageExpunged, MailboxID: srcID, UID: uid, ModSeq: res.SourceModSeq})
		}
		return t.mailboxEvent(srcID, "message.move", mailboxObject(srcID), copyDetails(srcID, dstID, res))
	})
	if err != nil {
		return storage.CopyResult{}, err
	}
	return res, nil
}

// Expunge implements storage.Store. The expunged UIDs are buried
// (tombstones, changes.go) in the same transaction.
func (db *DB) Expunge(ctx context.Context, mailboxID int64, uids []uint32) (storage.ExpungeResult, error) {
	var out []uint32
	var modseq uint64
	err := db.writeState(ctx, func(t *wtx) error {
		out = nil
		// The messages go first: when some do, reserve reads the MODSEQ
		// (and fails for a mailbox that is gone, which has no messages
		// anyway); only an expunge with nothing to expunge reads it alone.
		var rows *sql.Rows
		var err error
		const del = "DELETE FROM messages WHERE mailbox_id = ? AND flags & ? != 0"
		if uids == nil {
			rows, err = t.QueryContext(t.ctx, del+" RETURNING uid", mailboxID, flagDeleted)
		} else if len(uids) == 0 {
			return currentModSeq(t, mailboxID, &modseq)
		} else {
			rows, err = t.QueryContext(t.ctx, del+" AND uid IN (SELECT value FROM json_each(?)) RETURNING uid", mailboxID, flagDeleted, uidsJSON(uids))
		}
		if err != nil {
			return err
		}
		for rows.Next() {
			var uid uint32
			if err := rows.Scan(&uid); err != nil {
				rows.Close()
				return err
			}
			out = append(out, uid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return currentModSeq(t, mailboxID, &modseq)
		}
		sortUIDs(out)
		if _, modseq, _, _, err = reserve(t, mailboxID, 0); err != nil {
			return err
		}
		if err := bury(t, mailboxID, modseq, out); err != nil {
			return err
		}
		for _, uid := range out {
			t.publish(storage.Change{Kind: storage.MessageExpunged, MailboxID: mailboxID, UID: uid, ModSeq: modseq})
		}
		if err := t.mailboxEvent(mailboxID, "message.expunge", mailboxObject(mailboxID), map[string]string{
			"mailbox": strconv.FormatInt(mailboxID, 10), "uids": storage.FormatUIDs(out)}); err != nil {
			return err
		}
		return t.collectGarbage()
	})
	if err != nil {
		return storage.ExpungeResult{}, err
	}
	return storage.ExpungeResult{UIDs: out, ModSeq: modseq}, nil
}

// currentModSeq reads a mailbox's HIGHESTMODSEQ into modseq, or fails
// with storage.ErrNoMailbox.
func currentModSeq(t *wtx, mailboxID int64, modseq *uint64) error {
	err := t.QueryRowContext(t.ctx, "SELECT highest_modseq FROM mailboxes WHERE id = ?", mailboxID).Scan(modseq)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: id %d", storage.ErrNoMailbox, mailboxID)
	}
	return err
}

// copyDetails are the details of a copy's or a move's audit event.
func copyDetails(srcID, dstID int64, res storage.CopyResult) map[string]string {
	return map[string]string{
		"mailbox": strconv.FormatInt(srcID, 10), "uids": storage.FormatUIDs(res.SourceUIDs),
		"dest": strconv.FormatInt(dstID, 10), "dest_uids": storage.FormatUIDs(res.DestUIDs)}
}
