package smime

import (
	"bytes"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Interoperability with OpenSSL (issue 24 "Must show" 4): what openssl
// cms / smime sign and encrypt, we decrypt and verify; what we sign and
// encrypt, openssl verifies and decrypts. CI installs openssl; a machine
// without it skips these tests, saying so.

func needOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("the openssl binary is not installed: the interoperability tests need it (apt-get install openssl)")
	}
	return path
}

func openssl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(needOpenSSL(t), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// interopSetup is two operators' mailboxes with their files for openssl.
type interopSetup struct {
	dir                                                        string
	pa, pb                                                     *testPKI
	alice, bob                                                 Identity
	aliceCert, aliceKey, bobCert, bobKey, rootA, rootB, interA string
}

func newInterop(t *testing.T) *interopSetup {
	needOpenSSL(t)
	s := &interopSetup{dir: t.TempDir(), pa: newPKI(t, "A"), pb: newPKI(t, "B")}
	s.alice = s.pa.issue(t, "alice@a.test", certOpts{})
	s.bob = s.pb.issue(t, "bob@b.test", certOpts{})
	s.aliceCert = writePEM(t, s.dir, "alice.pem", nil, s.alice.Cert)
	s.aliceKey = writePEM(t, s.dir, "alice.key", s.alice.Key)
	s.bobCert = writePEM(t, s.dir, "bob.pem", nil, s.bob.Cert)
	s.bobKey = writePEM(t, s.dir, "bob.key", s.bob.Key)
	s.rootA = writePEM(t, s.dir, "rootA.pem", nil, s.pa.root)
	s.rootB = writePEM(t, s.dir, "rootB.pem", nil, s.pb.root)
	s.interA = writePEM(t, s.dir, "interA.pem", nil, s.pa.inter)
	return s
}

const interopEntity = "Content-Type: text/plain; charset=utf-8\r\n\r\nOrdonnance: 1 boite, 3 fois par jour.\r\n"

// TestOpenSSLSignEncryptToUs: openssl cms signs (detached) then encrypts
// with the Direct RI's choices (AES-128-CBC, RSA-OAEP SHA-1) and with
// AES-256 + OAEP SHA-256 and PKCS#1 v1.5; we decrypt and verify.
func TestOpenSSLSignEncryptToUs(t *testing.T) {
	s := newInterop(t)
	signed := openssl(t, []byte(interopEntity), "cms", "-sign", "-md", "sha256",
		"-signer", s.aliceCert, "-inkey", s.aliceKey, "-certfile", s.interA)
	cases := map[string][]string{
		"aes128-oaep-sha1":   {"-aes128", "-recip", s.bobCert, "-keyopt", "rsa_padding_mode:oaep"},
		"aes256-oaep-sha256": {"-aes256", "-recip", s.bobCert, "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"},
		"aes256-pkcs1":       {"-aes256", "-recip", s.bobCert},
	}
	for name, opts := range cases {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"cms", "-encrypt", "-from", "alice@a.test", "-to", "bob@b.test", "-subject", "Ordonnance"}, opts...)
			enc := openssl(t, signed, args...)
			dec, err := Decrypt(enc, []Identity{s.bob})
			if err != nil {
				t.Fatal(err)
			}
			m := header(t, dec)
			if m.header.Get("Subject") != "Ordonnance" || !IsSigned(m.header) {
				t.Fatalf("decrypted header %v", m.header.Map())
			}
			r := Verify(dec, VerifyOptions{Roots: s.pa.roots()})
			if r.Status != StatusPass || r.Signer != "alice@a.test" {
				t.Fatalf("Verify = %+v", r)
			}
			// Tampered after signing: fail.
			bad := bytes.Replace(dec, []byte("3 fois"), []byte("4 fois"), 1)
			wantFail(t, Verify(bad, VerifyOptions{Roots: s.pa.roots()}), "altered")
		})
	}
}

// TestOpenSSLSMIMEOpaque: the older openssl smime command, signed-data
// carried whole (opaque, application/pkcs7-mime; smime-type=signed-data).
func TestOpenSSLSMIMEOpaque(t *testing.T) {
	s := newInterop(t)
	signed := openssl(t, []byte(interopEntity), "smime", "-sign", "-nodetach", "-md", "sha256",
		"-signer", s.aliceCert, "-inkey", s.aliceKey, "-certfile", s.interA,
		"-from", "alice@a.test", "-to", "bob@b.test", "-subject", "Opaque")
	if !IsSignedMessage(signed) {
		t.Fatalf("not recognised as signed:\n%s", signed)
	}
	if r := Verify(signed, VerifyOptions{Roots: s.pa.roots()}); r.Status != StatusPass {
		t.Fatalf("Verify = %+v", r)
	}
	if r := Verify(signed, VerifyOptions{Roots: s.pb.roots()}); r.Status != StatusFail {
		t.Fatalf("Verify with the wrong anchors = %+v", r)
	}
	// Detached, with openssl smime too.
	det := openssl(t, []byte(interopEntity), "smime", "-sign", "-md", "sha256",
		"-signer", s.aliceCert, "-inkey", s.aliceKey, "-certfile", s.interA, "-from", "alice@a.test")
	if r := Verify(det, VerifyOptions{Roots: s.pa.roots()}); r.Status != StatusPass {
		t.Fatalf("Verify(detached) = %+v", r)
	}
}

// TestOpenSSLVerifiesOurs: openssl cms -verify accepts our signature
// against the sender's CA, and refuses it against another.
func TestOpenSSLVerifiesOurs(t *testing.T) {
	s := newInterop(t)
	signed, err := Sign([]byte(testMessage), &s.alice)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.dir, "signed.eml")
	if err := os.WriteFile(path, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	out := openssl(t, nil, "cms", "-verify", "-in", path, "-CAfile", s.rootA)
	if !bytes.Contains(out, []byte("Voici le compte rendu")) {
		t.Fatalf("verified content %q", out)
	}
	cmd := exec.Command(needOpenSSL(t), "cms", "-verify", "-in", path, "-CAfile", s.rootB)
	if err := cmd.Run(); err == nil {
		t.Fatal("openssl verified our signature against another CA")
	}
	// Tampered: openssl refuses it too (the same check as ours).
	bad := bytes.Replace(signed, []byte("compte rendu"), []byte("compte-rendu"), 1)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(needOpenSSL(t), "cms", "-verify", "-in", path, "-CAfile", s.rootA).Run(); err == nil {
		t.Fatal("openssl verified a tampered message")
	}
}

// TestOpenSSLDecryptsOurs: openssl cms -decrypt opens what we encrypt
// (PKCS#1 v1.5 and OAEP), signed inside.
func TestOpenSSLDecryptsOurs(t *testing.T) {
	s := newInterop(t)
	signed, err := Sign([]byte(testMessage), &s.alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, oaep := range []bool{false, true} {
		enc, err := Encrypt(signed, []*x509.Certificate{s.bob.Cert}, EncryptOptions{OAEP: oaep})
		if err != nil {
			t.Fatal(err)
		}
		inner := openssl(t, enc, "cms", "-decrypt", "-recip", s.bobCert, "-inkey", s.bobKey)
		if !bytes.HasPrefix(inner, []byte("MIME-Version: 1.0\r\nContent-Type: multipart/signed")) && !bytes.HasPrefix(inner, []byte("Content-Type: multipart/signed")) {
			t.Fatalf("decrypted entity:\n%.300s", inner)
		}
		// And the signature inside verifies with openssl.
		path := filepath.Join(s.dir, "inner.eml")
		if err := os.WriteFile(path, inner, 0o600); err != nil {
			t.Fatal(err)
		}
		openssl(t, nil, "cms", "-verify", "-in", path, "-CAfile", s.rootA)
		// The cipher is AES-256-CBC.
		info := openssl(t, enc, "cms", "-cmsout", "-print")
		if !bytes.Contains(info, []byte("aes-256-cbc")) {
			t.Errorf("content encryption is not AES-256-CBC:\n%.2000s", info)
		}
		if oaep != bytes.Contains(info, []byte("rsaesOaep")) {
			t.Errorf("key transport (OAEP %v):\n%.2000s", oaep, info)
		}
	}
}
