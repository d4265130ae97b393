package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/carepost/carepost/directory"
)

// Credential epochs (directorySchemaV3): what ends the open sessions of an
// account when its credentials or its status change, read by every server
// on the data directory (auth.Sessions).

// dirMoveEpoch moves the credential epoch of address inside tx, the
// transaction of the change that moves it.
func dirMoveEpoch(ctx context.Context, tx *sql.Tx, address string, why directory.CredentialChange) error {
	res, err := tx.ExecContext(ctx, `UPDATE dir_entries SET cred_epoch = cred_epoch + 1, cred_change = ?
		WHERE address = ?`, string(why), address)
	if err != nil {
		return fmt.Errorf("sqlite: credential epoch of %s: %w", address, err)
	}
	return dirMustAffect(res, address)
}

// DeleteAppPassword implements directory.Store.
func (db *DB) DeleteAppPassword(ctx context.Context, address string, id int64) error {
	address = strings.ToLower(address)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM dir_app_passwords WHERE id = ? AND address = ?`, id, address)
	if err != nil {
		return fmt.Errorf("sqlite: delete app password %d of %s: %w", id, address, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("%w: application password %d of %s", directory.ErrNotFound, id, address)
	}
	if err := dirMoveEpoch(ctx, tx, address, directory.ChangeAppPassword); err != nil {
		return err
	}
	return db.commitDurable(tx)
}

// AccountStates implements directory.Store: one statement whatever the
// number of addresses, which travel as one JSON array (as in
// qMessagesSome), over the primary key.
func (db *DB) AccountStates(ctx context.Context, addresses []string) (map[string]directory.AccountState, error) {
	out := make(map[string]directory.AccountState, len(addresses))
	if len(addresses) == 0 {
		return out, nil
	}
	arg, err := json.Marshal(addresses)
	if err != nil {
		return nil, err
	}
	rows, err := poolQ{db.rstmts}.QueryContext(ctx, `SELECT address, status, cred_epoch, cred_change FROM dir_entries
		WHERE address IN (SELECT value FROM json_each(?))`, string(arg))
	if err != nil {
		return nil, fmt.Errorf("sqlite: account states: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var addr, status, change string
		var st directory.AccountState
		if err := rows.Scan(&addr, &status, &st.Epoch, &change); err != nil {
			return nil, err
		}
		st.Status, st.Change = directory.Status(status), directory.CredentialChange(change)
		out[addr] = st
	}
	return out, rows.Err()
}
