package dmp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// The reader and the metadata parser take anything without panicking,
// and refuse what they refuse with a *Refusal (the seeds are in
// testdata/fuzz/FuzzReadXDM and testdata/fuzz/FuzzParseMetadata; set
// DMP_WRITE_SEEDS=1 to write them again).

func FuzzReadXDM(f *testing.F) {
	lim := Limits{MaxEntries: 20, MaxEntrySize: 1 << 20, MaxTotalSize: 2 << 20, MaxRatio: 50, MaxDepth: 1}
	f.Fuzz(func(t *testing.T, b []byte) {
		sub, err := ReadXDM(bytes.NewReader(b), int64(len(b)), lim)
		if err != nil {
			var r *Refusal
			if !errors.As(err, &r) || r.Code == "" || r.Reason == "" {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		// What is read is checked: each document is there, whole.
		for _, d := range sub.Documents {
			if int64(len(d.Content)) != d.Size {
				t.Fatalf("document %q: %d bytes, size %d", d.UniqueID, len(d.Content), d.Size)
			}
		}
		Validate(sub, Check{PatientINS: patientA, By: sender})
		CDAHeaders(sub)
	})
}

func FuzzParseMetadata(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		sub, err := ParseMetadata(b)
		if err != nil {
			var r *Refusal
			if !errors.As(err, &r) || r.Code == "" {
				t.Fatalf("not a refusal: %v", err)
			}
			return
		}
		if len(sub.Documents) == 0 {
			t.Fatal("a submission without documents")
		}
		Validate(sub, Check{By: sender})
	})
}

// TestDMPWriteFuzzSeeds writes the seed corpora when DMP_WRITE_SEEDS=1.
func TestDMPWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("DMP_WRITE_SEEDS") != "1" {
		t.Skip("DMP_WRITE_SEEDS=1 writes the seeds")
	}
	valid := packBytes(t, sampleSubmission(t))
	small := &Submission{PatientINS: patientA, Authors: []Author{{PersonID: doctor}}, Documents: []Document{
		{Title: "t", MimeType: "application/pdf", TypeCode: Code{Code: "11490-0"}, Content: []byte("%PDF")}}}
	meta := readTestdata(t, "cisis-metadata.xml")
	write := func(target, name string, b []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(b))+")\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("FuzzReadXDM", "valid", valid)
	write("FuzzReadXDM", "small", packBytes(t, small))
	write("FuzzReadXDM", "cisis", zipOf(t, zent{name: "IHE_XDM/SUBSET01/METADATA.XML", body: meta},
		zent{name: "IHE_XDM/SUBSET01/DOC0001.XML", body: readTestdata(t, "cda-consultation.xml")}))
	write("FuzzReadXDM", "traversal", zipOf(t, zent{name: "../x", body: []byte("x")}))
	write("FuzzReadXDM", "nested", zipOf(t, zent{name: "a.zip", body: zipOf(t, zent{name: "b", body: []byte("b")})}))
	write("FuzzReadXDM", "bomb", zipOf(t, zent{name: "z", body: make([]byte, 200<<10)}))
	write("FuzzReadXDM", "empty", nil)
	write("FuzzParseMetadata", "cisis", meta)
	write("FuzzParseMetadata", "packed", metadataXML(func() *Submission {
		s := sampleSubmission(t)
		for i := range s.Documents {
			s.Documents[i].UniqueID, s.Documents[i].PatientINS, s.Documents[i].Authors = "1.2.3", patientA, s.Authors
			s.Documents[i].EntryUUID = "Document0" + strconv.Itoa(i+1)
		}
		return s
	}()))
	write("FuzzParseMetadata", "empty-list", []byte(`<SubmitObjectsRequest><RegistryObjectList/></SubmitObjectsRequest>`))
	write("FuzzParseMetadata", "garbage", []byte("<a><b></a>"))
}
