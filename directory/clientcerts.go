package directory

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"time"

	"github.com/carepost/carepost/refusal"
)

// ClientCert is a TLS client certificate registered for a mailbox: the
// certificate of a piece of practice software, which logs in as its
// applicative (APP) mailbox by presenting it (mutual TLS, SASL EXTERNAL).
// Certificates of professionals (smart card, e-CPS) need no registration:
// they name their holder by e-mail address or national identifier
// (auth.Authenticator.External).
type ClientCert struct {
	// Fingerprint is the hex SHA-256 of DER, lower case; it names the
	// row: one certificate logs in as one mailbox.
	Fingerprint string
	Address     string // canonical
	DER         []byte
	Subject     string
	NotAfter    time.Time
	Created     time.Time
}

// ClientCertStore keeps the registered client certificates. It is part of
// Store.
type ClientCertStore interface {
	// AddClientCert stores c; a certificate already registered (for this
	// mailbox or another) is ErrExists.
	AddClientCert(ctx context.Context, c ClientCert) error
	// ClientCertByFingerprint returns the certificate with this
	// fingerprint, ErrNotFound if none.
	ClientCertByFingerprint(ctx context.Context, fingerprint string) (ClientCert, error)
	// ClientCerts lists the certificates of address, newest first.
	ClientCerts(ctx context.Context, address string) ([]ClientCert, error)
	// DeleteClientCert removes a certificate of address (ErrNotFound if
	// address has none with that fingerprint).
	DeleteClientCert(ctx context.Context, address, fingerprint string) error
}

// Fingerprint is the hex SHA-256 of a certificate's DER, lower case.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// RegisterClientCert registers cert as a credential of the mailbox address:
// presented in a TLS handshake (and verified against the client CAs), it
// logs in as that mailbox. Only the mailboxes of software and structures
// (APP, ORG, CAB) take one: a professional's certificate names the
// professional itself. The certificate must be valid now and allow client
// authentication.
func (d *Directory) RegisterClientCert(ctx context.Context, address string, cert *x509.Certificate) (ClientCert, error) {
	e, err := d.Lookup(ctx, address)
	if err != nil {
		return ClientCert{}, err
	}
	if err := d.ValidateClientCert(e.Address, e.Kind, cert); err != nil {
		return ClientCert{}, err
	}
	now := d.now()
	c := ClientCert{Fingerprint: Fingerprint(cert.Raw), Address: e.Address, DER: cert.Raw, Subject: cert.Subject.String(),
		NotAfter: cert.NotAfter, Created: now}
	if err := d.store.AddClientCert(ctx, c); err != nil {
		if errors.Is(err, ErrExists) {
			owner, _ := d.store.ClientCertByFingerprint(ctx, c.Fingerprint)
			return ClientCert{}, refusal.New(refusal.InvalidInput, e.Address, ErrExists,
				"This certificate is already registered for %s: one certificate logs in as one mailbox.", owner.Address)
		}
		return ClientCert{}, err
	}
	return c, nil
}

// ValidateClientCert checks that cert may be registered for the mailbox
// address of kind (RegisterClientCert's rules), before the mailbox exists.
func (d *Directory) ValidateClientCert(address string, kind Kind, cert *x509.Certificate) error {
	now := d.now()
	switch kind {
	case KindApplicative, KindOrganisational, KindPractice:
	default:
		return invalid(address, "Only applicative, organisational and practice mailboxes take a registered certificate: %s is a %s mailbox, whose holder logs in with a certificate naming its address or national identifier.", address, kind)
	}
	if now.After(cert.NotAfter) || now.Before(cert.NotBefore) {
		return invalid(address, "The certificate %q is not valid now (valid from %s to %s).", cert.Subject.String(),
			cert.NotBefore.UTC().Format(time.DateOnly), cert.NotAfter.UTC().Format(time.DateOnly))
	}
	for _, a := range cert.EmailAddresses {
		if canon, err := ParseAddress(a); err != nil || canon != address {
			return invalid(address, "The certificate %q names the address %s: it is a certificate of that mailbox's holder, not of the software of %s.", cert.Subject.String(), a, address)
		}
	}
	if !clientAuthAllowed(cert) {
		return invalid(address, "The certificate %q does not allow TLS client authentication (its extended key usage lacks clientAuth).", cert.Subject.String())
	}
	return nil
}

// clientAuthAllowed: no extended key usage (any use) or one that names
// client authentication or any.
func clientAuthAllowed(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth || u == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

// ClientCerts lists the certificates registered for address.
func (d *Directory) ClientCerts(ctx context.Context, address string) ([]ClientCert, error) {
	e, err := d.Lookup(ctx, address)
	if err != nil {
		return nil, err
	}
	return d.store.ClientCerts(ctx, e.Address)
}

// ClientCertOwner returns the address of the mailbox a certificate is
// registered for, "" if none.
func (d *Directory) ClientCertOwner(ctx context.Context, der []byte) (string, error) {
	c, err := d.store.ClientCertByFingerprint(ctx, Fingerprint(der))
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return c.Address, nil
}
