// Package smime is Carepost's S/MIME gateway (RFC 8551, CMS RFC 5652): it
// signs and encrypts mail for other operators and decrypts and verifies
// the mail they send, with github.com/smallstep/pkcs7 for CMS and
// github.com/emersion/go-message for MIME. docs/domain.md §6b lists the
// library's traps that this package works around.
package smime

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
)

// Identity is one certificate of a mailbox with its private key: what
// signs a message (a signature certificate) or decrypts one (an encryption
// certificate).
type Identity struct {
	Cert *x509.Certificate
	// Key is the private key: a crypto.Signer for a signature identity, a
	// crypto.Decrypter (RSA) for an encryption identity. Nil when the
	// server does not hold the key (end-to-end mode).
	Key crypto.PrivateKey
	// Chain is the certificates between Cert and its root, issuer first;
	// it is included in signatures so that a verifier can build the path.
	Chain []*x509.Certificate
}

// ErrNoCertificate is what a Keyring returns when the address has no
// certificate of the kind asked.
var ErrNoCertificate = errors.New("smime: no certificate for this address")

// Keyring is where the gateway finds certificates and keys. The directory
// implements it (certificates and sealed keys in the store, remote
// operators' certificates fetched over HTTPS and cached); tests give their
// own.
type Keyring interface {
	// Signer returns the signature identity of a local mailbox, or
	// ErrNoCertificate.
	Signer(ctx context.Context, address string) (*Identity, error)
	// Decrypters returns the encryption identities of a local mailbox whose
	// keys the server holds, newest first (older keys stay to read mail
	// encrypted to a replaced certificate). EndToEnd reports a mailbox whose
	// key the server does not hold: its mail is delivered as it came.
	Decrypters(ctx context.Context, address string) (ids []Identity, endToEnd bool, err error)
	// RecipientCert returns the encryption certificate of a recipient of
	// another operator (or a local one), or ErrNoCertificate. It does not
	// validate it: the caller does, against the trust anchors.
	RecipientCert(ctx context.Context, address string) (*x509.Certificate, error)
}
