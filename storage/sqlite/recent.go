package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/carepost/carepost/storage"
)

// \Recent (RFC 3501 §2.3.2): a message is recent for exactly one session.
//
// The watermark mailboxes.recent_uid only grows; a claim moves it to
// upToUID and hands the caller the UIDs above the old value. Claims are
// arbitrated in memory (recentClaims), so that a session never waits for a
// commit to learn which arrivals are its own: every APPEND and every
// delivery to a selected mailbox is followed by a claim, and waiting for
// their commits in the committer's queue cost a tenth of imaptest's
// sessions' time. The new watermark is then written in the background
// (post, a lazy op): a crash of the process before that write, or a power
// cut before its fsync, only shows some messages as \Recent once more.
// Every node of a future cluster backend would arbitrate in its shared
// store instead.

// recentClaims holds the watermarks claimed since the store opened, ahead
// of (or equal to) those written to the database. An entry is for one
// incarnation of a mailbox ID (its UIDVALIDITY): a mailbox created anew
// under a reused ID starts from its own row.
type recentClaims struct {
	mu sync.Mutex
	m  map[int64]recentMark
}

type recentMark struct {
	uidValidity uint32
	watermark   int64
}

// seen returns the watermark of a mailbox whose row reads dbMark: the
// greater of it and the claims made in memory.
func (c *recentClaims) seen(id int64, uidValidity uint32, dbMark int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok && e.uidValidity == uidValidity && e.watermark > dbMark {
		return e.watermark
	}
	return dbMark
}

// claim moves the watermark to upTo and returns the one it replaced; old >=
// upTo means nothing was claimed.
func (c *recentClaims) claim(id int64, uidValidity uint32, dbMark, upTo int64) (old int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[int64]recentMark{}
	}
	e, ok := c.m[id]
	if !ok || e.uidValidity != uidValidity {
		e = recentMark{uidValidity: uidValidity}
	}
	old = max(e.watermark, dbMark)
	e.watermark = max(old, upTo)
	c.m[id] = e
	return old
}

// ClaimRecent implements storage.Store.
func (db *DB) ClaimRecent(ctx context.Context, mailboxID int64, upToUID uint32) (uint32, error) {
	if upToUID == 0 {
		return 0, nil
	}
	var (
		dbMark      int64
		uidValidity uint32
	)
	err := poolQ{db.rstmts}.QueryRowContext(ctx, "SELECT recent_uid, uidvalidity FROM mailboxes WHERE id = ?", mailboxID).Scan(&dbMark, &uidValidity)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("%w: id %d", storage.ErrNoMailbox, mailboxID)
	}
	if err != nil {
		return 0, err
	}
	old := db.recent.claim(mailboxID, uidValidity, dbMark, int64(upToUID))
	if old >= int64(upToUID) {
		return 0, nil
	}
	db.writeRecent(mailboxID, uidValidity, int64(upToUID))
	return uint32(old) + 1, nil
}

// writeRecent writes a claimed watermark in the background.
func (db *DB) writeRecent(mailboxID int64, uidValidity uint32, mark int64) {
	db.post(func(t *wtx) error {
		_, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET recent_uid = max(recent_uid, ?) WHERE id = ? AND uidvalidity = ?",
			mark, mailboxID, uidValidity)
		return err
	})
}
