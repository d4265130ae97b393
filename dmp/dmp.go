// Package dmp deposits the documents attached to a message into the
// patient's shared medical record (DMP, SPEC §7, docs/dmp.md): it reads an
// IHE XDM package (or plain attachments), checks it against the message
// that carried it, asks the authorization grid, deposits each document
// through a Connector, and answers the sender with a receipt per
// document. It runs as an after-commit hook of the message path
// (delivery.Hook), never inside the SMTP session.
//
// The parts, one file each:
//
//	dmp.go        the types every part shares (this file)
//	xdm.go        reading an IHE_XDM.ZIP safely: Limits, ReadXDM, ParseMetadata
//	pack.go       writing one (Pack: `carepost dmp pack`)
//	validate.go   the checks against the message: patient, author, codes
//	grid.go       the authorization grid and the patient's controls
//	vault.go      the embedded connector (documents in the store, sealed)
//	mhd.go        the HL7 FHIR MHD ITI-65 connector
//	deposit.go    the hook: a message → submissions → deposits → receipt
//	receipt.go    the MDN (RFC 8098) and plain receipts
package dmp

import (
	"context"
	"io"
	"time"
)

// Code is a coded value of the XDS metadata: a code, its coding scheme
// (an OID or a URI, e.g. LOINC 2.16.840.1.113883.6.1) and its display
// name.
type Code struct {
	Code, Scheme, Display string
}

// Visibility flags of a document (TRE_A07, OID 1.2.250.1.213.1.1.4.13,
// carried in confidentialityCode; docs/domain.md §5).
type Visibility uint8

const (
	// InvisiblePatient: not (yet) shown to the patient.
	InvisiblePatient Visibility = 1 << iota
	// InvisibleLegalRepresentatives: not shown to the patient's legal
	// representatives.
	InvisibleLegalRepresentatives
	// HiddenFromProfessionals (MASQUE_PS): hidden from professionals,
	// except the author and the patient's médecin traitant.
	HiddenFromProfessionals
)

// The TRE_A07 codes of the visibility flags.
const (
	CodeInvisiblePatient              = "INVISIBLE_PATIENT"
	CodeInvisibleLegalRepresentatives = "INVISIBLE_REPRESENTANTS_LEGAUX"
	CodeHiddenFromProfessionals       = "MASQUE_PS"
	// TREA07 is the coding scheme of those codes.
	TREA07 = "1.2.250.1.213.1.1.4.13"
)

// Author is the author of a document or submission set.
type Author struct {
	// PersonID is the professional's national identifier (8+RPPS,
	// 0+ADELI) as read from authorPerson (XCN: its first component).
	PersonID  string
	FirstName string
	LastName  string
	// InstitutionID is the structure's identifier (FINESS, SIRET) from
	// authorInstitution (XON: its last component); InstitutionName its
	// name.
	InstitutionID   string
	InstitutionName string
	Role            string // authorRole
	Specialty       string // authorSpecialty (a TRE_R38 code, for the grid)
}

// Document is one document of a submission with its XDS metadata
// (ebRIM ExtrinsicObject, docs/domain.md §5).
type Document struct {
	// EntryUUID is the document's identifier within the submission
	// ("urn:uuid:…" or a symbolic id); UniqueID its XDSDocumentEntry
	// uniqueId (an OID, or OID^extension), which the producer assigns
	// and which names the document everywhere.
	EntryUUID string
	UniqueID  string
	// PatientINS is the patient's matricule INS read from patientId
	// (`<INS>^^^&1.2.250.1.213.1.4.8&ISO`), in canonical form.
	PatientINS      string
	ClassCode       Code
	TypeCode        Code // LOINC: what the grid decides on
	FormatCode      Code
	Confidentiality []Code // the HL7 v3 N/R/V level and the TRE_A07 codes
	Visibility      Visibility
	Authors         []Author
	CreationTime    time.Time
	ServiceStart    time.Time
	ServiceStop     time.Time
	Title           string
	Language        string // "fr-FR"
	MimeType        string
	Size            int64  // from the metadata
	SHA1            string // hex, lower case, from the metadata
	// URI is the document's file name within the XDM subset directory
	// (or the attachment's file name for a plain attachment).
	URI string
	// Replaces is the UniqueID (or EntryUUID) of the document this one
	// replaces (an RPLC association), "" if none.
	Replaces string
	// Content is the document's bytes, checked against Size and SHA1 by
	// the reader (ReadXDM) before anything else sees them. Documents are
	// bounded by Limits, so they are held in memory.
	Content []byte
	// FacilityType and PracticeSetting are the healthcareFacilityTypeCode
	// (TRE_R02) and practiceSettingCode that XDS requires of every
	// document (added for xdm.go and pack.go).
	FacilityType    Code
	PracticeSetting Code
}

// Submission is what one message asks to deposit: the documents of one
// XDM submission set, or the plain attachments of the message.
type Submission struct {
	// UniqueID and SourceID of the submission set ("" for attachments).
	UniqueID   string
	SourceID   string
	PatientINS string
	Authors    []Author
	Submitted  time.Time
	Title      string
	Documents  []Document
	// FromXDM is false for plain attachments, whose metadata was taken
	// from the message (sender, recipient, attachment).
	FromXDM bool
	// ContentType is the submission set's contentTypeCode (the kind of
	// activity the documents come from), empty for attachments (added for
	// xdm.go and pack.go).
	ContentType Code
}

// Depositor is who deposits: the sender of the message, as the directory
// knows it.
type Depositor struct {
	Address      string // the sender's mailbox
	NationalID   string // a professional's, "" for software or an organisation
	Profession   string // TRE_G15 code, "" if none
	Specialty    string // TRE_R38 code
	Organisation string // the structure the mailbox belongs to
	// Software is true for an applicative mailbox (practice software
	// depositing for its organisation's professionals).
	Software bool
	// Patient is the depositor's INS when the patient adds a document to
	// their own record (the portal's "my documents"), "" otherwise; the
	// grid's patient_deposit then decides (grid.go).
	Patient string
}

// Reader is a professional reading documents through the API, or the
// patient through the portal.
type Reader struct {
	Address    string
	NationalID string
	Profession string
	Specialty  string
	// Patient is the INS of the reader when the reader is the patient.
	Patient string
	// Emergency is a "bris de glace" read: allowed past the blocks when
	// the patient left emergency access on, and always audited.
	Emergency bool
}

// Outcome is the result of one document's deposit.
type Outcome struct {
	UniqueID string
	Title    string
	// Deposited is true when the connector accepted the document; then
	// Ref is the connector's reference for it (the vault's document ID,
	// the MHD server's DocumentReference id).
	Deposited bool
	Ref       string
	// Code and Reason say why not: Code is a short machine code (the
	// "code^label" of the national KO receipt, e.g. "HASH_MISMATCH"),
	// Reason one sentence for the sender.
	Code   string
	Reason string
}

// Connector deposits documents into a patient's record: the embedded vault
// (vault.go), HL7 FHIR MHD (mhd.go), later IHE XDS.b. Adding one is a file
// implementing this interface.
type Connector interface {
	// Name names the connector in logs, receipts and the configuration
	// ("vault", "mhd").
	Name() string
	// Deposit deposits the documents of sub, already validated and
	// allowed by the grid, in one transaction where the connector has
	// them (MHD: one Bundle), and returns one Outcome per document, in
	// order. An error is the connector failing as a whole (unreachable,
	// a reply it cannot read): the deposit is tried again later. A
	// document the other side refuses is an Outcome with its reason, not
	// an error.
	//
	// Deposit must be idempotent for a document UniqueID already
	// deposited with the same content (the hook may run twice).
	Deposit(ctx context.Context, sub *Submission, by Depositor) ([]Outcome, error)
}

// StoredDocument is a document the vault holds, without its content.
type StoredDocument struct {
	ID         string // the vault's identifier
	PatientINS string
	Document   Document // metadata; Content is nil
	// DepositedBy is the address that deposited it, DepositedAt when.
	DepositedBy string
	DepositedAt time.Time
	// Version counts replacements: 1 for the first, and the replaced
	// document keeps its rows with ReplacedBy set.
	Version    int
	ReplacedBy string
}

// Vault is the embedded connector's read side, for the API and the
// portal.
type Vault interface {
	Connector
	// List returns the current (not replaced) documents of a patient,
	// newest first.
	List(ctx context.Context, ins string) ([]StoredDocument, error)
	// Open returns a document and its content.
	Open(ctx context.Context, id string) (StoredDocument, io.ReadCloser, error)
}

// PatientControls are what a patient decided about their record (SPEC §7:
// blocked professionals, emergency access).
type PatientControls struct {
	INS string
	// Blocked are the national identifiers of the professionals the
	// patient blocked (they neither read nor deposit, except the
	// médecin traitant, who is never blocked: docs/domain.md §5).
	Blocked []string
	// Emergency is whether emergency ("bris de glace") access is
	// allowed; on by default.
	Emergency bool
	// MedecinTraitant is the national identifier of the patient's
	// treating doctor, "" if unknown.
	MedecinTraitant string
}
