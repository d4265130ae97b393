package directory

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/refusal"
)

// ErrInvalidEntry is the Reason of the admin refusals about the data given
// (empty name, wrong kind, unknown member, address outside our domains…),
// which are *refusal.Error of kind refusal.InvalidInput.
var ErrInvalidEntry = errors.New("invalid directory entry")

// Limits of the admin operations.
const (
	MinPasswordLen = 12 // characters, the ANSSI minimum for a password alone
	// MaxAppPasswords bounds the application passwords of one account: each
	// is checked at every login that does not match the main password.
	MaxAppPasswords = 20
	maxTextLen      = 256
)

// ProfessionalInput describes a professional's personal (PER) mailbox.
type ProfessionalInput struct {
	// NationalID is 8+RPPS or 0+ADELI; a bare RPPS (11 digits) or ADELI
	// (9 digits) is accepted and stored in the national form.
	NationalID   string
	FirstName    string
	LastName     string
	Profession   string // TRE_G15 code, required
	Specialty    string // TRE_R38 code, optional
	Address      string // must be in one of our domains
	Organisation string // idNatStruct, optional
	ListeRouge   bool
	// AllowDuplicateID lets the national identifier be that of another
	// mailbox (a professional with a second practice, or a replacement
	// mailbox); DuplicateReason, required then, says why and is kept
	// with the entry.
	AllowDuplicateID bool
	DuplicateReason  string
}

// PatientInput describes a patient mailbox, <INS>@<PatientDomain>.
type PatientInput struct {
	INS       string
	FirstName string
	LastName  string
	// Notify is the ordinary e-mail address told of new messages
	// (optional; any domain).
	Notify string
}

func invalid(address, format string, args ...any) error {
	return refusal.New(refusal.InvalidInput, address, ErrInvalidEntry, format, args...)
}

// ErrDuplicateNationalID is the Reason of the refusal of a professional
// whose national identifier already has a mailbox.
var ErrDuplicateNationalID = errors.New("national identifier already in the directory")

// AddProfessional creates a PER mailbox. A professional may hold several
// mailboxes, but a second mailbox with the same national identifier is
// more often a typing mistake, or two people mixed up: it is refused
// unless in.AllowDuplicateID, with the reason recorded.
func (d *Directory) AddProfessional(ctx context.Context, in ProfessionalInput) (Entry, error) {
	addr, err := d.ourAddress(in.Address)
	if err != nil {
		return Entry{}, err
	}
	id, err := ProfessionalNationalID(strings.TrimSpace(in.NationalID))
	if err != nil {
		return Entry{}, err
	}
	if err := ValidateProfession(strings.TrimSpace(in.Profession)); err != nil {
		return Entry{}, err
	}
	spec := ""
	if s := strings.TrimSpace(in.Specialty); s != "" {
		if spec, err = ValidateSpecialty(s); err != nil {
			return Entry{}, err
		}
	}
	first, last, err := names(addr, in.FirstName, in.LastName)
	if err != nil {
		return Entry{}, err
	}
	org, err := text(addr, "organisation", in.Organisation)
	if err != nil {
		return Entry{}, err
	}
	reason, err := d.duplicateID(ctx, addr, id, in)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{
		Address: addr, Kind: KindPersonal, Status: StatusActive,
		NationalID: id, Profession: strings.TrimSpace(in.Profession), Specialty: spec,
		FirstName: first, LastName: last, Organisation: org,
		ListeRouge: in.ListeRouge, DuplicateIDReason: reason, CreatedAt: d.now(),
	}
	return e, d.add(ctx, e)
}

// duplicateID checks that the national identifier id has no mailbox yet,
// or that in allows it with a reason, which it returns ("" when id is
// new).
func (d *Directory) duplicateID(ctx context.Context, addr, id string, in ProfessionalInput) (string, error) {
	reason, err := text(addr, "reason", in.DuplicateReason)
	if err != nil {
		return "", err
	}
	if reason != "" && !in.AllowDuplicateID {
		return "", invalid(addr, "A reason is only given with --allow-duplicate-id, for a national identifier that already has a mailbox.")
	}
	found, err := d.store.List(ctx, ListFilter{NationalID: id, IncludeListeRouge: true, Limit: 3})
	if err != nil {
		return "", err
	}
	// The entry at addr itself, if any, is the taken address that add
	// reports.
	var others []Entry
	for _, e := range found {
		if e.Address != addr {
			others = append(others, e)
		}
	}
	if len(others) == 0 {
		if in.AllowDuplicateID {
			return "", invalid(addr, "The national identifier %s has no mailbox yet: --allow-duplicate-id is not needed.", id)
		}
		return "", nil
	}
	if !in.AllowDuplicateID {
		return "", refusal.New(refusal.InvalidInput, addr, ErrDuplicateNationalID,
			"The national identifier %s already belongs to %s: check the number, or, if the same professional needs another mailbox, give --allow-duplicate-id with --reason.", id, others[0].Address)
	}
	if reason == "" {
		return "", invalid(addr, "--allow-duplicate-id needs --reason: say why %s gets another mailbox (it is kept with the entry).", id)
	}
	return reason, nil
}

// AddPatient creates a patient mailbox <INS>@<PatientDomain>. The patient
// domain must be one of ours.
func (d *Directory) AddPatient(ctx context.Context, in PatientInput) (Entry, error) {
	if d.cfg.PatientDomain == "" || !d.local[d.cfg.PatientDomain] {
		return Entry{}, invalid("", "Patient mailboxes cannot be created: the patient domain (patient_domain) must be set and listed in the server's domains.")
	}
	ins, err := ParseINS(strings.TrimSpace(in.INS))
	if err != nil {
		return Entry{}, err
	}
	addr := strings.ToLower(ins) + "@" + d.cfg.PatientDomain
	first, last, err := names(addr, in.FirstName, in.LastName)
	if err != nil {
		return Entry{}, err
	}
	notify := ""
	if n := strings.TrimSpace(in.Notify); n != "" {
		if notify, err = ParseAddress(n); err != nil {
			return Entry{}, err
		}
	}
	e := Entry{
		Address: addr, Kind: KindPatient, Status: StatusActive,
		NationalID: ins, FirstName: first, LastName: last,
		NotifyAddress: notify, CreatedAt: d.now(),
		// A patient's mailbox is never listed in searches.
		ListeRouge: true,
	}
	return e, d.add(ctx, e)
}

// AddMailbox creates an ORG, APP or CAB mailbox with its delegated members,
// who must already exist.
func (d *Directory) AddMailbox(ctx context.Context, kind Kind, address string, members []string, description string) (Entry, error) {
	return d.AddSharedMailbox(ctx, MailboxInput{Kind: kind, Address: address, Members: members, Description: description})
}

// MailboxInput describes a new ORG, APP or CAB mailbox.
type MailboxInput struct {
	Kind        Kind
	Address     string
	Members     []string // addresses that must exist
	Description string
	// Organisation is the structure (idNatStruct: FINESS, SIRET…) the
	// mailbox belongs to: practice software logged in with its
	// certificate sends as the mailboxes and listed professionals of its
	// organisation (auth.SoftwareMaySendAs).
	Organisation string
}

// AddSharedMailbox creates an ORG, APP or CAB mailbox.
func (d *Directory) AddSharedMailbox(ctx context.Context, in MailboxInput) (Entry, error) {
	addr, err := d.ourAddress(in.Address)
	if err != nil {
		return Entry{}, err
	}
	switch in.Kind {
	case KindOrganisational, KindApplicative, KindPractice:
	default:
		return Entry{}, invalid(addr, "A shared mailbox must be of kind ORG, APP or CAB, not %q (professionals and patients have commands of their own).", in.Kind)
	}
	desc, err := text(addr, "description", in.Description)
	if err != nil {
		return Entry{}, err
	}
	org, err := text(addr, "organisation", in.Organisation)
	if err != nil {
		return Entry{}, err
	}
	ms, err := d.checkMembers(ctx, addr, in.Members)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Address: addr, Kind: in.Kind, Status: StatusActive, Description: desc, Organisation: org, Members: ms, CreatedAt: d.now()}
	return e, d.add(ctx, e)
}

// SetMembers replaces the delegated members of an ORG, APP or CAB mailbox.
// Those who stay keep their role; new ones are RoleMember.
func (d *Directory) SetMembers(ctx context.Context, address string, members []string) error {
	e, err := d.sharedEntry(ctx, address)
	if err != nil {
		return err
	}
	ms, err := d.checkMembers(ctx, e.Address, members)
	if err != nil {
		return err
	}
	defer d.forgetEntries()
	return d.store.SetMembers(ctx, e.Address, ms)
}

// AddMember makes member a member of the ORG, APP or CAB mailbox with
// role, or gives it that role if it is a member already. It takes effect
// at the member's next login for reading (IMAP sessions read their
// delegations again when they open a shared folder), at once for sending.
func (d *Directory) AddMember(ctx context.Context, mailbox, member string, role Role) error {
	e, err := d.sharedEntry(ctx, mailbox)
	if err != nil {
		return err
	}
	if role != RoleMember && role != RoleManager {
		return invalid(e.Address, "Unknown role %q: use member or manager.", role)
	}
	ms, err := d.checkMembers(ctx, e.Address, []string{member})
	if err != nil {
		return err
	}
	defer d.forgetEntries()
	return d.store.AddMember(ctx, e.Address, ms[0], role)
}

// RemoveMember takes member out of the ORG, APP or CAB mailbox.
func (d *Directory) RemoveMember(ctx context.Context, mailbox, member string) error {
	e, err := d.sharedEntry(ctx, mailbox)
	if err != nil {
		return err
	}
	addr, err := ParseAddress(strings.TrimSpace(member))
	if err != nil {
		return err
	}
	defer d.forgetEntries()
	err = d.store.RemoveMember(ctx, e.Address, addr)
	if errors.Is(err, ErrNotFound) {
		return invalid(e.Address, "%s is not a member of %s.", addr, e.Address)
	}
	return err
}

// sharedEntry returns the entry of an ORG, APP or CAB mailbox, refusing
// the other kinds with a sentence.
func (d *Directory) sharedEntry(ctx context.Context, address string) (Entry, error) {
	e, err := d.Lookup(ctx, address)
	if err != nil {
		return Entry{}, err
	}
	switch e.Kind {
	case KindOrganisational, KindApplicative, KindPractice:
		return e, nil
	}
	return Entry{}, invalid(e.Address, "The mailbox %s is of kind %s: only ORG, APP and CAB mailboxes have members.", e.Address, e.Kind)
}

// SetPassword sets the account's password (at least MinPasswordLen
// characters).
func (d *Directory) SetPassword(ctx context.Context, address, password string) error {
	e, err := d.Lookup(ctx, address)
	if err != nil {
		return err
	}
	if n := utf8.RuneCountInString(password); n < MinPasswordLen {
		return invalid(e.Address, "The password is too short: it must have at least %d characters, it has %d.", MinPasswordLen, n)
	}
	if len(password) > crypto.MaxPasswordLen {
		return invalid(e.Address, "The password is too long: at most %d bytes.", crypto.MaxPasswordLen)
	}
	h, err := crypto.HashPassword(password)
	if err != nil {
		return err
	}
	return d.store.SetPassword(ctx, e.Address, h)
}

// NewAppPassword creates an application password for a mail client and
// returns it: it is shown once and only its hash is kept.
func (d *Directory) NewAppPassword(ctx context.Context, address, label string) (string, error) {
	e, err := d.Lookup(ctx, address)
	if err != nil {
		return "", err
	}
	if e.Kind == KindPatient {
		return "", invalid(e.Address, "Patients log in through the portal; application passwords are for professionals' mail clients.")
	}
	label, err = text(e.Address, "label", label)
	if err != nil {
		return "", err
	}
	creds, err := d.store.Credentials(ctx, e.Address)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	if label == "" {
		label = freeLabel(creds.AppPasswords)
	}
	// Labels are unique per account (any case), so that one names the
	// password to revoke.
	for _, ap := range creds.AppPasswords {
		if strings.EqualFold(ap.Label, label) {
			return "", invalid(e.Address, "The account %s already has an application password labelled %q: choose another label, or revoke that one first.", e.Address, ap.Label)
		}
	}
	if len(creds.AppPasswords) >= MaxAppPasswords {
		return "", invalid(e.Address, "The account %s already has %d application passwords, the maximum: remove one first.", e.Address, MaxAppPasswords)
	}
	pw := crypto.GenerateAppPassword()
	h, err := crypto.HashAppPassword(pw)
	if err != nil {
		return "", err
	}
	if _, err := d.store.AddAppPassword(ctx, e.Address, label, h); err != nil {
		return "", err
	}
	return pw, nil
}

// freeLabel is the default label of a new application password:
// "application password", then "application password 2"…, the first
// that the account does not use.
func freeLabel(aps []AppPassword) string {
	used := map[string]bool{}
	for _, ap := range aps {
		used[strings.ToLower(ap.Label)] = true
	}
	label := "application password"
	for i := 2; used[label]; i++ {
		label = "application password " + strconv.Itoa(i)
	}
	return label
}

// SetStatus activates, suspends or closes a mailbox. It takes effect at the
// next login, and on deliveries and send-as checks at once in this process
// (within entryTTL in another, see cache.go).
func (d *Directory) SetStatus(ctx context.Context, address string, s Status) error {
	addr, err := ParseAddress(address)
	if err != nil {
		return err
	}
	switch s {
	case StatusActive, StatusSuspended, StatusClosed:
	default:
		return invalid(addr, "Unknown status %q: use active, suspended or closed.", s)
	}
	defer d.forgetEntries()
	return d.store.SetStatus(ctx, addr, s)
}

// ErrTrustedDomainExists is the Reason of the refusal of a domain that is
// in the trust space already.
var ErrTrustedDomainExists = errors.New("domain already in the trust space")

// AddTrustedDomain adds a domain of another operator to the trust space.
// A domain this server hosts is refused (its mail never leaves the
// server), and so is one listed already.
func (d *Directory) AddTrustedDomain(ctx context.Context, domain string, description string) error {
	return d.AddOperatorDomain(ctx, domain, description, "")
}

// AddOperatorDomain is AddTrustedDomain with the subject DN of the
// operator's client certificate (TrustedDomain.OperatorCertDN), "" for
// none: then any certificate of the trust anchors may deliver mail of the
// domain, unless the white list names it for other domains only.
func (d *Directory) AddOperatorDomain(ctx context.Context, domain, description, operatorDN string) error {
	dom, err := ParseDomain(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if err != nil {
		return err
	}
	if d.local[dom] {
		return invalid(dom, "The domain %s is hosted by this server: it is part of the trust space already, and only other operators' domains are added.", dom)
	}
	desc, err := text(dom, "description", description)
	if err != nil {
		return err
	}
	dn := strings.TrimSpace(operatorDN)
	if dn != "" {
		if _, err := parseDN(dn); err != nil || len(dn) > maxDNLen {
			return invalid(dom, "The operator certificate DN %q cannot be read (RFC 4514, e.g. \"CN=mx.operateur.fr,O=Operateur,C=FR\").", clip(dn, 80))
		}
	}
	ds, err := d.store.TrustedDomains(ctx)
	if err != nil {
		return err
	}
	for _, t := range ds {
		if t.Domain == dom {
			return refusal.New(refusal.InvalidInput, dom, ErrTrustedDomainExists, "The domain %s is in the trust space already.", dom)
		}
	}
	if err := d.store.AddTrustedDomain(ctx, TrustedDomain{Domain: dom, Description: desc, OperatorCertDN: dn, UpdatedAt: d.now()}); err != nil {
		return err
	}
	d.forgetTrustSpace()
	return nil
}

// ourAddress checks that address is valid and in one of our domains, other
// than the patient domain (patient addresses are built by AddPatient).
func (d *Directory) ourAddress(address string) (string, error) {
	addr, err := ParseAddress(strings.TrimSpace(address))
	if err != nil {
		return "", err
	}
	_, dom := SplitAddress(addr)
	if !d.local[dom] {
		return "", invalid(addr, "The address %s is not in a domain of this server (%s).", addr, strings.Join(d.cfg.Domains, ", "))
	}
	if dom == d.cfg.PatientDomain {
		return "", invalid(addr, "The domain %s is reserved for patient mailboxes.", dom)
	}
	return addr, nil
}

// checkMembers validates the members of a shared mailbox: existing, not
// patients, not the mailbox itself; duplicates are dropped.
func (d *Directory) checkMembers(ctx context.Context, mailbox string, members []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, m := range members {
		addr, err := ParseAddress(strings.TrimSpace(m))
		if err != nil {
			return nil, err
		}
		if seen[addr] {
			continue
		}
		if addr == mailbox {
			return nil, invalid(mailbox, "The mailbox %s cannot be a member of itself.", mailbox)
		}
		e, err := d.store.GetEntry(ctx, addr)
		if errors.Is(err, ErrNotFound) {
			return nil, invalid(mailbox, "The member %s does not exist in the directory: create it first.", addr)
		}
		if err != nil {
			return nil, err
		}
		if e.Kind == KindPatient {
			return nil, invalid(mailbox, "The patient mailbox %s cannot be a member of a shared mailbox.", addr)
		}
		seen[addr] = true
		out = append(out, addr)
	}
	return out, nil
}

// add stores e, turning ErrExists into a sentence naming the address.
func (d *Directory) add(ctx context.Context, e Entry) error {
	defer d.forgetEntries()
	err := d.store.AddEntry(ctx, e)
	if errors.Is(err, ErrExists) {
		return refusal.New(refusal.InvalidInput, e.Address, err, "The address %s already exists in the directory.", e.Address)
	}
	return err
}

// names checks and trims a first and last name: both required.
func names(addr, first, last string) (string, string, error) {
	f, err := text(addr, "first name", first)
	if err != nil {
		return "", "", err
	}
	l, err := text(addr, "last name", last)
	if err != nil {
		return "", "", err
	}
	if f == "" || l == "" {
		return "", "", invalid(addr, "The first name and the last name are both required.")
	}
	return f, l, nil
}

// text trims a free-text field and refuses control characters, invalid
// UTF-8 and excessive length (they end up in headers and listings).
func text(addr, field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", invalid(addr, "The %s is not valid UTF-8 text.", field)
	}
	if utf8.RuneCountInString(s) > maxTextLen {
		return "", invalid(addr, "The %s is longer than %d characters.", field, maxTextLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", invalid(addr, "The %s contains a control character.", field)
		}
	}
	return s, nil
}
