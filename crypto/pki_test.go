package crypto

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPKIServerCertificateAndTLSPolicy(t *testing.T) {
	dir := t.TempDir()
	p, err := OpenPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := p.ServerCertificate("mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	// Reopening keeps the same CA and the same server certificate.
	p2, err := OpenPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.CAPEM(), p2.CAPEM()) {
		t.Fatal("the CA changed on reopen")
	}
	cert2, err := p2.ServerCertificate("mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.Certificate[0], cert2.Certificate[0]) {
		t.Fatal("the server certificate was reissued although still valid")
	}
	if info, err := os.Stat(filepath.Join(dir, "ca.key")); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key must be private (0600): %v %v", info.Mode(), err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerTLSConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	for _, name := range []string{"mail.example.test", "localhost", "127.0.0.1"} {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: p.CertPool(), ServerName: name})
		if err != nil {
			t.Fatalf("handshake as %s: %v", name, err)
		}
		c.Close()
	}
	// TLS 1.1 is refused, and so is a TLS 1.2 suite without forward secrecy.
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: p.CertPool(), ServerName: "localhost", MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 accepted")
	}
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: p.CertPool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		c.Close()
		t.Fatal("a suite without forward secrecy or AEAD was accepted")
	}
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: p.CertPool(), ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 with an AEAD suite refused: %v", err)
	}
	c.Close()
}

func TestPKIIssueMailboxAndExport(t *testing.T) {
	p, err := OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.VerifyOptions{Roots: p.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	for _, tc := range []struct {
		usage  MailboxUsage
		ecdsa  bool
		ku     x509.KeyUsage
		rsaKey bool
	}{
		{UsageSign, false, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, true},
		{UsageSign, true, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, false},
		// Encryption stays RSA whatever is asked: CMS key transport.
		{UsageEncrypt, true, x509.KeyUsageKeyEncipherment | x509.KeyUsageDataEncipherment, true},
	} {
		m, err := p.IssueMailbox("Dupont@Example.Test", tc.usage, tc.ecdsa)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Cert.EmailAddresses) != 1 || m.Cert.EmailAddresses[0] != "dupont@example.test" {
			t.Errorf("email SAN = %v", m.Cert.EmailAddresses)
		}
		if m.Cert.KeyUsage != tc.ku {
			t.Errorf("usage %d: key usage %b, want %b", tc.usage, m.Cert.KeyUsage, tc.ku)
		}
		if _, err := m.Cert.Verify(roots); err != nil {
			t.Errorf("mailbox certificate does not chain to the CA for email protection: %v", err)
		}
		key, err := x509.ParsePKCS8PrivateKey(m.KeyDER)
		if err != nil {
			t.Fatal(err)
		}
		_, isRSA := key.(*rsa.PrivateKey)
		if isRSA != tc.rsaKey {
			t.Errorf("usage %d ecdsa %v: key %T", tc.usage, tc.ecdsa, key)
		}
		if len(m.Chain) != 1 || !m.Chain[0].Equal(p.CACert()) {
			t.Errorf("chain = %v", m.Chain)
		}
	}
	if _, err := os.Stat(filepath.Join(p.Dir(), "mailboxes")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IssueMailbox wrote files: %v", err)
	}
	if _, err := p.IssueMailbox("../../etc/passwd", UsageSign, false); err == nil {
		t.Fatal("a path was accepted as an address")
	}
	// server: absent until ServerCertificate, then the server's certificate.
	if _, err := p.Export("server"); err == nil || !strings.Contains(err.Error(), "carepost serve makes it") {
		t.Fatalf("export server before its certificate: %v", err)
	}
	if _, err := p.ServerCertificate("mail.example.test"); err != nil {
		t.Fatal(err)
	}
	if b, err := p.Export("server"); err != nil || !bytes.HasPrefix(b, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("export server: %v", err)
	}
	if _, err := p.Export("nonsense"); err == nil || !strings.Contains(err.Error(), "neither ca nor server") {
		t.Fatalf("export nonsense: %v", err)
	}
	ca, _ := p.Export("ca")
	if !bytes.Equal(ca, p.CAPEM()) {
		t.Fatal("export ca differs")
	}
}
