package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/carepost/carepost/directory"
)

// directorySchemaV7: when an account was last warned that it is inactive
// (the inactivity rules of docs/auth.md, run by the serve process), so
// that a restart does not warn again. A warning older than the account's
// last login belongs to an earlier period of inactivity. The row goes with
// its entry.
const directorySchemaV7 = `
CREATE TABLE dir_inactive_warnings (
	address   TEXT PRIMARY KEY REFERENCES dir_entries(address) ON DELETE CASCADE,
	warned_at INTEGER NOT NULL
) WITHOUT ROWID;
`

// InactiveAccount is an active account without a login since LastActive.
type InactiveAccount struct {
	Address       string
	Kind          directory.Kind
	NotifyAddress string
	// LastActive is the last login recorded (directory.Entry.LastLogin,
	// written at most once an hour), or the creation of an account that
	// never logged in.
	LastActive time.Time
	// NeverLoggedIn: LastActive is the account's creation.
	NeverLoggedIn bool
	// WarnedAt is the last warning of inactivity (MarkInactiveWarned),
	// zero if none.
	WarnedAt time.Time
}

// InactiveAccounts returns the active accounts of the given kinds whose
// last activity is before before, the longest inactive first, at most
// limit.
func (db *DB) InactiveAccounts(ctx context.Context, kinds []directory.Kind, before time.Time, limit int) ([]InactiveAccount, error) {
	if len(kinds) == 0 || limit <= 0 {
		return nil, nil
	}
	args := []any{string(directory.StatusActive)}
	for _, k := range kinds {
		args = append(args, string(k))
	}
	args = append(args, dirNanos(before), limit)
	rows, err := db.r.QueryContext(ctx, `SELECT e.address, e.kind, e.notify_address,
		CASE WHEN e.last_login > 0 THEN e.last_login ELSE e.created_at END AS active,
		COALESCE(w.warned_at, 0), e.last_login = 0
		FROM dir_entries e LEFT JOIN dir_inactive_warnings w ON w.address = e.address
		WHERE e.status = ? AND e.kind IN (?`+strings.Repeat(", ?", len(kinds)-1)+`) AND active < ?
		ORDER BY active, e.address LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: inactive accounts: %w", err)
	}
	defer rows.Close()
	var out []InactiveAccount
	for rows.Next() {
		var a InactiveAccount
		var kind string
		var active, warned int64
		if err := rows.Scan(&a.Address, &kind, &a.NotifyAddress, &active, &warned, &a.NeverLoggedIn); err != nil {
			return nil, err
		}
		a.Kind, a.LastActive, a.WarnedAt = directory.Kind(kind), dirTime(active), dirTime(warned)
		out = append(out, a)
	}
	return out, rows.Err()
}

// MarkInactiveWarned records that address was warned of its inactivity at
// at (durable when it returns).
func (db *DB) MarkInactiveWarned(ctx context.Context, address string, at time.Time) error {
	address = strings.ToLower(address)
	if _, err := db.w.ExecContext(ctx, `INSERT INTO dir_inactive_warnings (address, warned_at) VALUES (?, ?)
		ON CONFLICT (address) DO UPDATE SET warned_at = excluded.warned_at`, address, dirNanos(at)); err != nil {
		return fmt.Errorf("sqlite: mark %s warned: %w", address, err)
	}
	return db.durable()
}
