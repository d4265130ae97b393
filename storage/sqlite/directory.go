package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/carepost/carepost/directory"
)

// The directory half of the embedded backend: directory.Store over the
// tables of directory_schema.go. Writes go through db.w (the single writer,
// each in one immediate transaction), reads through db.r.

var _ directory.Store = (*DB)(nil)

const dirEntryColumns = `address, kind, status, national_id, profession, specialty,
	first_name, last_name, organisation, description, liste_rouge,
	notify_address, created_at, last_login, duplicate_id_reason`

// dirMaxSearchWords bounds the LIKE terms of one search.
const dirMaxSearchWords = 8

func dirNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func dirTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// dirSearchKey is what Search matches: every searchable column, folded.
func dirSearchKey(e directory.Entry) string {
	return directory.FoldSearch(strings.Join([]string{
		e.Address, e.FirstName, e.LastName, e.NationalID, e.Profession,
		directory.Professions[e.Profession], e.Specialty, e.Organisation, e.Description,
	}, " "))
}

func dirNotFound(address string) error {
	return fmt.Errorf("%w: %s", directory.ErrNotFound, address)
}

// AddEntry implements directory.Store.
func (db *DB) AddEntry(ctx context.Context, e directory.Entry) error {
	e.Address = strings.ToLower(e.Address)
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `INSERT INTO dir_entries (`+dirEntryColumns+`, search_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (address) DO NOTHING`,
		e.Address, string(e.Kind), string(e.Status), e.NationalID, e.Profession, e.Specialty,
		e.FirstName, e.LastName, e.Organisation, e.Description, e.ListeRouge,
		e.NotifyAddress, dirNanos(e.CreatedAt), dirNanos(e.LastLogin), e.DuplicateIDReason, dirSearchKey(e))
	if err != nil {
		return fmt.Errorf("sqlite: add entry %s: %w", e.Address, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("%w: %s", directory.ErrExists, e.Address)
	}
	if err := dirInsertMembers(ctx, tx, e.Address, e.Members); err != nil {
		return err
	}
	return db.commitDurable(tx)
}

func dirInsertMembers(ctx context.Context, tx *sql.Tx, mailbox string, members []string) error {
	for _, m := range members {
		m = strings.ToLower(m)
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM dir_entries WHERE address = ?`, m).Scan(&exists)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: member of %s: %w", mailbox, dirNotFound(m))
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO dir_members (mailbox, member) VALUES (?, ?)
			ON CONFLICT DO NOTHING`, mailbox, m); err != nil {
			return fmt.Errorf("sqlite: add member %s to %s: %w", m, mailbox, err)
		}
	}
	return nil
}

// dirScanner is *sql.Row or *sql.Rows.
type dirScanner interface{ Scan(...any) error }

func dirScanEntry(s dirScanner) (directory.Entry, error) {
	var e directory.Entry
	var kind, status string
	var created, login int64
	err := s.Scan(&e.Address, &kind, &status, &e.NationalID, &e.Profession, &e.Specialty,
		&e.FirstName, &e.LastName, &e.Organisation, &e.Description, &e.ListeRouge,
		&e.NotifyAddress, &created, &login, &e.DuplicateIDReason)
	e.Kind, e.Status = directory.Kind(kind), directory.Status(status)
	e.CreatedAt, e.LastLogin = dirTime(created), dirTime(login)
	return e, err
}

// dirMembers reads the members of mailbox, sorted.
func (db *DB) dirMembers(ctx context.Context, mailbox string) ([]string, error) {
	return dirStrings(ctx, poolQ{db.rstmts}, `SELECT member FROM dir_members WHERE mailbox = ? ORDER BY member`, mailbox)
}

func dirStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// GetEntry implements directory.Store.
func (db *DB) GetEntry(ctx context.Context, address string) (directory.Entry, error) {
	address = strings.ToLower(address)
	e, err := dirScanEntry(db.rstmts.queryRow(ctx, `SELECT `+dirEntryColumns+` FROM dir_entries WHERE address = ?`, address))
	if errors.Is(err, sql.ErrNoRows) {
		return directory.Entry{}, dirNotFound(address)
	}
	if err != nil {
		return directory.Entry{}, fmt.Errorf("sqlite: get entry %s: %w", address, err)
	}
	if e.Members, err = db.dirMembers(ctx, address); err != nil {
		return directory.Entry{}, err
	}
	return e, nil
}

// SetStatus implements directory.Store.
func (db *DB) SetStatus(ctx context.Context, address string, s directory.Status) error {
	address = strings.ToLower(address)
	// The right-hand sides see the row as it was: the epoch moves only
	// when the status changes (directorySchemaV3).
	res, err := db.w.ExecContext(ctx, `UPDATE dir_entries SET
		cred_epoch = cred_epoch + (status <> ?1),
		cred_change = CASE WHEN status <> ?1 THEN 'status' ELSE cred_change END,
		status = ?1 WHERE address = ?2`, string(s), address)
	if err != nil {
		return fmt.Errorf("sqlite: set status of %s: %w", address, err)
	}
	if err := dirMustAffect(res, address); err != nil {
		return err
	}
	return db.durable()
}

func dirMustAffect(res sql.Result, address string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return dirNotFound(address)
	}
	return nil
}

// SetMembers implements directory.Store: members not in the list go,
// those who stay keep their role, new ones are members.
func (db *DB) SetMembers(ctx context.Context, address string, members []string) error {
	address = strings.ToLower(address)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := dirEntryExists(ctx, tx, address); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, m := range members {
		keep[strings.ToLower(m)] = true
	}
	current, err := dirStrings(ctx, tx, `SELECT member FROM dir_members WHERE mailbox = ?`, address)
	if err != nil {
		return err
	}
	for _, m := range current {
		if keep[m] {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM dir_members WHERE mailbox = ? AND member = ?`, address, m); err != nil {
			return err
		}
	}
	if err := dirInsertMembers(ctx, tx, address, members); err != nil {
		return err
	}
	return db.commitDurable(tx)
}

// AddMember implements directory.Store.
func (db *DB) AddMember(ctx context.Context, mailbox, member string, role directory.Role) error {
	mailbox, member = strings.ToLower(mailbox), strings.ToLower(member)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := dirEntryExists(ctx, tx, mailbox); err != nil {
		return err
	}
	if err := dirEntryExists(ctx, tx, member); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dir_members (mailbox, member, role) VALUES (?, ?, ?)
		ON CONFLICT (mailbox, member) DO UPDATE SET role = excluded.role`, mailbox, member, string(role)); err != nil {
		return fmt.Errorf("sqlite: add member %s to %s: %w", member, mailbox, err)
	}
	return db.commitDurable(tx)
}

// RemoveMember implements directory.Store.
func (db *DB) RemoveMember(ctx context.Context, mailbox, member string) error {
	mailbox, member = strings.ToLower(mailbox), strings.ToLower(member)
	res, err := db.w.ExecContext(ctx, `DELETE FROM dir_members WHERE mailbox = ? AND member = ?`, mailbox, member)
	if err != nil {
		return fmt.Errorf("sqlite: remove member %s from %s: %w", member, mailbox, err)
	}
	if err := dirMustAffect(res, member); err != nil {
		return err
	}
	return db.durable()
}

// Members implements directory.Store.
func (db *DB) Members(ctx context.Context, mailbox string) ([]directory.Member, error) {
	mailbox = strings.ToLower(mailbox)
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := dirEntryExists(ctx, tx, mailbox); err != nil {
		return nil, err
	}
	pairs, err := dirPairs(ctx, tx, `SELECT member, role FROM dir_members WHERE mailbox = ? ORDER BY member`, mailbox)
	if err != nil {
		return nil, err
	}
	out := make([]directory.Member, len(pairs))
	for i, p := range pairs {
		out[i] = directory.Member{Address: p[0], Role: directory.Role(p[1])}
	}
	return out, nil
}

// dirPairs reads two string columns.
func dirPairs(ctx context.Context, q querier, query string, args ...any) ([][2]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var p [2]string
		if err := rows.Scan(&p[0], &p[1]); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func dirEntryExists(ctx context.Context, tx *sql.Tx, address string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM dir_entries WHERE address = ?`, address).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return dirNotFound(address)
	}
	return err
}

// MemberOf implements directory.Store (index dir_members_member).
func (db *DB) MemberOf(ctx context.Context, address string) ([]directory.Delegation, error) {
	pairs, err := dirPairs(ctx, poolQ{db.rstmts}, `SELECT mailbox, role FROM dir_members WHERE member = ? ORDER BY mailbox`, strings.ToLower(address))
	if err != nil {
		return nil, err
	}
	var out []directory.Delegation
	for _, p := range pairs {
		out = append(out, directory.Delegation{Mailbox: p[0], Role: directory.Role(p[1])})
	}
	return out, nil
}

// Search implements directory.Store: every word of query must occur in the
// folded search key (so "dupont cardio" finds Dr Dupont of the cardiology
// service whatever the column order).
func (db *DB) Search(ctx context.Context, query string, includeListeRouge bool, limit int) ([]directory.Entry, error) {
	if len(strings.Fields(directory.FoldSearch(query))) == 0 {
		return nil, nil
	}
	return db.List(ctx, directory.ListFilter{Query: query, IncludeListeRouge: includeListeRouge, Limit: limit})
}

// List implements directory.Store: Search's words, and equality on the
// other fields of the filter.
func (db *DB) List(ctx context.Context, f directory.ListFilter) ([]directory.Entry, error) {
	if f.Limit <= 0 {
		return nil, nil
	}
	words := strings.Fields(directory.FoldSearch(f.Query))
	if len(words) > dirMaxSearchWords {
		words = words[:dirMaxSearchWords]
	}
	where := []string{"1"}
	var args []any
	for _, w := range words {
		where = append(where, `search_key LIKE ? ESCAPE '\'`)
		args = append(args, "%"+dirEscapeLike(w)+"%")
	}
	if !f.IncludeListeRouge {
		where = append(where, `liste_rouge = 0`)
	}
	if f.Kind != "" {
		where = append(where, `kind = ?`)
		args = append(args, string(f.Kind))
	}
	if f.Status != "" {
		where = append(where, `status = ?`)
		args = append(args, string(f.Status))
	}
	if f.Domain != "" {
		// Addresses are canonical, so the domain is what follows the
		// last @ (the address primary key serves the range).
		where = append(where, `address LIKE ? ESCAPE '\'`)
		args = append(args, "%@"+dirEscapeLike(strings.ToLower(f.Domain)))
	}
	if f.NationalID != "" {
		where = append(where, `national_id = ?`) // index dir_entries_national_id
		args = append(args, f.NationalID)
	}
	args = append(args, f.Limit)
	rows, err := db.r.QueryContext(ctx, `SELECT `+dirEntryColumns+` FROM dir_entries WHERE `+
		strings.Join(where, " AND ")+` ORDER BY last_name, first_name, address LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: search: %w", err)
	}
	var out []directory.Entry
	for rows.Next() {
		e, err := dirScanEntry(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Members only for shared mailboxes, after the result set is closed
	// (the reader pool is small).
	for i := range out {
		switch out[i].Kind {
		case directory.KindOrganisational, directory.KindApplicative, directory.KindPractice:
			if out[i].Members, err = db.dirMembers(ctx, out[i].Address); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// dirEscapeLike makes s match literally inside LIKE … ESCAPE '\'.
func dirEscapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// SetPassword implements directory.Store.
func (db *DB) SetPassword(ctx context.Context, address, hash string) error {
	address = strings.ToLower(address)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := dirEntryExists(ctx, tx, address); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dir_passwords (address, hash) VALUES (?, ?)
		ON CONFLICT (address) DO UPDATE SET hash = excluded.hash`, address, hash); err != nil {
		return fmt.Errorf("sqlite: set password of %s: %w", address, err)
	}
	if err := dirMoveEpoch(ctx, tx, address, directory.ChangePassword); err != nil {
		return err
	}
	return db.commitDurable(tx)
}

// AddAppPassword implements directory.Store.
func (db *DB) AddAppPassword(ctx context.Context, address, label, hash string) (directory.AppPassword, error) {
	address = strings.ToLower(address)
	ap := directory.AppPassword{Label: label, Hash: hash, CreatedAt: time.Now()}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return ap, err
	}
	defer tx.Rollback()
	if err := dirEntryExists(ctx, tx, address); err != nil {
		return ap, err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO dir_app_passwords (address, label, hash, created_at)
		VALUES (?, ?, ?, ?)`, address, label, hash, dirNanos(ap.CreatedAt))
	if err != nil {
		return ap, fmt.Errorf("sqlite: add app password of %s: %w", address, err)
	}
	if ap.ID, err = res.LastInsertId(); err != nil {
		return ap, err
	}
	return ap, db.commitDurable(tx)
}

// Credentials implements directory.Store. Both reads run in one read
// transaction so that they see the same state.
func (db *DB) Credentials(ctx context.Context, address string) (directory.Credentials, error) {
	address = strings.ToLower(address)
	var c directory.Credentials
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return c, err
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, `SELECT cred_epoch FROM dir_entries WHERE address = ?`, address).Scan(&c.Epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return c, dirNotFound(address)
	}
	if err != nil {
		return c, fmt.Errorf("sqlite: credentials of %s: %w", address, err)
	}
	err = tx.QueryRowContext(ctx, `SELECT hash FROM dir_passwords WHERE address = ?`, address).Scan(&c.PasswordHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("sqlite: credentials of %s: %w", address, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, label, hash, created_at, last_used
		FROM dir_app_passwords WHERE address = ? ORDER BY id`, address)
	if err != nil {
		return c, fmt.Errorf("sqlite: credentials of %s: %w", address, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ap directory.AppPassword
		var created, used int64
		if err := rows.Scan(&ap.ID, &ap.Label, &ap.Hash, &created, &used); err != nil {
			return c, err
		}
		ap.CreatedAt, ap.LastUsed = dirTime(created), dirTime(used)
		c.AppPasswords = append(c.AppPasswords, ap)
	}
	return c, rows.Err()
}

// RecordLogin implements directory.Store.
func (db *DB) RecordLogin(ctx context.Context, address string, appPasswordID int64, at time.Time) error {
	address = strings.ToLower(address)
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE dir_entries SET last_login = ? WHERE address = ?`, dirNanos(at), address)
	if err != nil {
		return fmt.Errorf("sqlite: record login of %s: %w", address, err)
	}
	if err := dirMustAffect(res, address); err != nil {
		return err
	}
	if appPasswordID != 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE dir_app_passwords SET last_used = ? WHERE id = ? AND address = ?`,
			dirNanos(at), appPasswordID, address); err != nil {
			return fmt.Errorf("sqlite: record login of %s: %w", address, err)
		}
	}
	// Not worth an fsync at every login: on disk within FlagSyncDelay.
	if err := tx.Commit(); err != nil {
		return err
	}
	db.lazyCommitted()
	return nil
}

// AddTrustedDomain implements directory.Store.
func (db *DB) AddTrustedDomain(ctx context.Context, d directory.TrustedDomain) error {
	d.Domain = strings.ToLower(d.Domain)
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = time.Now()
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO dir_trusted_domains (domain, description, operator_cert_dn, updated_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (domain) DO UPDATE SET description = excluded.description,
			operator_cert_dn = excluded.operator_cert_dn, updated_at = excluded.updated_at`,
		d.Domain, d.Description, d.OperatorCertDN, dirNanos(d.UpdatedAt))
	if err != nil {
		return fmt.Errorf("sqlite: add trusted domain %s: %w", d.Domain, err)
	}
	return db.durable()
}

// TrustedDomains implements directory.Store.
func (db *DB) TrustedDomains(ctx context.Context) ([]directory.TrustedDomain, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT domain, description, operator_cert_dn, updated_at
		FROM dir_trusted_domains ORDER BY domain`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: trusted domains: %w", err)
	}
	defer rows.Close()
	var out []directory.TrustedDomain
	for rows.Next() {
		var d directory.TrustedDomain
		var updated int64
		if err := rows.Scan(&d.Domain, &d.Description, &d.OperatorCertDN, &updated); err != nil {
			return nil, err
		}
		d.UpdatedAt = dirTime(updated)
		out = append(out, d)
	}
	return out, rows.Err()
}

// RemoveTrustedDomain implements directory.Store.
func (db *DB) RemoveTrustedDomain(ctx context.Context, domain string) error {
	domain = strings.ToLower(domain)
	res, err := db.w.ExecContext(ctx, `DELETE FROM dir_trusted_domains WHERE domain = ?`, domain)
	if err != nil {
		return fmt.Errorf("sqlite: remove trusted domain %s: %w", domain, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("%w: %s", directory.ErrNotFound, domain)
	}
	return db.durable()
}

// ReplaceTrustedDomains implements directory.Store: one transaction
// deletes the old list, inserts the new one and records info.
func (db *DB) ReplaceTrustedDomains(ctx context.Context, list []directory.TrustedDomain, info directory.TrustListInfo) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM dir_trusted_domains`); err != nil {
		return fmt.Errorf("sqlite: replace trusted domains: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO dir_trusted_domains (domain, description, operator_cert_dn, updated_at)
		VALUES (?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqlite: replace trusted domains: %w", err)
	}
	defer stmt.Close()
	for _, d := range list {
		at := d.UpdatedAt
		if at.IsZero() {
			at = info.ImportedAt
		}
		if _, err := stmt.ExecContext(ctx, strings.ToLower(d.Domain), d.Description, d.OperatorCertDN, dirNanos(at)); err != nil {
			return fmt.Errorf("sqlite: replace trusted domains: %s: %w", d.Domain, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO dir_trust_list (id, source, generated_at, imported_at) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET source = excluded.source, generated_at = excluded.generated_at,
			imported_at = excluded.imported_at`,
		info.Source, dirNanos(info.Generated), dirNanos(info.ImportedAt)); err != nil {
		return fmt.Errorf("sqlite: record the trust list: %w", err)
	}
	return db.commitDurable(tx)
}

// TrustListInfo implements directory.Store.
func (db *DB) TrustListInfo(ctx context.Context) (directory.TrustListInfo, error) {
	var info directory.TrustListInfo
	var gen, imp int64
	err := db.r.QueryRowContext(ctx, `SELECT source, generated_at, imported_at FROM dir_trust_list WHERE id = 1`).
		Scan(&info.Source, &gen, &imp)
	if errors.Is(err, sql.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("sqlite: trust list: %w", err)
	}
	info.Generated, info.ImportedAt = dirTime(gen), dirTime(imp)
	return info, nil
}

// AddTrustAnchor implements directory.Store.
func (db *DB) AddTrustAnchor(ctx context.Context, a directory.TrustAnchor) error {
	if a.AddedAt.IsZero() {
		a.AddedAt = time.Now()
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO dir_trust_anchors (fingerprint, subject, der, added_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (fingerprint) DO UPDATE SET subject = excluded.subject, der = excluded.der, added_at = excluded.added_at`,
		strings.ToLower(a.Fingerprint), a.Subject, a.DER, dirNanos(a.AddedAt))
	if err != nil {
		return fmt.Errorf("sqlite: add trust anchor %s: %w", a.Subject, err)
	}
	return db.durable()
}

// TrustAnchors implements directory.Store.
func (db *DB) TrustAnchors(ctx context.Context) ([]directory.TrustAnchor, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT fingerprint, subject, der, added_at FROM dir_trust_anchors ORDER BY subject, fingerprint`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: trust anchors: %w", err)
	}
	defer rows.Close()
	var out []directory.TrustAnchor
	for rows.Next() {
		var a directory.TrustAnchor
		var added int64
		if err := rows.Scan(&a.Fingerprint, &a.Subject, &a.DER, &added); err != nil {
			return nil, fmt.Errorf("sqlite: trust anchors: %w", err)
		}
		a.AddedAt = dirTime(added)
		out = append(out, a)
	}
	return out, rows.Err()
}
