package dmp

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/crypto"
)

const mhdTestINS = "279035121518989"

// fakeRecipient is a loopback MHD Document Recipient: it checks each
// ITI-65 Bundle strictly (checkBundle) and answers like a FHIR server:
// 200 with a transaction-response, 400 with an OperationOutcome for a
// Bundle it refuses or a uniqueId it already holds, or what fail says.
type fakeRecipient struct {
	t  *testing.T
	mu sync.Mutex
	// stored are the masterIdentifier values already deposited.
	stored map[string]bool
	nextID int
	posts  int
	// refuse, when set, refuses documents whose type code it returns
	// true for, with an issue naming their entry.
	refuse func(typeCode string) bool
	// fail, when set, writes the whole reply instead.
	fail func(w http.ResponseWriter, r *http.Request) bool
	// auth is the bearer token required, "" for none.
	auth string
}

func newFakeRecipient(t *testing.T) *fakeRecipient {
	return &fakeRecipient{t: t, stored: map[string]bool{}}
}

func (f *fakeRecipient) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.posts++
	f.mu.Unlock()
	if f.fail != nil && f.fail(w, r) {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/fhir" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		writeOO(w, 415, fhirIssue{Severity: "error", Code: "not-supported", Diagnostics: "Content-Type " + ct})
		return
	}
	if f.auth != "" && r.Header.Get("Authorization") != "Bearer "+f.auth {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	docs, err := checkBundle(body)
	if err != nil {
		f.t.Errorf("the recipient refused the Bundle's structure: %v", err)
		writeOO(w, 400, fhirIssue{Severity: "error", Code: "structure", Diagnostics: err.Error()})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var issues []fhirIssue
	for _, d := range docs {
		if f.stored[d.master] {
			issues = append(issues, fhirIssue{Severity: "error", Code: "duplicate",
				Details:     &fhirConcept{Coding: []fhirCoding{{Code: xdsDuplicateUniqueID}}},
				Diagnostics: "uniqueId " + d.master + " is already in the registry",
				Expression:  []string{fmt.Sprintf("Bundle.entry[%d].resource.masterIdentifier", d.entry)}})
		} else if f.refuse != nil && f.refuse(d.typeCode) {
			issues = append(issues, fhirIssue{Severity: "error", Code: "business-rule",
				Diagnostics: "the document type " + d.typeCode + " is not allowed for this author",
				Expression:  []string{fmt.Sprintf("Bundle.entry[%d].resource.type", d.entry)}})
		}
	}
	if len(issues) > 0 {
		// A transaction is atomic: nothing is stored.
		issues = append(issues, fhirIssue{Severity: "information", Code: "informational", Diagnostics: "transaction rolled back"})
		writeOO(w, 400, issues...)
		return
	}
	resp := fhirBundle{ResourceType: "Bundle", Type: "transaction-response"}
	var req fhirBundle
	_ = json.Unmarshal(body, &req)
	for _, e := range req.Entry {
		f.nextID++
		resp.Entry = append(resp.Entry, fhirEntry{Response: &fhirResponse{
			Status: "201 Created", Location: fmt.Sprintf("%s/%d/_history/1", e.Request.URL, f.nextID)}})
	}
	for _, d := range docs {
		f.stored[d.master] = true
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(resp)
}

func writeOO(w http.ResponseWriter, status int, issues ...fhirIssue) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "OperationOutcome", "issue": issues})
}

// testSubmission is a submission of n documents for mhdTestINS.
func testSubmission(n int) *Submission {
	sub := &Submission{
		UniqueID:   "1.2.250.1.999.1.7",
		SourceID:   "1.2.250.1.999.1",
		PatientINS: mhdTestINS,
		Authors:    []Author{{PersonID: "810001045367", FirstName: "Jeanne", LastName: "Martin", InstitutionID: "1750000000", InstitutionName: "CH Exemple"}},
		Submitted:  time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Title:      "Compte rendu",
		FromXDM:    true,
	}
	for i := 0; i < n; i++ {
		content := []byte(fmt.Sprintf("%%PDF-1.4 document %d é", i))
		sum := sha1.Sum(content)
		sub.Documents = append(sub.Documents, Document{
			UniqueID:        fmt.Sprintf("1.2.250.1.999.1.7.%d", i+1),
			PatientINS:      mhdTestINS,
			ClassCode:       Code{"10", "1.2.250.1.213.1.1.4.1", "Compte rendu"},
			TypeCode:        Code{"11490-0", "2.16.840.1.113883.6.1", "Lettre de sortie"},
			FormatCode:      Code{"urn:ihe:iti:xds-sd:pdf:2008", "1.3.6.1.4.1.19376.1.2.3", "PDF"},
			Confidentiality: []Code{{"N", "2.16.840.1.113883.5.25", "Normal"}},
			Visibility:      InvisiblePatient,
			CreationTime:    time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC),
			ServiceStart:    time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC),
			ServiceStop:     time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
			Title:           fmt.Sprintf("Lettre de sortie n°%d", i+1),
			Language:        "fr-FR",
			MimeType:        "application/pdf",
			Size:            int64(len(content)),
			SHA1:            hex.EncodeToString(sum[:]),
			Content:         content,
		})
	}
	return sub
}

// startRecipient starts f over TLS with a certificate of the dev PKI and
// returns a config trusting it.
func startRecipient(t *testing.T, f http.Handler, clientAuth bool) (MHDConfig, *crypto.PKI) {
	t.Helper()
	pki, err := crypto.OpenPKI(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.TLS = crypto.ServerTLSConfig(cert)
	if clientAuth {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = pki.CertPool()
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return MHDConfig{Endpoint: srv.URL + "/fhir", CAFile: pki.CAPath(), SourceID: "1.2.250.1.999.2", Timeout: 5 * time.Second}, pki
}

func newTestMHD(t *testing.T, cfg MHDConfig) *MHDConnector {
	t.Helper()
	c, err := NewMHD(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestMHDDepositAndIdempotence(t *testing.T) {
	f := newFakeRecipient(t)
	f.auth = "s3cret"
	cfg, _ := startRecipient(t, f, false)
	cfg.BearerToken = "s3cret"
	c := newTestMHD(t, cfg)
	if c.Name() != "mhd" {
		t.Fatalf("Name %q", c.Name())
	}
	sub := testSubmission(2)
	sub.Documents[1].Replaces = "1.2.250.1.999.1.6.1"
	sub.Documents[1].Confidentiality = append(sub.Documents[1].Confidentiality, Code{CodeHiddenFromProfessionals, TREA07, ""})
	out, err := c.Deposit(context.Background(), sub, Depositor{Address: "jeanne.martin@ch-exemple.mssante.fr"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 {
		t.Fatalf("%d outcomes", len(out))
	}
	for i, o := range out {
		if !o.Deposited || o.Ref == "" || o.Code != "" || o.UniqueID != sub.Documents[i].UniqueID || o.Title != sub.Documents[i].Title {
			t.Errorf("outcome %d: %+v", i, o)
		}
	}
	// The hook runs twice: the server says duplicate, the documents
	// are deposited.
	again, err := c.Deposit(context.Background(), sub, Depositor{})
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range again {
		if !o.Deposited || o.Code != "" {
			t.Errorf("second deposit, outcome %d: %+v", i, o)
		}
	}
	// A new submission with one old and one new document: the old is
	// there, the new one is sent again alone.
	mixed := testSubmission(3)
	mixed.UniqueID = "1.2.250.1.999.1.8"
	mixed.Documents = mixed.Documents[1:] // document 2 (known) and 3 (new)
	posts := f.posts
	out, err = c.Deposit(context.Background(), mixed, Depositor{})
	if err != nil {
		t.Fatal(err)
	}
	if !out[0].Deposited || !out[1].Deposited || out[1].Ref == "" {
		t.Errorf("mixed: %+v", out)
	}
	if f.posts-posts != 2 {
		t.Errorf("mixed: %d POSTs, want 2", f.posts-posts)
	}
}

func TestMHDBundleShape(t *testing.T) {
	c := &MHDConnector{sourceID: "1.2.250.1.999.2"}
	sub := testSubmission(1)
	sub.Documents[0].Replaces = "1.2.250.1.999.1.6.1^A12"
	sub.Documents[0].Visibility = InvisiblePatient | HiddenFromProfessionals
	body, plan, err := c.buildBundle(sub, Depositor{}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	if plan.entries != 3 || plan.docRef[0] != 1 || plan.binary[0] != 2 {
		t.Fatalf("plan %+v", plan)
	}
	if _, err := checkBundle(body); err != nil {
		t.Fatal(err)
	}
	s := string(body)
	for _, want := range []string{
		`"masterIdentifier":{"system":"urn:ietf:rfc:3986","value":"urn:oid:1.2.250.1.999.1.7.1"}`,
		`"relatesTo":[{"code":"replaces","target":{"type":"DocumentReference","identifier":{"system":"urn:oid:1.2.250.1.999.1.6.1","value":"A12"}}}]`,
		`{"system":"urn:oid:1.2.250.1.213.1.1.4.13","code":"INVISIBLE_PATIENT"}`,
		`{"system":"urn:oid:1.2.250.1.213.1.1.4.13","code":"MASQUE_PS"}`,
		`{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"N","display":"Normal"}`,
		`"format":{"system":"http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode","code":"urn:ihe:iti:xds-sd:pdf:2008","display":"PDF"}`,
		`"category":[{"coding":[{"system":"urn:oid:1.2.250.1.213.1.1.4.1","code":"10"`,
		`"period":{"start":"2026-11-29T09:00:00Z","end":"2026-11-30T08:00:00Z"}`,
		`"valueIdentifier":{"value":"urn:oid:1.2.250.1.999.1"}`,
		`{"resourceType":"Organization","id":"author2","identifier":[{"system":"urn:oid:1.2.250.1.71.4.2.2","value":"1750000000"}],"name":"CH Exemple"}`,
		`"language":"fr-FR"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the Bundle lacks %s", want)
		}
	}
	// The checker is strict: a Bundle whose hash does not match is refused.
	bad := strings.Replace(s, `"hash":"`, `"hash":"AA`, 1)
	if _, err := checkBundle([]byte(bad)); err == nil || !strings.Contains(err.Error(), "hash") {
		t.Errorf("a wrong hash passed the checker: %v", err)
	}
	// Plain attachments: no uniqueIds, the same derived ones each time.
	plain := testSubmission(1)
	plain.UniqueID, plain.SourceID, plain.Documents[0].UniqueID = "", "", ""
	b1, _, err := c.buildBundle(plain, Depositor{}, []int{0})
	if err != nil {
		t.Fatal(err)
	}
	b2, _, _ := c.buildBundle(plain, Depositor{}, []int{0})
	id1, id2 := documentUniqueID(plain, 0), documentUniqueID(plain, 0)
	if id1 != id2 || !strings.HasPrefix(id1, "2.25.") || !isOID(id1) {
		t.Errorf("derived uniqueId %q %q", id1, id2)
	}
	if !strings.Contains(string(b1), "urn:oid:"+id1) || !strings.Contains(string(b2), "urn:oid:"+id1) {
		t.Error("the derived uniqueId is not the masterIdentifier")
	}
	if _, err := checkBundle(b1); err != nil {
		t.Error(err)
	}
}

func TestMHDOperationOutcomeRefusal(t *testing.T) {
	f := newFakeRecipient(t)
	f.refuse = func(code string) bool { return code == "11490-0" }
	cfg, _ := startRecipient(t, f, false)
	c := newTestMHD(t, cfg)
	sub := testSubmission(2)
	sub.Documents[1].TypeCode = Code{"34133-9", "2.16.840.1.113883.6.1", "Synthèse"}
	out, err := c.Deposit(context.Background(), sub, Depositor{})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Deposited || out[0].Code != MHDRefused || !strings.Contains(out[0].Reason, "11490-0 is not allowed") {
		t.Errorf("refused document: %+v", out[0])
	}
	// The other is not deposited either (a transaction is atomic) and
	// says why.
	if out[1].Deposited || out[1].Code != MHDRefused || out[1].Reason == "" {
		t.Errorf("other document: %+v", out[1])
	}
	if len(f.stored) != 0 {
		t.Errorf("stored %v", f.stored)
	}
}

func TestMHDServerErrorAndBadReplies(t *testing.T) {
	var mode string
	f := newFakeRecipient(t)
	f.fail = func(w http.ResponseWriter, r *http.Request) bool {
		switch mode {
		case "500":
			writeOO(w, 500, fhirIssue{Severity: "fatal", Code: "exception", Diagnostics: "database down"})
		case "html400":
			w.WriteHeader(400)
			io.WriteString(w, "<html>bad</html>")
		case "401":
			w.WriteHeader(401)
		case "notbundle":
			io.WriteString(w, `{"resourceType":"Patient"}`)
		case "short":
			io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201 Created"}}]}`)
		default:
			return false
		}
		return true
	}
	cfg, _ := startRecipient(t, f, false)
	c := newTestMHD(t, cfg)
	for _, m := range []string{"500", "html400", "401", "notbundle", "short"} {
		mode = m
		out, err := c.Deposit(context.Background(), testSubmission(1), Depositor{})
		if err == nil {
			t.Errorf("%s: no error, outcomes %+v", m, out)
		}
	}
}

func TestMHDEntryRefusedInResponse(t *testing.T) {
	plan := bundlePlan{entries: 5, docRef: []int{1, 3}, binary: []int{2, 4}}
	reply := `{"resourceType":"Bundle","type":"transaction-response","entry":[
	{"response":{"status":"201 Created","location":"List/1"}},
	{"response":{"status":"201 Created","location":"https://h/fhir/DocumentReference/abc/_history/1"}},
	{"response":{"status":"201"}},
	{"response":{"status":"422 Unprocessable","outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad\r\nformat"}]}}},
	{"response":{"status":"201 Created"}}]}`
	res, err := parseMHDResponse(200, []byte(reply), plan)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].deposited || res[0].ref != "abc" {
		t.Errorf("0: %+v", res[0])
	}
	if res[1].deposited || res[1].reason != "The record refused the document: bad format" {
		t.Errorf("1: %+v", res[1])
	}
}

func TestMHDTimeout(t *testing.T) {
	f := newFakeRecipient(t)
	f.fail = func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
		return true
	}
	cfg, _ := startRecipient(t, f, false)
	cfg.Timeout = 200 * time.Millisecond
	c := newTestMHD(t, cfg)
	start := time.Now()
	if _, err := c.Deposit(context.Background(), testSubmission(1), Depositor{}); err == nil {
		t.Fatal("no error after the timeout")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the timeout took %v", d)
	}
	// The caller's context also ends it.
	cfg.Timeout = 10 * time.Second
	c2 := newTestMHD(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c2.Deposit(ctx, testSubmission(1), Depositor{}); err == nil {
		t.Fatal("no error after the context ended")
	}
}

func TestMHDTLS(t *testing.T) {
	f := newFakeRecipient(t)
	cfg, pki := startRecipient(t, f, true)
	// Without a client certificate: the handshake fails, an error.
	if _, err := newTestMHD(t, cfg).Deposit(context.Background(), testSubmission(1), Depositor{}); err == nil {
		t.Error("deposited without a client certificate")
	}
	// Without the CA: the server's certificate is not trusted.
	noCA := cfg
	noCA.CAFile = ""
	noCA.ClientCert, noCA.ClientKey = filepath.Join(pki.Dir(), "server.crt"), filepath.Join(pki.Dir(), "server.key")
	_, err := newTestMHD(t, noCA).Deposit(context.Background(), testSubmission(1), Depositor{})
	var uerr x509.UnknownAuthorityError
	if err == nil || !errors.As(err, &uerr) {
		t.Errorf("deposited to an untrusted server: %v", err)
	}
	// With the CA and a client certificate of the PKI: deposited.
	mtls := cfg
	mtls.ClientCert, mtls.ClientKey = noCA.ClientCert, noCA.ClientKey
	out, err := newTestMHD(t, mtls).Deposit(context.Background(), testSubmission(1), Depositor{})
	if err != nil || !out[0].Deposited {
		t.Fatalf("mutual TLS: %v %+v", err, out)
	}
}

func TestMHDPlainHTTPLoopback(t *testing.T) {
	f := newFakeRecipient(t)
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := newTestMHD(t, MHDConfig{Endpoint: srv.URL + "/fhir/", SourceID: "1.2.250.1.999.2"})
	out, err := c.Deposit(context.Background(), testSubmission(1), Depositor{})
	if err != nil || !out[0].Deposited {
		t.Fatalf("%v %+v", err, out)
	}
}

func TestMHDConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  MHDConfig
		want string
	}{
		{MHDConfig{Endpoint: "http://dmp.example/fhir"}, "not https"},
		{MHDConfig{Endpoint: "ftp://127.0.0.1/fhir"}, "scheme"},
		{MHDConfig{Endpoint: "/fhir"}, "absolute"},
		{MHDConfig{Endpoint: "https://u:p@dmp.example/fhir"}, "credentials"},
		{MHDConfig{Endpoint: "https://dmp.example/fhir", CAFile: filepath.Join(dir, "none.pem")}, "ca_file"},
		{MHDConfig{Endpoint: "https://dmp.example/fhir", ClientCert: "a.pem"}, "both or neither"},
		{MHDConfig{Endpoint: "https://dmp.example/fhir", SourceID: "carepost"}, "not an OID"},
		{MHDConfig{Endpoint: "https://dmp.example/fhir", BearerToken: "a\r\nX-Evil: 1"}, "one line"},
	} {
		_, err := NewMHD(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := NewMHD(MHDConfig{Endpoint: "http://[::1]:8080/fhir"}); err != nil {
		t.Error(err)
	}
}

func TestMHDPrecheckRefuses(t *testing.T) {
	f := newFakeRecipient(t)
	cfg, _ := startRecipient(t, f, false)
	c := newTestMHD(t, cfg)
	sub := testSubmission(3)
	sub.Documents[0].SHA1 = strings.Repeat("0", 40)
	sub.Documents[1].Size++
	out, err := c.Deposit(context.Background(), sub, Depositor{})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Code != "HASH_MISMATCH" || out[1].Code != "SIZE_MISMATCH" || !out[2].Deposited || f.posts != 1 {
		t.Errorf("%+v (%d POSTs)", out, f.posts)
	}
	all := testSubmission(1)
	all.Documents[0].PatientINS = "1840275123456"
	if out, err := c.Deposit(context.Background(), all, Depositor{}); err != nil || out[0].Code != "PATIENT_MISMATCH" || f.posts != 1 {
		t.Errorf("%v %+v", err, out)
	}
}
