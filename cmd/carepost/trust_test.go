package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/crypto"
)

// carepost trust: import of the national XML and of a plain list (each
// replacing the whole trust space and saying what changed), import over
// https, remove-domain, add-ca, list.
func TestTrustCommands(t *testing.T) {
	data := newData(t)
	ok := func(args ...string) string {
		t.Helper()
		out, errs, code := carepost(t, data, "", args...)
		if code != 0 {
			t.Fatalf("carepost %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	fails := func(want string, args ...string) {
		t.Helper()
		out, errs, code := carepost(t, data, "", args...)
		if code == 0 || !strings.Contains(errs, want) {
			t.Errorf("carepost %s: exit %d, stderr %q (want %q), stdout %q", strings.Join(args, " "), code, errs, want, out)
		}
	}
	ok("trust", "add-domain", "ch-manuel.mssante.fr", "--operator-dn", "CN=mx.manuel.fr,O=Manuel", "--description", "added by hand")
	fails("cannot be read", "trust", "add-domain", "x.mssante.fr", "--operator-dn", `CN="open`)

	xml := filepath.Join("..", "..", "directory", "testdata", "whitelist", "listeblanche.xml")
	out := ok("trust", "import", xml)
	for _, want := range []string{"added    ch-exemple.mssante.fr\n", "added    xn--hpital-bcher-eib3j.mssante.fr\n",
		"removed  ch-manuel.mssante.fr\n", `skipped  "not a domain": not a valid domain name`,
		"the trust space has 5 domain(s): 5 added, 0 changed, 1 removed, 2 entries skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("trust import XML lacks %q:\n%s", want, out)
		}
	}
	out = ok("trust", "list")
	for _, want := range []string{"ch-exemple.mssante.fr", "CN=mx.operateur-a.fr,OU=0002 123456789,O=Operateur A,C=FR",
		"carepost.test", "(hosted here)", "list imported ", "from " + xml, "the development CA"} {
		if !strings.Contains(out, want) {
			t.Errorf("trust list lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ch-manuel") {
		t.Errorf("trust list shows a removed domain:\n%s", out)
	}

	plain := filepath.Join("..", "..", "directory", "testdata", "whitelist", "plain.txt")
	out = ok("trust", "import", plain)
	for _, want := range []string{"changed  ch-exemple.mssante.fr\n", "removed  sans-dn.mssante.fr\n", "removed  xn--hpital-bcher-eib3j.mssante.fr\n",
		"skipped  line 7: one domain a line is expected", "the trust space has 3 domain(s): 0 added, 3 changed, 2 removed, 1 entries skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("trust import plain lacks %q:\n%s", want, out)
		}
	}
	// A file that names nothing changes nothing.
	empty := filepath.Join(t.TempDir(), "empty.txt")
	os.WriteFile(empty, []byte("# nothing\n"), 0o600)
	fails("names no valid domain: the trust space was left as it was", "trust", "import", empty)
	if out := ok("trust", "list"); !strings.Contains(out, "medecins.operateur-b.fr") {
		t.Errorf("a refused import changed the trust space:\n%s", out)
	}

	// Over https, verified with --ca; http is refused.
	body, _ := os.ReadFile(filepath.Join("..", "..", "directory", "testdata", "whitelist", "prefixed.xml"))
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/listeblanche.xml" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer ts.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600)
	fails("certificate", "trust", "import", ts.URL+"/listeblanche.xml") // not trusted without --ca
	fails("404 Not Found", "trust", "import", ts.URL+"/missing.xml", "--ca", caFile)
	fails("https only", "trust", "import", strings.Replace(ts.URL, "https://", "http://", 1)+"/listeblanche.xml")
	out = ok("trust", "import", ts.URL+"/listeblanche.xml", "--ca", caFile)
	if !strings.Contains(out, "added    nouveau.mssante.fr\n") || !strings.Contains(out, "the trust space has 2 domain(s)") {
		t.Errorf("trust import URL:\n%s", out)
	}

	// remove-domain.
	ok("trust", "remove-domain", "nouveau.mssante.fr")
	fails("The domain nouveau.mssante.fr is not in the trust space.", "trust", "remove-domain", "nouveau.mssante.fr")

	// add-ca: an operator's CA, never a server certificate.
	other, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ServerCertificate("mx.other.test"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caPath, srvPath := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "server.crt")
	os.WriteFile(caPath, other.CAPEM(), 0o600)
	srvPEM, _ := other.Export("server")
	os.WriteFile(srvPath, srvPEM, 0o600)
	fails("is not a certification authority's", "trust", "add-ca", srvPath)
	out = ok("trust", "add-ca", caPath)
	if !strings.Contains(out, "trust anchor CN=Carepost development CA") || !strings.Contains(out, "SHA-256 ") {
		t.Errorf("trust add-ca:\n%s", out)
	}
	fp := strings.TrimSuffix(out[strings.Index(out, "SHA-256 ")+len("SHA-256 "):], ")\n")
	if out := ok("trust", "list"); !strings.Contains(out, fp) {
		t.Errorf("trust list lacks the anchor %s:\n%s", fp, out)
	}
}
