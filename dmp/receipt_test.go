package dmp

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

const testOriginal = "From: Dr Jeanne Martin <jeanne.martin@ch-exemple.mssante.fr>\r\n" +
	"To: 279035121518989@patient.mssante.fr\r\n" +
	"Subject: =?utf-8?q?XDM/1.0/DDM+Lettre_de_sortie_=C3=A9t=C3=A9?=\r\n" +
	"Message-ID: <orig-1@ch-exemple.mssante.fr>\r\n" +
	"Disposition-Notification-To: jeanne.martin@ch-exemple.mssante.fr\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Bonjour, ci-joint la lettre de sortie de l'été.\r\n"

func receiptInput(outcomes ...Outcome) ReceiptInput {
	return ReceiptInput{
		Original:          []byte(testOriginal),
		OriginalRecipient: "279035121518989@patient.mssante.fr",
		FinalRecipient:    "279035121518989@patient.mssante.fr",
		From:              "279035121518989@patient.mssante.fr",
		To:                "jeanne.martin@ch-exemple.mssante.fr",
		Outcomes:          outcomes,
		PatientName:       "DUPONT Émilie",
		PatientBirthDate:  "19790312",
		Now:               time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
		Hostname:          "mx.carepost.test",
	}
}

type parsedPart struct {
	contentType string
	params      map[string]string
	body        []byte
}

// parseReport reads a receipt with go-message: its header and its parts,
// decoded.
func parseReport(t *testing.T, b []byte) (mail.Header, string, map[string]string, []parsedPart) {
	t.Helper()
	e, err := message.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	ct, params, err := e.Header.ContentType()
	if err != nil {
		t.Fatal(err)
	}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("not multipart: %s", ct)
	}
	var parts []parsedPart
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pct, pparams, _ := p.Header.ContentType()
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, parsedPart{pct, pparams, body})
	}
	return mail.Header{Header: e.Header}, ct, params, parts
}

func dispositionFields(t *testing.T, body []byte) textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(body, '\r', '\n'))))
	if err != nil {
		t.Fatalf("the disposition-notification part: %v\n%s", err, body)
	}
	return h
}

func TestMDNOK(t *testing.T) {
	in := receiptInput(
		Outcome{UniqueID: "1.2.3.1", Title: "Lettre de sortie", Deposited: true, Ref: "12"},
		Outcome{UniqueID: "1.2.3.2", Title: "Compte rendu opératoire", Deposited: true, Ref: "13"},
	)
	b, err := MDN(in)
	if err != nil {
		t.Fatal(err)
	}
	h, ct, params, parts := parseReport(t, b)
	if ct != "multipart/report" || params["report-type"] != "disposition-notification" {
		t.Fatalf("Content-Type %s %v", ct, params)
	}
	if len(parts) != 3 || parts[0].contentType != "text/plain" || parts[1].contentType != "message/disposition-notification" || parts[2].contentType != "message/rfc822" {
		t.Fatalf("parts %+v", parts)
	}
	subj, _ := h.Subject()
	if subj != "Accusé de réception : XDM/1.0/DDM+Lettre de sortie été" {
		t.Errorf("subject %q", subj)
	}
	for k, want := range map[string]string{
		"Auto-Submitted": "auto-replied",
		"In-Reply-To":    "<orig-1@ch-exemple.mssante.fr>",
		"References":     "<orig-1@ch-exemple.mssante.fr>",
		"To":             "<jeanne.martin@ch-exemple.mssante.fr>",
		"From":           "<279035121518989@patient.mssante.fr>",
		"Date":           "Mon, 07 Dec 2026 10:00:00 +0000",
		"Mime-Version":   "1.0",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if id, _ := h.MessageID(); !strings.HasSuffix(id, "@mx.carepost.test") {
		t.Errorf("Message-ID %q", id)
	}
	text := string(parts[0].body)
	if parts[0].params["charset"] != "utf-8" {
		t.Errorf("text charset %v", parts[0].params)
	}
	for _, want := range []string{"Compte rendu opératoire", "Résultat : déposé", "Result: deposited", "DUPONT Émilie", "« XDM/1.0/DDM+Lettre de sortie été »"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "Résultat") > strings.Index(text, "Result:") {
		t.Error("French comes first")
	}
	f := dispositionFields(t, parts[1].body)
	for k, want := range map[string]string{
		"Reporting-UA":        "mx.carepost.test; Carepost",
		"Original-Recipient":  "rfc822;279035121518989@patient.mssante.fr",
		"Final-Recipient":     "rfc822;279035121518989@patient.mssante.fr",
		"Original-Message-ID": "<orig-1@ch-exemple.mssante.fr>",
		"Disposition":         "automatic-action/MDN-sent-automatically; processed",
	} {
		if got := f.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if got := f.Values("X-Carepost-Document"); len(got) != 2 || got[0] != "1; 1.2.3.1; deposited" {
		t.Errorf("X-Carepost-Document %q", got)
	}
	if !bytes.Equal(parts[2].body, []byte(testOriginal)) {
		t.Errorf("the original is not intact:\n%q", parts[2].body)
	}
}

func TestMDNKO(t *testing.T) {
	in := receiptInput(
		Outcome{UniqueID: "1.2.3.1", Title: "Lettre de sortie", Deposited: true, Ref: "12"},
		Outcome{UniqueID: "1.2.3.2", Title: "Compte rendu opératoire", Code: "HASH_MISMATCH", Reason: "Le contenu ne correspond pas à son empreinte^SHA-1."},
		Outcome{UniqueID: "1.2.3.3", Title: "Ordonnance", Code: MHDRefused, Reason: "The record refused the document: type not allowed"},
	)
	b, err := MDN(in)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _, parts := parseReport(t, b)
	subj, _ := h.Subject()
	if subj != "[KO Intégration système !][HASH_MISMATCH] XDM/1.0/DDM+Compte rendu opératoire DUPONT Émilie 19790312" {
		t.Errorf("subject %q", subj)
	}
	f := dispositionFields(t, parts[1].body)
	if got := f.Get("Disposition"); got != "automatic-action/MDN-sent-automatically; processed/Error: HASH_MISMATCH^Le contenu ne correspond pas a son empreinte SHA-1." {
		t.Errorf("Disposition %q", got)
	}
	if got := f.Values("X-Carepost-Document"); len(got) != 3 || got[2] != "3; 1.2.3.3; refused; MHD_REFUSED" {
		t.Errorf("X-Carepost-Document %q", got)
	}
	text := string(parts[0].body)
	for _, want := range []string{"Résultat : refusé", "Motif : Le contenu ne correspond pas à son empreinte^SHA-1. (code HASH_MISMATCH)", "Reason: The record refused the document: type not allowed (code MHD_REFUSED)", "n'a pas pu être intégré"} {
		if !strings.Contains(text, want) {
			t.Errorf("the text lacks %q:\n%s", want, text)
		}
	}
	// Unknown patient: left out of the subject.
	in.PatientName, in.PatientBirthDate = "", ""
	b, _ = MDN(in)
	h, _, _, _ = parseReport(t, b)
	if subj, _ := h.Subject(); subj != "[KO Intégration système !][HASH_MISMATCH] XDM/1.0/DDM+Compte rendu opératoire" {
		t.Errorf("subject without patient %q", subj)
	}
	// Every line of the raw message is short, and only part 3 (8bit)
	// carries raw non-ASCII.
	for _, line := range strings.Split(string(b), "\r\n") {
		if len(line) > 998 {
			t.Errorf("a line of %d bytes", len(line))
		}
	}
}

func TestReceiptFailureNotice(t *testing.T) {
	ok := receiptInput(Outcome{UniqueID: "1", Title: "A", Deposited: true})
	if b, err := FailureNotice(ok); err != nil || b != nil {
		t.Fatalf("a notice when all was deposited: %v %q", err, b)
	}
	in := receiptInput(Outcome{UniqueID: "1", Title: "A", Deposited: true}, Outcome{UniqueID: "2", Title: "Bilan", Code: "TYPE_NOT_ALLOWED", Reason: "Ce type de document n'est pas autorisé pour votre profession."})
	in.Original = []byte("Subject: bilan\nMessage-ID: <o2@x>\n") // a header alone, LF line ends
	b, err := FailureNotice(in)
	if err != nil {
		t.Fatal(err)
	}
	h, ct, _, parts := parseReport(t, b)
	if ct != "multipart/mixed" || len(parts) != 2 || parts[0].contentType != "text/plain" || parts[1].contentType != "message/rfc822" {
		t.Fatalf("%s %+v", ct, parts)
	}
	if h.Get("Auto-Submitted") != "auto-replied" || h.Get("In-Reply-To") != "<o2@x>" {
		t.Errorf("header %v", h)
	}
	if subj, _ := h.Subject(); !strings.HasPrefix(subj, "[KO Intégration système !][TYPE_NOT_ALLOWED] XDM/1.0/DDM+Bilan") {
		t.Errorf("subject %q", subj)
	}
	if !strings.Contains(string(parts[0].body), "n'est pas autorisé pour votre profession") {
		t.Errorf("text %s", parts[0].body)
	}
	if string(parts[1].body) != "Subject: bilan\r\nMessage-ID: <o2@x>\r\n\r\n" {
		t.Errorf("original %q", parts[1].body)
	}
	if _, err := FailureNotice(ReceiptInput{}); err == nil {
		t.Error("an empty input passed")
	}
}

func TestWantsReceipt(t *testing.T) {
	hdr := func(s string) textproto.Header {
		h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(s + "\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		header, envelope, want string
		ok                     bool
	}{
		{"Disposition-Notification-To: Dr Martin <Jeanne.Martin@ch-exemple.mssante.fr>\r\n", "jeanne.martin@ch-exemple.mssante.fr", "Jeanne.Martin@ch-exemple.mssante.fr", true},
		{"Disposition-Notification-To: other@elsewhere.test\r\n", "jeanne.martin@ch-exemple.mssante.fr", "", false},
		{"Disposition-Notification-To: other@elsewhere.test, <jeanne.martin@ch-exemple.mssante.fr>\r\n", "<jeanne.martin@ch-exemple.mssante.fr>", "jeanne.martin@ch-exemple.mssante.fr", true},
		{"Disposition-Notification-To: jeanne.martin@ch-exemple.mssante.fr\r\n", "", "", false},
		{"Subject: x\r\n", "jeanne.martin@ch-exemple.mssante.fr", "", false},
		{"Disposition-Notification-To: <<<\r\n", "jeanne.martin@ch-exemple.mssante.fr", "", false},
	} {
		got, ok := WantsReceipt(hdr(tc.header), tc.envelope)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q / %q: %q %v, want %q %v", tc.header, tc.envelope, got, ok, tc.want, tc.ok)
		}
	}
}

func TestReceiptChooses(t *testing.T) {
	h, _ := textproto.ReadHeader(bufio.NewReader(strings.NewReader(testOriginal)))
	ko := receiptInput(Outcome{UniqueID: "2", Title: "Bilan", Code: "X", Reason: "r"})
	ok := receiptInput(Outcome{UniqueID: "1", Title: "A", Deposited: true})
	sender := "jeanne.martin@ch-exemple.mssante.fr"
	if b, to, err := Receipt(ok, h, sender); err != nil || to != sender || !bytes.Contains(b, []byte("multipart/report")) {
		t.Errorf("MDN asked, OK: %v %q", err, to)
	}
	var none textproto.Header
	if b, to, err := Receipt(ok, none, sender); err != nil || b != nil || to != "" {
		t.Errorf("no request, OK: %v %q", err, to)
	}
	if b, to, err := Receipt(ko, none, sender); err != nil || to != sender || !bytes.Contains(b, []byte("multipart/mixed")) {
		t.Errorf("no request, KO: %v %q", err, to)
	}
	if b, _, err := Receipt(ko, none, ""); err != nil || b != nil {
		t.Errorf("null sender: %v", err)
	}
}

// TestMDNPython parses the MDN with python3's email package, an
// independent MIME parser, when python3 is present.
func TestMDNPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import email.policy").Run() != nil {
		t.Skip("python3 with its email package is not available: the MDN is not checked by a second parser")
	}
	in := receiptInput(
		Outcome{UniqueID: "1.2.3.1", Title: "Lettre de sortie", Deposited: true},
		Outcome{UniqueID: "1.2.3.2", Title: "Compte rendu opératoire", Code: "HASH_MISMATCH", Reason: "Empreinte différente."},
	)
	b, err := MDN(in)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mdn.eml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	const script = `
import sys, email, email.policy
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'disposition-notification'
assert str(m['Subject']).startswith('[KO Intégration système !][HASH_MISMATCH]'), str(m['Subject'])
assert m['Auto-Submitted'] == 'auto-replied'
p = list(m.iter_parts())
assert [x.get_content_type() for x in p] == ['text/plain', 'message/disposition-notification', 'message/rfc822'], [x.get_content_type() for x in p]
text = p[0].get_content()
assert 'Résultat : refusé' in text and 'Empreinte différente.' in text, text
fields = p[1].get_payload()[0]
assert fields['Disposition'].startswith('automatic-action/MDN-sent-automatically; processed/Error: HASH_MISMATCH^'), fields['Disposition']
assert fields['Original-Message-ID'] == '<orig-1@ch-exemple.mssante.fr>'
orig = p[2].get_payload()[0]
assert orig['Message-ID'] == '<orig-1@ch-exemple.mssante.fr>'
assert 'été' in str(orig['Subject'])
assert not m.defects and not any(x.defects for x in p), (m.defects, [x.defects for x in p])
print('ok')
`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python3's email package: %v\n%s", err, out)
	}
}
