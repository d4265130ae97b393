package smime

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"testing"
)

// Benchmarks of issue 24 ("Must show" 6): sign, verify, encrypt and
// decrypt a 100 KB message, next to a raw RSA-2048 PKCS#1 v1.5 signature
// with crypto/rsa, the ceiling the gateway is held to (≥ 0.8 of it per
// core for signing). BENCHMARKS.md sets them beside `openssl speed rsa2048`.

func message100K() []byte {
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit, compte rendu de consultation.\r\n"
	var b strings.Builder
	b.WriteString(testMessage)
	for b.Len() < 100*1024 {
		b.WriteString(line)
	}
	return []byte(b.String())
}

type benchSetup struct {
	p          *testPKI
	alice, bob Identity
	msg        []byte
}

func newBench(b *testing.B) *benchSetup {
	p := newPKI(b, "Bench")
	return &benchSetup{p: p, alice: p.issue(b, "alice@a.test", certOpts{}), bob: p.issue(b, "bob@b.test", certOpts{}), msg: message100K()}
}

func BenchmarkSign100K(b *testing.B) {
	s := newBench(b)
	b.SetBytes(int64(len(s.msg)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Sign(s.msg, &s.alice); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign4K is a short letter: the rate is the RSA signature's,
// with what the MIME and CMS wrapping cost on top.
func BenchmarkSign4K(b *testing.B) {
	s := newBench(b)
	msg := s.msg[:4096]
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Sign(msg, &s.alice); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify100K(b *testing.B) {
	s := newBench(b)
	signed, err := Sign(s.msg, &s.alice)
	if err != nil {
		b.Fatal(err)
	}
	opts := VerifyOptions{Roots: s.p.roots()}
	b.SetBytes(int64(len(s.msg)))
	b.ResetTimer()
	for b.Loop() {
		if r := Verify(signed, opts); r.Status != StatusPass {
			b.Fatal(r)
		}
	}
}

func BenchmarkEncrypt100K(b *testing.B) {
	s := newBench(b)
	certs := []*x509.Certificate{s.bob.Cert}
	b.SetBytes(int64(len(s.msg)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Encrypt(s.msg, certs, EncryptOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt100K(b *testing.B) {
	s := newBench(b)
	enc, err := Encrypt(s.msg, []*x509.Certificate{s.bob.Cert}, EncryptOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ids := []Identity{s.bob}
	b.SetBytes(int64(len(s.msg)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Decrypt(enc, ids); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignEncrypt100K is the outbound gateway's work per message
// and recipient.
func BenchmarkSignEncrypt100K(b *testing.B) {
	s := newBench(b)
	certs := []*x509.Certificate{s.bob.Cert}
	b.SetBytes(int64(len(s.msg)))
	b.ResetTimer()
	for b.Loop() {
		signed, err := Sign(s.msg, &s.alice)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Encrypt(signed, certs, EncryptOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSA2048SignPKCS1v15 is Go's raw RSA-2048 signature, the
// reference rate.
func BenchmarkRSA2048SignPKCS1v15(b *testing.B) {
	key := rsaKey(b)
	digest := sha256.Sum256([]byte("carepost"))
	b.ResetTimer()
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}
