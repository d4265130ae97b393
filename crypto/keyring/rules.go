package keyring

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"strings"

	"github.com/carepost/carepost/directory"
)

// Which certificate is good for what (RFC 8550).

// oidEmailAddress is the PKCS#9 emailAddress attribute of a subject DN,
// where certificates older than RFC 8550 §3 put the address.
var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// names reports whether c names addr (canonical): in an rfc822Name
// subjectAltName (RFC 8550 §3), or, for a certificate without any, in the
// subject's emailAddress attribute. Compared without case: the local part
// is case-sensitive in principle (RFC 5321 §2.4) but addresses are
// canonical in lower case everywhere in Carepost.
func names(c *x509.Certificate, addr string) bool {
	if len(c.EmailAddresses) > 0 {
		return slices.ContainsFunc(c.EmailAddresses, func(e string) bool { return strings.EqualFold(e, addr) })
	}
	for _, a := range c.Subject.Names {
		if a.Type.Equal(oidEmailAddress) {
			if s, ok := a.Value.(string); ok && strings.EqualFold(s, addr) {
				return true
			}
		}
	}
	return false
}

// emailProtection reports whether c's extended key usage, when it has one,
// allows S/MIME (RFC 8550 §4.4.4).
func emailProtection(c *x509.Certificate) bool {
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return true
	}
	return slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageEmailProtection) || slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny)
}

// allows returns why c cannot serve usage, or "" (RFC 8550 §4.4.2: a
// signature certificate has digitalSignature or nonRepudiation; an
// encryption one keyEncipherment, and an RSA key here, docs/domain.md
// §6b). A certificate without the key usage extension allows both.
func allows(c *x509.Certificate, usage directory.CertUsage) string {
	if !emailProtection(c) {
		return "its extended key usage does not include emailProtection"
	}
	switch usage {
	case directory.UsageSign:
		if c.KeyUsage != 0 && c.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
			return "its key usage allows neither digitalSignature nor nonRepudiation"
		}
	case directory.UsageEncrypt:
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			return "its key is not RSA (CMS key transport in the S/MIME library is RSA only)"
		}
		if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
			return "its key usage does not allow keyEncipherment"
		}
	default:
		return "the usage " + string(usage) + " is unknown"
	}
	return ""
}

// usagesOf lists what c may serve, encryption first.
func usagesOf(c *x509.Certificate) []directory.CertUsage {
	var out []directory.CertUsage
	for _, u := range []directory.CertUsage{directory.UsageEncrypt, directory.UsageSign} {
		if allows(c, u) == "" {
			out = append(out, u)
		}
	}
	return out
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
