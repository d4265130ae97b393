package smime

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/authres"
)

func header(t *testing.T, msg []byte) *message {
	t.Helper()
	m, err := parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSignVerify(t *testing.T) {
	p := newPKI(t, "A")
	alice := p.issue(t, "alice@a.test", certOpts{})
	signed, err := Sign([]byte(testMessage), &alice)
	if err != nil {
		t.Fatal(err)
	}
	m := header(t, signed)
	for _, f := range []string{"From", "To", "Subject", "Date", "Message-Id", "Received"} {
		if !m.header.Has(f) {
			t.Errorf("outer header lost %s", f)
		}
	}
	if m.header.Has("Content-Transfer-Encoding") {
		t.Error("the entity's Content-Transfer-Encoding stayed outside")
	}
	ct := m.header.Get("Content-Type")
	for _, want := range []string{"multipart/signed", `protocol="application/pkcs7-signature"`, "micalg=sha-256"} {
		if !strings.Contains(ct, want) {
			t.Errorf("Content-Type %q lacks %s", ct, want)
		}
	}
	if !IsSigned(m.header) || IsEncrypted(m.header) {
		t.Error("IsSigned/IsEncrypted wrong on a signed message")
	}
	// The first part is the entity, CRLF, with its Content-* fields.
	if !bytes.Contains(signed, []byte("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBonjour,\r\n")) {
		t.Errorf("first part is not the original entity:\n%s", signed)
	}
	r := Verify(signed, VerifyOptions{Roots: p.roots()})
	if r.Status != StatusPass || r.Signer != "alice@a.test" {
		t.Fatalf("Verify = %+v", r)
	}
	// LF line endings (a store that dropped CR) still verify: the entity
	// is canonicalised before the digest.
	lf := bytes.ReplaceAll(signed, []byte("\r\n"), []byte("\n"))
	if r := Verify(lf, VerifyOptions{Roots: p.roots()}); r.Status != StatusPass {
		t.Fatalf("Verify(LF) = %+v", r)
	}
	// The field for the recipient; one without properties ends without
	// a space.
	if f := (Result{Status: StatusNone}).Field("mx.b.test"); f != "Authentication-Results: mx.b.test; smime=none\r\n" {
		t.Errorf("field of none: %q", f)
	}
	f := r.Field("mx.b.test")
	id, results, err := authres.Parse(strings.TrimSuffix(strings.TrimPrefix(f, "Authentication-Results: "), "\r\n"))
	if err != nil {
		t.Fatalf("%q: %v", f, err)
	}
	if id != "mx.b.test" || len(results) != 1 {
		t.Fatalf("parsed %q %v", id, results)
	}
	if g, ok := results[0].(*authres.GenericResult); !ok || g.Value != authres.ResultPass || g.Params["body.smime-identifier"] != "alice@a.test" {
		t.Fatalf("parsed %#v", results[0])
	}
	if !strings.Contains(f, "smime=pass") || !strings.Contains(f, "body.smime-identifier=") || !strings.Contains(f, "body.smime-serial=") {
		t.Errorf("field %q", f)
	}
}

func TestSignECDSA(t *testing.T) {
	p := newPKI(t, "A")
	alice := p.issue(t, "alice@a.test", certOpts{ecdsa: true, usage: x509.KeyUsageDigitalSignature})
	signed, err := Sign([]byte(testMessage), &alice)
	if err != nil {
		t.Fatal(err)
	}
	if r := Verify(signed, VerifyOptions{Roots: p.roots()}); r.Status != StatusPass {
		t.Fatalf("Verify = %+v", r)
	}
}

func TestEncryptDecrypt(t *testing.T) {
	p := newPKI(t, "B")
	bob := p.issue(t, "bob@b.test", certOpts{})
	other := p.issue(t, "carol@b.test", certOpts{})
	for _, oaep := range []bool{false, true} {
		enc, err := Encrypt([]byte(testMessage), []*x509.Certificate{other.Cert, bob.Cert}, EncryptOptions{OAEP: oaep})
		if err != nil {
			t.Fatal(err)
		}
		m := header(t, enc)
		if !IsEncrypted(m.header) || IsSigned(m.header) {
			t.Fatal("IsEncrypted false")
		}
		if !strings.Contains(m.header.Get("Content-Type"), "smime-type=enveloped-data") || m.header.Get("Subject") != "Compte rendu" {
			t.Errorf("outer header: %v", m.header.Map())
		}
		if bytes.Contains(enc, []byte("Bonjour")) {
			t.Fatal("clear text in the encrypted message")
		}
		dec, err := Decrypt(enc, []Identity{bob})
		if err != nil {
			t.Fatal(err)
		}
		d := header(t, dec)
		if d.header.Get("Content-Type") != "text/plain; charset=utf-8" || d.header.Get("Content-Transfer-Encoding") != "8bit" || d.header.Get("To") != "bob@b.test" {
			t.Errorf("decrypted header: %v", d.header.Map())
		}
		if string(d.body) != "Bonjour,\r\n\r\nVoici le compte rendu de la consultation.\r\n" {
			t.Errorf("body %q", d.body)
		}
	}
}

func TestSignEncryptDecryptVerify(t *testing.T) {
	pa, pb := newPKI(t, "A"), newPKI(t, "B")
	alice := pa.issue(t, "alice@a.test", certOpts{})
	bob := pb.issue(t, "bob@b.test", certOpts{})
	signed, err := Sign([]byte(testMessage), &alice)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := Encrypt(signed, []*x509.Certificate{bob.Cert}, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := Verify(enc, VerifyOptions{Roots: pa.roots()}); r.Status != StatusNone {
		t.Errorf("an enveloped message verified as %v", r.Status)
	}
	dec, err := Decrypt(enc, []Identity{bob})
	if err != nil {
		t.Fatal(err)
	}
	if !IsSignedMessage(dec) {
		t.Fatal("decrypted message is not multipart/signed")
	}
	if r := Verify(dec, VerifyOptions{Roots: pa.roots()}); r.Status != StatusPass {
		t.Fatalf("Verify = %+v", r)
	}
}

func TestNotSigned(t *testing.T) {
	if r := Verify([]byte(testMessage), VerifyOptions{}); r.Status != StatusNone {
		t.Fatalf("Verify = %+v", r)
	}
	if _, err := Decrypt([]byte(testMessage), nil); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("Decrypt = %v", err)
	}
	bad := "From: a@a.test\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=x\r\n\r\n--x\r\nhello\r\n--x\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIB\r\n--x--\r\n"
	if r := Verify([]byte(bad), VerifyOptions{}); r.Status != StatusPermError {
		t.Fatalf("Verify(garbage) = %+v", r)
	}
}

// Fail closed, one by one (issue 24 "Must show" 7).

func signedBy(t *testing.T, id Identity, msg string) []byte {
	t.Helper()
	out, err := Sign([]byte(msg), &id)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantFail(t *testing.T, r Result, reason string) {
	t.Helper()
	if r.Status != StatusFail {
		t.Fatalf("status %v, want fail (%s)", r.Status, r.Reason)
	}
	if !strings.Contains(r.Reason, reason) {
		t.Fatalf("reason %q, want it to mention %q", r.Reason, reason)
	}
	if f := r.Field("mx.test"); !strings.Contains(f, "smime=fail") {
		t.Fatalf("field %q", f)
	}
}

func TestFailUntrustedCA(t *testing.T) {
	p, other := newPKI(t, "A"), newPKI(t, "Elsewhere")
	signed := signedBy(t, p.issue(t, "alice@a.test", certOpts{}), testMessage)
	wantFail(t, Verify(signed, VerifyOptions{Roots: other.roots()}), "trust anchor")
	wantFail(t, Verify(signed, VerifyOptions{}), "trust anchor") // no anchors: nothing trusted
}

// Sign checks the chain it includes by name, link by link: a chain that
// does not lead from the certificate upwards is refused; a whole chain,
// root included, verifies.
func TestSignChain(t *testing.T) {
	p := newPKI(t, "A")
	id := p.issue(t, "alice@a.test", certOpts{})
	whole := id
	whole.Chain = []*x509.Certificate{p.inter, p.root}
	signed, err := Sign([]byte(testMessage), &whole)
	if err != nil {
		t.Fatal(err)
	}
	if r := Verify(signed, VerifyOptions{Roots: p.roots()}); r.Status != StatusPass {
		t.Fatalf("Verify = %+v", r)
	}
	for name, chain := range map[string][]*x509.Certificate{
		"another CA's intermediate": {newPKI(t, "B").inter},
		"root before intermediate":  {p.root, p.inter},
	} {
		bad := id
		bad.Chain = chain
		if _, err := Sign([]byte(testMessage), &bad); err == nil || !strings.Contains(err.Error(), "chain of the signature certificate is broken") {
			t.Errorf("%s: Sign = %v", name, err)
		}
	}
}

func TestFailBrokenChain(t *testing.T) {
	p := newPKI(t, "A")
	id := p.issue(t, "alice@a.test", certOpts{})
	id.Chain = nil // the intermediate left out of the signature
	signed := signedBy(t, id, testMessage)
	wantFail(t, Verify(signed, VerifyOptions{Roots: p.roots()}), "missing intermediate")
	// Given by configuration, it completes the chain.
	inter := x509.NewCertPool()
	inter.AddCert(p.inter)
	if r := Verify(signed, VerifyOptions{Roots: p.roots(), Intermediates: inter}); r.Status != StatusPass {
		t.Fatalf("with the intermediate: %+v", r)
	}
}

func TestFailExpired(t *testing.T) {
	p := newPKI(t, "A")
	id := p.issue(t, "alice@a.test", certOpts{notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	signed := signedBy(t, id, testMessage)
	wantFail(t, Verify(signed, VerifyOptions{Roots: p.roots()}), "signing time")
	// Signed while valid, verified after expiry: the signing time counts.
	id2 := p.issue(t, "alice@a.test", certOpts{notAfter: time.Now().Add(time.Hour)})
	signed2 := signedBy(t, id2, testMessage)
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	if r := Verify(signed2, VerifyOptions{Roots: p.roots(), Now: later}); r.Status != StatusPass {
		t.Fatalf("signed while valid: %+v", r)
	}
	// A signing time in the future is refused.
	earlier := func() time.Time { return time.Now().Add(-time.Hour) }
	wantFail(t, Verify(signed2, VerifyOptions{Roots: p.roots(), Now: earlier}), "future")
}

func TestFailRevoked(t *testing.T) {
	p := newPKI(t, "A")
	id := p.issue(t, "alice@a.test", certOpts{})
	signed := signedBy(t, id, testMessage)
	other := p.issue(t, "zoe@a.test", certOpts{})
	if r := Verify(signed, VerifyOptions{Roots: p.roots(), CRLs: []*x509.RevocationList{p.crl(t, other.Cert)}}); r.Status != StatusPass {
		t.Fatalf("not revoked: %+v", r)
	}
	wantFail(t, Verify(signed, VerifyOptions{Roots: p.roots(), CRLs: []*x509.RevocationList{p.crl(t, id.Cert)}}), "revoked")
	// A CRL signed by another CA does not count (it could revoke nothing
	// and say so).
	q := newPKI(t, "Q")
	if err := ValidateRecipient(id.Cert, "alice@a.test", CertOptions{Roots: p.roots(), Intermediates: p.inters(), CRLs: []*x509.RevocationList{q.crl(t, id.Cert)}}); err != nil {
		t.Fatalf("foreign CRL applied: %v", err)
	}
	if err := ValidateRecipient(id.Cert, "alice@a.test", CertOptions{Roots: p.roots(), Intermediates: p.inters(), CRLs: []*x509.RevocationList{p.crl(t, id.Cert)}}); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked recipient accepted: %v", err)
	}
	// Out of date CRL: temperror, not pass.
	stale := func() time.Time { return time.Now().Add(48 * time.Hour) }
	if r := Verify(signed, VerifyOptions{Roots: p.roots(), Now: stale, CRLs: []*x509.RevocationList{p.crl(t, other.Cert)}}); r.Status != StatusTempError {
		t.Fatalf("stale CRL: %+v", r)
	}
}

func TestFailOtherAddress(t *testing.T) {
	p := newPKI(t, "A")
	mallory := p.issue(t, "mallory@a.test", certOpts{})
	signed := signedBy(t, mallory, testMessage) // From: alice@a.test
	wantFail(t, Verify(signed, VerifyOptions{Roots: p.roots()}), "not for the From: address alice@a.test")
	// Case of the address does not matter.
	alice := p.issue(t, "Alice@A.test", certOpts{})
	if r := Verify(signedBy(t, alice, testMessage), VerifyOptions{Roots: p.roots()}); r.Status != StatusPass {
		t.Fatalf("case: %+v", r)
	}
}

func TestFailKeyUsage(t *testing.T) {
	p := newPKI(t, "A")
	enc := p.issue(t, "alice@a.test", certOpts{usage: x509.KeyUsageKeyEncipherment})
	wantFail(t, Verify(signedBy(t, enc, testMessage), VerifyOptions{Roots: p.roots()}), "key usage")
	tls := p.issue(t, "alice@a.test", certOpts{ext: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	wantFail(t, Verify(signedBy(t, tls, testMessage), VerifyOptions{Roots: p.roots()}), "email protection")
}

func TestFailSigningCertForEncryption(t *testing.T) {
	p := newPKI(t, "B")
	sig := p.issue(t, "bob@b.test", certOpts{usage: x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment})
	err := ValidateRecipient(sig.Cert, "bob@b.test", CertOptions{Roots: p.roots(), Intermediates: p.inters()})
	if err == nil || !strings.Contains(err.Error(), "signatures only") {
		t.Fatalf("ValidateRecipient = %v", err)
	}
	ok := p.issue(t, "bob@b.test", certOpts{usage: x509.KeyUsageKeyEncipherment})
	if err := ValidateRecipient(ok.Cert, "bob@b.test", CertOptions{Roots: p.roots(), Intermediates: p.inters()}); err != nil {
		t.Fatal(err)
	}
	if err := ValidateRecipient(ok.Cert, "carol@b.test", CertOptions{Roots: p.roots(), Intermediates: p.inters()}); err == nil {
		t.Fatal("a certificate for bob accepted for carol")
	}
	if err := ValidateRecipient(ok.Cert, "bob@b.test", CertOptions{Roots: newPKI(t, "X").roots(), Intermediates: p.inters()}); err == nil {
		t.Fatal("untrusted recipient certificate accepted")
	}
	expired := p.issue(t, "bob@b.test", certOpts{usage: x509.KeyUsageKeyEncipherment, notAfter: time.Now().Add(-time.Minute)})
	if err := ValidateRecipient(expired.Cert, "bob@b.test", CertOptions{Roots: p.roots(), Intermediates: p.inters()}); err == nil {
		t.Fatal("expired recipient certificate accepted")
	}
	ec := p.issue(t, "bob@b.test", certOpts{ecdsa: true, usage: x509.KeyUsageKeyAgreement})
	if err := ValidateRecipient(ec.Cert, "bob@b.test", CertOptions{Roots: p.roots(), Intermediates: p.inters()}); err == nil {
		t.Fatal("ECDSA recipient accepted")
	}
}

func TestFailTampered(t *testing.T) {
	p := newPKI(t, "A")
	signed := signedBy(t, p.issue(t, "alice@a.test", certOpts{}), testMessage)
	tampered := bytes.Replace(signed, []byte("compte rendu de la consultation"), []byte("compte rendu de la consultatioN"), 1)
	if bytes.Equal(tampered, signed) {
		t.Fatal("nothing replaced")
	}
	wantFail(t, Verify(tampered, VerifyOptions{Roots: p.roots()}), "altered")
	// A Content-* field of the entity is signed too.
	tampered = bytes.Replace(signed, []byte("charset=utf-8\r\nContent-Transfer-Encoding: 8bit"), []byte("charset=latin1\r\nContent-Transfer-Encoding: 8bit"), 1)
	wantFail(t, Verify(tampered, VerifyOptions{Roots: p.roots()}), "altered")
}

func TestFailEncryptedToSomeoneElse(t *testing.T) {
	p := newPKI(t, "B")
	bob, carol := p.issue(t, "bob@b.test", certOpts{}), p.issue(t, "carol@b.test", certOpts{})
	enc, err := Encrypt([]byte(testMessage), []*x509.Certificate{carol.Cert}, EncryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Decrypt(enc, []Identity{bob}); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("Decrypt = %v", err)
	}
	if _, err := Decrypt(enc, nil); !errors.Is(err, ErrNotForUs) {
		t.Fatalf("Decrypt(no keys) = %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	big := make([]byte, MaxMessageSize+1)
	if _, err := Decrypt(big, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decrypt = %v", err)
	}
	if r := Verify(big, VerifyOptions{}); r.Status != StatusPermError {
		t.Fatalf("Verify = %+v", r)
	}
}

// Encryptions with and without OAEP at once: the library's
// package-level key transport is switched under libMu only (run with
// -race), and every message still opens.
func TestEncryptConcurrent(t *testing.T) {
	p := newPKI(t, "B")
	bob := p.issue(t, "bob@b.test", certOpts{})
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			enc, err := Encrypt([]byte(testMessage), []*x509.Certificate{bob.Cert}, EncryptOptions{OAEP: i%2 == 0})
			if err == nil {
				_, err = Decrypt(enc, []Identity{bob})
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestDecodeBase64Lines(t *testing.T) {
	for _, in := range []string{"aGVs\r\nbG8=\r\n", "aGVs \r\n\tbG8= \n", "aGVsbG8="} {
		out, err := decodeBody("Base64", []byte(in))
		if err != nil || string(out) != "hello" {
			t.Errorf("%q: %q %v", in, out, err)
		}
	}
	if _, err := decodeBody("base64", []byte("aGV*bG8=")); err == nil {
		t.Error("bad base64 accepted")
	}
	if _, err := decodeBody("quoted-printable", []byte("x")); err == nil {
		t.Error("quoted-printable CMS accepted")
	}
}
