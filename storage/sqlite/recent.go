package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"carepost/storage"
)

// ClaimRecent implements storage.Store. The watermark mailboxes.recent_uid
// only grows; a claim moves it to upToUID and hands the caller the UIDs
// above the old value (RFC 3501 §2.3.2: \Recent for exactly one session).
// The read first keeps the common case (another session claimed already)
// off the committer; the write re-reads the watermark inside the
// transaction, so that of concurrent claims each UID goes to one caller.
func (db *DB) ClaimRecent(ctx context.Context, mailboxID int64, upToUID uint32) (uint32, error) {
	if upToUID == 0 {
		return 0, nil
	}
	var watermark int64
	if err := recentWatermark(ctx, poolQ{db.rstmts}, mailboxID, &watermark); err != nil {
		return 0, err
	}
	if watermark >= int64(upToUID) {
		return 0, nil
	}
	var first uint32
	err := db.writeLazy(ctx, func(t *wtx) error {
		if err := recentWatermark(t.ctx, t, mailboxID, &watermark); err != nil {
			return err
		}
		if watermark >= int64(upToUID) {
			return nil
		}
		if _, err := t.ExecContext(t.ctx, "UPDATE mailboxes SET recent_uid = ? WHERE id = ?", upToUID, mailboxID); err != nil {
			return err
		}
		first = uint32(watermark) + 1
		return nil
	})
	if err != nil {
		return 0, err
	}
	return first, nil
}

func recentWatermark(ctx context.Context, q querier, mailboxID int64, out *int64) error {
	err := q.QueryRowContext(ctx, "SELECT recent_uid FROM mailboxes WHERE id = ?", mailboxID).Scan(out)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: id %d", storage.ErrNoMailbox, mailboxID)
	}
	return err
}
