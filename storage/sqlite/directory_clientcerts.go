package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/carepost/carepost/directory"
)

// The registered client certificates of directory.ClientCertStore
// (directorySchemaV8).

const clientCertColumns = `fingerprint, address, der, subject, not_after, created_at`

func scanClientCert(s dirScanner) (directory.ClientCert, error) {
	var c directory.ClientCert
	var notAfter, created int64
	if err := s.Scan(&c.Fingerprint, &c.Address, &c.DER, &c.Subject, &notAfter, &created); err != nil {
		return c, err
	}
	c.NotAfter, c.Created = dirTime(notAfter), dirTime(created)
	return c, nil
}

// AddClientCert implements directory.ClientCertStore.
func (db *DB) AddClientCert(ctx context.Context, c directory.ClientCert) error {
	c.Address, c.Fingerprint = strings.ToLower(c.Address), strings.ToLower(c.Fingerprint)
	var n int
	if err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM dir_entries WHERE address = ?`, c.Address).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: add client certificate of %s: %w", c.Address, err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s", directory.ErrNotFound, c.Address)
	}
	res, err := db.w.ExecContext(ctx, `INSERT INTO dir_client_certs (`+clientCertColumns+`) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (fingerprint) DO NOTHING`,
		c.Fingerprint, c.Address, c.DER, c.Subject, dirNanos(c.NotAfter), dirNanos(c.Created))
	if err != nil {
		return fmt.Errorf("sqlite: add client certificate of %s: %w", c.Address, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("%w: certificate %s", directory.ErrExists, c.Fingerprint)
	}
	return db.durable()
}

// ClientCertByFingerprint implements directory.ClientCertStore.
func (db *DB) ClientCertByFingerprint(ctx context.Context, fingerprint string) (directory.ClientCert, error) {
	c, err := scanClientCert(db.r.QueryRowContext(ctx, `SELECT `+clientCertColumns+` FROM dir_client_certs WHERE fingerprint = ?`,
		strings.ToLower(fingerprint)))
	if errors.Is(err, sql.ErrNoRows) {
		return c, directory.ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("sqlite: client certificate %s: %w", fingerprint, err)
	}
	return c, nil
}

// ClientCerts implements directory.ClientCertStore.
func (db *DB) ClientCerts(ctx context.Context, address string) ([]directory.ClientCert, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+clientCertColumns+` FROM dir_client_certs WHERE address = ?
		ORDER BY created_at DESC, fingerprint`, strings.ToLower(address))
	if err != nil {
		return nil, fmt.Errorf("sqlite: client certificates of %s: %w", address, err)
	}
	defer rows.Close()
	var out []directory.ClientCert
	for rows.Next() {
		c, err := scanClientCert(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: client certificates of %s: %w", address, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteClientCert implements directory.ClientCertStore.
func (db *DB) DeleteClientCert(ctx context.Context, address, fingerprint string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM dir_client_certs WHERE address = ? AND fingerprint = ?`,
		strings.ToLower(address), strings.ToLower(fingerprint))
	if err != nil {
		return fmt.Errorf("sqlite: delete client certificate of %s: %w", address, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return directory.ErrNotFound
	}
	return db.durable()
}
