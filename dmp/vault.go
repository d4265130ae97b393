package dmp

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/storage"
)

// The embedded vault (SPEC §7, docs/dmp.md): the default connector. Its
// documents live in the store (Store, implemented by storage/sqlite),
// sealed at rest with the operator's key (content and metadata; only what
// the queries need is in clear: the patient's INS, the document's
// uniqueId, its version and who deposited it when), and versioned: a
// document that replaces another (RPLC, Document.Replaces) is a new
// version, the old one stays with ReplacedBy set, and List shows only
// current versions.

// Errors of a Store (compare with errors.Is).
var (
	// ErrNoDocument: no document of that ID, or (PutDocument) no current
	// document of the patient for Replaces to name.
	ErrNoDocument = errors.New("dmp: no such document")
	// ErrUniqueIDTaken: a document with that uniqueId is stored already,
	// with other content or for another patient.
	ErrUniqueIDTaken = errors.New("dmp: uniqueId already used by another document")
	// ErrAlreadyReplaced: Replaces names a document that a newer version
	// replaced already.
	ErrAlreadyReplaced = errors.New("dmp: the document was already replaced")
)

// Store keeps the vault's documents and the patients' controls. Backends
// seal content and metadata at rest. Every write is durable when it
// returns nil, and records its audit event (dmp.deposit, dmp.controls) in
// its own transaction when the store keeps an audit trail.
type Store interface {
	// PutDocument stores a new document of d.PatientINS with content.
	// d.ID, d.Version and d.ReplacedBy are the store's to set; the
	// stored document is returned. When d.Document.Replaces names (by
	// uniqueId or ID) a current document of the same patient, the new
	// one is its next version and the old one gets ReplacedBy, in one
	// transaction (ErrNoDocument if there is none, ErrAlreadyReplaced if
	// it is no longer current).
	//
	// Idempotent: a document whose uniqueId is stored already for the
	// same patient with the same SHA-1 is not stored again; the existing
	// one is returned with existed true. Other content under that
	// uniqueId is ErrUniqueIDTaken.
	PutDocument(ctx context.Context, d StoredDocument, content []byte) (stored StoredDocument, existed bool, err error)
	// Documents returns the current documents of a patient, newest
	// deposit first.
	Documents(ctx context.Context, ins string) ([]StoredDocument, error)
	// Document returns a document of any version by ID, or
	// ErrNoDocument.
	Document(ctx context.Context, id string) (StoredDocument, error)
	// DocumentByUniqueID returns the document of a uniqueId, or
	// ErrNoDocument.
	DocumentByUniqueID(ctx context.Context, uniqueID string) (StoredDocument, error)
	// DocumentContent returns a document's content, checked against the
	// size and SHA-1 recorded at deposit.
	DocumentContent(ctx context.Context, id string) ([]byte, error)
	// Controls returns a patient's controls: for a patient who decided
	// nothing, none blocked and emergency access on.
	Controls(ctx context.Context, ins string) (PatientControls, error)
	// SetControls replaces a patient's controls (c.INS).
	SetControls(ctx context.Context, c PatientControls) error
}

// DefaultControls are the controls of a patient who decided nothing:
// nobody blocked, emergency access on (docs/domain.md §5: SAMU and
// emergency services have access unless the patient opposed it).
func DefaultControls(ins string) PatientControls {
	return PatientControls{INS: ins, Emergency: true}
}

// VaultConnector is the embedded connector (Name "vault") over a Store.
type VaultConnector struct {
	Store Store
	// Grid, when set, is applied again to each document at deposit with
	// the patient's controls (Grid.MayDepositFor): a document it refuses
	// is an Outcome with code NOT_AUTHORIZED, the others are deposited.
	// The deposit path asks the grid before; this keeps the vault safe
	// when called from elsewhere.
	Grid *Grid
	// Audit records the events that change nothing (a refused deposit);
	// the store records the deposits. Nil records nothing.
	Audit func(storage.AuditRecord)
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

var _ Vault = (*VaultConnector)(nil)

// Name implements Connector.
func (v *VaultConnector) Name() string { return "vault" }

// Outcome codes of the vault, in the national receipt's style.
const (
	CodeNotAuthorized   = "NOT_AUTHORIZED"
	CodeHashMismatch    = "HASH_MISMATCH"
	CodeNoPatient       = "PATIENT_MISSING"
	CodeNoContent       = "CONTENT_MISSING"
	CodeUniqueIDTaken   = "UNIQUE_ID_CONFLICT"
	CodeReplaceUnknown  = "REPLACED_DOCUMENT_UNKNOWN"
	CodeReplaceNotOwner = "REPLACE_NOT_AUTHOR"
)

// Deposit implements Connector: each document of sub is stored (or found
// stored already, for a deposit that runs twice), or refused with its
// reason; an error is the store failing, and nothing after the failing
// document is tried.
func (v *VaultConnector) Deposit(ctx context.Context, sub *Submission, by Depositor) ([]Outcome, error) {
	out := make([]Outcome, 0, len(sub.Documents))
	controls := make(map[string]PatientControls)
	for i := range sub.Documents {
		doc := &sub.Documents[i]
		o, err := v.depositOne(ctx, doc, sub, by, controls)
		if err != nil {
			return out, err
		}
		if !o.Deposited {
			v.record(storage.AuditRecord{Actor: actorOf(by), Action: "dmp.deposit", Object: doc.UniqueID,
				Outcome: audit.OutcomeRefused, Details: map[string]string{"ins": doc.PatientINS, "type": doc.TypeCode.Code, "code": o.Code, "reason": o.Reason}})
		}
		out = append(out, o)
	}
	return out, nil
}

func actorOf(by Depositor) string {
	if by.Address != "" {
		return by.Address
	}
	return "system"
}

func (v *VaultConnector) depositOne(ctx context.Context, doc *Document, sub *Submission, by Depositor, controls map[string]PatientControls) (Outcome, error) {
	o := Outcome{UniqueID: doc.UniqueID, Title: doc.Title}
	refuse := func(code, reason string) (Outcome, error) {
		o.Code, o.Reason = code, reason
		return o, nil
	}
	ins := doc.PatientINS
	if ins == "" {
		ins = sub.PatientINS
	}
	if ins == "" {
		return refuse(CodeNoPatient, "The document names no patient (patientId): the vault does not know whose record it belongs to.")
	}
	if doc.UniqueID == "" {
		return refuse(CodeNoContent, "The document has no uniqueId: it cannot be named in the record.")
	}
	if len(doc.Content) == 0 {
		return refuse(CodeNoContent, "The document has no content.")
	}
	sum := sha1.Sum(doc.Content)
	hash := hex.EncodeToString(sum[:])
	if doc.SHA1 != "" && !strings.EqualFold(doc.SHA1, hash) {
		return refuse(CodeHashMismatch, "The document's content does not match the SHA-1 hash of its metadata.")
	}
	if v.Grid != nil {
		ctl, ok := controls[ins]
		if !ok {
			var err error
			if ctl, err = v.Store.Controls(ctx, ins); err != nil {
				return o, fmt.Errorf("dmp vault: controls of the patient: %w", err)
			}
			controls[ins] = ctl
		}
		d := *doc
		d.PatientINS = ins
		if ok, reason := v.Grid.MayDepositFor(by, &d, ctl); !ok {
			return refuse(CodeNotAuthorized, reason)
		}
	}
	if doc.Replaces != "" {
		old, err := v.replaced(ctx, ins, doc.Replaces)
		if errors.Is(err, ErrNoDocument) {
			return refuse(CodeReplaceUnknown, "The document it replaces is not in the patient's record.")
		}
		if err != nil {
			return o, err
		}
		if !mayReplace(by, &old) {
			return refuse(CodeReplaceNotOwner, "Only the author of a document, or its structure, may replace it.")
		}
	}
	meta := *doc
	meta.Content = nil
	meta.PatientINS = ins
	meta.SHA1 = hash
	meta.Size = int64(len(doc.Content))
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	sd := StoredDocument{PatientINS: ins, Document: meta, DepositedBy: by.Address, DepositedAt: now().UTC()}
	stored, _, err := v.Store.PutDocument(ctx, sd, doc.Content)
	switch {
	case errors.Is(err, ErrUniqueIDTaken):
		return refuse(CodeUniqueIDTaken, "Another document with this uniqueId is in the vault already, with other content: a new version needs a new uniqueId and a replacement (RPLC) of the old one.")
	case errors.Is(err, ErrNoDocument):
		return refuse(CodeReplaceUnknown, "The document it replaces is not in the patient's record.")
	case errors.Is(err, ErrAlreadyReplaced):
		return refuse(CodeReplaceUnknown, "The document it replaces was already replaced by a newer version: replace the current one.")
	case err != nil:
		return o, fmt.Errorf("dmp vault: store document %s: %w", doc.UniqueID, err)
	}
	o.Deposited, o.Ref = true, stored.ID
	return o, nil
}

// replaced finds the document that Replaces names (uniqueId, or vault ID)
// in the record of ins.
func (v *VaultConnector) replaced(ctx context.Context, ins, ref string) (StoredDocument, error) {
	old, err := v.Store.DocumentByUniqueID(ctx, ref)
	if errors.Is(err, ErrNoDocument) {
		old, err = v.Store.Document(ctx, ref)
	}
	if err != nil {
		return old, err
	}
	if old.PatientINS != ins {
		return old, ErrNoDocument
	}
	return old, nil
}

// mayReplace: by deposited old, is one of its authors, or deposits for
// the structure that wrote it (docs/domain.md §5: only an author may
// replace).
func mayReplace(by Depositor, old *StoredDocument) bool {
	if by.Address != "" && strings.EqualFold(by.Address, old.DepositedBy) {
		return true
	}
	for _, a := range old.Document.Authors {
		if by.NationalID != "" && a.PersonID == by.NationalID {
			return true
		}
		if by.Organisation != "" && a.InstitutionID == by.Organisation {
			return true
		}
	}
	return false
}

func (v *VaultConnector) record(rec storage.AuditRecord) {
	if v.Audit != nil {
		v.Audit(rec)
	}
}

// List implements Vault.
func (v *VaultConnector) List(ctx context.Context, ins string) ([]StoredDocument, error) {
	return v.Store.Documents(ctx, ins)
}

// Open implements Vault: the document and its content. Whoever calls it
// decides who may read (Grid.Decide) and records the read (dmp.read).
func (v *VaultConnector) Open(ctx context.Context, id string) (StoredDocument, io.ReadCloser, error) {
	d, err := v.Store.Document(ctx, id)
	if err != nil {
		return d, nil, err
	}
	b, err := v.Store.DocumentContent(ctx, id)
	if err != nil {
		return d, nil, err
	}
	return d, io.NopCloser(bytes.NewReader(b)), nil
}
