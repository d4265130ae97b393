package sqlite

import (
	"bytes"
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/dmp"
)

// The embedded DMP vault's documents and the patients' controls
// (dmp.Store, docs/dmp.md), in tables of their own (dmpSchemaV1).
//
// Sealed at rest with the store's key (seal.go), each value bound to its
// owner so that a value copied into another row fails to open:
//
//	dmp-meta:<id>        a document's metadata (dmp.Document as JSON:
//	                     title, type, authors, hash…)
//	dmp-content:<id>     its content
//	dmp-controls:<ins>   a patient's controls (who they blocked, emergency
//	                     access, médecin traitant)
//
// A document's ID is 128 random bits in hex, never reused. In clear are
// only what the queries need: the patient's INS, the uniqueId (an OID the
// producer gives), the version, which document replaced it, the address
// that deposited it, when, and the size.
//
// The content is kept like a message body (inline.go, blobs.go): up to the
// inline limit sealed in its dmp_contents row (a table apart from the
// metadata, so that a list never reads it), larger in the blob store
// (Options.Blobs, sealed there with its name, "dmp-" and 128 random bits
// in hex, never reused), put and durable before the row that names it
// commits. A name of that form no row names (a crash between the two, or
// a deposit that turned out to be there already) is an orphan, which the
// sweep at Open deletes (sweepDMPBlobs); the body sweep never touches
// these names (isBlobName).
//
// Writes go through the committer (db.write): durable when they return,
// with their audit event (dmp.deposit, dmp.controls) in the same
// transaction when the store keeps a trail (Options.Audit).
const dmpSchemaV1 = `
CREATE TABLE dmp_documents (
	id           TEXT PRIMARY KEY,
	patient_ins  TEXT NOT NULL,
	unique_id    TEXT NOT NULL UNIQUE,
	version      INTEGER NOT NULL,
	replaced_by  TEXT NOT NULL DEFAULT '',
	deposited_by TEXT NOT NULL DEFAULT '',
	deposited_at INTEGER NOT NULL, -- Unix nanoseconds
	size         INTEGER NOT NULL,
	meta         BLOB NOT NULL     -- sealed JSON, dmp-meta:<id>
);
CREATE INDEX dmp_documents_patient ON dmp_documents(patient_ins, deposited_at);
CREATE TABLE dmp_contents (
	id   TEXT PRIMARY KEY REFERENCES dmp_documents(id),
	blob TEXT NOT NULL DEFAULT '', -- the name in the blob store, '' when inline
	data BLOB                      -- inline: sealed, dmp-content:<id>
);
CREATE TABLE dmp_controls (
	ins        TEXT PRIMARY KEY,
	data       BLOB NOT NULL,      -- sealed JSON, dmp-controls:<ins>
	updated_at INTEGER NOT NULL    -- Unix nanoseconds
);
`

var _ dmp.Store = (*DB)(nil)

func dmpMetaContext(id string) string      { return "dmp-meta:" + id }
func dmpContentContext(id string) string   { return "dmp-content:" + id }
func dmpControlsContext(ins string) string { return "dmp-controls:" + ins }

const dmpColumns = "id, patient_ins, unique_id, version, replaced_by, deposited_by, deposited_at, size, meta"

// dmpInsertAudit writes an event about a patient's record: its account is
// the patient's mailbox, found by INS in the directory (none if the
// patient has no mailbox here).
const dmpInsertAudit = `INSERT INTO audit_events (at, actor, mechanism, source, action, object, outcome, details, account)
	VALUES (?, ?, ?, ?, ?, ?, 'ok', ?, (SELECT a.id FROM dir_entries e JOIN accounts a ON a.name = e.address
		WHERE e.national_id = ? AND e.kind = 'PAT' ORDER BY a.id LIMIT 1))`

func (db *DB) scanDMP(s dirScanner) (dmp.StoredDocument, error) {
	var d dmp.StoredDocument
	var at, size int64
	var meta []byte
	if err := s.Scan(&d.ID, &d.PatientINS, &d.Document.UniqueID, &d.Version, &d.ReplacedBy, &d.DepositedBy, &at, &size, &meta); err != nil {
		return d, err
	}
	d.DepositedAt = time.Unix(0, at).UTC()
	plain, err := db.unsealBytes(meta, dmpMetaContext(d.ID))
	if err != nil {
		return d, fmt.Errorf("sqlite: DMP document %s: metadata: %w", d.ID, err)
	}
	if err := json.Unmarshal(plain, &d.Document); err != nil {
		return d, fmt.Errorf("sqlite: DMP document %s: metadata: %w", d.ID, err)
	}
	d.Document.Content = nil
	if d.Document.Size == 0 {
		d.Document.Size = size
	}
	return d, nil
}

// PutDocument implements dmp.Store.
func (db *DB) PutDocument(ctx context.Context, d dmp.StoredDocument, content []byte) (dmp.StoredDocument, bool, error) {
	if d.PatientINS == "" || d.Document.UniqueID == "" {
		return d, false, errors.New("sqlite: a DMP document needs a patient INS and a uniqueId")
	}
	sum := sha1.Sum(content)
	hash := hex.EncodeToString(sum[:])
	d.Document.Content = nil
	d.Document.PatientINS = d.PatientINS
	d.Document.SHA1 = hash
	d.Document.Size = int64(len(content))
	if d.DepositedAt.IsZero() {
		d.DepositedAt = time.Now().UTC()
	}
	id, err := newBlobName()
	if err != nil {
		return d, false, err
	}
	d.ID, d.Version, d.ReplacedBy = id, 1, ""
	metaJSON, err := json.Marshal(d.Document)
	if err != nil {
		return d, false, err
	}
	meta, err := db.sealBytes(metaJSON, dmpMetaContext(id))
	if err != nil {
		return d, false, err
	}
	var sealed []byte
	var blob string
	if db.inline >= 0 && int64(len(content)) <= db.inline {
		if sealed, err = db.sealBytes(content, dmpContentContext(id)); err != nil {
			return d, false, err
		}
	} else {
		name, err := newBlobName()
		if err != nil {
			return d, false, err
		}
		blob = dmpBlobPrefix + name
		if _, err := db.blobs.Put(ctx, blob, bytes.NewReader(content)); err != nil {
			return d, false, fmt.Errorf("sqlite: store DMP document: %w", err)
		}
	}
	var existing dmp.StoredDocument
	var existed bool
	err = db.write(ctx, func(t *wtx) error {
		existed = false
		// The same uniqueId already: the same deposit again, or another
		// document that reuses it.
		old, err := db.scanDMP(t.QueryRowContext(t.ctx, "SELECT "+dmpColumns+" FROM dmp_documents WHERE unique_id = ?", d.Document.UniqueID))
		switch {
		case err == nil:
			if old.PatientINS == d.PatientINS && old.Document.SHA1 == hash {
				existing, existed = old, true
				return nil
			}
			return dmp.ErrUniqueIDTaken
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		version := 1
		var replaced string
		if ref := d.Document.Replaces; ref != "" {
			var rid, ins, by string
			err := t.QueryRowContext(t.ctx, `SELECT id, patient_ins, replaced_by, version FROM dmp_documents
				WHERE unique_id = ? OR id = ? ORDER BY unique_id = ? DESC LIMIT 1`, ref, ref, ref).Scan(&rid, &ins, &by, &version)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return dmp.ErrNoDocument
			case err != nil:
				return err
			case ins != d.PatientINS:
				return dmp.ErrNoDocument
			case by != "":
				return dmp.ErrAlreadyReplaced
			}
			version++
			replaced = rid
			if _, err := t.ExecContext(t.ctx, "UPDATE dmp_documents SET replaced_by = ? WHERE id = ?", id, rid); err != nil {
				return err
			}
		}
		if _, err := t.ExecContext(t.ctx, "INSERT INTO dmp_documents ("+dmpColumns+") VALUES (?, ?, ?, ?, '', ?, ?, ?, ?)",
			id, d.PatientINS, d.Document.UniqueID, version, d.DepositedBy, d.DepositedAt.UnixNano(), len(content), meta); err != nil {
			return err
		}
		if _, err := t.ExecContext(t.ctx, "INSERT INTO dmp_contents (id, blob, data) VALUES (?, ?, ?)", id, blob, sealed); err != nil {
			return err
		}
		d.Version = version
		details := map[string]string{"ins": d.PatientINS, "unique_id": d.Document.UniqueID,
			"type": d.Document.TypeCode.Code, "version": fmt.Sprint(version), "size": fmt.Sprint(len(content))}
		if replaced != "" {
			details["replaces"] = replaced
		}
		return db.dmpEvent(t, d.DepositedBy, "dmp.deposit", id, d.PatientINS, details)
	})
	if blob != "" && (err != nil || existed) {
		// Not referenced: the row did not commit.
		db.blobs.Delete(context.Background(), blob)
	}
	if err != nil {
		return d, false, err
	}
	if existed {
		return existing, true, nil
	}
	return d, false, nil
}

// dmpBlobPrefix starts the names of the vault's documents in the blob
// store.
const dmpBlobPrefix = "dmp-"

// sweepDMPBlobs deletes the documents in the blob store that no
// dmp_contents row names; like sweepBlobs, at Open, only when no other
// process has the directory open.
func (db *DB) sweepDMPBlobs(ctx context.Context) error {
	var found []string
	if err := db.blobs.List(ctx, dmpBlobPrefix, func(name string) error {
		found = append(found, name)
		return nil
	}); err != nil {
		return err
	}
	for _, name := range found {
		var n int
		if err := db.w.QueryRowContext(ctx, "SELECT count(*) FROM dmp_contents WHERE blob = ?", name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			db.blobs.Delete(ctx, name)
		}
	}
	return nil
}

// dmpEvent records an event of a change of a patient's record in t.
// actor "" is the principal of the op's context (the system if none).
func (db *DB) dmpEvent(t *wtx, actor, action, object, ins string, details map[string]string) error {
	if !t.audit {
		return nil
	}
	a, mech, source := auth.FromContext(t.o.ctx).Actor()
	if actor == "" {
		actor = a
	}
	dj, err := encodeDetails(details)
	if err != nil {
		return err
	}
	_, err = t.ExecContext(t.ctx, dmpInsertAudit, time.Now().UnixMilli(), actor, mech, source, action, object, dj, ins)
	return err
}

// Documents implements dmp.Store.
func (db *DB) Documents(ctx context.Context, ins string) ([]dmp.StoredDocument, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT "+dmpColumns+" FROM dmp_documents WHERE patient_ins = ? AND replaced_by = '' ORDER BY deposited_at DESC, id", ins)
	if err != nil {
		return nil, fmt.Errorf("sqlite: DMP documents: %w", err)
	}
	defer rows.Close()
	var out []dmp.StoredDocument
	for rows.Next() {
		d, err := db.scanDMP(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (db *DB) dmpOne(ctx context.Context, where, arg string) (dmp.StoredDocument, error) {
	d, err := db.scanDMP(db.r.QueryRowContext(ctx, "SELECT "+dmpColumns+" FROM dmp_documents WHERE "+where+" = ?", arg))
	if errors.Is(err, sql.ErrNoRows) {
		return d, dmp.ErrNoDocument
	}
	return d, err
}

// Document implements dmp.Store.
func (db *DB) Document(ctx context.Context, id string) (dmp.StoredDocument, error) {
	return db.dmpOne(ctx, "id", id)
}

// DocumentByUniqueID implements dmp.Store.
func (db *DB) DocumentByUniqueID(ctx context.Context, uniqueID string) (dmp.StoredDocument, error) {
	return db.dmpOne(ctx, "unique_id", uniqueID)
}

// DocumentContent implements dmp.Store.
func (db *DB) DocumentContent(ctx context.Context, id string) ([]byte, error) {
	d, err := db.Document(ctx, id)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	var blob string
	if err := db.r.QueryRowContext(ctx, "SELECT blob, data FROM dmp_contents WHERE id = ?", id).Scan(&blob, &sealed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, dmp.ErrNoDocument
		}
		return nil, fmt.Errorf("sqlite: DMP document %s: %w", id, err)
	}
	var plain []byte
	if blob != "" {
		b, err := db.blobs.Open(ctx, blob)
		if err != nil {
			return nil, fmt.Errorf("sqlite: DMP document %s: %w", id, err)
		}
		defer b.Close()
		if b.Size() != d.Document.Size {
			return nil, fmt.Errorf("sqlite: DMP document %s: %w: %d bytes, %d recorded", id, crypto.ErrSealed, b.Size(), d.Document.Size)
		}
		plain = make([]byte, b.Size())
		if _, err := io.ReadFull(b, plain); err != nil {
			return nil, fmt.Errorf("sqlite: DMP document %s: %w", id, err)
		}
	} else if plain, err = db.unsealBytes(sealed, dmpContentContext(id)); err != nil {
		return nil, fmt.Errorf("sqlite: DMP document %s: %w", id, err)
	}
	sum := sha1.Sum(plain)
	if int64(len(plain)) != d.Document.Size || hex.EncodeToString(sum[:]) != d.Document.SHA1 {
		return nil, fmt.Errorf("sqlite: DMP document %s: %w: the content does not match its size and SHA-1", id, crypto.ErrSealed)
	}
	return plain, nil
}

// dmpControls is the sealed form of a patient's controls.
type dmpControls struct {
	Blocked         []string `json:"blocked,omitempty"`
	Emergency       bool     `json:"emergency"`
	MedecinTraitant string   `json:"medecin_traitant,omitempty"`
}

// Controls implements dmp.Store.
func (db *DB) Controls(ctx context.Context, ins string) (dmp.PatientControls, error) {
	var sealed []byte
	err := db.r.QueryRowContext(ctx, "SELECT data FROM dmp_controls WHERE ins = ?", ins).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return dmp.DefaultControls(ins), nil
	}
	if err != nil {
		return dmp.PatientControls{}, fmt.Errorf("sqlite: DMP controls: %w", err)
	}
	plain, err := db.unsealBytes(sealed, dmpControlsContext(ins))
	if err != nil {
		return dmp.PatientControls{}, fmt.Errorf("sqlite: DMP controls: %w", err)
	}
	var c dmpControls
	if err := json.Unmarshal(plain, &c); err != nil {
		return dmp.PatientControls{}, fmt.Errorf("sqlite: DMP controls: %w", err)
	}
	return dmp.PatientControls{INS: ins, Blocked: c.Blocked, Emergency: c.Emergency, MedecinTraitant: c.MedecinTraitant}, nil
}

// SetControls implements dmp.Store. Its event (dmp.controls) names what
// the controls are now, with the principal of ctx as the actor.
func (db *DB) SetControls(ctx context.Context, c dmp.PatientControls) error {
	if c.INS == "" {
		return errors.New("sqlite: DMP controls without a patient INS")
	}
	blocked := slices.Clone(c.Blocked)
	slices.Sort(blocked)
	blocked = slices.Compact(blocked)
	plain, err := json.Marshal(dmpControls{Blocked: blocked, Emergency: c.Emergency, MedecinTraitant: c.MedecinTraitant})
	if err != nil {
		return err
	}
	sealed, err := db.sealBytes(plain, dmpControlsContext(c.INS))
	if err != nil {
		return err
	}
	return db.write(ctx, func(t *wtx) error {
		if _, err := t.ExecContext(t.ctx, `INSERT INTO dmp_controls (ins, data, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (ins) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at`,
			c.INS, sealed, time.Now().UnixNano()); err != nil {
			return err
		}
		return db.dmpEvent(t, "", "dmp.controls", "dmp:"+c.INS, c.INS, map[string]string{"ins": c.INS,
			"blocked": strings.Join(blocked, ","), "emergency": fmt.Sprint(c.Emergency), "medecin_traitant": c.MedecinTraitant})
	})
}
