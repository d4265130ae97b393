package smime

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The fuzz targets cover every entry that parses input: Verify (MIME,
// base64, CMS SignedData, certificates) and Decrypt (MIME, base64, CMS
// EnvelopedData, the decrypted entity). Seeds are in testdata/fuzz; they
// are written again by SMIME_WRITE_SEEDS=1 go test -run TestWriteFuzzSeeds.

// fuzzIdentity is the throw-away identity of testdata/fuzz-identity.pem,
// fixed so that the seeds encrypted to it decrypt on every run.
func fuzzIdentity(t testing.TB) Identity {
	t.Helper()
	b, err := os.ReadFile("testdata/fuzz-identity.pem")
	if err != nil {
		t.Fatal(err)
	}
	var id Identity
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PRIVATE KEY":
			id.Key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "CERTIFICATE":
			id.Cert, err = x509.ParseCertificate(blk.Bytes)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func fuzzRoots(t testing.TB) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(fuzzIdentity(t).Cert)
	return pool
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte(testMessage))
	f.Add([]byte("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\n0\x80\x06\t*\x86H\x86\xf7\r\x01\x07\x02\x00\x00\r\n--b--\r\n"))
	roots := fuzzRoots(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		r := Verify(msg, VerifyOptions{Roots: roots})
		switch r.Status {
		case StatusPass:
			if r.Signer == "" || r.Cert == nil {
				t.Fatalf("pass without a signer: %+v", r)
			}
		case StatusFail, StatusNone, StatusPermError, StatusTempError:
		default:
			t.Fatalf("status %q", r.Status)
		}
		if f := r.Field("mx.test"); strings.ContainsAny(strings.TrimSuffix(f, "\r\n"), "\r\n") {
			t.Fatalf("field breaks the header: %q", f)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	f.Add([]byte(testMessage))
	f.Add([]byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\r\n"))
	id := fuzzIdentity(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		out, err := Decrypt(msg, []Identity{id})
		if err != nil {
			return
		}
		if _, err := parse(out); err != nil {
			t.Fatalf("Decrypt returned an unreadable message: %v", err)
		}
	})
}

// TestWriteFuzzSeeds writes the seed corpus: signed, opaque-signed and
// encrypted messages made with the fuzz identity.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SMIME_WRITE_SEEDS") == "" {
		t.Skip("set SMIME_WRITE_SEEDS=1 to write testdata/fuzz again")
	}
	id := fuzzIdentity(t)
	msg := strings.Replace(testMessage, "alice@a.test", "fuzz@fuzz.test", 1)
	signed, err := Sign([]byte(msg), &id)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encrypt([]byte(msg), []*x509.Certificate{id.Cert}, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	encOAEP, err := Encrypt(signed, []*x509.Certificate{id.Cert}, EncryptOptions{OAEP: true})
	if err != nil {
		t.Fatal(err)
	}
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("FuzzVerify", "signed", signed)
	write("FuzzVerify", "signed-lf", []byte(strings.ReplaceAll(string(signed), "\r\n", "\n")))
	write("FuzzDecrypt", "enveloped", enc)
	write("FuzzDecrypt", "enveloped-oaep-signed", encOAEP)
	if p, err := os.ReadFile("testdata/opaque-signed.eml"); err == nil {
		write("FuzzVerify", "opaque", p)
	}
}

// isCRLFByByte is isCRLF written plainly, byte by byte.
func isCRLFByByte(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return false
		}
	}
	return true
}

func FuzzIsCRLF(f *testing.F) {
	for _, s := range []string{"", "\n", "\r\n", "a\r\nb\r\n", "abcdefg\r\nabcdefg\n", "abcdefgh\nabcdefgh", "1234567\r\n1234567\r\n\r\n",
		"\r\r\n\n", "abcdefghijklmno\r\npqrstuvwxyz0123\r\n456789\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := isCRLF(b), isCRLFByByte(b); got != want {
			t.Fatalf("isCRLF(%q) = %v, want %v", b, got, want)
		}
	})
}

// Every position of an LF without its CR, in messages of every length
// around the eight-byte words isCRLF reads.
func TestIsCRLFPositions(t *testing.T) {
	for n := 0; n < 40; n++ {
		line := []byte(strings.Repeat("x", n))
		for i := 0; i <= n; i++ {
			for _, ins := range []string{"\n", "\r\n", "\r"} {
				b := append(append(append([]byte{}, line[:i]...), ins...), line[i:]...)
				if got, want := isCRLF(b), isCRLFByByte(b); got != want {
					t.Fatalf("isCRLF(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}
