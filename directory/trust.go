package directory

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/carepost/carepost/refusal"
)

// The trust space (SPEC §2): the domains of the other operators (the
// national white list, or domains added one by one) and their operators'
// CA certificates, the trust anchors of server-to-server TLS. Both live in
// the store, so that what `carepost trust` changes is seen by every
// process, within trustTTL.

// trustSnapshot is the trust space as read once from the store.
type trustSnapshot struct {
	byDomain map[string]TrustedDomain
	expires  time.Time
}

// anchorSnapshot is the pool of trust anchors as read once.
type anchorSnapshot struct {
	pool    *x509.CertPool
	n       int
	expires time.Time
}

// trustSpace returns the cached trust space, read again past trustTTL.
func (d *Directory) trustSpace(ctx context.Context) (*trustSnapshot, error) {
	d.trustMu.Lock()
	defer d.trustMu.Unlock()
	if d.trust != nil && !d.now().After(d.trust.expires) {
		return d.trust, nil
	}
	list, err := d.store.TrustedDomains(ctx)
	if err != nil {
		return nil, err
	}
	s := &trustSnapshot{byDomain: make(map[string]TrustedDomain, len(list)), expires: d.now().Add(trustTTL)}
	for _, td := range list {
		s.byDomain[strings.ToLower(td.Domain)] = td
	}
	d.trust = s
	return s, nil
}

// TrustedDomain returns the white-list entry of domain, and whether there
// is one.
func (d *Directory) TrustedDomain(ctx context.Context, domain string) (TrustedDomain, bool, error) {
	s, err := d.trustSpace(ctx)
	if err != nil {
		return TrustedDomain{}, false, err
	}
	td, ok := s.byDomain[strings.ToLower(strings.TrimSuffix(domain, "."))]
	return td, ok, nil
}

// RemoveTrustedDomain removes a domain from the trust space.
func (d *Directory) RemoveTrustedDomain(ctx context.Context, domain string) error {
	dom, err := ParseDomain(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if err != nil {
		return err
	}
	if err := d.store.RemoveTrustedDomain(ctx, dom); errors.Is(err, ErrNotFound) {
		return refusal.New(refusal.InvalidInput, dom, ErrNotFound, "The domain %s is not in the trust space.", dom)
	} else if err != nil {
		return err
	}
	d.forgetTrustSpace()
	return nil
}

// TrustImport is what ImportTrustList changed.
type TrustImport struct {
	Added   []string // domains new in the trust space
	Removed []string // domains no longer in it
	// Changed are the domains kept whose description or operator DN
	// changed.
	Changed []string
	// Skipped are the entries of the list left out, with the reason
	// (WhiteList.Skipped, and the domains hosted here).
	Skipped []string
	Total   int // domains in the trust space now
}

// ImportTrustList replaces the trust space with the domains of wl, in one
// store transaction (Store.ReplaceTrustedDomains), and records source and
// the list's date. The domains this server hosts are left out: they are
// ours whatever the list says.
func (d *Directory) ImportTrustList(ctx context.Context, wl *WhiteList, source string) (TrustImport, error) {
	var rep TrustImport
	if wl == nil || len(wl.Domains) == 0 {
		return rep, badList("The list names no valid domain: the trust space was left as it was.")
	}
	rep.Skipped = append(rep.Skipped, wl.Skipped...)
	old, err := d.store.TrustedDomains(ctx)
	if err != nil {
		return rep, err
	}
	before := make(map[string]TrustedDomain, len(old))
	for _, td := range old {
		before[td.Domain] = td
	}
	now := d.now()
	list := make([]TrustedDomain, 0, len(wl.Domains))
	for _, td := range wl.Domains {
		if d.local[td.Domain] {
			rep.Skipped = append(rep.Skipped, td.Domain+": hosted by this server")
			continue
		}
		if td.UpdatedAt.IsZero() {
			td.UpdatedAt = now
		}
		list = append(list, td)
		prev, ok := before[td.Domain]
		switch {
		case !ok:
			rep.Added = append(rep.Added, td.Domain)
		case prev.Description != td.Description || prev.OperatorCertDN != td.OperatorCertDN:
			rep.Changed = append(rep.Changed, td.Domain)
		}
		delete(before, td.Domain)
	}
	if len(list) == 0 {
		return rep, badList("The list names only domains hosted by this server: the trust space was left as it was.")
	}
	for dom := range before {
		rep.Removed = append(rep.Removed, dom)
	}
	slices.Sort(rep.Added)
	slices.Sort(rep.Removed)
	slices.Sort(rep.Changed)
	info := TrustListInfo{Source: source, Generated: wl.Generated, ImportedAt: now}
	if err := d.store.ReplaceTrustedDomains(ctx, list, info); err != nil {
		return rep, err
	}
	d.forgetTrustSpace()
	rep.Total = len(list)
	return rep, nil
}

// TrustListInfo says where the trust space's list came from and when.
func (d *Directory) TrustListInfo(ctx context.Context) (TrustListInfo, error) {
	return d.store.TrustListInfo(ctx)
}

// AddTrustAnchor stores the CA certificate(s) of an operator, given in
// PEM, as trust anchors. Each must be a CA certificate (basic constraints
// cA, RFC 5280 §4.2.1.9) valid today.
func (d *Directory) AddTrustAnchor(ctx context.Context, pemData []byte) ([]TrustAnchor, error) {
	var out []TrustAnchor
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, invalid("", "A certificate of the file cannot be read: %v.", err)
		}
		subject := cert.Subject.String()
		if !cert.IsCA || !cert.BasicConstraintsValid {
			return nil, invalid("", "The certificate %q is not a certification authority's: give the CA certificate of the operator, not its server certificate.", subject)
		}
		if now := d.now(); now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
			return nil, invalid("", "The certificate %q is valid from %s to %s only.", subject,
				cert.NotBefore.UTC().Format(time.DateOnly), cert.NotAfter.UTC().Format(time.DateOnly))
		}
		sum := sha256.Sum256(cert.Raw)
		out = append(out, TrustAnchor{Fingerprint: hex.EncodeToString(sum[:]), Subject: subject, DER: cert.Raw, AddedAt: d.now()})
	}
	if len(out) == 0 {
		return nil, invalid("", "The file holds no PEM certificate (-----BEGIN CERTIFICATE-----).")
	}
	for _, a := range out {
		if err := d.store.AddTrustAnchor(ctx, a); err != nil {
			return nil, err
		}
	}
	d.forgetAnchors()
	return out, nil
}

// StoredTrustAnchors lists the anchors added with AddTrustAnchor (not
// Config.Anchors).
func (d *Directory) StoredTrustAnchors(ctx context.Context) ([]TrustAnchor, error) {
	return d.store.TrustAnchors(ctx)
}

// TrustAnchors returns the pool of the operators' CA certificates: those
// of the store (`carepost trust add-ca`) and Config.Anchors (the
// development CA on the embedded default). Inbound, a client certificate
// must chain to one of them; outbound, the delivery queue verifies the
// remote server's certificate against the same pool. The pool is read
// again from the store past trustTTL, and at once after AddTrustAnchor
// through this Directory. An error means the decision cannot be made.
func (d *Directory) TrustAnchors(ctx context.Context) (*x509.CertPool, error) {
	s, err := d.anchors(ctx)
	if err != nil {
		return nil, err
	}
	return s.pool, nil
}

func (d *Directory) anchors(ctx context.Context) (*anchorSnapshot, error) {
	d.trustMu.Lock()
	defer d.trustMu.Unlock()
	if d.anchorCache != nil && !d.now().After(d.anchorCache.expires) {
		return d.anchorCache, nil
	}
	stored, err := d.store.TrustAnchors(ctx)
	if err != nil {
		return nil, err
	}
	s := &anchorSnapshot{pool: x509.NewCertPool(), expires: d.now().Add(trustTTL)}
	for _, c := range d.cfg.Anchors {
		s.pool.AddCert(c)
		s.n++
	}
	for _, a := range stored {
		c, err := x509.ParseCertificate(a.DER)
		if err != nil {
			return nil, fmt.Errorf("directory: trust anchor %s (%s): %w", a.Subject, a.Fingerprint, err)
		}
		s.pool.AddCert(c)
		s.n++
	}
	d.anchorCache = s
	return s, nil
}

func (d *Directory) forgetAnchors() {
	d.trustMu.Lock()
	d.anchorCache = nil
	d.trustMu.Unlock()
}

// Operator is another operator's server as its client certificate,
// verified against the trust anchors, identifies it.
type Operator struct {
	// Subject is the certificate's subject DN (RFC 4514).
	Subject string
	// Anchor is the subject of the trust anchor the certificate chains to.
	Anchor string
	// Fingerprint is the hex SHA-256 of the certificate.
	Fingerprint string
	// Domains are the domains of the trust space whose white-list entry
	// names this certificate's DN (TrustedDomain.OperatorCertDN).
	Domains []string
	// attrs is the subject, normalised (nameAttrs).
	attrs []string
}

// NoOperatorCertificate is the refusal of a peer that presented no client
// certificate to the MX.
func NoOperatorCertificate() *refusal.Error {
	return refusal.New(refusal.OperatorCertRequired, "", errors.New("no client certificate"),
		"This server accepts mail only from the operators of the secure health messaging space (MSSanté): your server must present its operator certificate during STARTTLS.")
}

// VerifyOperator checks the certificate chain a peer presented in the TLS
// handshake of the MX (leaf first): it must chain to a trust anchor, be
// valid now and allow client authentication (RFC 5280 §4.2.1.12). The
// refusals: OperatorCertRequired without a certificate,
// OperatorNotTrusted for one outside the trust space, TrustUnavailable
// when the anchors cannot be read or there are none.
func (d *Directory) VerifyOperator(ctx context.Context, chain []*x509.Certificate) (*Operator, error) {
	if len(chain) == 0 {
		return nil, NoOperatorCertificate()
	}
	leaf := chain[0]
	subject := leaf.Subject.String()
	anchors, err := d.anchors(ctx)
	if err != nil {
		return nil, refusal.New(refusal.TrustUnavailable, "", err,
			"The trust anchors of this server cannot be read right now, so your certificate cannot be checked; please try again later.")
	}
	if anchors.n == 0 {
		return nil, refusal.New(refusal.TrustUnavailable, "", errors.New("no trust anchor configured (carepost trust add-ca)"),
			"This server has no certification authority of the trust space configured yet, so your certificate cannot be checked; please try again later.")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: anchors.pool, Intermediates: inter, CurrentTime: d.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		why := "is not issued by a certification authority of the trust space"
		var ie x509.CertificateInvalidError
		if errors.As(err, &ie) {
			switch ie.Reason {
			case x509.Expired:
				why = "is expired or not valid yet"
			case x509.IncompatibleUsage:
				why = "does not allow client authentication (extended key usage)"
			}
		}
		return nil, refusal.New(refusal.OperatorNotTrusted, "", err,
			"The certificate of your server (%s) %s: only the operators of the secure health messaging space (MSSanté) may deliver here.", subject, why)
	}
	sum := sha256.Sum256(leaf.Raw)
	op := &Operator{Subject: subject, Fingerprint: hex.EncodeToString(sum[:]), attrs: nameAttrs(leaf.Subject)}
	if len(chains) > 0 && len(chains[0]) > 0 {
		op.Anchor = chains[0][len(chains[0])-1].Subject.String()
	}
	s, err := d.trustSpace(ctx)
	if err != nil {
		return nil, refusal.New(refusal.TrustUnavailable, "", err,
			"The trust space of this server cannot be read right now; please try again later.")
	}
	for dom, td := range s.byDomain {
		if td.OperatorCertDN != "" && op.HasDN(td.OperatorCertDN) {
			op.Domains = append(op.Domains, dom)
		}
	}
	slices.Sort(op.Domains)
	return op, nil
}

// CheckPeerDomain decides whether the operator op may present an address
// of domain (role says which: "sender" for MAIL FROM, "From" for the
// header) to our MX. The domain must be in the trust space, and belong to
// op: where its white-list entry names an operator certificate DN, op's
// certificate must have it; where it names none, op must not be an
// operator the list names for other domains only. The refusals:
// OperatorCertRequired (op nil), TrustUnavailable (the trust space is
// empty, so the decision cannot be made, or cannot be read),
// OutsideTrustSpace, OperatorNotTrusted.
//
// The caller checks the syntax and that domain is not ours.
func (d *Directory) CheckPeerDomain(ctx context.Context, op *Operator, domain, role string) error {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if op == nil {
		return NoOperatorCertificate()
	}
	s, err := d.trustSpace(ctx)
	if err != nil {
		return refusal.New(refusal.TrustUnavailable, domain, err,
			"The trust space of this server cannot be read right now; please try again later.")
	}
	if len(s.byDomain) == 0 {
		return refusal.New(refusal.TrustUnavailable, domain, errors.New("the trust space is empty (carepost trust import)"),
			"The list of the trust space is not loaded on this server yet, so the domain %s cannot be checked; please try again later.", domain)
	}
	td, ok := s.byDomain[domain]
	if !ok {
		return refusal.New(refusal.OutsideTrustSpace, domain, nil,
			"The domain %s of the %s address is not part of the secure health messaging space (MSSanté): only operators of the trust space may deliver here.", domain, role)
	}
	if td.OperatorCertDN != "" {
		if op.HasDN(td.OperatorCertDN) {
			return nil
		}
		if len(op.Domains) > 0 {
			return refusal.New(refusal.OperatorNotTrusted, domain, fmt.Errorf("certificate %q, the white list names %q", op.Subject, td.OperatorCertDN),
				"The domain %s of the %s address belongs to another operator of the trust space: your certificate (%s) is that of the operator of %s.", domain, role, op.Subject, strings.Join(clipList(op.Domains, 3), ", "))
		}
		return refusal.New(refusal.OperatorNotTrusted, domain, fmt.Errorf("certificate %q, the white list names %q", op.Subject, td.OperatorCertDN),
			"The certificate of your server (%s) is not the one the white list of the trust space names for %s (%s).", op.Subject, domain, td.OperatorCertDN)
	}
	if len(op.Domains) > 0 {
		return refusal.New(refusal.OperatorNotTrusted, domain, fmt.Errorf("certificate %q is named for %v, not %s", op.Subject, op.Domains, domain),
			"The domain %s of the %s address does not belong to your operator: the white list names your certificate (%s) for %s only.", domain, role, op.Subject, strings.Join(clipList(op.Domains, 3), ", "))
	}
	return nil
}

// HasDN reports whether op's certificate has the subject dn names (in
// any of the spellings parseDN reads).
func (op *Operator) HasDN(dn string) bool {
	want, err := parseDN(dn)
	return err == nil && op != nil && slices.Equal(op.attrs, want)
}

func clipList(l []string, n int) []string {
	if len(l) <= n {
		return l
	}
	return append(slices.Clone(l[:n]), fmt.Sprintf("and %d more", len(l)-n))
}
