package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/dmp"
)

// carepost dmp pack: two files packed, read back with dmp.ReadXDM and
// checked as the server would check them.
func TestDMPPackCommand(t *testing.T) {
	dir := t.TempDir()
	pdf := filepath.Join(dir, "lettre.pdf")
	cda := filepath.Join(dir, "cr.xml")
	out := filepath.Join(dir, "IHE_XDM.ZIP")
	cdaBytes, err := os.ReadFile("../../dmp/testdata/cda-consultation.xml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pdf, []byte("%PDF-1.4\n%%EOF\n"), 0o600)
	os.WriteFile(cda, cdaBytes, 0o600)
	stdout, stderr, code := runIn("dmp", "pack", "--ins", "279035121518989", "--author", "10001045367", "--type", "11488-4",
		"--hide-from-patient", pdf, cda, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "2 document(s)") || !strings.Contains(stdout, dmp.SubjectPrefix) {
		t.Errorf("stdout: %s", stdout)
	}
	z, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := dmp.ReadXDM(bytes.NewReader(z), int64(len(z)), dmp.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Documents) != 2 || sub.PatientINS != "279035121518989" {
		t.Fatalf("%+v", sub)
	}
	p, c := sub.Documents[0], sub.Documents[1]
	if p.Title != "lettre" || p.MimeType != "application/pdf" || p.Visibility != dmp.InvisiblePatient || p.Authors[0].PersonID != "810001045367" {
		t.Errorf("pdf: %+v", p)
	}
	if c.Title != "Compte rendu de consultation de cardiologie" || !bytes.Equal(c.Content, cdaBytes) || c.TypeCode.Code != "11488-4" {
		t.Errorf("cda: %+v", c)
	}
	outs := dmp.Validate(sub, dmp.Check{PatientINS: "279035121518989", By: dmp.Depositor{NationalID: "810001045367"}})
	if !dmp.AllPass(outs) {
		t.Errorf("refused: %+v", outs)
	}
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Error("temporary file left")
	}

	// Mistakes are usage errors with a clear sentence, and nothing is written.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ins", "279035121518988", "--author", "810001045367", "--type", "11488-4", pdf}, "key"},
		{[]string{"--ins", "279035121518989", "--author", "12", "--type", "11488-4", pdf}, "--author"},
		{[]string{"--ins", "279035121518989", "--author", "810001045367", pdf}, "--type is required"},
		{[]string{"--ins", "279035121518989", "--author", "810001045367", "--type", "1", filepath.Join(dir, "x.doc")}, "only PDF"},
	} {
		bad := filepath.Join(dir, "bad.zip")
		_, stderr, code := runIn(append(append([]string{"dmp", "pack"}, tc.args...), "--out", bad)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, %s", tc.args, code, stderr)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Errorf("%v: wrote a package", tc.args)
		}
	}
}
