package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

// Reasons of refused certificate and token logins (the Reason of the
// refusal, for the log and auth.CauseOf; the client is told one sentence).
var (
	// ErrNoCertificate: EXTERNAL without a TLS client certificate.
	ErrNoCertificate = errors.New("no TLS client certificate was presented")
	// ErrBadCertificate: the certificate does not chain to a client CA,
	// has expired, or does not allow client authentication.
	ErrBadCertificate = errors.New("the client certificate is not trusted")
	// ErrNoIdentity: the certificate or token names no mailbox, or
	// several without saying which (an authorization identity chooses).
	ErrNoIdentity = directory.ErrNoSuchIdentity
	// ErrTokensOff: a token mechanism while no issuer is configured.
	ErrTokensOff = errors.New("token logins are not configured")
)

// IdentityDirectory is what logins without a password ask the directory
// (*directory.Directory).
type IdentityDirectory interface {
	// Identify returns the principal of an active mailbox whose holder
	// proved who it is otherwise (directory.Directory.Identify).
	Identify(ctx context.Context, address string) (directory.Principal, error)
	// ByNationalID lists the active mailboxes of a national identifier.
	ByNationalID(ctx context.Context, id string) ([]string, error)
	// ClientCertOwner returns the mailbox a client certificate is
	// registered for, "" if none.
	ClientCertOwner(ctx context.Context, der []byte) (string, error)
}

// HasClientCAs says whether External may succeed: some client CA is
// configured.
func (a *Authenticator) HasClientCAs() bool { return a.opts.ClientCAs != nil }

// External checks SASL EXTERNAL (RFC 4422 Appendix A) with the TLS client
// certificate chain the client presented (chain[0] its own), and returns
// the principal of the mailbox it names:
//
//  1. a certificate registered for a mailbox (practice software, `carepost
//     dir add-mailbox --kind app --cert FILE`) logs in as that mailbox;
//  2. otherwise the mailboxes the certificate names: its e-mail addresses
//     (subjectAltName rfc822Name) and its holder's national identifier
//     (subject serialNumber, or a common name made of the identifier, as
//     on the health sector's smart cards), active ones only.
//
// authzid, when not empty, chooses among them and must be one of them;
// empty, the certificate must name exactly one. The chain must verify
// against Options.ClientCAs for client authentication at the time of the
// login. Every refusal is a *refusal.Error of kind AuthFailed whose Reason
// says why (ErrNoCertificate, ErrBadCertificate, ErrNoIdentity, or the
// directory's), its sentence safe to show.
func (a *Authenticator) External(ctx context.Context, chain []*x509.Certificate, authzid, source string) (*Principal, error) {
	if len(chain) == 0 {
		return nil, refusal.New(refusal.AuthFailed, authzid, ErrNoCertificate,
			"No TLS client certificate was presented: EXTERNAL logs in with the certificate given during the TLS handshake.")
	}
	leaf := chain[0]
	if err := a.verifyClientCert(chain, time.Now()); err != nil {
		return nil, refusal.New(refusal.AuthFailed, authzid, fmt.Errorf("%w: %v", ErrBadCertificate, err),
			"The client certificate is not accepted: it must be issued by a certificate authority this server trusts for client authentication, and valid now.")
	}
	dir, ok := a.dir.(IdentityDirectory)
	if !ok {
		return nil, errors.New("auth: the directory cannot identify certificate holders")
	}
	owner, err := dir.ClientCertOwner(ctx, leaf.Raw)
	if err != nil {
		return nil, err
	}
	var candidates []string
	if owner != "" {
		candidates = []string{owner}
	} else {
		for _, e := range leaf.EmailAddresses {
			if addr, err := directory.ParseAddress(e); err == nil {
				candidates = append(candidates, addr)
			}
		}
		if id := CertNationalID(leaf); id != "" {
			addrs, err := dir.ByNationalID(ctx, id)
			if err != nil {
				return nil, err
			}
			candidates = append(candidates, addrs...)
		}
	}
	addr, err := choose(candidates, authzid, "certificate")
	if err != nil {
		return nil, err
	}
	return a.identify(ctx, dir, addr, MechExternal, source)
}

// verifyClientCert verifies chain for client authentication against the
// client CAs.
func (a *Authenticator) verifyClientCert(chain []*x509.Certificate, now time.Time) error {
	if a.opts.ClientCAs == nil {
		return errors.New("no client certificate authority is configured")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         a.opts.ClientCAs,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

// nationalIDShape is a professional's national identifier: 8 + RPPS (11
// digits) or 0 + ADELI (9 digits), possibly after a type prefix and a
// slash as on smart cards ("3/1234567/..." is not one).
var nationalIDShape = regexp.MustCompile(`^(8[0-9]{11}|0[0-9]{9})$`)

// CertNationalID returns the national identifier a professional's
// certificate carries: its subject serialNumber, or its common name when
// that is the identifier (docs/domain.md: the smart card's authentication
// certificate names its holder by national identifier); "" if neither is
// one.
func CertNationalID(c *x509.Certificate) string {
	for _, v := range []string{c.Subject.SerialNumber, c.Subject.CommonName} {
		v = strings.TrimSpace(v)
		if nationalIDShape.MatchString(v) {
			return v
		}
	}
	return ""
}

// choose picks the account among the candidates a credential names.
func choose(candidates []string, authzid, what string) (string, error) {
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	if authzid != "" {
		want, err := directory.ParseAddress(authzid)
		if err == nil && slices.Contains(candidates, want) {
			return want, nil
		}
		return "", refusal.New(refusal.AuthFailed, authzid, fmt.Errorf("%w: the %s names %v, not %s", ErrNoIdentity, what, candidates, authzid),
			"The %s presented does not name the mailbox %s.", what, truncate(authzid, 254))
	}
	switch len(candidates) {
	case 0:
		return "", refusal.New(refusal.AuthFailed, "", fmt.Errorf("%w: the %s names no mailbox", ErrNoIdentity, what),
			"The %s presented names no mailbox of this server.", what)
	case 1:
		return candidates[0], nil
	}
	return "", refusal.New(refusal.AuthFailed, "", fmt.Errorf("%w: the %s names %d mailboxes", ErrNoIdentity, what, len(candidates)),
		"The %s presented names several mailboxes: give the address of the one to open as the authorization identity.", what)
}

// identify returns the principal of addr, proved by mech.
func (a *Authenticator) identify(ctx context.Context, dir IdentityDirectory, addr string, mech Mechanism, source string) (*Principal, error) {
	dp, err := dir.Identify(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &Principal{
		Address:      dp.Address,
		Kind:         dp.Kind,
		NationalID:   dp.NationalID,
		Organisation: dp.Organisation,
		Mechanism:    mech,
		Source:       source,
		Delegations:  slices.Clone(dp.Delegations),
		Epoch:        dp.Epoch,
	}, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
