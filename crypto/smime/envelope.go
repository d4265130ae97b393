package smime

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/emersion/go-message/textproto"
	"github.com/smallstep/pkcs7"
)

// EncryptOptions chooses the key transport of Encrypt.
type EncryptOptions struct {
	// OAEP wraps the content key with RSAES-OAEP (RFC 3560) instead of
	// RSA PKCS#1 v1.5, the default that every client reads. The OAEP
	// digest is SHA-1, with MGF1-SHA-1: the library writes the hash
	// parameter but never maskGenAlgorithm, whose RFC 4055 default is
	// MGF1-SHA-1, while it masks with the chosen hash; with SHA-256 the
	// message says MGF1-SHA-1 and is masked with MGF1-SHA-256, and
	// OpenSSL cannot open it (found by TestOpenSSLDecryptsOurs). SHA-1
	// in OAEP needs no collision resistance (RFC 8017 §7.1), and it is
	// what the Direct RI sends (docs/domain.md §6b).
	OAEP bool
}

// Encrypt envelopes a message for its recipients (RFC 8551 §3.3): the
// routing fields stay outside; the MIME entity (Content-* fields and
// body, CRLF) is encrypted with AES-256-CBC (RFC 3565) under a random key
// wrapped for each certificate with RSA (PKCS#1 v1.5, or OAEP by option),
// and the message becomes application/pkcs7-mime;
// smime-type=enveloped-data; name=smime.p7m, base64. A signed message is
// encrypted whole (its multipart/signed entity): signed, then encrypted.
//
// Only RSA certificates can be recipients: the library has no key
// agreement (ECDH) recipients. The caller validates the certificates
// (ValidateRecipient); Encrypt only uses them.
func Encrypt(msg []byte, recipients []*x509.Certificate, opts EncryptOptions) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, errors.New("smime: no recipient certificate to encrypt to")
	}
	for _, c := range recipients {
		if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
			return nil, fmt.Errorf("smime: the certificate of %s has no RSA key: only RSA key transport is supported", certName(c))
		}
	}
	m, err := parse(msg)
	if err != nil {
		return nil, err
	}
	outer, inner := m.split()
	content := entity(inner, m.body)

	der, err := envelope(content, recipients, opts.OAEP)
	if err != nil {
		return nil, fmt.Errorf("smime: encrypt: %w", err)
	}
	var b bytes.Buffer
	b.Grow(len(der)*4/3 + 1024)
	writeHeader(&b, outer,
		"MIME-Version: 1.0",
		"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m",
		"Content-Transfer-Encoding: base64",
		"Content-Disposition: attachment; filename=smime.p7m")
	writeBase64(&b, der)
	return b.Bytes(), nil
}

// envelope calls the library with the key transport asked (see libMu).
func envelope(content []byte, recipients []*x509.Certificate, oaep bool) ([]byte, error) {
	if !oaep {
		libMu.RLock()
		defer libMu.RUnlock()
		return pkcs7.Encrypt(content, recipients)
	}
	libMu.Lock()
	defer libMu.Unlock()
	pkcs7.KeyEncryptionAlgorithm = pkcs7.OIDEncryptionAlgorithmRSAESOAEP
	pkcs7.KeyEncryptionHash = crypto.SHA1
	defer func() {
		pkcs7.KeyEncryptionAlgorithm = pkcs7.OIDEncryptionAlgorithmRSA
		pkcs7.KeyEncryptionHash = crypto.SHA256
	}()
	return pkcs7.Encrypt(content, recipients)
}

// ErrNotForUs is returned by Decrypt when the message is encrypted to
// none of the certificates given: it was meant for someone else, or for
// a key this server does not hold.
var ErrNotForUs = errors.New("smime: the message is not encrypted to any certificate held here")

// ErrNotEncrypted is returned by Decrypt for a message that is not
// application/pkcs7-mime enveloped data.
var ErrNotEncrypted = errors.New("smime: the message is not encrypted (no application/pkcs7-mime enveloped data)")

// Decrypt opens an enveloped message with the first of ids that it is
// encrypted to, and returns the message the sender wrote: the outer
// routing fields, then the fields of the decrypted entity (its Content-*
// fields replace the outer ones), then its body. It reads AES-128-CBC and
// AES-256-CBC (and the library's other ciphers), with the key wrapped in
// RSA PKCS#1 v1.5 or OAEP (SHA-1, as the Direct RI sends, or SHA-256):
// docs/domain.md §6b.
func Decrypt(msg []byte, ids []Identity) ([]byte, error) {
	m, err := parse(msg)
	if err != nil {
		return nil, err
	}
	if !isEnveloped(m.header) {
		return nil, ErrNotEncrypted
	}
	der, err := decodeBody(m.header.Get("Content-Transfer-Encoding"), m.body)
	if err != nil {
		return nil, err
	}
	p7, err := parseCMS(der)
	if err != nil {
		return nil, err
	}
	var content []byte
	found := false
	for _, id := range ids {
		if id.Cert == nil || id.Key == nil {
			continue
		}
		content, err = decryptWith(p7, id)
		if err == nil {
			found = true
			break
		}
		if !isNoRecipient(err) {
			// Encrypted to this certificate, yet it does not open: a
			// damaged message or a cipher the library lacks.
			return nil, fmt.Errorf("smime: the message cannot be decrypted: %w", err)
		}
	}
	if !found {
		return nil, ErrNotForUs
	}
	in, err := parse(content)
	if err != nil {
		return nil, fmt.Errorf("smime: the decrypted content is not a MIME entity: %w", err)
	}
	outer, _ := m.split()
	var b bytes.Buffer
	b.Grow(len(content) + 4096)
	// outer fields first, then every field of the inner entity.
	textproto.WriteHeader(&b, outer)
	b.Truncate(b.Len() - 2)
	if !outer.Has("Mime-Version") && !in.header.Has("Mime-Version") {
		b.WriteString("MIME-Version: 1.0\r\n")
	}
	textproto.WriteHeader(&b, in.header)
	b.Write(in.body)
	return b.Bytes(), nil
}

func isNoRecipient(err error) bool {
	return err != nil && err.Error() == "pkcs7: no enveloped recipient for provided certificate"
}

// parseCMS parses a CMS object with the library, turning a panic on
// hostile input into an error (v0.2.3 fixed the one known, GHSA-mq3g-qwhv-4hgw;
// the recover keeps one message from taking the server down should
// another appear).
func parseCMS(der []byte) (p7 *pkcs7.PKCS7, err error) {
	defer func() {
		if r := recover(); r != nil {
			p7, err = nil, fmt.Errorf("smime: malformed CMS object (%v)", r)
		}
	}()
	p7, err = pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("smime: malformed CMS object: %w", err)
	}
	if len(p7.Certificates) > maxCertificates {
		return nil, fmt.Errorf("smime: the CMS object carries %d certificates, more than %d", len(p7.Certificates), maxCertificates)
	}
	if len(p7.Signers) > maxSigners {
		return nil, fmt.Errorf("smime: the CMS object has %d signatures, more than %d", len(p7.Signers), maxSigners)
	}
	return p7, nil
}

func certName(c *x509.Certificate) string {
	if len(c.EmailAddresses) > 0 {
		return c.EmailAddresses[0]
	}
	return c.Subject.String()
}

// decryptWith is the library's Decrypt, a panic turned into an error.
func decryptWith(p7 *pkcs7.PKCS7, id Identity) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("smime: malformed enveloped data (%v)", r)
		}
	}()
	return p7.Decrypt(id.Cert, id.Key)
}
