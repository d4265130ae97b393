package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/carepost/carepost/directory"
)

// The mailbox certificates of directory.CertStore (directorySchemaV6).
//
// A private key is sealed (crypto.SealBytes, seal.go) bound to
// "smime-key:<address>:<usage>:<fingerprint>": a sealed key copied into
// another row, another mailbox's or the same mailbox's other usage, fails
// to open instead of signing or decrypting for the wrong certificate.

func certKeyContext(address string, usage directory.CertUsage, fingerprint string) string {
	return "smime-key:" + address + ":" + string(usage) + ":" + fingerprint
}

const certColumns = `address, usage, fingerprint, der, chain, sealed_key IS NOT NULL, not_after, created_at, remote, fetched_at`

func (db *DB) certRow(c directory.MailboxCert) ([]any, error) {
	c.Address = strings.ToLower(c.Address)
	c.Fingerprint = strings.ToLower(c.Fingerprint)
	if c.Usage != directory.UsageSign && c.Usage != directory.UsageEncrypt {
		return nil, fmt.Errorf("sqlite: certificate of %s: unknown usage %q", c.Address, c.Usage)
	}
	var sealed []byte
	if len(c.Key) > 0 {
		var err error
		if sealed, err = db.sealBytes(c.Key, certKeyContext(c.Address, c.Usage, c.Fingerprint)); err != nil {
			return nil, err
		}
	}
	chain := c.Chain
	if chain == nil {
		chain = []byte{}
	}
	return []any{c.Address, string(c.Usage), c.Fingerprint, c.DER, chain, sealed,
		dirNanos(c.NotAfter), dirNanos(c.Created), c.Remote, dirNanos(c.FetchedAt)}, nil
}

const certInsert = `INSERT INTO dir_mailbox_certs (address, usage, fingerprint, der, chain, sealed_key, not_after, created_at, remote, fetched_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (address, usage, fingerprint) DO UPDATE SET der = excluded.der, chain = excluded.chain,
		sealed_key = excluded.sealed_key, not_after = excluded.not_after, created_at = excluded.created_at,
		remote = excluded.remote, fetched_at = excluded.fetched_at`

// AddMailboxCert implements directory.CertStore.
func (db *DB) AddMailboxCert(ctx context.Context, c directory.MailboxCert) error {
	row, err := db.certRow(c)
	if err != nil {
		return err
	}
	if _, err := db.w.ExecContext(ctx, certInsert, row...); err != nil {
		return fmt.Errorf("sqlite: add certificate of %s: %w", c.Address, err)
	}
	return db.durable()
}

func scanCert(s dirScanner, sealed *[]byte) (directory.MailboxCert, error) {
	var c directory.MailboxCert
	var usage string
	var notAfter, created, fetched int64
	dest := []any{&c.Address, &usage, &c.Fingerprint, &c.DER, &c.Chain, &c.HasKey, &notAfter, &created, &c.Remote, &fetched}
	if sealed != nil {
		dest = append(dest, sealed)
	}
	if err := s.Scan(dest...); err != nil {
		return c, err
	}
	c.Usage = directory.CertUsage(usage)
	c.NotAfter, c.Created, c.FetchedAt = dirTime(notAfter), dirTime(created), dirTime(fetched)
	if len(c.Chain) == 0 {
		c.Chain = nil
	}
	return c, nil
}

// MailboxCerts implements directory.CertStore.
func (db *DB) MailboxCerts(ctx context.Context, address string) ([]directory.MailboxCert, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+certColumns+`, sealed_key FROM dir_mailbox_certs
		WHERE address = ? ORDER BY created_at DESC, usage, fingerprint`, strings.ToLower(address))
	if err != nil {
		return nil, fmt.Errorf("sqlite: certificates of %s: %w", address, err)
	}
	defer rows.Close()
	var out []directory.MailboxCert
	for rows.Next() {
		var sealed []byte
		c, err := scanCert(rows, &sealed)
		if err != nil {
			return nil, fmt.Errorf("sqlite: certificates of %s: %w", address, err)
		}
		if sealed != nil {
			if c.Key, err = db.unsealBytes(sealed, certKeyContext(c.Address, c.Usage, c.Fingerprint)); err != nil {
				return nil, fmt.Errorf("sqlite: the %s key of %s (%s): %w", c.Usage, c.Address, c.Fingerprint, err)
			}
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ListMailboxCerts implements directory.CertStore.
func (db *DB) ListMailboxCerts(ctx context.Context) ([]directory.MailboxCert, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+certColumns+` FROM dir_mailbox_certs
		ORDER BY address, usage, created_at DESC, fingerprint`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: certificates: %w", err)
	}
	defer rows.Close()
	var out []directory.MailboxCert
	for rows.Next() {
		c, err := scanCert(rows, nil)
		if err != nil {
			return nil, fmt.Errorf("sqlite: certificates: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ReplaceFetchedCerts implements directory.CertStore.
func (db *DB) ReplaceFetchedCerts(ctx context.Context, address string, certs []directory.MailboxCert) error {
	address = strings.ToLower(address)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM dir_mailbox_certs WHERE address = ? AND remote AND fetched_at <> 0`, address); err != nil {
		return fmt.Errorf("sqlite: replace fetched certificates of %s: %w", address, err)
	}
	for _, c := range certs {
		if strings.ToLower(c.Address) != address || !c.Remote || c.FetchedAt.IsZero() {
			return fmt.Errorf("sqlite: replace fetched certificates of %s: a certificate of %s, remote %v, fetched %v is not one", address, c.Address, c.Remote, c.FetchedAt)
		}
		row, err := db.certRow(c)
		if err != nil {
			return err
		}
		// A certificate imported by hand with the same fingerprint is
		// left as it is: the fetch does not take it over.
		if _, err := tx.ExecContext(ctx, `INSERT INTO dir_mailbox_certs (address, usage, fingerprint, der, chain, sealed_key, not_after, created_at, remote, fetched_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, row...); err != nil {
			return fmt.Errorf("sqlite: replace fetched certificates of %s: %w", address, err)
		}
	}
	return db.commitDurable(tx)
}
