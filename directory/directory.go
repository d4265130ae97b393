// Package directory is the register of who may use Carepost: professionals
// (RPPS/ADELI), patients (INS), organisational and applicative mailboxes, and
// the trust space (the domains of the secure health messaging space). Every
// listener asks it: may this user log in, does this address exist, may this
// user write as that address, is that domain part of the space.
//
// The package holds the rules (identifier formats and keys, statuses,
// delegation); persistence is behind the Store interface, implemented by
// storage/sqlite (and later PostgreSQL).
package directory

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Kind is the national type of a mailbox (TRE_R257-TypeBAL), plus patients.
type Kind string

const (
	KindPersonal       Kind = "PER" // one professional
	KindOrganisational Kind = "ORG" // a service or team, with delegated members
	KindApplicative    Kind = "APP" // a piece of software
	KindPractice       Kind = "CAB" // a practice (cabinet)
	KindPatient        Kind = "PAT" // a patient, <INS>@<patient domain>
)

// Status is the life-cycle state of a mailbox.
type Status string

const (
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
	StatusClosed    Status = "closed"
)

// Entry is one mailbox of the directory. Address and Kind never change once
// created.
type Entry struct {
	Address string // canonical: lower case
	Kind    Kind
	Status  Status

	// NationalID is the "identification nationale": 8+RPPS or 0+ADELI for a
	// professional, the INS (15 digits) for a patient, empty otherwise.
	NationalID string
	Profession string // TRE_G15 code, e.g. "10" for a doctor
	Specialty  string // TRE_R38 code, e.g. "SM54"
	FirstName  string
	LastName   string
	// Organisation is the identifier of the structure (idNatStruct) for
	// ORG, APP and CAB mailboxes, or where a professional practises.
	Organisation string
	Description  string
	// Members are the addresses delegated to an ORG, APP or CAB mailbox:
	// they see it as a shared mailbox and may send as it. Their roles are
	// read with Store.Members.
	Members []string
	// ListeRouge hides the entry from searches and exports.
	ListeRouge bool
	// NotifyAddress is where a patient is told of new messages.
	NotifyAddress string
	// DuplicateIDReason is why a professional's NationalID is also that of
	// another mailbox: given by the operator who allowed it
	// (ProfessionalInput.AllowDuplicateID), "" otherwise.
	DuplicateIDReason string
	CreatedAt         time.Time
	LastLogin         time.Time
}

// ListFilter selects entries for the operator's listings (Directory.List).
// Empty fields select everything.
type ListFilter struct {
	// Query: every word must occur in the entry's searchable text, as in
	// Store.Search.
	Query      string
	Kind       Kind
	Status     Status
	Domain     string // lower case: the part after the @
	NationalID string
	// IncludeListeRouge: the operator sees the entries on the liste rouge
	// (patients among them); users and other operators never do.
	IncludeListeRouge bool
	Limit             int
}

// Role is a member's role in an ORG, APP or CAB mailbox. What each role
// may do is decided in one place, auth.Rights; the directory only stores
// it.
type Role string

const (
	RoleMember  Role = "member"  // read, flag, insert
	RoleManager Role = "manager" // and expunge, create, rename and delete folders
)

// ParseRole reads a role as typed by an operator (any case); "" is
// RoleMember.
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case "":
		return RoleMember, nil
	case RoleMember, RoleManager:
		return r, nil
	}
	return "", invalid(s, "Unknown role %q: use member or manager.", s)
}

// Member is a member of a shared mailbox, with its role.
type Member struct {
	Address string
	Role    Role
}

// Delegation is a shared mailbox an account is a member of, with the
// account's role in it.
type Delegation struct {
	Mailbox string
	Role    Role
}

// AppPassword is a per-device password (SASL PLAIN for mail clients).
type AppPassword struct {
	ID        int64
	Label     string
	Hash      string // argon2id, PHC string format
	CreatedAt time.Time
	LastUsed  time.Time
}

// Credentials are what Authenticate checks.
type Credentials struct {
	PasswordHash string // argon2id PHC string, "" if none set
	AppPasswords []AppPassword
	// Epoch is the account's credential epoch (AccountState.Epoch), read
	// with the hashes: a session opened with these credentials lasts
	// while the epoch stays the same.
	Epoch int64
}

// CredentialChange says what last moved an account's credential epoch.
type CredentialChange string

const (
	ChangeNone        CredentialChange = ""             // never moved
	ChangePassword    CredentialChange = "password"     // SetPassword
	ChangeAppPassword CredentialChange = "app-password" // DeleteAppPassword
	ChangeStatus      CredentialChange = "status"       // SetStatus to another status
)

// AccountState is what the open sessions of an account depend on. The
// sessions of a server read it for all their accounts at once, every
// second or so (auth.Sessions), and end those whose account is no longer
// active or whose epoch moved since they logged in: so a suspension, a new
// password or a revoked application password ends the sessions opened
// before, whichever process made the change.
type AccountState struct {
	Status Status
	// Epoch moves (it only grows) in the same transaction as every change
	// that must end the sessions opened before it: SetPassword,
	// DeleteAppPassword, and SetStatus when the status changes. Adding an
	// application password leaves it alone.
	Epoch  int64
	Change CredentialChange // what moved Epoch last
}

// TrustedDomain is a domain of the trust space (an entry of the national
// white list, docs/domain.md §1).
type TrustedDomain struct {
	Domain      string // lower case, IDNA A-label form
	Description string
	// OperatorCertDN is the subject DN expected on the operator's client
	// certificate when it delivers to us.
	OperatorCertDN string
	UpdatedAt      time.Time
}

// TrustListInfo says where the list of the trust space came from: the
// last `carepost trust import` or scheduled refresh (Directory.ImportTrustList).
type TrustListInfo struct {
	// Source is the file or the https URL imported; "" if the list was
	// never imported (only add-domain, or nothing).
	Source string
	// Generated is the list's own date (the white list's
	// DateDeGeneration), zero when the list gives none.
	Generated time.Time
	// ImportedAt is when it was imported; zero if never.
	ImportedAt time.Time
}

// TrustAnchor is a CA certificate of an operator of the trust space: a
// client certificate presented to our MX must chain to one of them, and
// so must the server certificate of an operator we deliver to.
type TrustAnchor struct {
	Fingerprint string // hex SHA-256 of DER, lower case
	Subject     string // the certificate's subject DN (RFC 4514)
	DER         []byte
	AddedAt     time.Time
}

// Store persists the directory. Every method is safe for concurrent use and
// durable when it returns nil.
type Store interface {
	// AddEntry creates an entry with its Members; ErrExists if the address
	// is taken, ErrNotFound if a member does not exist.
	AddEntry(ctx context.Context, e Entry) error
	// GetEntry returns ErrNotFound for an unknown address. Members are
	// sorted.
	GetEntry(ctx context.Context, address string) (Entry, error)
	// SetStatus changes the status of an entry; when it differs from the
	// one before, the credential epoch moves (ChangeStatus) in the same
	// transaction.
	SetStatus(ctx context.Context, address string, s Status) error
	// AccountStates returns the status and credential epoch of each of
	// addresses (canonical), in one read; an address that does not exist
	// is absent from the map. It is called every second or so with the
	// accounts that have open sessions, so it must cost one query, not
	// one per address.
	AccountStates(ctx context.Context, addresses []string) (map[string]AccountState, error)
	// SetMembers replaces the members of an ORG/APP/CAB entry; ErrNotFound
	// if the entry or a member does not exist (then nothing changes). A
	// member already there keeps its role; a new one is RoleMember.
	SetMembers(ctx context.Context, address string, members []string) error
	// AddMember makes member a member of mailbox with role, or changes its
	// role if it is one already; ErrNotFound if either does not exist.
	AddMember(ctx context.Context, mailbox, member string, role Role) error
	// RemoveMember removes member from mailbox; ErrNotFound if it was not
	// a member (or either does not exist).
	RemoveMember(ctx context.Context, mailbox, member string) error
	// Members lists the members of mailbox with their roles, sorted by
	// address; ErrNotFound for an unknown mailbox.
	Members(ctx context.Context, mailbox string) ([]Member, error)
	// MemberOf lists the mailboxes address is a member of with its role in
	// each, sorted by mailbox.
	MemberOf(ctx context.Context, address string) ([]Delegation, error)
	// Search finds entries whose address, names, national id, profession,
	// specialty or organisation contain every word of query, compared after
	// FoldSearch (case and accents ignored; % and _ are plain characters);
	// entries on the liste rouge are left out unless includeListeRouge. At
	// most limit entries, ordered by last name, first name, address.
	Search(ctx context.Context, query string, includeListeRouge bool, limit int) ([]Entry, error)
	// List returns the entries that match every field of f (Query as in
	// Search; an empty Query matches all), at most f.Limit, in Search's
	// order.
	List(ctx context.Context, f ListFilter) ([]Entry, error)

	// SetPassword stores the hash of the account's password and moves its
	// credential epoch (ChangePassword) in the same transaction
	// (ErrNotFound for an unknown address).
	SetPassword(ctx context.Context, address, hash string) error
	// AddAppPassword stores a new application password hash; the
	// credential epoch does not move.
	AddAppPassword(ctx context.Context, address, label, hash string) (AppPassword, error)
	// DeleteAppPassword removes the application password id of address
	// and moves the account's credential epoch (ChangeAppPassword) in the
	// same transaction; ErrNotFound if address has no such application
	// password.
	DeleteAppPassword(ctx context.Context, address string, id int64) error
	// Credentials returns the password hashes of an address, application
	// passwords in creation order; ErrNotFound for an unknown address.
	Credentials(ctx context.Context, address string) (Credentials, error)
	// RecordLogin notes a successful login (for inactivity rules) and which
	// application password was used (0 for the main password).
	RecordLogin(ctx context.Context, address string, appPasswordID int64, at time.Time) error

	// AddTrustedDomain adds or updates a domain of the trust space.
	AddTrustedDomain(ctx context.Context, d TrustedDomain) error
	// TrustedDomains lists the trust space, sorted by domain.
	TrustedDomains(ctx context.Context) ([]TrustedDomain, error)
	// RemoveTrustedDomain removes a domain of the trust space; ErrNotFound
	// if it is not there.
	RemoveTrustedDomain(ctx context.Context, domain string) error
	// ReplaceTrustedDomains replaces the whole trust space with list and
	// records info, in one transaction: a reader sees the old list or the
	// new one, never a mix, and a failure changes nothing.
	ReplaceTrustedDomains(ctx context.Context, list []TrustedDomain, info TrustListInfo) error
	// TrustListInfo returns what the last ReplaceTrustedDomains recorded
	// (the zero value if none).
	TrustListInfo(ctx context.Context) (TrustListInfo, error)
	// AddTrustAnchor stores a CA certificate, or updates the one with the
	// same fingerprint.
	AddTrustAnchor(ctx context.Context, a TrustAnchor) error
	// TrustAnchors lists the stored CA certificates, sorted by subject
	// then fingerprint.
	TrustAnchors(ctx context.Context) ([]TrustAnchor, error)

	// The S/MIME certificates of mailboxes (certs.go).
	CertStore
	// The TLS client certificates registered for mailboxes
	// (clientcerts.go).
	ClientCertStore
}

// Errors of the directory. Protocol adapters map them to their codes with
// errors.Is; the error text is safe to show to the client.
var (
	ErrNotFound = errors.New("no such address in the directory")
	ErrExists   = errors.New("this address already exists in the directory")
)
