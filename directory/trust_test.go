package directory_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage/sqlite"
)

func parseList(t *testing.T, path string) *directory.WhiteList {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wl, err := directory.ParseWhiteList(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return wl
}

func domainsOf(t *testing.T, d *directory.Directory, store *sqlite.DB) []string {
	t.Helper()
	l, err := store.TrustedDomains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, td := range l {
		out = append(out, td.Domain)
	}
	return out
}

// An import replaces the whole trust space and says what changed; the
// domains hosted here are left out; a list that names nothing valid
// changes nothing.
func TestImportTrustList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// ch-b was added by hand; the list does not name it.
	wl := parseList(t, "testdata/whitelist/listeblanche.xml")
	wl.Domains = append(wl.Domains, directory.TrustedDomain{Domain: "ch-x.mssante.fr"}) // ours
	rep, err := f.d.ImportTrustList(ctx, wl, "testdata/whitelist/listeblanche.xml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ch-exemple.mssante.fr", "clinique-des-lilas.mssante.fr", "medecins.operateur-b.fr", "sans-dn.mssante.fr", "xn--hpital-bcher-eib3j.mssante.fr"}; !slices.Equal(rep.Added, want) {
		t.Errorf("added %q, want %q", rep.Added, want)
	}
	if !slices.Equal(rep.Removed, []string{"ch-b.mssante.fr"}) || rep.Total != 5 {
		t.Errorf("removed %q, total %d", rep.Removed, rep.Total)
	}
	if !slices.ContainsFunc(rep.Skipped, func(s string) bool { return strings.Contains(s, "ch-x.mssante.fr: hosted by this server") }) {
		t.Errorf("skipped %q", rep.Skipped)
	}
	if ok, _ := f.d.InTrustSpace(ctx, "ch-b.mssante.fr"); ok {
		t.Error("ch-b still in the trust space after the import (the cache was not dropped)")
	}
	if ok, _ := f.d.InTrustSpace(ctx, "medecins.operateur-b.fr"); !ok {
		t.Error("an imported domain is not in the trust space")
	}
	info, err := f.d.TrustListInfo(ctx)
	if err != nil || info.Source != "testdata/whitelist/listeblanche.xml" || !info.ImportedAt.Equal(f.now()) || info.Generated.IsZero() {
		t.Errorf("info %+v, %v", info, err)
	}

	// A second list: one kept with a new description, one new, the rest gone.
	rep, err = f.d.ImportTrustList(ctx, parseList(t, "testdata/whitelist/prefixed.xml"), "prefixed.xml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Added, []string{"nouveau.mssante.fr"}) || len(rep.Removed) != 4 || len(rep.Changed) != 0 {
		t.Errorf("second import: %+v", rep)
	}
	if got := domainsOf(t, f.d, f.store); !slices.Equal(got, []string{"ch-exemple.mssante.fr", "nouveau.mssante.fr"}) {
		t.Errorf("trust space %q", got)
	}
	// Only our own domains: refused, nothing changes.
	_, err = f.d.ImportTrustList(ctx, &directory.WhiteList{Domains: []directory.TrustedDomain{{Domain: "ch-x.mssante.fr"}}}, "x")
	refused(t, err, refusal.InvalidInput, "only domains hosted by this server")
	if got := domainsOf(t, f.d, f.store); len(got) != 2 {
		t.Errorf("after a refused import: %q", got)
	}
	// remove-domain.
	if err := f.d.RemoveTrustedDomain(ctx, "Nouveau.mssante.fr"); err != nil {
		t.Fatal(err)
	}
	refused(t, f.d.RemoveTrustedDomain(ctx, "nouveau.mssante.fr"), refusal.InvalidInput, "is not in the trust space")
	if ok, _ := f.d.InTrustSpace(ctx, "nouveau.mssante.fr"); ok {
		t.Error("removed domain still in the trust space")
	}
}

// The replacement is one transaction: while imports run, a reader sees
// the first list or the second, whole, never a mix.
func TestImportTrustListAtomic(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	mk := func(prefix string) *directory.WhiteList {
		wl := &directory.WhiteList{}
		for i := 0; i < 200; i++ {
			wl.Domains = append(wl.Domains, directory.TrustedDomain{Domain: prefix + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + itoa(i) + ".fr"})
		}
		return wl
	}
	a, b := mk("a"), mk("b")
	done := make(chan error)
	go func() {
		for i := 0; i < 10; i++ {
			wl := a
			if i%2 == 1 {
				wl = b
			}
			if _, err := f.d.ImportTrustList(ctx, wl, "x"); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		l, err := f.store.TrustedDomains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		first := l[0].Domain[0]
		for _, td := range l {
			if td.Domain[0] != first && td.Domain != "ch-b.mssante.fr" {
				t.Fatalf("a reader saw a mix of two lists: %s and %s", l[0].Domain, td.Domain)
			}
		}
		if first != 'c' && len(l) != 200 {
			t.Fatalf("a reader saw %d domains of a list of 200", len(l))
		}
	}
}

func itoa(i int) string {
	return strings.TrimLeft(string([]byte{byte('0' + i/100), byte('0' + i/10%10), byte('0' + i%10)}), "0")
}

// operatorPKI is another operator's development PKI: its CA and the
// client certificate of its server, named host.
func operatorPKI(t *testing.T, host string) (*crypto.PKI, []*x509.Certificate) {
	t.Helper()
	p, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.ServerCertificate(host)
	if err != nil {
		t.Fatal(err)
	}
	return p, chainOf(t, c)
}

func chainOf(t *testing.T, c tls.Certificate) []*x509.Certificate {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{leaf}
}

// A client certificate must chain to a trust anchor stored with
// AddTrustAnchor; the white list's DN ties the operator to its domains.
func TestVerifyOperator(t *testing.T) {
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := directory.New(db, directory.Config{Domains: []string{"ch-x.mssante.fr"}})
	ctx := context.Background()
	pkiA, chainA := operatorPKI(t, "mx.op-a.test")
	pkiB, chainB := operatorPKI(t, "mx.op-b.test")
	_, chainOut := operatorPKI(t, "mx.outsider.test")

	// No anchor at all: the decision cannot be made.
	_, err = d.VerifyOperator(ctx, chainA)
	refused(t, err, refusal.TrustUnavailable, "no certification authority")
	_, err = d.VerifyOperator(ctx, nil)
	refused(t, err, refusal.OperatorCertRequired, "operator certificate")

	// A server certificate is not a CA.
	srvPEM, _ := pkiA.Export("server")
	_, err = d.AddTrustAnchor(ctx, srvPEM)
	refused(t, err, refusal.InvalidInput, "not a certification authority")
	_, err = d.AddTrustAnchor(ctx, []byte("not PEM"))
	refused(t, err, refusal.InvalidInput, "no PEM certificate")
	added, err := d.AddTrustAnchor(ctx, pkiA.CAPEM())
	if err != nil || len(added) != 1 || added[0].Subject != "CN=Carepost development CA,O=Carepost (development PKI\\, not for production)" {
		t.Fatalf("AddTrustAnchor: %+v, %v", added, err)
	}
	pool, err := d.TrustAnchors(ctx)
	if err != nil || !pool.Equal(pkiA.CertPool()) {
		t.Fatalf("TrustAnchors: %v", err)
	}

	_, err = d.VerifyOperator(ctx, chainOut)
	refused(t, err, refusal.OperatorNotTrusted, "is not issued by a certification authority of the trust space")

	// B has its own CA, not added.
	_, err = d.VerifyOperator(ctx, chainB)
	refused(t, err, refusal.OperatorNotTrusted, "CN=mx.op-b.test")

	dnA := "CN=mx.op-a.test,O=Carepost (development PKI)"
	if err := d.AddOperatorDomain(ctx, "a1.mssante.fr", "A", "/O=Carepost (development PKI)/CN=mx.op-a.test"); err != nil {
		t.Fatal(err)
	}
	if err := d.AddOperatorDomain(ctx, "b1.mssante.fr", "B", "CN=mx.op-b.test,O=Carepost (development PKI)"); err != nil {
		t.Fatal(err)
	}
	if err := d.AddTrustedDomain(ctx, "nodn.mssante.fr", "no DN"); err != nil {
		t.Fatal(err)
	}
	if err := d.AddOperatorDomain(ctx, "bad.mssante.fr", "", `CN="open`); !refusal.Is(err, refusal.InvalidInput) {
		t.Fatalf("a DN that cannot be read: %v", err)
	}
	op, err := d.VerifyOperator(ctx, chainA)
	if err != nil {
		t.Fatal(err)
	}
	if op.Subject != dnA || !slices.Equal(op.Domains, []string{"a1.mssante.fr"}) || !strings.Contains(op.Anchor, "Carepost development CA") {
		t.Fatalf("operator %+v", op)
	}
	if err := d.CheckPeerDomain(ctx, op, "A1.mssante.fr", "sender"); err != nil {
		t.Errorf("A's own domain: %v", err)
	}
	refused(t, d.CheckPeerDomain(ctx, op, "b1.mssante.fr", "sender"), refusal.OperatorNotTrusted, "belongs to another operator")
	refused(t, d.CheckPeerDomain(ctx, op, "nodn.mssante.fr", "From"), refusal.OperatorNotTrusted, "names your certificate (CN=mx.op-a.test,O=Carepost (development PKI)) for a1.mssante.fr only")
	refused(t, d.CheckPeerDomain(ctx, op, "gmail.com", "sender"), refusal.OutsideTrustSpace, "gmail.com")
	refused(t, d.CheckPeerDomain(ctx, nil, "a1.mssante.fr", "sender"), refusal.OperatorCertRequired, "STARTTLS")

	// An operator the list names nowhere may use the domains without DN,
	// and not those of a DN.
	opOther := *op
	opOther.Domains = nil
	opOther.Subject = "CN=mx.op-c.test"
	if err := d.CheckPeerDomain(ctx, &opOther, "nodn.mssante.fr", "sender"); err != nil {
		t.Errorf("unnamed operator, domain without DN: %v", err)
	}
	refused(t, d.CheckPeerDomain(ctx, &opOther, "b1.mssante.fr", "sender"), refusal.OperatorNotTrusted, "is not the one the white list of the trust space names for b1.mssante.fr")

	// An empty trust space cannot decide: 4xx, never an accept.
	for _, dom := range []string{"a1.mssante.fr", "b1.mssante.fr", "nodn.mssante.fr"} {
		if err := d.RemoveTrustedDomain(ctx, dom); err != nil {
			t.Fatal(err)
		}
	}
	refused(t, d.CheckPeerDomain(ctx, op, "a1.mssante.fr", "sender"), refusal.TrustUnavailable, "not loaded")

	// The configured anchors (the development CA) count too.
	block, _ := pem.Decode(pkiB.CAPEM())
	caB, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	d2 := directory.New(db, directory.Config{Domains: []string{"ch-x.mssante.fr"}, Anchors: []*x509.Certificate{caB}})
	if _, err := d2.VerifyOperator(ctx, chainB); err != nil {
		t.Errorf("certificate of a configured anchor: %v", err)
	}
	if _, err := d2.VerifyOperator(ctx, chainA); err != nil {
		t.Errorf("certificate of a stored anchor: %v", err)
	}
}
