package server_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/crypto/keyring"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// The S/MIME gateway tried as a new user would (issue 24, README "Two
// operators on one machine"), with the openssl binary as the other side:
// the mail clients of the professionals are ordinary ones, openssl is what
// a user checks and makes S/MIME with.

func needOpenSSL(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("the openssl binary is not installed: this end-to-end test checks the gateway against openssl cms (install openssl to run it)")
	}
	return bin
}

// opensslRun runs openssl with args, stdin as its input, and returns its
// output; a failure is returned with what openssl wrote on stderr.
func opensslRun(bin string, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &opensslError{err: err, stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

type opensslError struct {
	err    error
	stderr string
}

func (e *opensslError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

// imapMessages returns the messages of account's INBOX on srv as FETCH
// BODY.PEEK[] returns them over IMAPS, once there are n.
func imapMessages(t *testing.T, srv *servertest.Instance, account string, n int) [][]byte {
	t.Helper()
	inbox(t, srv, account, n) // waits for delivery
	c := dialIMAP(t, srv, account, nil)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4, 5, 6, 7, 8), &imap.FetchOptions{
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		if len(m.BodySection) != 1 {
			t.Fatalf("FETCH BODY.PEEK[] returned %d sections", len(m.BodySection))
		}
		out = append(out, m.BodySection[0].Bytes)
	}
	if len(out) < n {
		t.Fatalf("%s has %d messages over IMAP, want %d", account, len(out), n)
	}
	return out
}

// header returns the header of a message, up to the blank line.
func header(msg []byte) string {
	h, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	return string(h) + "\r\n"
}

// encryptionCert writes the encryption certificate of address, as
// `carepost pki export` gives it (Keyring.Export: signature first, then
// encryption), to a file, alone: openssl cms -encrypt takes the first
// certificate of a file.
func encryptionCert(t *testing.T, srv *servertest.Instance, address string) string {
	t.Helper()
	out, err := srv.Keyring.Export(context.Background(), address)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := keyring.ParseCertificatesPEM(out)
	if err != nil || len(certs) != 2 {
		t.Fatalf("export of %s: %d certificates, %v", address, len(certs), err)
	}
	enc, err := srv.Keyring.ExportUsage(context.Background(), address, "encrypt")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keyring.ParseCertificatesPEM(enc); err != nil || len(got) != 1 || !got[0].Equal(certs[1]) {
		t.Fatalf("export --usage encrypt of %s is not the second certificate of export: %v", address, err)
	}
	path := filepath.Join(t.TempDir(), "enc.crt")
	if err := os.WriteFile(path, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startOwnCAs is startPair as the README sets it up: each operator with
// its own development CA, each trusting the other's (`carepost trust
// add-ca`), so that a signature of A's verifies with A's CA and not with
// B's.
func startOwnCAs(t *testing.T) *pair {
	t.Helper()
	aSMTP, bSMTP, aHTTPS, bHTTPS := freePort(t), freePort(t), freePort(t), freePort(t)
	b := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.b.test", []string{"b.test"}, ""
		c.Listen.SMTP, c.Listen.HTTPS = bSMTP, bHTTPS
		c.Routes = map[string]string{"a.test": aSMTP}
		c.SMIME.Endpoints = map[string]string{"a.test": "https://" + aHTTPS}
		c.Queue = fastQueue()
	})
	a := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.a.test", []string{"a.test"}, ""
		c.Listen.SMTP, c.Listen.HTTPS = aSMTP, aHTTPS
		c.Routes = map[string]string{"b.test": bSMTP}
		c.SMIME.Endpoints = map[string]string{"b.test": "https://" + bHTTPS}
		c.Queue = fastQueue()
	})
	if !a.Config.SMIME.Gateway || !b.Config.SMIME.Gateway {
		t.Fatal("the S/MIME gateway is not on by default")
	}
	ctx := context.Background()
	for _, x := range []struct {
		srv, other *servertest.Instance
		domain     string
	}{{a, b, "b.test"}, {b, a, "a.test"}} {
		if err := x.srv.Dir.AddTrustedDomain(ctx, x.domain, "the other operator"); err != nil {
			t.Fatal(err)
		}
		ca, err := os.ReadFile(x.other.PKI.CAPath())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.srv.Dir.AddTrustAnchor(ctx, ca); err != nil {
			t.Fatal(err)
		}
	}
	if bytes.Equal(a.PKI.CACert().Raw, b.PKI.CACert().Raw) {
		t.Fatal("A and B share a CA")
	}
	p := &pair{a: a, b: b}
	p.alice, p.carol = a.AddProfessional("alice", password), a.AddProfessional("carol", password)
	p.bob, p.dave = b.AddProfessional("bob", password), b.AddProfessional("dave", password)
	return p
}

func TestSMIMETriedAsNewUser(t *testing.T) {
	bin := needOpenSSL(t)
	p := startOwnCAs(t)
	dir := t.TempDir()
	caA := p.a.PKI.CAPath()

	// 1. Alice (A) writes to Bob (B) from an ordinary client: A signs and
	// encrypts, B decrypts and verifies; Bob's copy over IMAP is the
	// message as A signed it, which openssl verifies with A's CA.
	body := "Cher confrère, voici le compte rendu de Mme X."
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, message(p.alice, p.bob, "Compte rendu", body)); err != nil {
		t.Fatalf("A to B: %v", err)
	}
	got := imapMessages(t, p.b, p.bob, 1)[0]
	h := header(got)
	if !strings.Contains(h, "\r\nContent-Type: multipart/signed;") || !strings.Contains(h, "application/pkcs7-signature") {
		t.Fatalf("Bob's copy over IMAP is not multipart/signed:\n%s", h)
	}
	if !strings.HasPrefix(h, "Authentication-Results: mx.b.test; smime=pass body.smime-identifier="+p.alice+" ") {
		t.Fatalf("Bob's copy does not start with B's smime=pass verdict for %s:\n%s", p.alice, h)
	}
	signed := filepath.Join(dir, "bob.eml")
	if err := os.WriteFile(signed, got, 0o600); err != nil {
		t.Fatal(err)
	}
	content, err := opensslRun(bin, nil, "cms", "-verify", "-in", signed, "-CAfile", caA)
	if err != nil {
		t.Fatalf("openssl cms -verify of Bob's copy with A's CA: %v", err)
	}
	if !bytes.Contains(content, []byte(body)) {
		t.Fatalf("openssl cms -verify gave:\n%s", content)
	}
	// The check can fail: a changed word, or a CA that is not A's.
	tampered := filepath.Join(dir, "tampered.eml")
	if err := os.WriteFile(tampered, bytes.Replace(got, []byte("Mme X"), []byte("Mme Y"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := opensslRun(bin, nil, "cms", "-verify", "-in", tampered, "-CAfile", caA, "-out", os.DevNull); err == nil {
		t.Fatal("openssl verifies a tampered copy")
	}
	if _, err := opensslRun(bin, nil, "cms", "-verify", "-in", signed, "-CAfile", p.b.PKI.CAPath(), "-out", os.DevNull); err == nil {
		t.Fatal("openssl verifies Bob's copy with B's CA")
	}

	// 2. Dave (B) encrypts with openssl to Bob's exported certificate and
	// submits it to B: Bob reads it in clear, with B's verdict (not
	// signed: smime=none).
	bobCert := encryptionCert(t, p.b, p.bob)
	clear := "Content-Type: text/plain; charset=utf-8\r\n\r\nKaliémie normale, chiffrée par openssl.\r\n"
	enc, err := opensslRun(bin, []byte(clear), "cms", "-encrypt", "-aes256", "-from", p.dave, "-to", p.bob, "-subject", "Chiffré localement", bobCert)
	if err != nil {
		t.Fatalf("openssl cms -encrypt: %v", err)
	}
	if !bytes.Contains(enc, []byte("smime-type=enveloped-data")) || bytes.Contains(enc, []byte("Kaliémie")) {
		t.Fatalf("openssl did not encrypt:\n%s", enc)
	}
	if err := submit(t, p.b, p.dave, p.dave, []string{p.bob}, string(enc)); err != nil {
		t.Fatalf("submit the message openssl encrypted: %v", err)
	}
	got = imapMessages(t, p.b, p.bob, 2)[1]
	h = header(got)
	if !bytes.Contains(got, []byte("Kaliémie normale, chiffrée par openssl.")) || strings.Contains(h, "pkcs7-mime") {
		t.Fatalf("Bob's copy of the message openssl encrypted is not in clear:\n%s", got)
	}
	if !strings.HasPrefix(h, "Authentication-Results: mx.b.test; smime=none\r\n") || !strings.Contains(h, "\r\nSubject: Chiffré localement\r\n") {
		t.Fatalf("Bob's copy of the message openssl encrypted:\n%s", h)
	}

	// 3. The same from the other operator, signed too: Alice's client
	// (openssl, with a signature certificate from A's CA) signs and
	// encrypts to Bob's exported certificate and submits it to A, which
	// sends it as it is (it is encrypted already) to B's MX; B decrypts
	// it and verifies Alice's signature.
	issued, err := p.a.PKI.IssueMailbox(p.alice, crypto.UsageSign, false)
	if err != nil {
		t.Fatal(err)
	}
	aliceCert, aliceKey := filepath.Join(dir, "alice.crt"), filepath.Join(dir, "alice.key")
	if err := os.WriteFile(aliceCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: issued.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aliceKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: issued.KeyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	inner := "Content-Type: text/plain; charset=utf-8\r\n\r\nRésultats du bilan : normaux.\r\n"
	signedInner, err := opensslRun(bin, []byte(inner), "cms", "-sign", "-signer", aliceCert, "-inkey", aliceKey, "-md", "sha256")
	if err != nil {
		t.Fatalf("openssl cms -sign: %v", err)
	}
	enc, err = opensslRun(bin, signedInner, "cms", "-encrypt", "-aes256", "-from", p.alice, "-to", p.bob, "-subject", "Bilan", bobCert)
	if err != nil {
		t.Fatalf("openssl cms -encrypt: %v", err)
	}
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, string(enc)); err != nil {
		t.Fatalf("A to B, encrypted by openssl: %v", err)
	}
	got = imapMessages(t, p.b, p.bob, 3)[2]
	h = header(got)
	if !bytes.Contains(got, []byte("Résultats du bilan : normaux.")) || strings.Contains(h, "pkcs7-mime") ||
		!strings.Contains(h, "\r\nContent-Type: multipart/signed;") || !strings.Contains(h, "with ESMTPS") {
		t.Fatalf("Bob's copy of the message openssl signed and encrypted at A:\n%s", got)
	}
	if !strings.HasPrefix(h, "Authentication-Results: mx.b.test; smime=pass body.smime-identifier="+p.alice+" ") {
		t.Fatalf("Bob's copy of the message openssl signed and encrypted at A has no smime=pass for %s:\n%s", p.alice, h)
	}
	waitQueueEmpty(t, p.a)
}
