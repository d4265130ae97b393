package smime

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// CertOptions are the trust decisions of ValidateRecipient.
type CertOptions struct {
	// Roots are the trust anchors; nil trusts nothing.
	Roots *x509.CertPool
	// Intermediates may complete a chain.
	Intermediates *x509.CertPool
	// CRLs are checked for every certificate of the chain.
	CRLs []*x509.RevocationList
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// ValidateRecipient checks that cert may receive mail encrypted for
// address, before anything is encrypted to it (fail closed: a certificate
// that does not pass is as good as none, and the message is not sent in
// clear). The certificate must chain to a trust anchor now, with
// extended key usage emailProtection when it has one; allow key
// encipherment (RFC 8550 §4.4.2: a signature-only certificate is not
// used to encrypt); hold an RSA key (the library's only key transport);
// name address in its subjectAltName; not be revoked.
func ValidateRecipient(cert *x509.Certificate, address string, opts CertOptions) error {
	if cert == nil {
		return ErrNoCertificate
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	roots := opts.Roots
	if roots == nil {
		roots = x509.NewCertPool()
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: opts.Intermediates, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	})
	if err != nil {
		return fmt.Errorf("the certificate of %s is not acceptable: %s", address, chainReasonNow(err))
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		return fmt.Errorf("the certificate of %s is for signatures only: it does not allow key encipherment", address)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return fmt.Errorf("the certificate of %s has no RSA key: only RSA key transport is supported", address)
	}
	if !certNames(cert, address) {
		return fmt.Errorf("the certificate offered for %s is for %s", address, orNobody(firstEmail(cert)))
	}
	if r, ok := checkRevocation(chains[0], opts.CRLs, now); !ok {
		return errors.New(r.Reason)
	}
	return nil
}

func chainReasonNow(err error) string {
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) && ci.Reason == x509.Expired {
		return "a certificate of its chain is expired or not yet valid"
	}
	return chainReason(err)
}
