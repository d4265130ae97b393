package keyring

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/crypto/smime"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage/sqlite"
)

type fixture struct {
	k   *Keyring
	dir *directory.Directory
	db  *sqlite.DB
	pki *crypto.PKI
}

const (
	box    = "cardio@ch-a.test"
	hidden = "secret@ch-a.test"
	remote = "dr.b@ch-b.test"
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pki, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := directory.New(db, directory.Config{Domains: []string{"ch-a.test"}, Anchors: []*x509.Certificate{pki.CACert()}})
	ctx := context.Background()
	if _, err := dir.AddMailbox(ctx, directory.KindOrganisational, box, nil, "test"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddEntry(ctx, directory.Entry{Address: hidden, Kind: directory.KindOrganisational,
		Status: directory.StatusActive, ListeRouge: true}); err != nil {
		t.Fatal(err)
	}
	k := New(Options{Store: db, Dir: dir})
	return &fixture{k: k, dir: dir, db: db, pki: pki}
}

// selfSigned makes a certificate for address signed by a throwaway CA,
// with its key.
func selfSigned(t *testing.T, address string, ku x509.KeyUsage, notAfter time.Time) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: address},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, KeyUsage: ku,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, EmailAddresses: []string{address}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func pemOf(c *x509.Certificate, key any) []byte {
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	if key != nil {
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	}
	return b
}

func TestIssueSignerDecrypters(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.k.Signer(ctx, box); !errors.Is(err, smime.ErrNoCertificate) {
		t.Fatalf("Signer before issue: %v", err)
	}
	if _, _, err := f.k.Decrypters(ctx, box); !errors.Is(err, smime.ErrNoCertificate) {
		t.Fatalf("Decrypters before issue: %v", err)
	}
	if _, err := f.k.Issue(ctx, f.pki, "nobody@ch-a.test", false, false); err == nil || !strings.Contains(err.Error(), "not a mailbox of the directory") {
		t.Fatalf("issue for an address not in the directory: %v", err)
	}
	if _, err := f.k.Issue(ctx, f.pki, remote, false, false); err == nil || !strings.Contains(err.Error(), "not an address of a domain hosted here") {
		t.Fatalf("issue for another operator's address: %v", err)
	}
	first, err := f.k.Issue(ctx, f.pki, "Cardio@CH-A.test", true, false)
	if err != nil {
		t.Fatal(err)
	}
	id, err := f.k.Signer(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := id.Key.(*ecdsa.PrivateKey); !ok || id.Cert.KeyUsage&x509.KeyUsageContentCommitment == 0 {
		t.Fatalf("signer with --ecdsa: key %T, usage %b", id.Key, id.Cert.KeyUsage)
	}
	if len(id.Chain) != 1 || !id.Chain[0].Equal(f.pki.CACert()) {
		t.Fatalf("signer chain = %v", id.Chain)
	}
	ids, e2e, err := f.k.Decrypters(ctx, box)
	if err != nil || e2e || len(ids) != 1 {
		t.Fatalf("Decrypters = %d, %v, %v", len(ids), e2e, err)
	}
	if _, ok := ids[0].Key.(*rsa.PrivateKey); !ok || ids[0].Cert.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Fatalf("decrypter key %T usage %b", ids[0].Key, ids[0].Cert.KeyUsage)
	}
	rc, err := f.k.RecipientCert(ctx, box)
	if err != nil || !rc.Equal(ids[0].Cert) {
		t.Fatalf("RecipientCert(local) = %v, %v", rc, err)
	}

	// A second issue needs --force; then the old encryption key stays,
	// after the new one.
	if _, err := f.k.Issue(ctx, f.pki, box, false, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second issue without force: %v", err)
	}
	time.Sleep(time.Millisecond) // Created orders the rows
	if _, err := f.k.Issue(ctx, f.pki, box, false, true); err != nil {
		t.Fatal(err)
	}
	ids, _, err = f.k.Decrypters(ctx, box)
	if err != nil || len(ids) != 2 || fingerprint(ids[1].Cert) != first[1].Fingerprint {
		t.Fatalf("after a forced issue: %d identities, %v", len(ids), err)
	}
	if id2, _ := f.k.Signer(ctx, box); id2 == nil || id2.Cert.Equal(id.Cert) {
		t.Fatal("the signer is still the old certificate")
	}
	pemOut, err := f.k.Export(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(pemOut, []byte("BEGIN CERTIFICATE")); n != 2 || bytes.Contains(pemOut, []byte("PRIVATE")) {
		t.Fatalf("export: %d certificates:\n%s", n, pemOut)
	}
	for _, u := range []string{"sign", "encrypt"} {
		one, err := f.k.ExportUsage(ctx, box, u)
		if err != nil {
			t.Fatal(err)
		}
		certs, err := ParseCertificatesPEM(one)
		want := x509.KeyUsageDigitalSignature
		if u == "encrypt" {
			want = x509.KeyUsageKeyEncipherment
		}
		if err != nil || len(certs) != 1 || certs[0].KeyUsage&want == 0 {
			t.Fatalf("export of the %s certificate: %d certificates, %v", u, len(certs), err)
		}
	}
	if _, err := f.k.ExportUsage(ctx, box, "both"); err == nil || !strings.Contains(err.Error(), "is not a usage") {
		t.Fatalf("export of an unknown usage: %v", err)
	}
}

func TestImport(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	year := time.Now().AddDate(1, 0, 0)
	enc, encKey := selfSigned(t, box, x509.KeyUsageKeyEncipherment, year)
	other, _ := selfSigned(t, "someone@ch-a.test", x509.KeyUsageKeyEncipherment, year)
	_, strayKey := selfSigned(t, box, x509.KeyUsageKeyEncipherment, year)

	for _, tc := range []struct {
		name, address string
		data          []byte
		o             ImportOptions
		want          string
	}{
		{"not in the directory", "nobody@ch-a.test", pemOf(enc, encKey), ImportOptions{}, "not a mailbox of the directory"},
		{"another address", box, pemOf(other, nil), ImportOptions{}, "names someone@ch-a.test, not cardio@ch-a.test"},
		{"key not matching", box, pemOf(enc, strayKey), ImportOptions{}, "does not match"},
		{"encryption certificate to sign", box, pemOf(enc, encKey), ImportOptions{Usage: "sign"}, "cannot be used to sign"},
		{"remote with its key", remote, pemOf(func() *x509.Certificate { c, _ := selfSigned(t, remote, 0, year); return c }(), encKey), ImportOptions{Remote: true}, "without its key"},
		{"local as remote", box, pemOf(enc, nil), ImportOptions{Remote: true}, "without --remote"},
		{"remote without --remote", remote, pemOf(enc, nil), ImportOptions{}, "give --remote"},
		{"not a certificate", box, []byte("-----BEGIN NOTHING-----\nAA==\n-----END NOTHING-----\n"), ImportOptions{}, "no certificate"},
		{"garbage", box, []byte{0x30, 0x03, 1, 2, 3}, ImportOptions{}, "neither PEM nor a PKCS#12"},
	} {
		if _, err := f.k.Import(ctx, tc.address, tc.data, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	expired, expiredKey := selfSigned(t, box, 0, time.Now().Add(-time.Minute))
	if _, err := f.k.Import(ctx, box, pemOf(expired, expiredKey), ImportOptions{}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired certificate: %v", err)
	}

	// PKCS#12: a wrong password is refused, the right one imports.
	p12, err := pkcs12.Modern.Encode(encKey, enc, nil, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.k.Import(ctx, box, p12, ImportOptions{Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "password does not open") {
		t.Fatalf("wrong PKCS#12 password: %v", err)
	}
	got, err := f.k.Import(ctx, box, p12, ImportOptions{Password: "s3cret"})
	if err != nil || len(got) != 1 || got[0].Usage != directory.UsageEncrypt || !got[0].HasKey {
		t.Fatalf("PKCS#12 import = %+v, %v", got, err)
	}
	ids, e2e, err := f.k.Decrypters(ctx, box)
	if err != nil || e2e || len(ids) != 1 || !ids[0].Cert.Equal(enc) {
		t.Fatalf("Decrypters after PKCS#12 import: %d %v %v", len(ids), e2e, err)
	}

	// A newer certificate without its key: end-to-end mode; the old key
	// still decrypts.
	time.Sleep(time.Millisecond)
	e2eCert, _ := selfSigned(t, box, x509.KeyUsageKeyEncipherment, year)
	if _, err := f.k.Import(ctx, box, pemOf(e2eCert, nil), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	ids, e2e, err = f.k.Decrypters(ctx, box)
	if err != nil || !e2e || len(ids) != 1 {
		t.Fatalf("Decrypters in end-to-end mode: %d %v %v", len(ids), e2e, err)
	}
	if rc, err := f.k.RecipientCert(ctx, box); err != nil || !rc.Equal(e2eCert) {
		t.Fatalf("RecipientCert in end-to-end mode: %v", err)
	}

	// A remote certificate imported by hand is used without any endpoint.
	if _, err := f.k.RecipientCert(ctx, remote); !errors.Is(err, smime.ErrNoCertificate) {
		t.Fatalf("RecipientCert(remote) before import: %v", err)
	}
	rcert, _ := selfSigned(t, remote, x509.KeyUsageKeyEncipherment|x509.KeyUsageDigitalSignature, year)
	got, err = f.k.Import(ctx, remote, pemOf(rcert, nil), ImportOptions{Remote: true})
	if err != nil || len(got) != 2 {
		t.Fatalf("remote import = %+v, %v", got, err)
	}
	if rc, err := f.k.RecipientCert(ctx, "DR.B@ch-b.test"); err != nil || !rc.Equal(rcert) {
		t.Fatalf("RecipientCert(remote) = %v", err)
	}
	if _, err := f.k.Signer(ctx, remote); !errors.Is(err, smime.ErrNoCertificate) {
		t.Fatalf("Signer(remote) = %v", err)
	}
}

// TestPublication: the handler shows an active mailbox's certificates,
// and the same 404 for every address it does not publish.
func TestPublication(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, a := range []string{box, hidden} {
		if _, err := f.k.Issue(ctx, f.pki, a, false, false); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := f.pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f.k.Handler())
	srv.TLS = crypto.ServerTLSConfig(cert)
	srv.TLS.ClientAuth = tls.RequestClientCert
	srv.StartTLS()
	defer srv.Close()
	// anonymous: no client certificate; operator: the operator
	// certificate of the trust space (the development CA's).
	anonymous := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.pki.CertPool()}}}
	operator := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.pki.CertPool(), Certificates: []tls.Certificate{cert}}}}
	getAs := func(c *http.Client, path string) (int, string) {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	get := func(path string) (int, string) { return getAs(anonymous, path) }
	code, body := get(PublicationPath + box)
	certs, err := ParseCertificatesPEM([]byte(body))
	if code != 200 || err != nil || len(certs) != 2 || strings.Contains(body, "PRIVATE") {
		t.Fatalf("GET %s = %d, %d certificates, %v:\n%s", box, code, len(certs), err, body)
	}
	// The liste rouge: shown to an operator of the trust space only.
	if code, body := get(PublicationPath + hidden); code != 404 || strings.Contains(body, "CERTIFICATE") {
		t.Errorf("GET of a liste rouge mailbox without operator certificate = %d %q", code, body)
	}
	if code, body := getAs(operator, PublicationPath+hidden); code != 200 || !strings.Contains(body, "BEGIN CERTIFICATE") {
		t.Errorf("GET of a liste rouge mailbox by an operator = %d %q", code, body)
	}
	if resp, err := anonymous.Post(srv.URL+PublicationPath+box, "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, a := range []string{"nobody@ch-a.test", remote, "not-an-address"} {
		if code, body := get(PublicationPath + a); code != 404 || body != "No S/MIME certificate is published for "+a+".\n" {
			t.Errorf("GET %s = %d %q", a, code, body)
		}
	}
	if err := f.dir.SetStatus(ctx, box, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(PublicationPath + box); code != 404 {
		t.Errorf("GET of a suspended mailbox = %d", code)
	}
}

func FuzzParseCertificatesPEM(f *testing.F) {
	c, _ := selfSigned(&testing.T{}, box, x509.KeyUsageKeyEncipherment, time.Now().AddDate(1, 0, 0))
	f.Add(pemOf(c, nil))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertificatesPEM(b)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}

func FuzzParseBundle(f *testing.F) {
	c, key := selfSigned(&testing.T{}, box, x509.KeyUsageKeyEncipherment, time.Now().AddDate(1, 0, 0))
	f.Add(pemOf(c, key), "")
	p12, _ := pkcs12.Modern.Encode(key, c, nil, "pw")
	f.Add(p12, "pw")
	f.Add([]byte{0x30, 0x80}, "")
	f.Fuzz(func(t *testing.T, b []byte, pw string) {
		leaf, _, _, err := parseBundle(b, pw)
		if err == nil && leaf == nil {
			t.Fatal("no error and no certificate")
		}
	})
}
