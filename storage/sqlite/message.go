package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/carepost/carepost/storage"
)

// Messages: delivery, STATUS/SELECT snapshots, metadata and bodies.

// The read queries on the hot paths, each one range scan or lookup of the
// messages primary key (TestQueryPlans checks the plans).
const (
	// qStatus aggregates the counters of STATUS in one pass.
	qStatus = `SELECT count(*), coalesce(sum(size), 0),
		coalesce(sum(flags & ? = 0), 0), coalesce(sum(flags & ? != 0), 0), coalesce(sum(uid > ?), 0),
		min(CASE WHEN flags & ? = 0 THEN uid END)
		FROM messages WHERE mailbox_id = ?`
	// qSelect reads what SELECT needs of every message.
	qSelect = "SELECT uid, flags, size FROM messages WHERE mailbox_id = ? ORDER BY uid"
	// qMessagesAll and qMessagesSome read message metadata.
	qMessagesAll  = "SELECT uid, flags, keywords, internal_date, date_offset, size, modseq FROM messages WHERE mailbox_id = ? ORDER BY uid"
	qMessagesSome = "SELECT uid, flags, keywords, internal_date, date_offset, size, modseq FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid"
	// qOpenBody finds the blob of a message.
	qOpenBody = "SELECT b.name, b.size, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?"
)

func sortUIDs(uids []uint32) { slices.Sort(uids) }

// uidsJSON encodes uids as a JSON array for "uid IN (SELECT value FROM
// json_each(?))": one statement, one bound value, whatever the count.
func uidsJSON(uids []uint32) string {
	var b strings.Builder
	b.Grow(len(uids)*7 + 2)
	b.WriteByte('[')
	for i, u := range uids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(u), 10))
	}
	b.WriteByte(']')
	return b.String()
}

func mailboxExists(ctx context.Context, q querier, id int64) error {
	var ok bool
	if err := q.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE id = ?)", id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: id %d", storage.ErrNoMailbox, id)
	}
	return nil
}

// reserve takes n UIDs and one modseq in a mailbox (n may be 0: a change
// that adds nothing, such as a flag update). It returns the first UID, the
// new HIGHESTMODSEQ, the UIDVALIDITY and the mailbox keywords.
func reserve(t *wtx, mailboxID int64, n int) (first uint32, modseq uint64, uidValidity uint32, keywords string, err error) {
	var next, account int64
	err = t.QueryRowContext(t.ctx, `UPDATE mailboxes SET uidnext = uidnext + ?, highest_modseq = highest_modseq + 1
		WHERE id = ? RETURNING uidnext - ?, highest_modseq, uidvalidity, keywords, account_id`, n, mailboxID, n).
		Scan(&next, &modseq, &uidValidity, &keywords, &account)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, 0, "", fmt.Errorf("%w: id %d", storage.ErrNoMailbox, mailboxID)
	}
	if err != nil {
		return 0, 0, 0, "", err
	}
	t.noteAccount(mailboxID, account)
	// UIDs are 32-bit (RFC 9051 §2.3.1.1); a mailbox that used them all
	// would need a new UIDVALIDITY, which we never do silently.
	if next+int64(n)-1 > math.MaxUint32 {
		return 0, 0, 0, "", errors.New("sqlite: the mailbox has used every UID")
	}
	return uint32(next), modseq, uidValidity, keywords, nil
}

// addMailboxKeywords records keywords used in a mailbox (for FLAGS).
func addMailboxKeywords(t *wtx, mailboxID int64, stored string, add []string) error {
	if len(add) == 0 {
		return nil
	}
	kw, changed := mergeKeywords(stored, add)
	if !changed {
		return nil
	}
	_, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET keywords = ? WHERE id = ?", kw, mailboxID)
	return err
}

const insertMessage = `INSERT INTO messages (mailbox_id, uid, blob_id, flags, keywords, internal_date, date_offset, size, modseq)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`

func encodeDate(d time.Time) (int64, int) {
	_, off := d.Zone()
	return d.UnixNano(), off
}

// Deliver implements storage.Store.
func (db *DB) Deliver(ctx context.Context, body io.Reader, targets []storage.Target) ([]storage.Appended, error) {
	return db.DeliverAll(ctx, []storage.Delivery{{Body: body, Targets: targets}})
}

// DeliverAll implements storage.Store: each body is sealed (and, when in
// a file of its own, fsynced) once, then one op inserts every blob row and
// one message per target, so that all the versions commit together.
func (db *DB) DeliverAll(ctx context.Context, deliveries []storage.Delivery) ([]storage.Appended, error) {
	if len(deliveries) == 0 {
		return nil, errors.New("sqlite: deliver without a body or a mailbox")
	}
	n := 0
	for _, d := range deliveries {
		if (len(d.Targets) == 0) == (d.Queue == nil) || d.Body == nil {
			return nil, errors.New("sqlite: deliver without a body, or without exactly one of mailboxes and a queue entry")
		}
		if d.Queue != nil && len(d.Queue.Recipients) == 0 {
			return nil, errors.New("sqlite: a queue entry without recipients")
		}
		n += len(d.Targets)
	}
	flags := make([]flagSet, 0, n)
	for _, d := range deliveries {
		for _, tg := range d.Targets {
			fs, err := parseFlags(tg.Flags)
			if err != nil {
				return nil, err
			}
			flags = append(flags, fs)
		}
	}
	sealed := make([]sealedBody, 0, len(deliveries))
	// Not referenced by any committed row on failure: remove the files now
	// rather than at the next sweep.
	drop := func() {
		for _, sb := range sealed {
			if sb.data == nil {
				db.deleteBlob(sb.name)
			}
		}
	}
	for _, d := range deliveries {
		var sb sealedBody
		var err error
		if d.Queue != nil {
			// A queue entry's body is read whole by the runner only:
			// no header section or summary beside it.
			sb, err = db.sealContent(d.Body, false)
		} else {
			sb, err = db.sealBody(d.Body, d.Summary)
		}
		if err != nil {
			drop()
			return nil, err
		}
		sealed = append(sealed, sb)
	}
	now := time.Now()
	out := make([]storage.Appended, 0, n)
	err := db.write(ctx, func(t *wtx) error {
		out = out[:0]
		fi := 0
		// Every copy's UID and MODSEQ are taken first, in ascending
		// mailbox ID order (storage's lock order: a row-locking backend
		// locks the mailbox rows in that order; SQLite's single write lock
		// keeps it trivially), then the rows are written in the order of
		// the deliveries.
		type slot struct {
			uid      uint32
			modseq   uint64
			validity uint32
		}
		slots := make([]slot, n)
		targets := make([]storage.Target, 0, n)
		for _, d := range deliveries {
			targets = append(targets, d.Targets...)
		}
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(targets[a].MailboxID, targets[b].MailboxID) })
		for _, i := range order {
			uid, modseq, uidValidity, kw, err := reserve(t, targets[i].MailboxID, 1)
			if err != nil {
				return err
			}
			if err := addMailboxKeywords(t, targets[i].MailboxID, kw, flags[i].keywords); err != nil {
				return err
			}
			slots[i] = slot{uid, modseq, uidValidity}
		}
		for di, d := range deliveries {
			sb := sealed[di]
			var blobID int64
			if err := t.QueryRowContext(t.ctx, "INSERT INTO blobs (name, size, data) VALUES (?, ?, ?) RETURNING id", sb.name, sb.size, sb.data).Scan(&blobID); err != nil {
				return err
			}
			if d.Queue != nil {
				if err := insertQueued(t, blobID, sb.size, d.Queue, d.MessageID, now); err != nil {
					return err
				}
				if err := t.event(cmp.Or(d.Action, "queue.add"), d.MessageID, map[string]string{
					"from": d.Queue.From, "recipients": strings.Join(d.Queue.Recipients, ","), "size": strconv.FormatInt(sb.size, 10)}); err != nil {
					return err
				}
				continue
			}
			if sb.header != nil || sb.summary != nil {
				if _, err := t.ExecContext(t.ctx, "INSERT INTO digests (blob_id, header, summary) VALUES (?, ?, ?)", blobID, sb.header, sb.summary); err != nil {
					return err
				}
			}
			for _, tg := range d.Targets {
				fs := flags[fi]
				uid, modseq, uidValidity := slots[fi].uid, slots[fi].modseq, slots[fi].validity
				fi++
				date := tg.InternalDate
				if date.IsZero() {
					date = now
				}
				nanos, off := encodeDate(date)
				if _, err := t.ExecContext(t.ctx, insertMessage, tg.MailboxID, uid, blobID, fs.bits,
					joinKeywords(fs.keywords), nanos, off, sb.size, modseq); err != nil {
					return err
				}
				if d.Once != "" {
					if _, err := t.ExecContext(t.ctx, "INSERT OR IGNORE INTO received_once (mailbox_id, key, at) VALUES (?, ?, ?)",
						tg.MailboxID, d.Once, now.UnixNano()); err != nil {
						return err
					}
				}
				if err := t.mailboxEvent(tg.MailboxID, cmp.Or(d.Action, "message.deliver"), d.MessageID, map[string]string{
					"mailbox": strconv.FormatInt(tg.MailboxID, 10), "uid": strconv.FormatUint(uint64(uid), 10),
					"size": strconv.FormatInt(sb.size, 10)}); err != nil {
					return err
				}
				out = append(out, storage.Appended{MailboxID: tg.MailboxID, UIDValidity: uidValidity, UID: uid, ModSeq: modseq})
				t.publish(storage.Change{Kind: storage.MessageAdded, MailboxID: tg.MailboxID, UID: uid,
					Flags: formatFlags(fs.bits, joinKeywords(fs.keywords)), ModSeq: modseq,
					InternalDate: date, Size: sb.size})
			}
		}
		return nil
	})
	if err != nil {
		drop()
		return nil, err
	}
	return out, nil
}

// mailboxRow reads the mailbox part of a status.
func mailboxRow(ctx context.Context, q querier, id int64) (storage.MailboxStatus, int64, string, error) {
	var st storage.MailboxStatus
	var recentUID int64
	var keywords string
	err := q.QueryRowContext(ctx, "SELECT "+mailboxColumns+", m.recent_uid, m.keywords"+mailboxFrom+"WHERE m.id = ?", id).Scan(
		&st.ID, &st.Account, &st.Name, &st.SpecialUse, &st.Subscribed,
		&st.UIDValidity, &st.UIDNext, &st.HighestModSeq, &recentUID, &keywords)
	if errors.Is(err, sql.ErrNoRows) {
		return st, 0, "", fmt.Errorf("%w: id %d", storage.ErrNoMailbox, id)
	}
	return st, recentUID, keywords, err
}

// mailboxFlags is the FLAGS list: every system flag, then every keyword
// used in the mailbox.
func mailboxFlags(keywords string) []string {
	out := make([]string, 0, len(systemFlags))
	for _, sf := range systemFlags {
		out = append(out, sf.name)
	}
	return append(out, splitKeywords(keywords)...)
}

// Status implements storage.Store: the mailbox row and one aggregate over
// the mailbox's range of the messages primary key. Recent counts the
// messages no claiming Select has seen yet.
func (db *DB) Status(ctx context.Context, mailboxID int64) (storage.MailboxStatus, error) {
	var st storage.MailboxStatus
	err := db.read(ctx, func(tx stx) error {
		var recentUID int64
		var keywords string
		var err error
		st, recentUID, keywords, err = mailboxRow(ctx, tx, mailboxID)
		if err != nil {
			return err
		}
		recentUID = db.recent.seen(mailboxID, st.UIDValidity, recentUID)
		st.Flags = mailboxFlags(keywords)
		var first sql.NullInt64
		err = tx.QueryRowContext(ctx, qStatus, flagSeen, flagDeleted, recentUID, flagSeen, mailboxID).
			Scan(&st.Messages, &st.Size, &st.Unseen, &st.Deleted, &st.Recent, &first)
		st.FirstUnseen = uint32(first.Int64)
		return err
	})
	return st, err
}

// Select implements storage.Store. The snapshot is one read transaction:
// the mailbox row and one scan of its messages (uid, flags, size), from
// which the counters are computed. Claiming \Recent (RFC 3501 §2.3.2) is a
// separate small write, done only when the snapshot holds messages above
// the watermark: it moves the watermark to the highest UID of the snapshot
// and returns the old one, so that of concurrent claims each message goes
// to exactly one. Without claimRecent, Recent and firstRecent describe the
// messages not claimed yet.
func (db *DB) Select(ctx context.Context, mailboxID int64, claimRecent bool) (storage.MailboxStatus, []storage.Message, uint32, error) {
	var (
		st        storage.MailboxStatus
		msgs      []storage.Message
		recentUID int64
		zones     storage.ZoneCache
	)
	err := db.read(ctx, func(tx stx) error {
		var keywords string
		var err error
		st, recentUID, keywords, err = mailboxRow(ctx, tx, mailboxID)
		if err != nil {
			return err
		}
		st.Flags = mailboxFlags(keywords)
		rows, err := tx.QueryContext(ctx, qMessagesAll, mailboxID)
		if err != nil {
			return err
		}
		defer rows.Close()
		msgs = make([]storage.Message, 0, min(max(int64(st.UIDNext)-1, 0), 1<<20))
		for rows.Next() {
			var uid64, flags, nanos, off, size, modseq int64
			var keywords string
			if err := rows.Scan(&uid64, &flags, &keywords, &nanos, &off, &size, &modseq); err != nil {
				return err
			}
			uid := uint32(uid64)
			msgs = append(msgs, storage.Message{
				UID:          uid,
				Flags:        formatFlags(flags, keywords),
				InternalDate: zones.Date(nanos, int(off)),
				Size:         size,
				ModSeq:       uint64(modseq),
			})
			st.Size += size
			if flags&flagSeen == 0 {
				st.Unseen++
				if st.FirstUnseen == 0 {
					st.FirstUnseen = uid
				}
			}
			if flags&flagDeleted != 0 {
				st.Deleted++
			}
		}
		st.Messages = uint32(len(msgs))
		return rows.Err()
	})
	if err != nil {
		return storage.MailboxStatus{}, nil, 0, err
	}
	if claimRecent && len(msgs) > 0 {
		top := int64(msgs[len(msgs)-1].UID)
		old := db.recent.claim(mailboxID, st.UIDValidity, recentUID, top)
		if old < top {
			db.writeRecent(mailboxID, st.UIDValidity, top)
		}
		recentUID = old
	} else {
		recentUID = db.recent.seen(mailboxID, st.UIDValidity, recentUID)
	}
	// UIDs above the watermark (the old one when we claimed) are recent.
	i, _ := slices.BinarySearchFunc(msgs, uint32(min(recentUID, math.MaxUint32))+1, func(m storage.Message, u uint32) int {
		return cmp.Compare(m.UID, u)
	})
	if recentUID >= math.MaxUint32 {
		i = len(msgs)
	}
	st.Recent = uint32(len(msgs) - i)
	var firstRecent uint32
	if i < len(msgs) {
		firstRecent = msgs[i].UID
	}
	return st, msgs, firstRecent, nil
}

// Messages implements storage.Store: one range scan of the primary key for
// all messages, or one lookup per UID inside one statement.
func (db *DB) Messages(ctx context.Context, mailboxID int64, uids []uint32) ([]storage.Message, error) {
	var out []storage.Message
	var zones storage.ZoneCache
	// Two statements outside a transaction (poolQ): the first only
	// checks the mailbox and sizes the result.
	q := poolQ{db.rstmts}
	err := func() error {
		// The existence check also sizes the result (UIDNEXT-1 bounds the
		// count): appending 100k messages to a growing slice costs more
		// than reading them.
		var next int64
		err := q.QueryRowContext(ctx, "SELECT uidnext FROM mailboxes WHERE id = ?", mailboxID).Scan(&next)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: id %d", storage.ErrNoMailbox, mailboxID)
		}
		if err != nil {
			return err
		}
		hint := min(next-1, 1<<20)
		if uids != nil {
			hint = min(hint, int64(len(uids)))
		}
		out = make([]storage.Message, 0, max(hint, 0))
		var rows *sql.Rows
		if uids == nil {
			rows, err = q.QueryContext(ctx, qMessagesAll, mailboxID)
		} else if len(uids) == 0 {
			return nil
		} else {
			rows, err = q.QueryContext(ctx, qMessagesSome, mailboxID, uidsJSON(uids))
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			// Scanning into int64 then converting: database/sql converts
			// to uint32 through strconv.
			var uid, flags, nanos, off, size, modseq int64
			var keywords string
			if err := rows.Scan(&uid, &flags, &keywords, &nanos, &off, &size, &modseq); err != nil {
				return err
			}
			out = append(out, storage.Message{
				UID:          uint32(uid),
				Flags:        formatFlags(flags, keywords),
				InternalDate: zones.Date(nanos, int(off)),
				Size:         size,
				ModSeq:       uint64(modseq),
			})
		}
		return rows.Err()
	}()
	return out, err
}

// OpenBody implements storage.Store.
func (db *DB) OpenBody(ctx context.Context, mailboxID int64, uid uint32) (storage.Body, error) {
	var name string
	var size int64
	var data []byte
	q := poolQ{db.rstmts} // one statement: no transaction needed
	err := q.QueryRowContext(ctx, qOpenBody, mailboxID, uid).Scan(&name, &size, &data)
	if errors.Is(err, sql.ErrNoRows) {
		if err := mailboxExists(ctx, q, mailboxID); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: uid %d", storage.ErrNoMessage, uid)
	}
	if err != nil {
		return nil, err
	}
	if data != nil {
		b, err := db.openInline(name, size, data)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open body %s: %w", name, err)
		}
		return b, nil
	}
	return db.openBlob(ctx, name, size)
}
