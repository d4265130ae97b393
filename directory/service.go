package directory

import (
	"crypto/x509"
	"strings"
	"sync"
	"time"

	"github.com/carepost/carepost/refusal"
)

// Config is the part of the server configuration the directory needs.
type Config struct {
	// Domains are the mail domains this server hosts (e.g. "ch-x.mssante.fr").
	Domains []string
	// PatientDomain hosts patient mailboxes (<INS>@PatientDomain); it is one
	// of ours when it is also listed in Domains.
	PatientDomain string
	// Postmaster is the mailbox that receives the mail of postmaster@ and
	// abuse@ of every hosted domain (those without an entry of their own);
	// "" refuses it.
	Postmaster string
	// Anchors are trust anchors besides those of the store (Store.
	// TrustAnchors): the server's own development CA on the embedded
	// default, so that instances of one development PKI trust each other.
	Anchors []*x509.Certificate
}

// Directory applies the directory's rules over a Store. Safe for concurrent
// use.
type Directory struct {
	store Store
	cfg   Config
	// local is the set of cfg.Domains, lower case.
	local map[string]bool

	// trust caches the trust space for trustTTL: it is read for every
	// remote recipient and changes at most daily (white list import).
	trustMu sync.Mutex
	trust   *trustSnapshot
	// anchorCache caches the pool of trust anchors likewise (trust.go).
	anchorCache *anchorSnapshot

	// entries caches the entries read for each message (recipient
	// resolution, send-as checks) for entryTTL (cache.go). Credentials
	// are never cached: a suspension refuses the very next login.
	entryMu sync.Mutex
	entries map[string]cachedEntry

	// logins caches successful password checks (authcache.go).
	loginMu  sync.Mutex
	loginKey []byte
	logins   map[string]cachedLogin
	flights  map[string]*loginFlight

	now func() time.Time // for tests of LastLogin; time.Now otherwise
}

// trustTTL bounds how long a change of the trust space made by another
// process (the CLI, another node) takes to be seen. Changes made through
// this Directory are seen at once.
const trustTTL = 30 * time.Second

// New returns a Directory over store.
func New(store Store, cfg Config) *Directory {
	d := &Directory{store: store, cfg: cfg, local: map[string]bool{}, now: time.Now}
	// Copy: the caller's slice is not ours to rewrite.
	d.cfg.Domains = make([]string, 0, len(cfg.Domains))
	for _, dom := range cfg.Domains {
		dom = strings.ToLower(strings.TrimSuffix(dom, "."))
		d.cfg.Domains = append(d.cfg.Domains, dom)
		d.local[dom] = true
	}
	d.cfg.PatientDomain = strings.ToLower(strings.TrimSuffix(cfg.PatientDomain, "."))
	d.cfg.Postmaster = strings.ToLower(strings.TrimSpace(cfg.Postmaster))
	d.cfg.Anchors = append([]*x509.Certificate(nil), cfg.Anchors...)
	return d
}

// Principal is an authenticated user, as the directory knows it.
// It is plain data: package auth builds its Principal from it (auth
// imports directory, never the reverse).
type Principal struct {
	Address    string // canonical address of the account that logged in
	Kind       Kind
	NationalID string // Entry.NationalID
	// Organisation is Entry.Organisation: the structure a software or
	// organisational mailbox belongs to.
	Organisation string
	// Delegations are the active ORG/APP/CAB mailboxes this user is a
	// member of, with its role in each: auth.Rights decides from them what
	// it may do there.
	Delegations []Delegation
	// Epoch is the account's credential epoch read with the credentials
	// that were checked (AccountState.Epoch): the session ends when it
	// moves.
	Epoch int64
	// AppPassword is the ID of the application password that matched, 0
	// when it was the account's own password (auth.Options
	// RequireAppPasswords refuses those to mail clients).
	AppPassword int64
}

// Route says where a recipient lives.
type Route int

const (
	RouteLocal  Route = iota + 1 // a mailbox on this server
	RouteRemote                  // another operator of the trust space
)

// Recipient is a resolved recipient address.
type Recipient struct {
	Address string // canonical
	Route   Route
	Entry   Entry // for RouteLocal
}

// refuse builds the directory's refusals: a *refusal.Error of kind
// refusal.UnknownRecipient, RecipientInactive, OutsideTrustSpace,
// NotYourAddress, AuthFailed or InvalidAddress, naming the address, with a
// sentence a person understands. The protocol adapters map the kind to
// their codes (smtp/errors.go, imap/errors.go) and show the sentence.
func refuse(kind refusal.Kind, address, format string, args ...any) error {
	return refusal.New(kind, address, nil, format, args...)
}

// The methods below are implemented in the files of this package:
//
//	Authenticate(ctx, username, password) (Principal, error)       auth.go
//	ResolveRecipient(ctx, address) (Recipient, error)              resolve.go
//	IsLocalDomain(domain) bool                                     resolve.go
//	InTrustSpace(ctx, domain) (bool, error)                        resolve.go
//	Lookup / Search / MemberOf / Members / Delegations             lookup.go
//	AddProfessional / AddPatient / AddMailbox / SetMembers /
//	AddMember / RemoveMember /
//	SetPassword / NewAppPassword / SetStatus / AddTrustedDomain    admin.go
//	ImportTrustList / RemoveTrustedDomain / AddTrustAnchor /
//	TrustAnchors / VerifyOperator / CheckPeerDomain                trust.go
//	ParseWhiteList                                                 whitelist.go
//
// Identifier and address syntax: ids.go, address.go.
