// Package crypto holds Carepost's cryptography that is not a protocol: the
// development PKI and the TLS policy of every listener (pki.go, tls.go),
// encryption of health data at rest (atrest.go) and password hashing
// (password.go). S/MIME (RFC 8551, github.com/smallstep/pkcs7) will live here
// too.
package crypto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PKI is the built-in development PKI kept in one directory:
//
//	ca.crt, ca.key           the certification authority (10 years)
//	server.crt, server.key   this server's TLS certificate (2 years)
//
// The S/MIME certificates of mailboxes it issues (IssueMailbox) are not
// kept here but in the store, their keys sealed (crypto/keyring).
// It lets the embedded default run over TLS out of the box; production
// imports certificates from the real health PKI (IGC-Santé) instead.
type PKI struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
}

// OpenPKI loads the PKI in dir, creating the CA on first use.
func OpenPKI(dir string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &PKI{dir: dir}
	certPath, keyPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if _, err := os.Stat(certPath); errors.Is(err, os.ErrNotExist) {
		if err := p.createCA(certPath, keyPath); err != nil {
			return nil, fmt.Errorf("pki: create CA: %w", err)
		}
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", keyPath, err)
	}
	eck, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s: the CA key must be ECDSA", keyPath)
	}
	p.caCert, p.caKey, p.caPEM = cert, eck, certPEM
	return p, nil
}

// Dir is where the PKI lives.
func (p *PKI) Dir() string { return p.dir }

// CAPath is the file of the CA certificate, for clients to trust.
func (p *PKI) CAPath() string { return filepath.Join(p.dir, "ca.crt") }

// CAPEM returns the CA certificate in PEM.
func (p *PKI) CAPEM() []byte { return p.caPEM }

// CACert returns the CA certificate (a trust anchor of the server's own
// operator on the embedded default).
func (p *PKI) CACert() *x509.Certificate { return p.caCert }

// CertPool returns a pool holding the CA, for clients and tests.
func (p *PKI) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.caCert)
	return pool
}

func (p *PKI) createCA(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "Carepost development CA", Organization: []string{"Carepost (development PKI, not for production)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return writePair(certPath, keyPath, der, key)
}

// ServerCertificate returns the TLS certificate for hostname, issuing it
// (with the names localhost, 127.0.0.1 and ::1 besides hostname) when it is
// missing, expires within 30 days, or does not cover hostname.
func (p *PKI) ServerCertificate(hostname string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(p.dir, "server.crt"), filepath.Join(p.dir, "server.key")
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		leaf := c.Leaf
		if leaf == nil {
			leaf, _ = x509.ParseCertificate(c.Certificate[0])
		}
		if leaf != nil && leaf.VerifyHostname(hostname) == nil && time.Until(leaf.NotAfter) > 30*24*time.Hour &&
			leaf.CheckSignatureFrom(p.caCert) == nil {
			return c, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	names := []string{hostname}
	if hostname != "localhost" {
		names = append(names, "localhost")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"Carepost (development PKI)"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     names,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		SubjectKeyId: keyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writePair(certPath, keyPath, der, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}

// MailboxUsage is what a mailbox certificate is for: signing or
// encryption (RFC 8550 §4.4.2: a separate certificate, and key, for each
// is recommended, so that a key escrowed for decryption never signs).
type MailboxUsage int

const (
	// UsageSign: digitalSignature and nonRepudiation (contentCommitment).
	UsageSign MailboxUsage = iota + 1
	// UsageEncrypt: keyEncipherment and dataEncipherment, RSA only.
	UsageEncrypt
)

// IssuedMailbox is a certificate IssueMailbox made, with its key.
type IssuedMailbox struct {
	Cert *x509.Certificate
	// KeyDER is the private key in PKCS#8: the caller stores it sealed
	// (it never touches the disk in clear).
	KeyDER []byte
	// Chain is the CA certificate, for the signatures to include.
	Chain []*x509.Certificate
}

// IssueMailbox creates an S/MIME certificate and key for a mailbox address
// from the CA (RFC 8550 §3: the address in an rfc822Name subjectAltName;
// §4.4.2 for the key usages; extKeyUsage emailProtection, RFC 5280
// §4.2.1.12). The key is RSA-2048, or ECDSA P-256 for a signature
// certificate when ecdsa is set; an encryption certificate is always RSA
// because CMS key transport in the S/MIME library is RSA only
// (docs/domain.md §6b). Nothing is written: the certificate and key are
// kept in the store (crypto/keyring), so that every process sees them.
func (p *PKI) IssueMailbox(address string, usage MailboxUsage, useECDSA bool) (IssuedMailbox, error) {
	address = strings.ToLower(strings.TrimSpace(address))
	if !strings.Contains(address, "@") || strings.ContainsAny(address, "/\\ \t<>") {
		return IssuedMailbox{}, fmt.Errorf("%q is not a mailbox address", address)
	}
	var (
		key      any
		pub      any
		ku       x509.KeyUsage
		purpose  string
		notAfter = time.Now().AddDate(3, 0, 0)
	)
	switch usage {
	case UsageSign:
		ku, purpose = x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment, "signature"
	case UsageEncrypt:
		ku, purpose = x509.KeyUsageKeyEncipherment|x509.KeyUsageDataEncipherment, "encryption"
		useECDSA = false
	default:
		return IssuedMailbox{}, fmt.Errorf("pki: unknown certificate usage %d", usage)
	}
	if useECDSA {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return IssuedMailbox{}, err
		}
		key, pub = k, &k.PublicKey
	} else {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return IssuedMailbox{}, err
		}
		key, pub = k, &k.PublicKey
	}
	if notAfter.After(p.caCert.NotAfter) {
		notAfter = p.caCert.NotAfter
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:   randomSerial(),
		Subject:        pkix.Name{CommonName: address, Organization: []string{"Carepost (development PKI)"}, OrganizationalUnit: []string{"S/MIME " + purpose}},
		NotBefore:      now.Add(-time.Hour),
		NotAfter:       notAfter,
		KeyUsage:       ku,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{address},
		SubjectKeyId:   keyID(pub),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, pub, p.caKey)
	if err != nil {
		return IssuedMailbox{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return IssuedMailbox{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return IssuedMailbox{}, err
	}
	return IssuedMailbox{Cert: cert, KeyDER: keyDER, Chain: []*x509.Certificate{p.caCert}}, nil
}

// Export returns the PEM certificate of "ca", or of "server" (the server's
// TLS certificate, once ServerCertificate made it). Mailbox certificates
// are in the store: crypto/keyring exports them.
func (p *PKI) Export(what string) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(what)) {
	case "ca":
		return p.caPEM, nil
	case "server":
		b, err := os.ReadFile(filepath.Join(p.dir, "server.crt"))
		if errors.Is(err, os.ErrNotExist) {
			return nil, errors.New("the development PKI has no server certificate yet: carepost serve makes it at its first start")
		}
		return b, err
	}
	return nil, fmt.Errorf("%q is neither ca nor server", what)
}

func writePair(certPath, keyPath string, der []byte, key any) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	// 0600 although a certificate is public: nothing in the data
	// directory is readable by others (issue 21), and the operator hands
	// out the CA with `carepost pki`, not from this file.
	return writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

// writeFileAtomic writes to a temporary file, syncs it and renames it, so
// that a crash never leaves a half-written key or certificate.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKeyPEM(b []byte) (any, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM key found")
	}
	switch block.Type {
	case "PRIVATE KEY":
		return x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(block.Bytes)
	}
	return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}

func keyID(pub any) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}

// IssueClient creates a TLS client certificate and key from the CA for a
// mailbox holder or a piece of software (SASL EXTERNAL, mutual TLS on
// submission): extKeyUsage clientAuth (RFC 5280 §4.2.1.12), the address
// in an rfc822Name subjectAltName, or, when nationalID is set instead,
// the holder's national identifier as the subject's serialNumber, as the
// health sector's smart cards name their holder. The key is ECDSA P-256.
// Nothing is written: the caller writes the files it gives the user.
func (p *PKI) IssueClient(address, nationalID string, validity time.Duration) (IssuedMailbox, error) {
	address = strings.ToLower(strings.TrimSpace(address))
	if !strings.Contains(address, "@") || strings.ContainsAny(address, "/\\ \t<>") {
		return IssuedMailbox{}, fmt.Errorf("%q is not a mailbox address", address)
	}
	if validity <= 0 {
		validity = 3 * 365 * 24 * time.Hour
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return IssuedMailbox{}, err
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(p.caCert.NotAfter) {
		notAfter = p.caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: address, Organization: []string{"Carepost (development PKI)"}, OrganizationalUnit: []string{"TLS client"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		SubjectKeyId: keyID(&k.PublicKey),
	}
	if nationalID != "" {
		tmpl.Subject.CommonName = nationalID
		tmpl.Subject.SerialNumber = nationalID
	} else {
		tmpl.EmailAddresses = []string{address}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
	if err != nil {
		return IssuedMailbox{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return IssuedMailbox{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return IssuedMailbox{}, err
	}
	return IssuedMailbox{Cert: cert, KeyDER: keyDER, Chain: []*x509.Certificate{p.caCert}}, nil
}
