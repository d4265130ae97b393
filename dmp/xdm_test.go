package dmp

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// Fictitious identifiers with valid keys (docs/domain.md §2).
const (
	patientA = "279035121518989"
	patientB = "185067512345689"
	doctor   = "810001045367" // 8 + RPPS 10001045367
	doctor2  = "810002222221"
	orgID    = "3123456789"
)

var sender = Depositor{Address: "cardio@ch.test", NationalID: doctor, Profession: "10"}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sampleSubmission is a PDF and a CDA for patientA by doctor.
func sampleSubmission(t testing.TB) *Submission {
	author := Author{PersonID: doctor, LastName: "CARDIO", FirstName: "Jeanne", InstitutionID: orgID, InstitutionName: "Cabinet"}
	return &Submission{
		PatientINS: patientA,
		Authors:    []Author{author},
		Title:      "Consultation",
		Documents: []Document{
			{Title: "Lettre", MimeType: "application/pdf", TypeCode: Code{Code: "11490-0", Display: "Lettre de sortie"},
				Content: []byte("%PDF-1.4\n% a test PDF\n%%EOF\n"), Visibility: InvisiblePatient, URI: "lettre.pdf"},
			{Title: "Compte rendu", MimeType: "text/xml", TypeCode: Code{Code: "11488-4"},
				Content: readTestdata(t, "cda-consultation.xml"), Replaces: "urn:uuid:0f6a4c2e-1b7d-4e55-9a3c-7d2e8b1f0a11"},
		},
	}
}

func packBytes(t testing.TB, sub *Submission) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Pack(sub, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readXDM(b []byte, lim Limits) (*Submission, error) {
	return ReadXDM(bytes.NewReader(b), int64(len(b)), lim)
}

func TestDMPPackReadRoundTrip(t *testing.T) {
	in := sampleSubmission(t)
	z := packBytes(t, in)
	sub, err := readXDM(z, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if !sub.FromXDM || sub.PatientINS != patientA || sub.UniqueID == "" || sub.SourceID == "" || sub.Title != "Consultation" {
		t.Errorf("submission set: %+v", sub)
	}
	if len(sub.Authors) != 1 || sub.Authors[0].PersonID != doctor || sub.Authors[0].InstitutionID != orgID || sub.Authors[0].LastName != "CARDIO" {
		t.Errorf("set authors: %+v", sub.Authors)
	}
	if len(sub.Documents) != 2 {
		t.Fatalf("%d documents", len(sub.Documents))
	}
	pdf, cda := sub.Documents[0], sub.Documents[1]
	if !bytes.Equal(pdf.Content, in.Documents[0].Content) || !bytes.Equal(cda.Content, in.Documents[1].Content) {
		t.Error("contents differ")
	}
	if pdf.Title != "Lettre" || pdf.MimeType != "application/pdf" || pdf.TypeCode.Code != "11490-0" || pdf.TypeCode.Scheme != OIDLOINC ||
		pdf.ClassCode != DefaultClassCode || pdf.FormatCode.Code != "urn:ihe:iti:xds-sd:pdf:2008" || pdf.Language != "fr-FR" ||
		pdf.URI != "DOC0001.PDF" || pdf.PatientINS != patientA || !strings.HasPrefix(pdf.UniqueID, "2.25.") {
		t.Errorf("pdf: %+v", pdf)
	}
	if pdf.Visibility != InvisiblePatient || len(pdf.Confidentiality) != 2 || pdf.Confidentiality[0].Code != "N" || pdf.Confidentiality[1].Code != CodeInvisiblePatient {
		t.Errorf("pdf confidentiality: %v %+v", pdf.Visibility, pdf.Confidentiality)
	}
	if cda.URI != "DOC0002.XML" || cda.Replaces != in.Documents[1].Replaces || cda.Visibility != 0 || cda.CreationTime.IsZero() || cda.ServiceStart.IsZero() {
		t.Errorf("cda: %+v", cda)
	}
	if len(pdf.Authors) != 1 || pdf.Authors[0].PersonID != doctor {
		t.Errorf("document authors: %+v", pdf.Authors)
	}
	outs := Validate(sub, Check{PatientINS: patientA, By: sender})
	if !AllPass(outs) || len(outs) != 2 || outs[0].UniqueID != pdf.UniqueID {
		t.Errorf("valid package refused: %+v", outs)
	}
	// The layout of the package.
	zr, _ := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, " "); got != "INDEX.HTM README.TXT IHE_XDM/SUBSET01/METADATA.XML IHE_XDM/SUBSET01/DOC0001.PDF IHE_XDM/SUBSET01/DOC0002.XML" {
		t.Errorf("entries: %s", got)
	}
	// Pack does not modify its argument.
	if in.Documents[0].URI != "lettre.pdf" || in.UniqueID != "" {
		t.Error("Pack modified the submission")
	}
}

func TestDMPPackRefusesInvalid(t *testing.T) {
	for name, mod := range map[string]func(s *Submission){
		"no document": func(s *Submission) { s.Documents = nil },
		"bad INS":     func(s *Submission) { s.PatientINS = "279035121518988" },
		"no title":    func(s *Submission) { s.Documents[0].Title = " " },
		"no type":     func(s *Submission) { s.Documents[0].TypeCode = Code{} },
		"no content":  func(s *Submission) { s.Documents[1].Content = nil },
		"no author":   func(s *Submission) { s.Authors = nil },
	} {
		s := sampleSubmission(t)
		mod(s)
		if err := Pack(s, io.Discard); err == nil {
			t.Errorf("%s: packed", name)
		}
	}
}

// zent is an entry of a hand-made archive.
type zent struct {
	name string
	body []byte
	mode fs.FileMode
}

func zipOf(t testing.TB, entries ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestCompression) })
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rezip rewrites an archive's entries through f (nil: the entry is left
// out).
func rezip(t testing.TB, z []byte, f func(e zent) *zent) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	var out []zent
	for _, file := range zr.File {
		rc, _ := file.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		if e := f(zent{name: file.Name, body: b}); e != nil {
			out = append(out, *e)
		}
	}
	return zipOf(t, out...)
}

func refusalCode(err error) string {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Code
	}
	if err != nil {
		return "not a *Refusal: " + err.Error()
	}
	return ""
}

func TestDMPHostileArchives(t *testing.T) {
	valid := packBytes(t, sampleSubmission(t))
	zeros := make([]byte, 30<<20)
	meta := func(z []byte) []byte {
		zr, _ := zip.NewReader(bytes.NewReader(z), int64(len(z)))
		for _, f := range zr.File {
			if strings.HasSuffix(f.Name, "METADATA.XML") {
				rc, _ := f.Open()
				b, _ := io.ReadAll(rc)
				return b
			}
		}
		return nil
	}(valid)
	withDoc := func(content []byte, mime string) []byte {
		s := sampleSubmission(t)
		s.Documents = append(s.Documents, Document{Title: "Archive", MimeType: mime, TypeCode: Code{Code: "11488-4"}, Content: content})
		return packBytes(t, s)
	}
	many := make([]zent, 201)
	for i := range many {
		many[i] = zent{name: "f" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "/" + string(rune('a'+i/26)), body: []byte("x")}
	}
	inner := zipOf(t, zent{name: "a.txt", body: []byte("hello")})
	tests := []struct {
		name string
		zip  []byte
		lim  func(*Limits)
		code string
		doc  bool // the refusal names a document
	}{
		{"valid", valid, nil, "", false},
		{"not a zip", []byte("hello, this is not an archive"), nil, RefusedBadZip, false},
		{"truncated", valid[:len(valid)/2], nil, RefusedBadZip, false},
		{"bomb (ratio)", zipOf(t, zent{name: "IHE_XDM/SUBSET01/DOC0001.PDF", body: zeros}), nil, RefusedZipBomb, false},
		{"bomb (entry size)", zipOf(t, zent{name: "big.bin", body: zeros}), func(l *Limits) { l.MaxRatio = 0 }, RefusedZipBomb, false},
		{"bomb (total)", zipOf(t, zent{name: "a", body: zeros[:600<<10]}, zent{name: "b", body: zeros[:600<<10]}),
			func(l *Limits) { l.MaxRatio = 0; l.MaxTotalSize = 1 << 20 }, RefusedZipBomb, false},
		{"archive too large", valid, func(l *Limits) { l.MaxTotalSize = 100 }, RefusedZipTooLarge, false},
		{"dot-dot", zipOf(t, zent{name: "IHE_XDM/../../etc/passwd", body: []byte("x")}), nil, RefusedPathTraversal, false},
		{"absolute", zipOf(t, zent{name: "/etc/passwd", body: []byte("x")}), nil, RefusedPathTraversal, false},
		{"backslash", zipOf(t, zent{name: `IHE_XDM\..\x`, body: []byte("x")}), nil, RefusedPathTraversal, false},
		{"drive letter", zipOf(t, zent{name: "C:/Windows/x", body: []byte("x")}), nil, RefusedPathTraversal, false},
		{"symlink", zipOf(t, zent{name: "IHE_XDM/SUBSET01/DOC0001.PDF", body: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}), nil, RefusedSymlink, false},
		{"duplicate", zipOf(t, zent{name: "README.TXT", body: []byte("a")}, zent{name: "readme.txt", body: []byte("b")}), nil, RefusedDuplicateEntry, false},
		{"too many entries", zipOf(t, many...), nil, RefusedTooManyEntries, false},
		{"no metadata", zipOf(t, zent{name: "README.TXT", body: []byte("a")}), nil, RefusedMissingMetadata, false},
		{"rezip identity", rezip(t, valid, func(e zent) *zent { return &e }), nil, "", false},
		{"bad metadata", zipOf(t, zent{name: "IHE_XDM/SUBSET01/METADATA.XML", body: []byte("<SubmitObjectsRequest><unclosed>")}), nil, RefusedBadMetadata, false},
		{"not ebRIM", zipOf(t, zent{name: "IHE_XDM/SUBSET01/METADATA.XML", body: []byte("<html/>")}), nil, RefusedBadMetadata, false},
		{"missing document", rezip(t, valid, func(e zent) *zent {
			if strings.HasSuffix(e.name, "DOC0002.XML") {
				return nil
			}
			return &e
		}), nil, RefusedMissingDocument, true},
		{"size mismatch", rezip(t, valid, func(e zent) *zent {
			if strings.HasSuffix(e.name, "DOC0001.PDF") {
				e.body = append(e.body, '\n')
			}
			return &e
		}), nil, RefusedSizeMismatch, true},
		{"hash mismatch", rezip(t, valid, func(e zent) *zent {
			if strings.HasSuffix(e.name, "DOC0001.PDF") {
				e.body = bytes.Replace(e.body, []byte("test"), []byte("TEST"), 1)
			}
			return &e
		}), nil, RefusedHashMismatch, true},
		{"nested zip, one level", withDoc(inner, "application/zip"), nil, "", false},
		{"nested zip, two levels", withDoc(zipOf(t, zent{name: "in.zip", body: inner}), "application/zip"), nil, RefusedNestedArchive, false},
		{"nested zip refused at depth 0", withDoc(inner, "application/zip"), func(l *Limits) { l.MaxDepth = 0 }, RefusedNestedArchive, false},
		{"nested bomb", withDoc(zipOf(t, zent{name: "z", body: zeros}), "application/zip"), nil, RefusedZipBomb, false},
	}
	two := zipOf(t, zent{name: "IHE_XDM/SUBSET01/METADATA.XML", body: meta}, zent{name: "IHE_XDM/SUBSET02/METADATA.XML", body: meta})
	tests = append(tests, struct {
		name string
		zip  []byte
		lim  func(*Limits)
		code string
		doc  bool
	}{"two subsets", two, nil, RefusedManySubsets, false})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lim := DefaultLimits()
			if tc.lim != nil {
				tc.lim(&lim)
			}
			start := time.Now()
			_, err := readXDM(tc.zip, lim)
			if got := refusalCode(err); got != tc.code {
				t.Fatalf("code %q, want %q (%v)", got, tc.code, err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			var r *Refusal
			if errors.As(err, &r) {
				if r.Reason == "" || r.ReasonFR == "" || !strings.HasSuffix(r.Reason, ".") {
					t.Errorf("refusal without a clear sentence: %+v", r)
				}
				if (r.Doc != "") != tc.doc {
					t.Errorf("Doc = %q", r.Doc)
				}
			}
		})
	}
}

// A bomb of a few kilobytes: its size on the wire is small, and the reader
// stops at the ratio bound instead of inflating it all.
func TestDMPZipBombIsSmall(t *testing.T) {
	z := zipOf(t, zent{name: "IHE_XDM/SUBSET01/DOC0001.PDF", body: make([]byte, 8<<20)})
	if len(z) > 16<<10 {
		t.Fatalf("the bomb is %d bytes", len(z))
	}
	_, err := readXDM(z, DefaultLimits())
	if refusalCode(err) != RefusedZipBomb {
		t.Fatal(err)
	}
	if !strings.Contains(err.Error(), "times its compressed size") {
		t.Errorf("reason: %v", err)
	}
}

// A hand-made package in the style of the French CI-SIS (not made by Pack).
func TestDMPReadCISISPackage(t *testing.T) {
	meta := readTestdata(t, "cisis-metadata.xml")
	cda := readTestdata(t, "cda-consultation.xml")
	z := zipOf(t,
		zent{name: "README.TXT", body: []byte("test")},
		zent{name: "INDEX.HTM", body: []byte("<html></html>")},
		zent{name: "IHE_XDM/", mode: fs.ModeDir | 0o755},
		zent{name: "IHE_XDM/SUBSET01/METADATA.XML", body: meta},
		zent{name: "IHE_XDM/SUBSET01/doc0001.xml", body: cda}, // another case than its URI
	)
	sub, err := readXDM(z, DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if sub.UniqueID != "1.2.250.1.999.7.2.20261203140000" || sub.SourceID != "1.2.250.1.999.7" || sub.PatientINS != patientA ||
		sub.ContentType.Code != "04" || !sub.Submitted.Equal(time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)) {
		t.Errorf("set: %+v", sub)
	}
	d := sub.Documents[0]
	if d.UniqueID != "1.2.250.1.999.7.1^CR-2026-0042" || d.EntryUUID != "Document01" || d.TypeCode.Code != "11488-4" ||
		d.ClassCode.Code != "10" || d.FacilityType.Code != "SA07" || d.PracticeSetting.Code != "AMBULATOIRE" ||
		d.Visibility != HiddenFromProfessionals|InvisiblePatient || len(d.Confidentiality) != 3 ||
		d.Replaces != "urn:uuid:0f6a4c2e-1b7d-4e55-9a3c-7d2e8b1f0a11" || d.SHA1 != "7b4d451be96b211a65c8ff032bd82e0b287dfb39" ||
		!d.ServiceStop.Equal(time.Date(2026, 12, 3, 13, 30, 0, 0, time.UTC)) {
		t.Errorf("document: %+v", d)
	}
	a := d.Authors[0]
	if a.PersonID != doctor || a.LastName != "CARDIO" || a.FirstName != "Jeanne" || a.InstitutionID != orgID ||
		a.InstitutionName != "Cabinet de cardiologie" || a.Role != "Auteur" || a.Specialty != "G15_10/SM04" {
		t.Errorf("author: %+v", a)
	}
	if outs := Validate(sub, Check{PatientINS: patientA, By: sender}); !AllPass(outs) {
		t.Errorf("refused: %+v", outs)
	}
	code, ins := CDAHeaders(sub)
	if code != "11488-4" || ins != "O" {
		t.Errorf("CDAHeaders = %q, %q", code, ins)
	}
}

func TestDMPValidate(t *testing.T) {
	base, err := readXDM(packBytes(t, sampleSubmission(t)), DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clone := func() *Submission {
		s := *base
		s.Documents = append([]Document(nil), base.Documents...)
		for i := range s.Documents {
			s.Documents[i].Authors = append([]Author(nil), base.Documents[i].Authors...)
		}
		return &s
	}
	codes := &CodeLists{TypeCodes: map[string]bool{"11490-0": true, "11488-4": true}}
	tests := []struct {
		name  string
		mod   func(s *Submission, c *Check)
		codes [2]string // of the two documents
	}{
		{"valid", func(*Submission, *Check) {}, [2]string{"", ""}},
		{"deposit address: any patient", func(s *Submission, c *Check) { c.PatientINS = "" }, [2]string{"", ""}},
		{"bad INS key", func(s *Submission, c *Check) { s.Documents[0].PatientINS = "279035121518988" }, [2]string{RefusedBadINS, ""}},
		{"not an INS", func(s *Submission, c *Check) { s.Documents[0].PatientINS = "0456^^^&1.2.3.4&ISO^PI" }, [2]string{RefusedBadINS, ""}},
		{"another patient (addressed)", func(s *Submission, c *Check) { c.PatientINS = patientB }, [2]string{RefusedWrongPatient, RefusedWrongPatient}},
		{"another patient (in the set)", func(s *Submission, c *Check) { c.PatientINS = ""; s.Documents[1].PatientINS = patientB }, [2]string{"", RefusedWrongPatient}},
		{"author not the sender", func(s *Submission, c *Check) { c.By.NationalID = doctor2 }, [2]string{RefusedAuthorMismatch, RefusedAuthorMismatch}},
		{"author of the organisation", func(s *Submission, c *Check) {
			c.By = Depositor{Address: "app@ch.test", Software: true, Organisation: "123456789"}
		}, [2]string{"", ""}},
		{"organisation differs", func(s *Submission, c *Check) {
			c.By = Depositor{Address: "app@ch.test", Software: true, Organisation: "999999999"}
		}, [2]string{RefusedAuthorMismatch, RefusedAuthorMismatch}},
		{"sender without identity", func(s *Submission, c *Check) { c.By = Depositor{Address: "x@ch.test"} }, [2]string{RefusedAuthorMismatch, RefusedAuthorMismatch}},
		{"bare RPPS as author", func(s *Submission, c *Check) { s.Documents[0].Authors[0].PersonID = doctor[1:] }, [2]string{"", ""}},
		{"missing title", func(s *Submission, c *Check) { s.Documents[1].Title = "" }, [2]string{"", RefusedMissingField}},
		{"missing class", func(s *Submission, c *Check) { s.Documents[0].ClassCode = Code{} }, [2]string{RefusedMissingField, ""}},
		{"unknown type code", func(s *Submission, c *Check) { c.Codes = codes; s.Documents[1].TypeCode.Code = "99999-9" }, [2]string{"", RefusedUnknownCode}},
		{"known type codes", func(s *Submission, c *Check) { c.Codes = codes }, [2]string{"", ""}},
		{"future", func(s *Submission, c *Check) { s.Documents[0].CreationTime = now.Add(72 * time.Hour) }, [2]string{RefusedBadDate, ""}},
		{"duplicate uniqueId", func(s *Submission, c *Check) { s.Documents[1].UniqueID = s.Documents[0].UniqueID }, [2]string{"", RefusedDuplicateDoc}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := clone()
			c := Check{PatientINS: patientA, By: sender, Now: now}
			tc.mod(s, &c)
			outs := Validate(s, c)
			for i, o := range outs {
				if o.Code != tc.codes[i] {
					t.Errorf("document %d: %q (%s), want %q", i, o.Code, o.Reason, tc.codes[i])
				}
				if o.Code != "" && (o.Reason == "" || o.Deposited) {
					t.Errorf("document %d: %+v", i, o)
				}
			}
		})
	}
}

func TestDMPLoadCodeLists(t *testing.T) {
	f := t.TempDir() + "/codes.toml"
	os.WriteFile(f, []byte("type_codes = [\"11488-4\"]\nclass_codes = [\"10\"]\n"), 0o600)
	c, err := LoadCodeLists(f)
	if err != nil || !c.TypeCodes["11488-4"] || !c.ClassCodes["10"] || len(c.FormatCodes) != 0 {
		t.Fatalf("%+v %v", c, err)
	}
	os.WriteFile(f, []byte("typecodes = [\"x\"]\n"), 0o600)
	if _, err := LoadCodeLists(f); err == nil || !strings.Contains(err.Error(), "typecodes") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestDMPCDAHeaders(t *testing.T) {
	cda := readTestdata(t, "cda-consultation.xml")
	noBirth := bytes.Replace(cda, []byte(`<birthTime value="19790301"/>`), nil, 1)
	badKey := bytes.Replace(cda, []byte(patientA), []byte("279035121518988"), 1)
	other := bytes.Replace(cda, []byte(`code="11488-4"`), []byte(`code="34133-9"`), 1)
	doc := func(b ...[]byte) *Submission {
		s := &Submission{}
		for _, c := range b {
			s.Documents = append(s.Documents, Document{Content: c})
		}
		return s
	}
	for _, tc := range []struct {
		name      string
		sub       *Submission
		code, ins string
	}{
		{"qualified", doc(cda), "11488-4", "O"},
		{"two CDAs and a PDF", doc(cda, []byte("%PDF-1.4"), other), "11488-4,34133-9", "O"},
		{"no birth date", doc(noBirth), "11488-4", "N"},
		{"bad key", doc(badKey), "11488-4", "N"},
		{"no CDA", doc([]byte("%PDF-1.4"), []byte("<html/>")), "", ""},
	} {
		code, ins := CDAHeaders(tc.sub)
		if code != tc.code || ins != tc.ins {
			t.Errorf("%s: %q, %q; want %q, %q", tc.name, code, ins, tc.code, tc.ins)
		}
	}
	if SubjectPrefix != "XDM/1.0/DDM+" {
		t.Error(SubjectPrefix)
	}
}

func TestDMPParseMetadataPatientForms(t *testing.T) {
	for cx, want := range map[string]string{
		patientA + "^^^&1.2.250.1.213.1.4.8&ISO":     patientA,
		patientA + "^^^&1.2.250.1.213.1.4.8&ISO^NH":  patientA,
		patientA + "^^^&1.2.250.1.213.1.4.10&ISO^NH": patientA,
		"0456^^^&1.2.3&ISO^PI":                       "0456^^^&1.2.3&ISO^PI",
	} {
		if got := patientFromCX(cx); got != want {
			t.Errorf("%s: %q", cx, got)
		}
	}
}
