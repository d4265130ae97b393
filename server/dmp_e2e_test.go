package server_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/dmp"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

const walkINS = "279035121518989"

const dmpCDA = `<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <code code="11502-2" codeSystem="2.16.840.1.113883.6.1" displayName="CR d'examens biologiques"/>
  <title>Compte rendu de biologie</title>
</ClinicalDocument>
`

// dmpPackage is an IHE_XDM.ZIP of a discharge letter (PDF) and a lab
// report (CDA) for ins, by author.
func dmpPackage(t *testing.T, ins, author string) []byte {
	t.Helper()
	sub := &dmp.Submission{PatientINS: ins, Authors: []dmp.Author{{PersonID: author}}, Documents: []dmp.Document{
		{Title: "Lettre de liaison", MimeType: "application/pdf", URI: "lettre.pdf",
			TypeCode: dmp.Code{Code: "11490-0", Scheme: dmp.OIDLOINC}, Content: []byte("%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n")},
		{Title: "Compte rendu de biologie", MimeType: "text/xml", URI: "cr.xml",
			TypeCode: dmp.Code{Code: "11502-2", Scheme: dmp.OIDLOINC}, Content: []byte(dmpCDA)},
	}}
	var buf bytes.Buffer
	if err := dmp.Pack(sub, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dmpMessage is a message from→to asking for a receipt, with zip attached.
func dmpMessage(from, to string, zip []byte) []byte {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w, _ := mw.CreatePart(h)
	w.Write([]byte("Veuillez trouver les documents.\r\n"))
	h = textproto.MIMEHeader{}
	h.Set("Content-Type", "application/zip; name=IHE_XDM.ZIP")
	h.Set("Content-Disposition", "attachment; filename=IHE_XDM.ZIP")
	h.Set("Content-Transfer-Encoding", "base64")
	w, _ = mw.CreatePart(h)
	w.Write([]byte(zipBase64(zip)))
	mw.Close()
	return []byte("From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + dmp.SubjectPrefix + "Lettre de liaison\r\n" +
		"Disposition-Notification-To: <" + from + ">\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=" + mw.Boundary() + "\r\n\r\n" + body.String())
}

func zipBase64(b []byte) string {
	const line = 76
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > line {
		out.WriteString(s[:line] + "\r\n")
		s = s[line:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}

// receipts waits for n messages in the INBOX of user (logged in with its
// client certificate) and returns their bodies.
func receipts(t *testing.T, srv *servertest.Instance, user string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := dialIMAPS(t, srv, clientCert(t, srv.PKI, user, ""))
		if err := c.Authenticate(sasl.NewExternalClient("")); err != nil {
			t.Fatal(err)
		}
		sel, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if int(sel.NumMessages) >= n {
			var out []string
			set := imap.SeqSetNum()
			set.AddRange(1, sel.NumMessages)
			msgs, err := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				for _, b := range m.BodySection {
					out = append(out, string(b.Bytes))
				}
			}
			c.Close()
			return out
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%d message(s) in the INBOX of %s, want %d", sel.NumMessages, user, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The walkthrough (#28): a GP sends a package of a discharge
// letter and a lab report to a patient with Disposition-Notification-To;
// both are deposited in the vault, the GP gets an MDN listing them, the
// API gives them to the GP and refuses the letter to a pharmacist; a
// tampered package and one for another patient are refused with a
// receipt naming the reason, and nothing is deposited.
func TestDMPDepositWalkthrough(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Listen.HTTPS = "127.0.0.1:0" })
	ctx := context.Background()
	gp := srv.AddProfessional("gp", "")
	gpEntry, _ := srv.Dir.Lookup(ctx, gp)
	ph, err := srv.Server.AddProfessional(ctx, directory.ProfessionalInput{NationalID: "8" + servertest.NextRPPS(),
		FirstName: "Paul", LastName: "Pharma", Profession: "21", Address: "ph@carepost.test"})
	if err != nil {
		t.Fatal(err)
	}
	pat, err := srv.AddPatient(ctx, directory.PatientInput{INS: walkINS, FirstName: "Jeanne", LastName: "Martin"})
	if err != nil {
		t.Fatal(err)
	}

	submit := func(msg []byte) {
		t.Helper()
		c := dialSubmissions(t, srv, clientCert(t, srv.PKI, gp, ""))
		if err := c.Auth(sasl.NewExternalClient("")); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail(gp, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt(pat.Address, nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write(msg)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	submit(dmpMessage(gp, pat.Address, dmpPackage(t, walkINS, gpEntry.NationalID)))
	got := receipts(t, srv, gp, 1)
	if !strings.Contains(got[0], "multipart/report") || !strings.Contains(got[0], "MDN-sent-automatically; processed\r\n") ||
		!strings.Contains(got[0], "Lettre de liaison") || !strings.Contains(got[0], "Compte rendu de biologie") {
		t.Fatalf("receipt:\n%s", got[0])
	}
	// The original, in the receipt, as it was stored: with the headers of
	// the clients' referential added (a qualified INS needs the CDA's four
	// traits, which this CDA lacks: N).
	if !strings.Contains(got[0], "X-MSS-CODECDA: 11502-2\r\n") || !strings.Contains(got[0], "X-MSS-INS: N\r\n") {
		t.Errorf("X-MSS-CODECDA / X-MSS-INS not added:\n%s", got[0])
	}
	vault, err := srv.DMPVault()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := vault.List(ctx, walkINS)
	if err != nil || len(docs) != 2 {
		t.Fatalf("vault: %d documents, %v", len(docs), err)
	}
	var letter string
	for _, d := range docs {
		if d.Document.TypeCode.Code == "11490-0" {
			letter = d.ID
		}
	}

	// The API over https, with client certificates.
	tc := srv.ClientTLS()
	get := func(user, path string) (int, []byte) {
		t.Helper()
		c := tc.Clone()
		c.Certificates = []tls.Certificate{clientCert(t, srv.PKI, user, "")}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
		resp, err := hc.Get("https://" + srv.AddrOf("https") + server.DMPDocumentsPath + walkINS + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := get(gp, "/documents"); code != 200 || strings.Count(string(b), `"unique_id"`) != 2 {
		t.Fatalf("GP list: %d %s", code, b)
	}
	if code, b := get(gp, "/documents/"+letter); code != 200 || !bytes.HasPrefix(b, []byte("%PDF")) {
		t.Fatalf("GP read: %d %.40q", code, b)
	}
	if code, b := get(ph.Address, "/documents/"+letter); code != 403 {
		t.Fatalf("pharmacist read of a discharge letter: %d %s", code, b)
	}

	// Refused packages: a receipt each, nothing deposited.
	pkg := dmpPackage(t, walkINS, gpEntry.NationalID)
	tampered := tamper(t, pkg)
	other := dmpPackage(t, "180010203004591", gpEntry.NationalID)
	for _, p := range [][]byte{tampered, other} {
		submit(dmpMessage(gp, pat.Address, p))
	}
	got = receipts(t, srv, gp, 3)
	var kos int
	for _, r := range got[1:] {
		if strings.Contains(r, "processed/Error: ") {
			kos++
		}
	}
	if kos != 2 {
		t.Fatalf("want 2 refusal receipts, got:\n%s", strings.Join(got[1:], "\n-----\n"))
	}
	if docs, _ := vault.List(ctx, walkINS); len(docs) != 2 {
		t.Fatalf("after refused packages the vault holds %d documents", len(docs))
	}
}

// With connector = "mhd", the same deposit reaches a FHIR endpoint on
// loopback as one transaction Bundle that a strict recipient accepts.
func TestDMPDepositMHD(t *testing.T) {
	pki, err := crypto.OpenPKI(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bundles [][]string
	fhir := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		docs, err := dmp.CheckProvideBundle(body)
		if err != nil {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]any{"resourceType": "OperationOutcome",
				"issue": []map[string]string{{"severity": "error", "code": "invalid", "diagnostics": err.Error()}}})
			return
		}
		mu.Lock()
		bundles = append(bundles, docs)
		mu.Unlock()
		var req struct {
			Entry []struct{ Request struct{ URL string } }
		}
		json.Unmarshal(body, &req)
		resp := map[string]any{"resourceType": "Bundle", "type": "transaction-response"}
		var entries []map[string]any
		for i, e := range req.Entry {
			entries = append(entries, map[string]any{"response": map[string]string{"status": "201 Created",
				"location": fmt.Sprintf("%s/%d/_history/1", e.Request.URL, i+1)}})
		}
		resp["entry"] = entries
		w.Header().Set("Content-Type", "application/fhir+json")
		json.NewEncoder(w).Encode(resp)
	}))
	fhir.TLS = crypto.ServerTLSConfig(cert)
	fhir.StartTLS()
	defer fhir.Close()

	srv := servertest.Start(t, func(c *server.Config) {
		c.DMP.Connector = "mhd"
		c.DMP.MHD.Endpoint = fhir.URL + "/fhir"
		c.DMP.MHD.CAFile = pki.CAPath()
		c.DMP.MHD.SourceID = "1.2.250.1.999.2"
	})
	ctx := context.Background()
	gp := srv.AddProfessional("gp", "")
	gpEntry, _ := srv.Dir.Lookup(ctx, gp)
	pat, err := srv.AddPatient(ctx, directory.PatientInput{INS: walkINS, FirstName: "Jeanne", LastName: "Martin"})
	if err != nil {
		t.Fatal(err)
	}
	c := dialSubmissions(t, srv, clientCert(t, srv.PKI, gp, ""))
	if err := c.Auth(sasl.NewExternalClient("")); err != nil {
		t.Fatal(err)
	}
	if err := send2(c, gp, pat.Address, dmpMessage(gp, pat.Address, dmpPackage(t, walkINS, gpEntry.NationalID))); err != nil {
		t.Fatal(err)
	}
	got := receipts(t, srv, gp, 1)
	if !strings.Contains(got[0], "MDN-sent-automatically; processed\r\n") {
		t.Fatalf("receipt:\n%s", got[0])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bundles) != 1 || len(bundles[0]) != 2 {
		t.Fatalf("the FHIR endpoint received %v", bundles)
	}
}

// tamper returns pkg with its PDF altered (the metadata's SHA-1 no longer
// matches).
func tamper(t *testing.T, pkg []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(pkg), int64(len(pkg)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if strings.HasSuffix(strings.ToLower(f.Name), ".pdf") {
			b = bytes.Replace(b, []byte("1 0 obj"), []byte("9 9 obj"), 1)
		}
		w, err := zw.Create(f.Name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// send2 sends msg as it is from→to on c.
func send2(c *gosmtp.Client, from, to string, msg []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}
