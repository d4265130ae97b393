package directory

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/carepost/carepost/refusal"
)

func TestParseWhiteListXML(t *testing.T) {
	f, err := os.Open("testdata/whitelist/listeblanche.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wl, err := ParseWhiteList(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 14, 3, 0, 0, 0, time.UTC); !wl.Generated.Equal(want) {
		t.Errorf("Generated = %v, want %v", wl.Generated, want)
	}
	var names []string
	for _, d := range wl.Domains {
		names = append(names, d.Domain)
	}
	want := []string{"ch-exemple.mssante.fr", "clinique-des-lilas.mssante.fr", "xn--hpital-bcher-eib3j.mssante.fr",
		"medecins.operateur-b.fr", "sans-dn.mssante.fr"}
	if !slices.Equal(names, want) {
		t.Fatalf("domains %q, want %q", names, want)
	}
	d := wl.Domains[0]
	if d.Description != "Centre hospitalier Exemple" || d.OperatorCertDN != "CN=mx.operateur-a.fr,OU=0002 123456789,O=Operateur A,C=FR" ||
		!d.UpdatedAt.Equal(time.Date(2025, 11, 2, 10, 15, 0, 0, time.UTC)) {
		t.Errorf("first entry %+v", d)
	}
	if got := wl.Domains[1].Description; got != "Clinique des Lilas (site principal)" {
		t.Errorf("description on two lines read as %q", got)
	}
	if got := wl.Domains[3].Description; got != "Cabinets libéraux & maisons de santé" {
		t.Errorf("description with an entity read as %q", got)
	}
	if wl.Domains[4].OperatorCertDN != "" {
		t.Errorf("an entry without DN got %q", wl.Domains[4].OperatorCertDN)
	}
	// The two spellings of operator A's DN, and of B's, are one DN each.
	if !SameDN(wl.Domains[0].OperatorCertDN, wl.Domains[1].OperatorCertDN) || !SameDN(wl.Domains[2].OperatorCertDN, wl.Domains[3].OperatorCertDN) ||
		SameDN(wl.Domains[0].OperatorCertDN, wl.Domains[2].OperatorCertDN) {
		t.Error("DN comparison")
	}
	if len(wl.Skipped) != 2 || !strings.Contains(wl.Skipped[0], `"not a domain"`) || !strings.Contains(wl.Skipped[1], "ch-exemple.mssante.fr: listed more than once") {
		t.Errorf("skipped %q", wl.Skipped)
	}
}

func TestParseWhiteListPrefixedAndPlain(t *testing.T) {
	b, _ := os.ReadFile("testdata/whitelist/prefixed.xml")
	wl, err := ParseWhiteList(bytes.NewReader(b))
	if err != nil || len(wl.Domains) != 2 || wl.Domains[1].Domain != "nouveau.mssante.fr" || wl.Domains[0].OperatorCertDN == "" ||
		!wl.Generated.Equal(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("prefixed: %+v, %v", wl, err)
	}
	b, _ = os.ReadFile("testdata/whitelist/plain.txt")
	wl, err = ParseWhiteList(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range wl.Domains {
		names = append(names, d.Domain)
	}
	if want := []string{"ch-exemple.mssante.fr", "clinique-des-lilas.mssante.fr", "medecins.operateur-b.fr"}; !slices.Equal(names, want) {
		t.Errorf("plain: %q, want %q", names, want)
	}
	if len(wl.Skipped) != 1 || !strings.Contains(wl.Skipped[0], "line 7") {
		t.Errorf("plain skipped %q", wl.Skipped)
	}
}

func TestParseWhiteListRefusals(t *testing.T) {
	for name, in := range map[string]string{
		"empty":            "",
		"comments only":    "# nothing\n\n",
		"no valid domain":  "not a domain\n-bad-.fr\n",
		"XML not closed":   "<ListeBlanche><Domaine><Nom>a.fr</Nom>",
		"XML without list": "<html><body>Maintenance</body></html>",
		"external entity":  `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ListeBlanche><Domaine><Nom>&e;</Nom></Domaine></ListeBlanche>`,
		"too long a line":  strings.Repeat("a", 70<<10) + ".fr\n",
	} {
		wl, err := ParseWhiteList(strings.NewReader(in))
		if err == nil {
			t.Errorf("%s: accepted %+v", name, wl)
			continue
		}
		if !refusal.Is(err, refusal.InvalidInput) {
			t.Errorf("%s: %v is not an InvalidInput refusal", name, err)
		}
	}
}

func TestPunycode(t *testing.T) {
	// RFC 3492 §7.1 and well-known names.
	for in, want := range map[string]string{
		"bücher.de":              "xn--bcher-kva.de",
		"MÜNCHEN.de":             "xn--mnchen-3ya.de",
		"ascii.fr":               "ascii.fr",
		"hôpital-bücher.fr":      "xn--hpital-bcher-eib3j.fr",
		"ليهمابتكلموشعربي؟":      "xn--egbpdaj6bu4bxfgehfvwxn",
		"他们为什么不说中文":              "xn--ihqwcrb4cv8a8dqg056pqjye",
		"pročprostěnemluvíčesky": "xn--proprostnemluvesky-uyb24dma41a",
	} {
		got, err := asciiDomain(in)
		if err != nil || got != want {
			t.Errorf("asciiDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestDN(t *testing.T) {
	same := [][2]string{
		{"CN=mx.op.fr,O=Op,C=FR", "C=FR, O=Op, CN=mx.op.fr"},
		{"CN=mx.op.fr,O=Op,C=FR", "/C=FR/O=Op/CN=mx.op.fr"},
		{"cn=MX.op.fr;o=Op;c=fr", "CN=mx.op.fr,O=Op,C=FR"},
		{`CN=mx.op.fr,O=Op\, SA,C=FR`, `CN=mx.op.fr,O="Op, SA",C=FR`},
		{`O=Op\2C SA,CN=a`, `CN=a,O=Op\, SA`},
		{"CN=a,emailAddress=x@y.fr", "E=x@y.fr,CN=a"},
		{"OID.2.5.4.3=a,2.5.4.97=NTRFR-123", "CN=a,organizationIdentifier=NTRFR-123"},
		{"CN=a,  O=Op   B", "CN=a,O=Op B"},
	}
	for _, p := range same {
		if !SameDN(p[0], p[1]) {
			t.Errorf("SameDN(%q, %q) = false", p[0], p[1])
		}
	}
	differ := [][2]string{
		{"CN=mx.op.fr,O=Op,C=FR", "CN=mx.op.fr,O=Op"},
		{"CN=mx.op.fr,O=Op,C=FR", "CN=mx.other.fr,O=Op,C=FR"},
		{"CN=a,CN=a", "CN=a"},
		{"CN=a", ""},
		{"garbage", "garbage"},
	}
	for _, p := range differ {
		if SameDN(p[0], p[1]) {
			t.Errorf("SameDN(%q, %q) = true", p[0], p[1])
		}
	}
}

// FuzzParseWhiteList: whatever the input, the parser returns a refusal or
// a list of valid, distinct, lower-case ASCII domains with readable DNs
// and one-line descriptions.
func FuzzParseWhiteList(f *testing.F) {
	for _, p := range []string{"testdata/whitelist/listeblanche.xml", "testdata/whitelist/prefixed.xml", "testdata/whitelist/plain.txt"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("<Domaine><Nom>a.fr</Nom><DNCertificatOperateur>CN=\"x</DNCertificatOperateur></Domaine>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		wl, err := ParseWhiteList(bytes.NewReader(b))
		if err != nil {
			if !refusal.Is(err, refusal.InvalidInput) {
				t.Fatalf("error %v is not an InvalidInput refusal", err)
			}
			return
		}
		if len(wl.Domains) == 0 {
			t.Fatal("a list without domains accepted")
		}
		seen := map[string]bool{}
		for _, d := range wl.Domains {
			if got, err := ParseDomain(d.Domain); err != nil || got != d.Domain || seen[d.Domain] {
				t.Fatalf("domain %q accepted (%v, seen %v)", d.Domain, err, seen[d.Domain])
			}
			seen[d.Domain] = true
			if d.OperatorCertDN != "" {
				if _, err := parseDN(d.OperatorCertDN); err != nil {
					t.Fatalf("DN %q accepted: %v", d.OperatorCertDN, err)
				}
			}
			if !utf8.ValidString(d.Description) || strings.ContainsAny(d.Description, "\r\n\t\x00") || utf8.RuneCountInString(d.Description) > maxTextLen {
				t.Fatalf("description %q", d.Description)
			}
		}
	})
}
