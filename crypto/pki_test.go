package crypto

import (
	"bytes"
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

func TestPKIIssueAndExport(t *testing.T) {
	p, err := OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Export("dupont@example.test"); err == nil || !strings.Contains(err.Error(), "carepost pki issue dupont@example.test") {
		t.Fatalf("export before issue: %v", err)
	}
	certPath, keyPath, err := p.Issue("Dupont@Example.Test", false)
	if err != nil {
		t.Fatal(err)
	}
	key1, _ := os.ReadFile(keyPath)
	// A key is never replaced unless asked.
	var ke *KeyExistsError
	if _, _, err := p.Issue("dupont@example.test", false); !errors.As(err, &ke) || ke.KeyPath != keyPath {
		t.Fatalf("second issue without replace: %v", err)
	}
	if key2, _ := os.ReadFile(keyPath); !bytes.Equal(key1, key2) {
		t.Fatal("the refused issue changed the key")
	}
	if _, _, err := p.Issue("dupont@example.test", true); err != nil {
		t.Fatal(err)
	}
	if key2, _ := os.ReadFile(keyPath); bytes.Equal(key1, key2) {
		t.Fatal("issue with replace kept the old key")
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
	if _, err := p.Export("nonsense"); err == nil || !strings.Contains(err.Error(), "neither ca, server nor a mailbox address") {
		t.Fatalf("export nonsense: %v", err)
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	pemBytes, err := p.Export("dupont@example.test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := parseCertPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.EmailAddresses) != 1 || leaf.EmailAddresses[0] != "dupont@example.test" {
		t.Fatalf("email SAN = %v", leaf.EmailAddresses)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Fatalf("mailbox certificate does not chain to the CA for email protection: %v", err)
	}
	if _, err := p.Export("nobody@example.test"); err == nil {
		t.Fatal("export of a certificate never issued succeeded")
	}
	if _, _, err := p.Issue("../../etc/passwd", false); err == nil {
		t.Fatal("a path was accepted as an address")
	}
	ca, _ := p.Export("ca")
	if !bytes.Equal(ca, p.CAPEM()) {
		t.Fatal("export ca differs")
	}
}
