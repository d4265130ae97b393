package dmp

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// mimeMessage builds a multipart/mixed message: a text body and the
// given attachments (name, media type, content), base64-encoded.
func mimeMessage(extra string, atts ...[3]string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: cardio@ch.test\r\nTo: %s@patient.test\r\nSubject: =?UTF-8?Q?Compte_rendu?=\r\n%sMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n", patientA, extra)
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour, voici le compte rendu.\r\n")
	for _, a := range atts {
		fmt.Fprintf(&b, "--b1\r\nContent-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n",
			a[1], a[0], a[0], base64.StdEncoding.EncodeToString([]byte(a[2])))
	}
	b.WriteString("--b1--\r\n")
	return []byte(b.String())
}

func TestDMPFromAttachments(t *testing.T) {
	cda := string(readTestdata(t, "cda-consultation.xml"))
	pdf := "%PDF-1.4\n% a test PDF\n%%EOF\n"
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	msg := mimeMessage("X-MSS-CODECDA: 11488-4\r\n",
		[3]string{"lettre.pdf", "application/pdf", pdf},
		[3]string{"cr.xml", "text/xml; charset=ISO-8859-1", cda}, // the charset must not be applied
		[3]string{"photo.png", "image/png", "PNG"},
		[3]string{"notes.xml", "application/xml", "<notes/>"},
	)
	sub, err := FromAttachments(bytes.NewReader(msg), patientA, sender, now)
	if err != nil {
		t.Fatal(err)
	}
	if sub.FromXDM || sub.PatientINS != patientA || sub.Title != "Compte rendu" || len(sub.Documents) != 2 {
		t.Fatalf("%+v", sub)
	}
	p, c := sub.Documents[0], sub.Documents[1]
	if p.Title != "lettre" || p.MimeType != "application/pdf" || string(p.Content) != pdf || p.Size != int64(len(pdf)) ||
		p.TypeCode.Code != UnknownType || p.URI != "lettre.pdf" || len(p.SHA1) != 40 || p.Authors[0].PersonID != doctor ||
		!p.CreationTime.Equal(now) || p.FormatCode.Code != "urn:ihe:iti:xds-sd:pdf:2008" {
		t.Errorf("pdf: %+v", p)
	}
	if c.Title != "Compte rendu de consultation de cardiologie" || c.TypeCode.Code != "11488-4" || string(c.Content) != cda ||
		c.UniqueID != "1.2.250.1.999.7.1^CR-2026-0042" || !c.CreationTime.Equal(time.Date(2026, 12, 3, 13, 30, 0, 0, time.UTC)) {
		t.Errorf("cda: %+v", c)
	}
	if outs := Validate(sub, Check{PatientINS: patientA, By: sender, Codes: &CodeLists{TypeCodes: map[string]bool{"11488-4": true}}}); !AllPass(outs) {
		t.Errorf("refused: %+v", outs)
	}
	if code, ins := CDAHeaders(sub); code != "11488-4" || ins != "O" {
		t.Errorf("CDAHeaders: %q %q", code, ins)
	}
	// The attachments can be packed and read back.
	z := packBytes(t, sub)
	if _, err := readXDM(z, DefaultLimits()); err != nil {
		t.Fatal(err)
	}

	// A PDF alone takes the header's type.
	sub, err = FromAttachments(bytes.NewReader(mimeMessage("X-MSS-CODECDA: 11490-0\r\n", [3]string{"l.pdf", "application/pdf", pdf})), patientA, sender, now)
	if err != nil || len(sub.Documents) != 1 || sub.Documents[0].TypeCode.Code != "11490-0" {
		t.Fatalf("%+v %v", sub, err)
	}
	// Nothing to deposit.
	sub, err = FromAttachments(bytes.NewReader(mimeMessage("")), patientA, sender, now)
	if err != nil || len(sub.Documents) != 0 {
		t.Fatalf("%+v %v", sub, err)
	}
	// A bad patient.
	if _, err := FromAttachments(bytes.NewReader(msg), "279035121518988", sender, now); refusalCode(err) != RefusedBadINS {
		t.Errorf("bad INS: %v", err)
	}
}

func TestDMPFindXDM(t *testing.T) {
	z := packBytes(t, sampleSubmission(t))
	msg := mimeMessage("", [3]string{"lettre.pdf", "application/pdf", "%PDF"}, [3]string{"ihe_xdm.zip", "application/octet-stream", string(z)})
	got, err := FindXDM(bytes.NewReader(msg))
	if err != nil || !bytes.Equal(got, z) {
		t.Fatalf("FindXDM: %d bytes, %v", len(got), err)
	}
	if _, err := readXDM(got, DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	got, err = FindXDM(bytes.NewReader(mimeMessage("", [3]string{"lettre.pdf", "application/pdf", "%PDF"})))
	if err != nil || got != nil {
		t.Errorf("no package: %d bytes, %v", len(got), err)
	}
	// A message that is not MIME at all.
	got, err = FindXDM(strings.NewReader("not a message"))
	if got != nil {
		t.Errorf("%v %v", got, err)
	}
}
