// Package keyring keeps the S/MIME certificates and keys of mailboxes and
// finds those of other operators' recipients: it is the smime.Keyring
// that the gateway's transforms ask (crypto/smime), over the directory's
// store (directory.CertStore), where every process and node sees the same
// certificates and the private keys are sealed at rest.
//
// Why here: crypto/ holds keys and certificates, and this package decides
// which certificate names which address, which key matches it and which
// may sign or encrypt; the directory (the register) only says which
// mailboxes exist and keeps the rows. The package builds on both, and
// neither imports it.
//
// Implementation notes:
//   - A mailbox has a signature certificate and an encryption certificate
//     (RFC 8550 §4.4.2 recommends separate keys), each naming the address
//     in an rfc822Name subjectAltName (RFC 8550 §3). An encryption
//     certificate is RSA: CMS key transport in github.com/smallstep/pkcs7
//     is RSA only (docs/domain.md §6b).
//   - A replaced certificate stays with its key: mail encrypted to it is
//     still read (Decrypters returns every key, newest first).
//   - End-to-end mode: a local mailbox whose newest encryption certificate
//     was imported without its key; its mail is delivered as it came.
//   - Other operators publish their mailboxes' certificates over HTTPS
//     (publish.go); we fetch them from the endpoint configured for the
//     recipient's domain (fetch.go), over TLS verified against the trust
//     anchors, and cache them in the store for CacheTTL. A certificate
//     imported by hand for a remote address wins over the endpoint.
//   - Signer and Decrypters are asked for every message: the parsed
//     identities of an address are kept in memory for localTTL, so that a
//     certificate issued or imported by another process (the command line
//     beside a running server) is used within that time.
package keyring

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/carepost/carepost/crypto/smime"
	"github.com/carepost/carepost/directory"
)

// Defaults of Options.
const (
	// DefaultCacheTTL is how long a certificate fetched from another
	// operator is used before it is fetched again.
	DefaultCacheTTL = 24 * time.Hour
	// localTTL bounds how long a certificate issued or imported by
	// another process takes to be used for signing and decryption.
	localTTL = 30 * time.Second
	// missTTL: after an endpoint answered that it publishes no
	// certificate for an address, it is not asked again for this long
	// (a burst of mail to that recipient makes one request).
	missTTL = 5 * time.Minute
	// maxCached bounds the memory of the in-memory caches; past it they
	// are emptied and fill again with the addresses in use.
	maxCached = 10000
)

// Options configure a Keyring.
type Options struct {
	// Store keeps the certificates (the server's sqlite.DB).
	Store directory.CertStore
	// Dir says which domains are ours and which mailboxes exist.
	Dir *directory.Directory
	// Endpoints maps another operator's domain (lower case) to the base
	// URL of its publication endpoint, "https://host:port".
	Endpoints map[string]string
	// CacheTTL is how long a fetched certificate is used before it is
	// fetched again; 0 means DefaultCacheTTL.
	CacheTTL time.Duration
	// TrustAnchors are the CA certificates an endpoint's server
	// certificate must chain to (the server's trust anchors).
	TrustAnchors func() (*x509.CertPool, error)
	// ClientCertificate, when set, is presented to the endpoints (our
	// operator certificate): an endpoint shows the certificates of the
	// mailboxes on the liste rouge to the operators of the trust space
	// only.
	ClientCertificate func() (*tls.Certificate, error)
	Logger            *slog.Logger
	// FetchTimeout bounds one fetch, connection to last byte; 0 means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// AutoIssue, when set, issues the certificates of a mailbox of the
	// directory that has none valid now, the first time the gateway needs
	// them: to sign what it sends to another operator (Signer), or when
	// another operator asks for its encryption certificate (the
	// publication). The server sets it on the embedded default, whose
	// development CA issues them (SPEC §6: S/MIME out of the box); nil in
	// production, where they come from the health PKI (`carepost pki
	// import`).
	AutoIssue func(ctx context.Context, address string) error
}

// Keyring implements smime.Keyring. Safe for concurrent use.
type Keyring struct {
	store     directory.CertStore
	dir       *directory.Directory
	endpoints map[string]string
	ttl       time.Duration
	anchors   func() (*x509.CertPool, error)
	clientCrt func() (*tls.Certificate, error)
	logger    *slog.Logger
	timeout   time.Duration
	now       func() time.Time

	autoIssue   func(ctx context.Context, address string) error
	autoIssueMu sync.Mutex // one issue at a time (RSA key generation)

	mu     sync.Mutex
	local  map[string]cachedLocal
	misses map[string]time.Time // address → until when a miss holds
	// flights coalesces the fetches of one address.
	flights map[string]*flight

	// fetches counts requests to endpoints (tests).
	fetches int64
}

var _ smime.Keyring = (*Keyring)(nil)

// New returns a Keyring.
func New(o Options) *Keyring {
	k := &Keyring{store: o.Store, dir: o.Dir, endpoints: map[string]string{}, ttl: o.CacheTTL,
		anchors: o.TrustAnchors, clientCrt: o.ClientCertificate, logger: o.Logger, timeout: o.FetchTimeout, autoIssue: o.AutoIssue,
		now: time.Now, local: map[string]cachedLocal{}, misses: map[string]time.Time{}, flights: map[string]*flight{}}
	if k.ttl <= 0 {
		k.ttl = DefaultCacheTTL
	}
	if k.timeout <= 0 {
		k.timeout = DefaultFetchTimeout
	}
	if k.logger == nil {
		k.logger = slog.New(slog.DiscardHandler)
	}
	for d, u := range o.Endpoints {
		k.endpoints[strings.ToLower(strings.TrimSuffix(d, "."))] = strings.TrimRight(u, "/")
	}
	return k
}

// cert is a row of the store, parsed.
type cert struct {
	row   directory.MailboxCert
	cert  *x509.Certificate
	chain []*x509.Certificate
	key   crypto.PrivateKey // nil without key
}

type cachedLocal struct {
	certs   []cert // newest first
	expires time.Time
}

// parseRow parses a row; a row that does not parse is an error, not
// skipped: a corrupt key must be seen, not turn into "no certificate".
func parseRow(r directory.MailboxCert) (cert, error) {
	c := cert{row: r}
	var err error
	if c.cert, err = x509.ParseCertificate(r.DER); err != nil {
		return c, fmt.Errorf("keyring: the %s certificate of %s (%s): %w", r.Usage, r.Address, r.Fingerprint, err)
	}
	if len(r.Chain) > 0 {
		if c.chain, err = x509.ParseCertificates(r.Chain); err != nil {
			return c, fmt.Errorf("keyring: the chain of the %s certificate of %s (%s): %w", r.Usage, r.Address, r.Fingerprint, err)
		}
	}
	if len(r.Key) > 0 {
		if c.key, err = x509.ParsePKCS8PrivateKey(r.Key); err != nil {
			return c, fmt.Errorf("keyring: the %s key of %s (%s): %w", r.Usage, r.Address, r.Fingerprint, err)
		}
	}
	return c, nil
}

// canonical checks an address and returns it with its domain.
func canonical(address string) (addr, domain string, err error) {
	addr, err = directory.ParseAddress(strings.TrimSpace(address))
	if err != nil {
		return "", "", err
	}
	_, domain = directory.SplitAddress(addr)
	return addr, domain, nil
}

// localCerts returns the parsed certificates of a local mailbox, newest
// first, from the cache or the store.
func (k *Keyring) localCerts(ctx context.Context, addr string) ([]cert, error) {
	now := k.now()
	k.mu.Lock()
	if c, ok := k.local[addr]; ok && now.Before(c.expires) {
		k.mu.Unlock()
		return c.certs, nil
	}
	k.mu.Unlock()
	rows, err := k.store.MailboxCerts(ctx, addr)
	if err != nil {
		return nil, err
	}
	var certs []cert
	for _, r := range rows {
		if r.Remote {
			continue
		}
		c, err := parseRow(r)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	k.mu.Lock()
	if len(k.local) >= maxCached {
		clear(k.local)
	}
	k.local[addr] = cachedLocal{certs: certs, expires: now.Add(localTTL)}
	k.mu.Unlock()
	return certs, nil
}

// forget drops what is cached of addr (after a change through this
// Keyring: seen at once here, within localTTL by other processes).
func (k *Keyring) forget(addr string) {
	k.mu.Lock()
	delete(k.local, addr)
	delete(k.misses, addr)
	k.mu.Unlock()
}

func (k *Keyring) validAt(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && !now.After(c.NotAfter)
}

// Signer implements smime.Keyring: the newest signature certificate of a
// local mailbox that is valid now and whose key the server holds, with
// its chain.
func (k *Keyring) Signer(ctx context.Context, address string) (*smime.Identity, error) {
	addr, domain, err := canonical(address)
	if err != nil {
		return nil, err
	}
	if !k.dir.IsLocalDomain(domain) {
		return nil, smime.ErrNoCertificate
	}
	certs, err := k.localCerts(ctx, addr)
	if err != nil {
		return nil, err
	}
	now := k.now()
	for _, c := range certs {
		if c.row.Usage == directory.UsageSign && c.key != nil && k.validAt(c.cert, now) {
			return &smime.Identity{Cert: c.cert, Key: c.key, Chain: c.chain}, nil
		}
	}
	if k.autoIssue != nil && !k.anyValid(certs, now) {
		if issued, err := k.issueNow(ctx, addr); err != nil || issued {
			if err != nil {
				return nil, err
			}
			return k.Signer(ctx, addr)
		}
	}
	return nil, smime.ErrNoCertificate
}

// anyValid reports whether one of certs is valid now.
func (k *Keyring) anyValid(certs []cert, now time.Time) bool {
	for _, c := range certs {
		if k.validAt(c.cert, now) {
			return true
		}
	}
	return false
}

// issueNow runs AutoIssue for a mailbox that has no certificate valid
// now, once: it reports whether the mailbox has certificates afterwards
// (issued here, or by another process meanwhile). A mailbox that is not in
// the directory, or not active, gets none.
func (k *Keyring) issueNow(ctx context.Context, addr string) (bool, error) {
	k.autoIssueMu.Lock()
	defer k.autoIssueMu.Unlock()
	k.forget(addr)
	certs, err := k.localCerts(ctx, addr)
	if err != nil {
		return false, err
	}
	if k.anyValid(certs, k.now()) {
		return true, nil
	}
	e, err := k.dir.Lookup(ctx, addr)
	if errors.Is(err, directory.ErrNotFound) || err == nil && e.Status != directory.StatusActive {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := k.autoIssue(ctx, addr); err != nil {
		return false, fmt.Errorf("keyring: issue the S/MIME certificates of %s: %w", addr, err)
	}
	k.logger.Info("S/MIME certificates issued from the development CA at first use", "address", addr)
	k.forget(addr)
	return true, nil
}

// Decrypters implements smime.Keyring: every encryption key of a local
// mailbox the server holds, newest first, expired ones included (they
// still open the mail encrypted to them). endToEnd is true when the
// newest encryption certificate valid now has no key here.
func (k *Keyring) Decrypters(ctx context.Context, address string) ([]smime.Identity, bool, error) {
	addr, domain, err := canonical(address)
	if err != nil {
		return nil, false, err
	}
	if !k.dir.IsLocalDomain(domain) {
		return nil, false, smime.ErrNoCertificate
	}
	certs, err := k.localCerts(ctx, addr)
	if err != nil {
		return nil, false, err
	}
	now := k.now()
	var ids []smime.Identity
	endToEnd, decided := false, false
	for _, c := range certs {
		if c.row.Usage != directory.UsageEncrypt {
			continue
		}
		if !decided && k.validAt(c.cert, now) {
			endToEnd, decided = c.key == nil, true
		}
		if c.key != nil {
			ids = append(ids, smime.Identity{Cert: c.cert, Key: c.key, Chain: c.chain})
		}
	}
	if len(ids) == 0 && !endToEnd {
		return nil, false, smime.ErrNoCertificate
	}
	return ids, endToEnd, nil
}

// RecipientCert implements smime.Keyring: the newest encryption
// certificate valid now of a local mailbox, or of another operator's
// recipient: imported by hand, else fetched from its operator's endpoint
// (cached for CacheTTL; a cached one past CacheTTL is still used while
// the endpoint cannot be reached). An error other than ErrNoCertificate
// is temporary (the endpoint or the store failed): the caller may try
// again later.
func (k *Keyring) RecipientCert(ctx context.Context, address string) (*x509.Certificate, error) {
	addr, domain, err := canonical(address)
	if err != nil {
		return nil, err
	}
	now := k.now()
	if k.dir.IsLocalDomain(domain) {
		certs, err := k.localCerts(ctx, addr)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			if c.row.Usage == directory.UsageEncrypt && k.validAt(c.cert, now) {
				return c.cert, nil
			}
		}
		return nil, smime.ErrNoCertificate
	}
	rows, err := k.store.MailboxCerts(ctx, addr)
	if err != nil {
		return nil, err
	}
	var fetched *x509.Certificate
	var fetchedAt time.Time
	for _, r := range rows {
		if !r.Remote || r.Usage != directory.UsageEncrypt {
			continue
		}
		c, err := x509.ParseCertificate(r.DER)
		if err != nil || !k.validAt(c, now) {
			continue
		}
		if r.FetchedAt.IsZero() {
			return c, nil // imported by hand: it wins
		}
		if fetched == nil {
			fetched, fetchedAt = c, r.FetchedAt
		}
	}
	if fetched != nil && now.Sub(fetchedAt) < k.ttl {
		return fetched, nil
	}
	base, ok := k.endpoints[domain]
	if !ok {
		if fetched != nil {
			return fetched, nil // no endpoint any more to refresh it from
		}
		return nil, smime.ErrNoCertificate
	}
	k.mu.Lock()
	until, missed := k.misses[addr]
	k.mu.Unlock()
	if missed && now.Before(until) {
		return nil, smime.ErrNoCertificate
	}
	c, err := k.refresh(ctx, base, addr)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, smime.ErrNoCertificate):
		return nil, err
	case fetched != nil:
		k.logger.Warn("S/MIME certificate endpoint unreachable: the cached certificate is used past its cache time",
			"address", addr, "endpoint", base, "err", err)
		return fetched, nil
	}
	return nil, err
}

// publicKeyEqual reports whether key is the private key of pub.
func publicKeyEqual(pub crypto.PublicKey, key crypto.PrivateKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	var kp crypto.PublicKey
	switch k := key.(type) {
	case *rsa.PrivateKey:
		kp = &k.PublicKey
	case *ecdsa.PrivateKey:
		kp = &k.PublicKey
	case ed25519.PrivateKey:
		kp = k.Public()
	default:
		return false
	}
	e, ok := kp.(equaler)
	return ok && e.Equal(pub)
}
