package smime

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testPKI is a small CA for the tests: a root, an intermediate under it,
// and certificates for mailboxes issued by the intermediate.
type testPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
	serial            int64
}

// keys are made once per test binary: RSA-2048 generation is slow and
// the tests need several.
var (
	keyMu   sync.Mutex
	keyPool []*rsa.PrivateKey
	keyNext int
)

func rsaKey(t testing.TB) *rsa.PrivateKey {
	keyMu.Lock()
	defer keyMu.Unlock()
	if keyNext < len(keyPool) {
		k := keyPool[keyNext]
		keyNext++
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPool = append(keyPool, k)
	keyNext++
	return k
}

func newPKI(t testing.TB, name string) *testPKI {
	t.Helper()
	p := &testPKI{serial: 100}
	p.rootKey = rsaKey(t)
	p.root = p.ca(t, name+" Root CA", nil, nil, p.rootKey)
	p.interKey = rsaKey(t)
	p.inter = p.ca(t, name+" Mail CA", p.root, p.rootKey, p.interKey)
	return p
}

func (p *testPKI) next() *big.Int { p.serial++; return big.NewInt(p.serial) }

func (p *testPKI) ca(t testing.TB, cn string, parent *x509.Certificate, parentKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          p.next(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Carepost test"}},
		NotBefore:             time.Now().Add(-48 * time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certOpts describe a mailbox certificate.
type certOpts struct {
	usage      x509.KeyUsage
	ext        []x509.ExtKeyUsage
	notBefore  time.Time
	notAfter   time.Time
	ecdsa      bool
	noEmailEKU bool
}

// issue makes a certificate for address; the default is a certificate
// for both signing and encryption, valid now.
func (p *testPKI) issue(t testing.TB, address string, o certOpts) Identity {
	t.Helper()
	var key crypto.Signer = nil
	if o.ecdsa {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	} else {
		key = rsaKey(t)
	}
	if o.usage == 0 {
		o.usage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment
	}
	if o.ext == nil && !o.noEmailEKU {
		o.ext = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
	}
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-24 * time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   p.next(),
		Subject:        pkix.Name{CommonName: address},
		EmailAddresses: []string{address},
		NotBefore:      o.notBefore,
		NotAfter:       o.notAfter,
		KeyUsage:       o.usage,
		ExtKeyUsage:    o.ext,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.inter, key.Public(), p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return Identity{Cert: c, Key: key, Chain: []*x509.Certificate{p.inter}}
}

func (p *testPKI) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.root)
	return pool
}

func (p *testPKI) inters() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.inter)
	return pool
}

// crl returns a CRL of the intermediate revoking the given certificates.
func (p *testPKI) crl(t testing.TB, revoked ...*x509.Certificate) *x509.RevocationList {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: time.Now().Add(-time.Hour)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: time.Now().Add(-2 * time.Hour), NextUpdate: time.Now().Add(24 * time.Hour),
		RevokedCertificateEntries: entries,
	}, p.inter, p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	l, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writePEM writes certificates (and a key) to a file in dir, for openssl.
func writePEM(t testing.TB, dir, name string, key crypto.PrivateKey, certs ...*x509.Certificate) string {
	t.Helper()
	var out []byte
	if key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		out = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const testMessage = "Received: from client by mx.a.test; Mon, 7 Dec 2026 10:00:00 +0000\r\n" +
	"From: Dr Alice Martin <alice@a.test>\r\n" +
	"To: bob@b.test\r\n" +
	"Subject: Compte rendu\r\n" +
	"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n" +
	"Message-ID: <m1@a.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Bonjour,\r\n\r\nVoici le compte rendu de la consultation.\r\n"
