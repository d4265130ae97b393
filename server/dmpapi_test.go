package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/auth/oidc/oidctest"
	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/dmp"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
	"github.com/carepost/carepost/storage"
)

const dmpINS = "255081416802538"

// dmpFixture: a server with the HTTPS listener, a patient, a GP (the
// médecin traitant), another GP, a pharmacist, and three documents in the
// patient's record: a lab report, a consultation note, and a lab report
// hidden from professionals (MASQUE_PS).
type dmpFixture struct {
	srv                     *servertest.Instance
	gp, other, pharmacist   string
	gpID, otherID, pharmaID string
	lab, note, masked       string // document IDs
	patient                 string
}

func newDMPFixture(t *testing.T, opts ...func(*server.Config)) *dmpFixture {
	t.Helper()
	srv := servertest.Start(t, append([]func(*server.Config){func(c *server.Config) { c.Listen.HTTPS = "127.0.0.1:0" }}, opts...)...)
	ctx := context.Background()
	f := &dmpFixture{srv: srv}
	f.gp = srv.AddProfessional("generaliste", "")
	f.other = srv.AddProfessional("autre", "")
	f.pharmacist = "pharmacien@carepost.test"
	if _, err := srv.Server.AddProfessional(ctx, directory.ProfessionalInput{NationalID: "8" + servertest.NextRPPS(), FirstName: "Paul",
		LastName: "Officine", Profession: "21", Address: f.pharmacist}); err != nil {
		t.Fatal(err)
	}
	pe, err := srv.Server.AddPatient(ctx, directory.PatientInput{INS: dmpINS, FirstName: "Marie", LastName: "Martin"})
	if err != nil {
		t.Fatal(err)
	}
	f.patient = pe.Address
	for _, a := range []struct {
		addr string
		id   *string
	}{{f.gp, &f.gpID}, {f.other, &f.otherID}, {f.pharmacist, &f.pharmaID}} {
		e, err := srv.Dir.Lookup(ctx, a.addr)
		if err != nil {
			t.Fatal(err)
		}
		*a.id = e.NationalID
	}
	if err := srv.Store.SetControls(ctx, dmp.PatientControls{INS: dmpINS, Emergency: true, MedecinTraitant: f.gpID}); err != nil {
		t.Fatal(err)
	}
	v, err := srv.DMPVault()
	if err != nil {
		t.Fatal(err)
	}
	author := dmp.Author{PersonID: "810001111111", FirstName: "Anne", LastName: "Biologiste", InstitutionName: "Laboratoire X"}
	d := func(uid, tc, title, content string, vis dmp.Visibility) dmp.Document {
		return dmp.Document{UniqueID: uid, PatientINS: dmpINS, TypeCode: dmp.Code{Code: tc}, Title: title, MimeType: "text/plain",
			Visibility: vis, Authors: []dmp.Author{author}, Content: []byte(content), URI: uid + ".txt"}
	}
	out, err := v.Deposit(ctx, &dmp.Submission{PatientINS: dmpINS, Documents: []dmp.Document{
		d("1.2.250.1.999.1", "11502-2", "Bilan sanguin", "Glycémie 5,2 mmol/l", 0),
		d("1.2.250.1.999.2", "11488-4", "Consultation", "Examen clinique normal", 0),
		d("1.2.250.1.999.3", "11502-2", "Sérologie", "Résultat confidentiel", dmp.HiddenFromProfessionals),
	}}, dmp.Depositor{Address: "labo@carepost.test", NationalID: "810001111111", Profession: "10"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if !o.Deposited {
			t.Fatalf("deposit: %+v", o)
		}
	}
	f.lab, f.note, f.masked = out[0].Ref, out[1].Ref, out[2].Ref
	return f
}

// client returns an HTTPS client presenting certs.
func (f *dmpFixture) client(certs ...tls.Certificate) *http.Client {
	tc := f.srv.ClientTLS()
	tc.Certificates = certs
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
}

func (f *dmpFixture) url(p string) string {
	return "https://" + f.srv.AddrOf("https") + server.DMPDocumentsPath + dmpINS + "/documents" + p
}

func dmpGet(t *testing.T, c *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func listIDs(t *testing.T, body string) []string {
	t.Helper()
	var a struct {
		Documents []struct {
			ID          string `json:"id"`
			TypeDisplay string `json:"type_display"`
		} `json:"documents"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var ids []string
	for _, d := range a.Documents {
		if d.TypeDisplay == "" {
			t.Errorf("document %s without a type display", d.ID)
		}
		ids = append(ids, d.ID)
	}
	return ids
}

func (f *dmpFixture) events(t *testing.T, action string) []storage.AuditRecord {
	t.Helper()
	f.srv.FlushAuditEvents()
	evs, err := f.srv.Audit.AuditEvents(context.Background(), storage.AuditQuery{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// A GP logged in with a client certificate lists the record and reads
// its documents, the masked one too as the médecin traitant; a
// pharmacist does not see, and is refused, the type the grid denies
// them; every read and refusal is an event of the patient's history.
func TestDMPAPIGrid(t *testing.T) {
	f := newDMPFixture(t)
	gp := f.client(clientCert(t, f.srv.PKI, f.gp, ""))
	resp, body := dmpGet(t, gp, f.url(""))
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GP list: %d %s", resp.StatusCode, body)
	}
	if ids := listIDs(t, body); len(ids) != 3 {
		t.Fatalf("GP (médecin traitant) list: %v", ids)
	}
	resp, body = dmpGet(t, gp, f.url("/"+f.lab))
	if resp.StatusCode != 200 || body != "Glycémie 5,2 mmol/l" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("GP read: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if resp, body = dmpGet(t, gp, f.url("/"+f.masked)); resp.StatusCode != 200 || body != "Résultat confidentiel" {
		t.Fatalf("médecin traitant reads the masked document: %d %s", resp.StatusCode, body)
	}

	ph := f.client(clientCert(t, f.srv.PKI, f.pharmacist, ""))
	resp, body = dmpGet(t, ph, f.url(""))
	if ids := listIDs(t, body); resp.StatusCode != 200 || len(ids) != 1 || ids[0] != f.lab {
		t.Fatalf("pharmacist list: %d %s", resp.StatusCode, body)
	}
	if resp, body = dmpGet(t, ph, f.url("/"+f.lab)); resp.StatusCode != 200 {
		t.Fatalf("pharmacist reads a lab report: %d %s", resp.StatusCode, body)
	}
	resp, body = dmpGet(t, ph, f.url("/"+f.note))
	var e map[string]string
	json.Unmarshal([]byte(body), &e)
	if resp.StatusCode != 403 || !strings.Contains(e["error"], "does not allow profession 21") {
		t.Fatalf("pharmacist reads a consultation note: %d %s", resp.StatusCode, body)
	}
	// Another GP: the masked document is as if absent.
	other := f.client(clientCert(t, f.srv.PKI, f.other, ""))
	if _, body = dmpGet(t, other, f.url("")); len(listIDs(t, body)) != 2 {
		t.Fatalf("other GP list: %s", body)
	}
	if resp, _ = dmpGet(t, other, f.url("/"+f.masked)); resp.StatusCode != 404 {
		t.Fatalf("other GP reads a masked document: %d", resp.StatusCode)
	}
	if resp, _ = dmpGet(t, gp, f.url("/0123456789abcdef0123456789abcdef")); resp.StatusCode != 404 {
		t.Fatalf("unknown document: %d", resp.StatusCode)
	}
	// The patient reads their record with their own certificate; another
	// record is refused.
	pat := f.client(clientCert(t, f.srv.PKI, f.patient, ""))
	if resp, body = dmpGet(t, pat, f.url("")); resp.StatusCode != 200 || len(listIDs(t, body)) != 3 {
		t.Fatalf("patient list: %d %s", resp.StatusCode, body)
	}
	if resp, _ = dmpGet(t, pat, "https://"+f.srv.AddrOf("https")+server.DMPDocumentsPath+"168127512345648/documents"); resp.StatusCode != 403 {
		t.Fatalf("patient reads another record: %d", resp.StatusCode)
	}
	if resp, _ = dmpGet(t, gp, "https://"+f.srv.AddrOf("https")+server.DMPDocumentsPath+"123/documents"); resp.StatusCode != 400 {
		t.Fatalf("malformed INS: %d", resp.StatusCode)
	}

	// The events: reads and refusals, about the patient's account, with
	// no content.
	reads := f.events(t, "dmp.read")
	var ok, refused int
	for _, r := range reads {
		if r.Account != f.patient || r.Details["ins"] != dmpINS {
			t.Errorf("read event not about the patient: %+v", r)
		}
		switch {
		case r.Outcome == "ok":
			ok++
		case r.Outcome == "refused":
			refused++
		}
		for _, v := range r.Details {
			if strings.Contains(v, "Glycémie") || strings.Contains(v, "confidentiel") {
				t.Errorf("event with content: %+v", r)
			}
		}
	}
	if ok != 3 || refused != 3 {
		t.Errorf("dmp.read events: %d ok, %d refused: %+v", ok, refused, reads)
	}
	var phRefusal bool
	for _, r := range reads {
		phRefusal = phRefusal || (r.Actor == f.pharmacist && r.Object == f.note && r.Outcome == "refused" && r.Mechanism == "EXTERNAL")
	}
	if !phRefusal {
		t.Errorf("no refusal event of the pharmacist: %+v", reads)
	}
	if l := f.events(t, "dmp.list"); len(l) < 5 {
		t.Errorf("dmp.list events: %+v", l)
	}
}

// Without a credential, or with a password: 401 and the Bearer challenge.
func TestDMPAPIAuthentication(t *testing.T) {
	f := newDMPFixture(t)
	c := f.client()
	resp, body := dmpGet(t, c, f.url(""))
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(body, "certificate") {
		t.Fatalf("no credential: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, _ = dmpGet(t, c, f.url("/"+f.lab), "Authorization", "Basic Z3A6cGFzc3dvcmQ=")
	if resp.StatusCode != 401 {
		t.Fatalf("Basic: %d", resp.StatusCode)
	}
	resp, _ = dmpGet(t, c, f.url(""), "Authorization", "Bearer not-a-token")
	if resp.StatusCode != 401 {
		t.Fatalf("Bearer without an issuer configured: %d", resp.StatusCode)
	}
	// A certificate of another authority.
	other, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	resp, body = dmpGet(t, f.client(clientCert(t, other, f.gp, "")), f.url(""))
	if resp.StatusCode != 401 || !strings.Contains(body, "not accepted") {
		t.Fatalf("foreign certificate: %d %s", resp.StatusCode, body)
	}
	if l := f.events(t, "https.login"); len(l) == 0 || l[len(l)-1].Outcome != "refused" || l[len(l)-1].Details["service"] != "dmp" {
		t.Errorf("login events: %+v", l)
	}
}

// A bearer token of the configured issuer logs the GP in.
func TestDMPAPIBearer(t *testing.T) {
	iss := oidctest.Start(t)
	f := newDMPFixture(t, func(c *server.Config) {
		c.Auth.OIDC = server.OIDCConfig{Issuer: iss.URL(), Audience: iss.Audience(), Claim: "email", ClaimIs: "address",
			CAFile: iss.CAFile(), Scope: "openid email"}
	})
	resp, body := dmpGet(t, f.client(), f.url("/"+f.lab), "Authorization", "Bearer "+iss.TokenFor(f.gp, nil))
	if resp.StatusCode != 200 || body != "Glycémie 5,2 mmol/l" {
		t.Fatalf("bearer read: %d %s", resp.StatusCode, body)
	}
	if l := f.events(t, "dmp.read"); len(l) != 1 || l[0].Actor != f.gp || l[0].Mechanism != string(auth.MechOAuth) {
		t.Errorf("read event: %+v", l)
	}
}

// A professional the patient blocked reads nothing, except in an
// emergency while the patient allows it, which is audited; with
// emergency access off, not even then.
func TestDMPAPIBlockAndEmergency(t *testing.T) {
	f := newDMPFixture(t)
	ctx := context.Background()
	if err := f.srv.Store.SetControls(ctx, dmp.PatientControls{INS: dmpINS, Emergency: true, MedecinTraitant: f.gpID,
		Blocked: []string{f.otherID}}); err != nil {
		t.Fatal(err)
	}
	other := f.client(clientCert(t, f.srv.PKI, f.other, ""))
	resp, body := dmpGet(t, other, f.url(""))
	if resp.StatusCode != 403 || !strings.Contains(body, "blocked") {
		t.Fatalf("blocked list: %d %s", resp.StatusCode, body)
	}
	if resp, _ = dmpGet(t, other, f.url("/"+f.lab)); resp.StatusCode != 403 {
		t.Fatalf("blocked read: %d", resp.StatusCode)
	}
	resp, body = dmpGet(t, other, f.url("?emergency=1"))
	if resp.StatusCode != 200 || len(listIDs(t, body)) != 3 {
		t.Fatalf("emergency list: %d %s", resp.StatusCode, body)
	}
	if resp, body = dmpGet(t, other, f.url("/"+f.masked+"?emergency=1")); resp.StatusCode != 200 || body != "Résultat confidentiel" {
		t.Fatalf("emergency read: %d %s", resp.StatusCode, body)
	}
	em := f.events(t, "dmp.emergency")
	if len(em) != 2 || em[1].Actor != f.other || em[1].Object != f.masked || em[1].Account != f.patient {
		t.Fatalf("emergency events: %+v", em)
	}
	// Emergency access off.
	if err := f.srv.Store.SetControls(ctx, dmp.PatientControls{INS: dmpINS, Emergency: false, MedecinTraitant: f.gpID,
		Blocked: []string{f.otherID}}); err != nil {
		t.Fatal(err)
	}
	if resp, body = dmpGet(t, other, f.url("/"+f.lab+"?emergency=1")); resp.StatusCode != 403 || !strings.Contains(body, "emergency access off") {
		t.Fatalf("emergency read, access off: %d %s", resp.StatusCode, body)
	}
	// The médecin traitant is never blocked.
	if err := f.srv.Store.SetControls(ctx, dmp.PatientControls{INS: dmpINS, MedecinTraitant: f.gpID, Blocked: []string{f.gpID}}); err != nil {
		t.Fatal(err)
	}
	if resp, _ = dmpGet(t, f.client(clientCert(t, f.srv.PKI, f.gp, "")), f.url("/"+f.lab)); resp.StatusCode != 200 {
		t.Fatalf("blocked médecin traitant: %d", resp.StatusCode)
	}
}

// [dmp] grid: the operator's grid replaces the default; a broken one
// stops the configuration with its mistake named.
func TestDMPGridFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "grid.toml")
	os.WriteFile(p, []byte("[types]\n\"11488-4\" = \"CR de consultation\"\n[[rule]]\nprofession = \"10\"\nread = [\"11488-4\"]\ndeposit = [\"*\"]\n"), 0o600)
	f := newDMPFixture(t, func(c *server.Config) { c.DMP.Grid = p })
	gp := f.client(clientCert(t, f.srv.PKI, f.other, ""))
	if _, body := dmpGet(t, gp, f.url("")); len(listIDs(t, body)) != 1 {
		t.Fatalf("list under the operator's grid: %s", body)
	}
	cfg := server.Defaults()
	cfg.Data = t.TempDir()
	os.WriteFile(p, []byte("[[rule]]\nprofession = \"77\"\n"), 0o600)
	cfg.DMP.Grid = p
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "dmp.grid") || !strings.Contains(err.Error(), "TRE_G15") {
		t.Fatalf("broken grid: %v", err)
	}
}
