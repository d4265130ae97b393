package directory

import (
	"context"
	"time"
)

// CertUsage is what a mailbox certificate is for (RFC 8550 §4.4.2: one
// certificate, and key, to sign and another to encrypt).
type CertUsage string

const (
	UsageSign    CertUsage = "sign"    // digitalSignature, nonRepudiation
	UsageEncrypt CertUsage = "encrypt" // keyEncipherment (RSA key transport)
)

// MailboxCert is an S/MIME certificate of a mailbox address: one of ours,
// with its private key or without it (end-to-end mode: the key stays in
// the user's mail client), or one of another operator's recipient
// (Remote), imported by hand or fetched from that operator's publication
// endpoint and cached. The rules (which certificate names which address,
// which key matches) are crypto/keyring's; the Store only keeps them.
type MailboxCert struct {
	Address string // canonical (lower case)
	Usage   CertUsage
	// Fingerprint is the hex SHA-256 of DER, lower case: with Address
	// and Usage, it names the row.
	Fingerprint string
	DER         []byte
	// Chain is the DER of the certificates between this one and its
	// root, issuer first, concatenated (x509.ParseCertificates reads
	// it); empty when unknown.
	Chain []byte
	// Key is the private key in PKCS#8 DER; nil when the server does not
	// hold it. The Store seals it at rest and fills it only in
	// MailboxCerts.
	Key []byte
	// HasKey says whether the row has a key (filled by every read, Key
	// or not).
	HasKey   bool
	NotAfter time.Time
	Created  time.Time
	// Remote marks a certificate of another operator's address.
	Remote bool
	// FetchedAt is when a remote certificate was fetched from its
	// operator's endpoint (the cache's age); zero for one imported by
	// hand, which no fetch replaces.
	FetchedAt time.Time
}

// CertStore keeps the mailbox certificates. It is part of Store; the
// implementations seal every private key at rest with the store's key,
// bound to its certificate (a sealed key moved to another row fails to
// open).
type CertStore interface {
	// AddMailboxCert stores c, or replaces the row with the same address,
	// usage and fingerprint (a re-import: its key, chain and times).
	AddMailboxCert(ctx context.Context, c MailboxCert) error
	// MailboxCerts returns the certificates of address with their keys
	// opened, newest (Created) first.
	MailboxCerts(ctx context.Context, address string) ([]MailboxCert, error)
	// ListMailboxCerts returns every certificate without its key (HasKey
	// says whether there is one), sorted by address, usage, then newest
	// first.
	ListMailboxCerts(ctx context.Context) ([]MailboxCert, error)
	// ReplaceFetchedCerts replaces the fetched remote certificates of
	// address (FetchedAt not zero) with certs, in one transaction; the
	// certificates imported by hand stay. An empty certs forgets them.
	ReplaceFetchedCerts(ctx context.Context, address string, certs []MailboxCert) error
}
