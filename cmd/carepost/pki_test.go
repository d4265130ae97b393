package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/crypto/keyring"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// selfSignedFor makes a certificate for address that may encrypt.
func selfSignedFor(t *testing.T, address string) *x509.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: address},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0), KeyUsage: x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, EmailAddresses: []string{address}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// TestPKICommands: issue, import (PKCS#12 and PEM), export and list, with
// their refusals; no private key is ever in the data directory in clear.
func TestPKICommands(t *testing.T) {
	data := newData(t)
	ok := func(args ...string) string {
		t.Helper()
		out, errs, code := carepost(t, data, "", args...)
		if code != 0 {
			t.Fatalf("carepost %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	refused := func(want string, args ...string) {
		t.Helper()
		out, errs, code := carepost(t, data, "", args...)
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("carepost %s: exit %d, stderr %q should contain %q (stdout %q)", strings.Join(args, " "), code, errs, want, out)
		}
	}
	const marie, jean = "marie.curie@carepost.test", "jean.martin@carepost.test"
	ok("dir", "add-professional", "--id", "810001045367", "--first", "Marie", "--last", "Curie", "--profession", "10", "--address", marie)
	ok("dir", "add-professional", "--id", "0012600631", "--first", "Jean", "--last", "Martin", "--profession", "10", "--address", jean)
	if out := ok("pki", "list"); !strings.Contains(out, "no S/MIME certificates") {
		t.Errorf("pki list of an empty store:\n%s", out)
	}

	// issue
	refused("not a mailbox of the directory", "pki", "issue", "nobody@carepost.test")
	refused("not an address of a domain hosted here", "pki", "issue", "dr@ch-b.test")
	out := ok("pki", "issue", "Marie.Curie@carepost.test", "--ecdsa")
	for _, want := range []string{"issued for " + marie, "signature   ECDSA P-256", "encryption  RSA-2048", "RSA only", "sealed with the at-rest key"} {
		if !strings.Contains(out, want) {
			t.Errorf("pki issue --ecdsa lacks %q:\n%s", want, out)
		}
	}
	refused("give --force to issue new ones", "pki", "issue", marie)
	exported := ok("pki", "export", marie)
	certs, err := keyring.ParseCertificatesPEM([]byte(exported))
	if err != nil || len(certs) != 2 || strings.Contains(exported, "PRIVATE") {
		t.Fatalf("pki export: %d certificates, %v:\n%s", len(certs), err, exported)
	}
	if certs[0].KeyUsage&x509.KeyUsageContentCommitment == 0 || certs[1].KeyUsage&x509.KeyUsageKeyEncipherment == 0 ||
		certs[0].EmailAddresses[0] != marie || certs[0].ExtKeyUsage[0] != x509.ExtKeyUsageEmailProtection {
		t.Errorf("exported certificates: usages %b and %b, names %v", certs[0].KeyUsage, certs[1].KeyUsage, certs[0].EmailAddresses)
	}
	if enc, err := keyring.ParseCertificatesPEM([]byte(ok("pki", "export", marie, "--usage", "encrypt"))); err != nil || len(enc) != 1 || !enc[0].Equal(certs[1]) {
		t.Errorf("pki export --usage encrypt: %d certificates, %v", len(enc), err)
	}
	refused("--usage is for a mailbox address", "pki", "export", "ca", "--usage", "sign")
	ok("pki", "issue", marie, "--force")
	if again := ok("pki", "export", marie); again == exported {
		t.Error("pki issue --force did not change the exported certificates")
	}

	// import: certificates from the operator's CA, made here as another
	// CA would give them.
	pki, err := crypto.OpenPKI(filepath.Join(data, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	jeanEnc, err := pki.IssueMailbox(jean, crypto.UsageEncrypt, false)
	if err != nil {
		t.Fatal(err)
	}
	stray, err := pki.IssueMailbox(jean, crypto.UsageEncrypt, false)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := x509.ParsePKCS8PrivateKey(jeanEnc.KeyDER)
	p12, err := pkcs12.Modern.Encode(key, jeanEnc.Cert, jeanEnc.Chain, "p12 secret")
	if err != nil {
		t.Fatal(err)
	}
	p12File := writeFile(t, "jean.p12", p12)
	rightPW := writeFile(t, "pw", []byte("p12 secret\n"))
	wrongPW := writeFile(t, "wrong", []byte("not it\n"))
	refused("the password does not open the PKCS#12 file", "pki", "import", jean, p12File, "--password-file", wrongPW)
	refused("the password does not open the PKCS#12 file", "pki", "import", jean, p12File)
	refused("not a mailbox of the directory", "pki", "import", "nobody@carepost.test", p12File, "--password-file", rightPW)
	refused("names "+jean+", not "+marie, "pki", "import", marie, p12File, "--password-file", rightPW)
	refused("the private key does not match", "pki", "import", jean,
		writeFile(t, "mismatch.pem", append(certPEM(jeanEnc.Cert), keyPEM(stray.KeyDER)...)))
	refused("cannot be used to sign", "pki", "import", jean, p12File, "--password-file", rightPW, "--usage", "sign")
	out = ok("pki", "import", "Jean.Martin@carepost.test", p12File, "--password-file", rightPW)
	if !strings.Contains(out, "encryption  RSA-2048") || !strings.Contains(out, "private key is in the store") {
		t.Errorf("pki import PKCS#12:\n%s", out)
	}
	// PEM: certificate and key.
	jeanSign, err := pki.IssueMailbox(jean, crypto.UsageSign, false)
	if err != nil {
		t.Fatal(err)
	}
	out = ok("pki", "import", jean, writeFile(t, "sign.pem", append(append(certPEM(jeanSign.Cert), keyPEM(jeanSign.KeyDER)...), certPEM(pki.CACert())...)))
	if !strings.Contains(out, "signature") {
		t.Errorf("pki import PEM:\n%s", out)
	}
	// PEM: the certificate alone, end-to-end mode.
	e2e, err := pki.IssueMailbox(marie, crypto.UsageEncrypt, false)
	if err != nil {
		t.Fatal(err)
	}
	if out = ok("pki", "import", marie, writeFile(t, "e2e.pem", certPEM(e2e.Cert))); !strings.Contains(out, "end-to-end mode") {
		t.Errorf("pki import of a certificate alone:\n%s", out)
	}
	// Another operator's recipient's, by hand.
	remote := selfSignedFor(t, "dr.b@ch-b.test")
	refused("give --remote", "pki", "import", "dr.b@ch-b.test", writeFile(t, "r.pem", certPEM(remote)))
	ok("pki", "import", "dr.b@ch-b.test", writeFile(t, "r.pem", certPEM(remote)), "--remote")
	if out := ok("pki", "export", "dr.b@ch-b.test"); out != string(certPEM(remote)) {
		t.Errorf("pki export of a remote certificate:\n%s", out)
	}
	refused(`"frob" is neither ca, server nor a mailbox address`, "pki", "export", "frob")

	out = ok("pki", "list")
	for _, want := range []string{"dr.b@ch-b.test", "remote, imported", "not held (end-to-end)", "held (sealed)", "ECDSA P-256"} {
		if !strings.Contains(out, want) {
			t.Errorf("pki list lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, marie); n != 5 { // 2 issued, 2 reissued, 1 imported
		t.Errorf("pki list shows %d certificates of %s, want 5:\n%s", n, marie, out)
	}

	// No file of the data directory holds a private key in clear.
	if fs.WalkDir(os.DirFS(data), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(data, p))
		if err != nil {
			return err
		}
		for _, k := range [][]byte{jeanEnc.KeyDER, jeanSign.KeyDER, keyPEM(jeanSign.KeyDER)} {
			if bytes.Contains(b, k[len(k)-64:]) {
				t.Errorf("%s holds a private key in clear", p)
			}
		}
		return nil
	}) != nil {
		t.Fatal("walk")
	}
	if _, err := os.Stat(filepath.Join(data, "pki", "mailboxes")); err == nil {
		t.Error("pki/mailboxes was created: certificates belong in the store")
	}
}

// TestPKIBesideServe: `carepost pki issue`, run as another process beside
// a running server, is published at once on the server's https listener
// and used by its keyring.
func TestPKIBesideServe(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command line as a child process")
	}
	inst := servertest.Start(t, func(c *server.Config) { c.Listen.HTTPS = "127.0.0.1:0" })
	alice := inst.AddProfessional("alice", "alice: a long passphrase")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "pki", "issue", alice, "--data", inst.Config.Data)
	cmd.Env = append(os.Environ(), "CAREPOST_TEST_MAIN=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("carepost pki issue: %v\n%s", err, out)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: inst.ClientTLS()}}
	resp, err := client.Get("https://" + inst.AddrOf("https") + keyring.PublicationPath + alice)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if certs, err := keyring.ParseCertificatesPEM(body); resp.StatusCode != 200 || err != nil || len(certs) != 2 {
		t.Fatalf("GET the certificates of %s from the running server: %d %v\n%s", alice, resp.StatusCode, err, body)
	}
	if id, err := inst.Keyring.Signer(context.Background(), alice); err != nil || id.Key == nil {
		t.Fatalf("the running server's Signer(%s): %v", alice, err)
	}
	// TLS 1.1 is refused on the https listener.
	old := inst.ClientTLS()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, err := tls.Dial("tcp", inst.AddrOf("https"), old); err == nil {
		c.Close()
		t.Error("TLS 1.1 accepted on the https listener")
	}
}
