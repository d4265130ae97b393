package dmp

// The receipt of a deposit to its sender (docs/dmp.md "Receipts",
// docs/domain.md §1 "Receipts"):
//
//   - when the message asked for one (Disposition-Notification-To, RFC
//     8098 §2.1, and WantsReceipt agrees), an MDN in the national form: a
//     multipart/report (RFC 6522) of report-type disposition-notification
//     with a text/plain part, the message/disposition-notification part
//     (RFC 8098 §3) and the original message as message/rfc822 (the third
//     part is required by the national rules);
//   - without a request, a plain RFC 5322 message, and only when a
//     document was refused (FailureNotice).
//
// Both are auto-replies (Auto-Submitted: auto-replied, RFC 3834 §5) and
// leave through the normal outbound path, signed like any message of the
// gateway; this file only writes the bytes. The MIME structure is written
// by go-message.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// ReceiptInput is what a receipt says and to whom.
type ReceiptInput struct {
	// Original is the original message, or its header and a bounded
	// part of its body; it is attached as message/rfc822.
	Original []byte
	// OriginalMessageID is the original's Message-ID (with or without
	// its angle brackets); read from Original when empty.
	OriginalMessageID string
	// OriginalRecipient is the recipient as the sender gave it
	// (RCPT TO's ORCPT, RFC 3461), "" if unknown; FinalRecipient the
	// mailbox that processed the message (the patient's or the DMP
	// deposit address).
	OriginalRecipient, FinalRecipient string
	// From is the receipt's sender (the patient mailbox or dmp@domain),
	// To the original sender.
	From, To string
	// Outcomes are the documents' results, in order.
	Outcomes []Outcome
	// Submission, when known, gives the documents' titles and types.
	Submission *Submission
	// PatientName is the patient as the KO subject names them, "NOM
	// Prénom" (birth name first); "" when unknown.
	PatientName string
	// PatientBirthDate is the patient's birth date as the KO subject
	// gives it (as the sender wrote it, e.g. 19790312); "" when unknown.
	// (Added field: the national KO subject ends with the birth date.)
	PatientBirthDate string
	// Now is the receipt's date; time.Now when zero.
	Now time.Time
	// Hostname makes the receipt's Message-ID and names the reporting
	// agent.
	Hostname string
}

// The disposition of an MDN (RFC 8098 §3.2.6) in the national form.
const (
	DispositionOK = "automatic-action/MDN-sent-automatically; processed"
	// DispositionKO is followed by "CODE^label" of the first refused
	// document.
	DispositionKO = "automatic-action/MDN-sent-automatically; processed/Error: "
)

// WantsReceipt reads Disposition-Notification-To (RFC 8098 §2.1) and
// says whether an MDN is sent, and to which address.
//
// RFC 8098 §2.1 warns that an address other than the envelope sender's
// (the Return-Path) may make the gateway a means to send mail to third
// parties, and asks a user agent to ask its user first. A gateway has no
// user to ask, so Carepost decides: the MDN goes only to an address of
// the field that is the envelope sender's (compared case-insensitively);
// otherwise, and for a null envelope sender (a bounce, RFC 5321 §4.5.5),
// there is no MDN — the sender still gets a FailureNotice when a document
// is refused.
func WantsReceipt(h textproto.Header, envelopeFrom string) (addr string, ok bool) {
	envelopeFrom = strings.TrimSpace(strings.Trim(strings.TrimSpace(envelopeFrom), "<>"))
	if envelopeFrom == "" {
		return "", false
	}
	for _, v := range h.Values("Disposition-Notification-To") {
		list, err := mail.ParseAddressList(v)
		if err != nil {
			continue
		}
		for _, a := range list {
			if strings.EqualFold(a.Address, envelopeFrom) {
				return a.Address, true
			}
		}
	}
	return "", false
}

// Receipt writes the receipt the rules above call for, for a message of
// header h and envelope sender envelopeFrom: an MDN to the requesting
// address, else a FailureNotice to the envelope sender when a document
// was refused, else nothing (nil, "").
func Receipt(in ReceiptInput, h textproto.Header, envelopeFrom string) (msg []byte, to string, err error) {
	if addr, ok := WantsReceipt(h, envelopeFrom); ok {
		in.To = addr
		msg, err = MDN(in)
		return msg, addr, err
	}
	if envelopeFrom == "" || allDeposited(in.Outcomes) {
		return nil, "", nil
	}
	in.To = envelopeFrom
	msg, err = FailureNotice(in)
	return msg, envelopeFrom, err
}

// MDN writes the disposition notification (RFC 8098) of a deposit in the
// national form: part 1 text/plain (UTF-8, quoted-printable) with each
// document's title, result and reason in French then English; part 2
// message/disposition-notification; part 3 the original message.
//
// The Disposition is processed when every document was deposited, else
// processed/Error: CODE^label of the first refused document. When several
// were refused, the Disposition names the first (the field holds one
// error); every document's result is in the text part, and in an
// X-Carepost-Document extension field (RFC 8098 §3.3) per document:
// "n; uniqueId; deposited|refused; CODE".
func MDN(in ReceiptInput) ([]byte, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	h, err := in.header("multipart/report", map[string]string{"report-type": "disposition-notification"})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, err
	}
	if err := in.writeText(w); err != nil {
		return nil, err
	}

	// Part 2 (RFC 8098 §3.1, §3.2).
	var ph message.Header
	ph.SetContentType("message/disposition-notification", nil)
	pw, err := w.CreatePart(ph)
	if err != nil {
		return nil, err
	}
	var f strings.Builder
	fmt.Fprintf(&f, "Reporting-UA: %s; Carepost\r\n", fieldValue(in.Hostname))
	if in.OriginalRecipient != "" {
		fmt.Fprintf(&f, "Original-Recipient: rfc822;%s\r\n", fieldValue(in.OriginalRecipient))
	}
	fmt.Fprintf(&f, "Final-Recipient: rfc822;%s\r\n", fieldValue(in.FinalRecipient))
	if id := in.originalID(); id != "" {
		fmt.Fprintf(&f, "Original-Message-ID: <%s>\r\n", id)
	}
	fmt.Fprintf(&f, "Disposition: %s\r\n", disposition(in.Outcomes))
	for i, o := range in.Outcomes {
		result := "deposited"
		if !o.Deposited {
			result = "refused"
		}
		fmt.Fprintf(&f, "X-Carepost-Document: %d; %s; %s", i+1, fieldValue(o.UniqueID), result)
		if !o.Deposited {
			fmt.Fprintf(&f, "; %s", fieldValue(receiptCode(o)))
		}
		f.WriteString("\r\n")
	}
	if _, err := io.WriteString(pw, f.String()); err != nil {
		return nil, err
	}
	if err := pw.Close(); err != nil {
		return nil, err
	}
	if err := in.writeOriginal(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// FailureNotice writes the plain message (RFC 5322) sent without an MDN
// request when a document was refused: multipart/mixed, the text part of
// the MDN and the original attached as message/rfc822. It returns nil,
// nil when every document was deposited: nothing is sent then.
func FailureNotice(in ReceiptInput) ([]byte, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	if allDeposited(in.Outcomes) {
		return nil, nil
	}
	h, err := in.header("multipart/mixed", nil)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, err
	}
	if err := in.writeText(w); err != nil {
		return nil, err
	}
	if err := in.writeOriginal(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (in *ReceiptInput) check() error {
	switch {
	case len(in.Outcomes) == 0:
		return errors.New("dmp: receipt: no document outcome to report")
	case in.To == "" || in.From == "":
		return errors.New("dmp: receipt: From and To are required")
	case in.FinalRecipient == "":
		return errors.New("dmp: receipt: the final recipient is required")
	case in.Hostname == "":
		return errors.New("dmp: receipt: the hostname is required")
	case len(in.Original) == 0:
		// The national form requires the original as the third part.
		return errors.New("dmp: receipt: the original message is required")
	}
	return nil
}

// header is the receipt's top-level header (RFC 5322 §3.6; RFC 3834 §5).
// go-message writes the fields last set first (it prepends, as trace
// fields are): they are set here from the last to the first.
func (in *ReceiptInput) header(contentType string, params map[string]string) (mail.Header, error) {
	var h mail.Header
	now := in.Now
	if now.IsZero() {
		now = time.Now()
	}
	from, err := mail.ParseAddress(in.From)
	if err != nil {
		return h, fmt.Errorf("dmp: receipt: From %q: %w", in.From, err)
	}
	to, err := mail.ParseAddress(in.To)
	if err != nil {
		return h, fmt.Errorf("dmp: receipt: To %q: %w", in.To, err)
	}
	h.SetContentType(contentType, params)
	h.Set("Auto-Submitted", "auto-replied")
	if id := in.originalID(); id != "" {
		h.SetMsgIDList("References", []string{id})
		h.SetMsgIDList("In-Reply-To", []string{id})
	}
	if err := h.GenerateMessageIDWithHostname(in.Hostname); err != nil {
		return h, err
	}
	h.SetSubject(in.subject())
	h.SetAddressList("To", []*mail.Address{to})
	h.SetAddressList("From", []*mail.Address{from})
	h.SetDate(now)
	return h, nil
}

// subject is the receipt's subject. A refusal follows the national KO
// form (docs/domain.md §1):
//
//	[KO Intégration système !][CODE] XDM/1.0/DDM+<libellé> <NOM> <prénom> <ddn>
//
// with the first refused document's code and title (its type's display
// name when untitled); the patient's name and birth date are left out when
// unknown. No national form was found for success: Carepost writes
// "Accusé de réception : " and the original subject.
func (in *ReceiptInput) subject() string {
	if o, ok := firstRefused(in.Outcomes); ok {
		label := in.documentTitle(o)
		s := "[KO Intégration système !][" + receiptCode(o) + "] XDM/1.0/DDM+" + label
		for _, p := range []string{in.PatientName, in.PatientBirthDate} {
			if p = strings.TrimSpace(oneLine(p)); p != "" {
				s += " " + p
			}
		}
		return s
	}
	orig := in.originalSubject()
	if orig == "" {
		orig = "dépôt dans le DMP"
	}
	return "Accusé de réception : " + orig
}

// receiptLanguages are the sentences of a receipt's text, French first.
var receiptLanguages = []struct {
	title, of, message, quoted, partly, whole, deposited, refused, reason string
}{
	{"Dépôt dans le dossier médical partagé (DMP)", " de %s", "Votre message", " « %s »",
		" n'a pas pu être intégré entièrement. Résultat pour chaque document :\n\n",
		" a été intégré. Résultat pour chaque document :\n\n",
		"     Résultat : déposé\n", "     Résultat : refusé\n", "     Motif : %s (code %s)\n"},
	{"Deposit into the shared medical record (DMP)", " of %s", "Your message", " \"%s\"",
		" could not be integrated entirely. Result for each document:\n\n",
		" was integrated. Result for each document:\n\n",
		"     Result: deposited\n", "     Result: refused\n", "     Reason: %s (code %s)\n"},
}

// writeText writes part 1: each document, its result and reason, in
// French then in English.
func (in *ReceiptInput) writeText(w *message.Writer) error {
	var ph message.Header
	ph.Set("Content-Transfer-Encoding", "quoted-printable")
	ph.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	pw, err := w.CreatePart(ph)
	if err != nil {
		return err
	}
	var t strings.Builder
	refused := !allDeposited(in.Outcomes)
	subj := in.originalSubject()
	for n, l := range receiptLanguages {
		if n > 0 {
			t.WriteString("\n----\n\n")
		}
		t.WriteString(l.title)
		if in.PatientName != "" {
			fmt.Fprintf(&t, l.of, oneLine(in.PatientName))
		}
		t.WriteString("\n\n" + l.message)
		if subj != "" {
			fmt.Fprintf(&t, l.quoted, subj)
		}
		if refused {
			t.WriteString(l.partly)
		} else {
			t.WriteString(l.whole)
		}
		for i, o := range in.Outcomes {
			fmt.Fprintf(&t, "  %d. %s\n", i+1, in.documentTitle(o))
			if o.Deposited {
				t.WriteString(l.deposited)
			} else {
				t.WriteString(l.refused)
				fmt.Fprintf(&t, l.reason, reasonOf(o), receiptCode(o))
			}
		}
	}
	t.WriteString("\nCe message est automatique. / This message was sent automatically.\n")
	if _, err := io.WriteString(pw, strings.ReplaceAll(t.String(), "\n", "\r\n")); err != nil {
		return err
	}
	return pw.Close()
}

// writeOriginal writes the original message as message/rfc822 (RFC 2046
// §5.2.1: 7bit or 8bit only), its bare LFs made CRLF.
func (in *ReceiptInput) writeOriginal(w *message.Writer) error {
	orig := crlf(in.Original)
	if !bytes.Contains(orig, []byte("\r\n\r\n")) {
		// A header alone (a bounded copy): end it with the empty line.
		if !bytes.HasSuffix(orig, []byte("\r\n")) {
			orig = append(orig, '\r', '\n')
		}
		orig = append(orig, '\r', '\n')
	}
	enc := "7bit"
	for _, c := range orig {
		if c >= 0x80 {
			enc = "8bit"
			break
		}
	}
	var ph message.Header
	ph.SetContentDisposition("inline", nil)
	ph.Set("Content-Transfer-Encoding", enc)
	ph.SetContentType("message/rfc822", nil)
	pw, err := w.CreatePart(ph)
	if err != nil {
		return err
	}
	if _, err := pw.Write(orig); err != nil {
		return err
	}
	return pw.Close()
}

// originalHeader reads the original's header, empty if unreadable.
func (in *ReceiptInput) originalHeader() mail.Header {
	th, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(in.Original)))
	if err != nil {
		return mail.Header{}
	}
	return mail.Header{Header: message.Header{Header: th}}
}

func (in *ReceiptInput) originalID() string {
	id := strings.TrimSpace(in.OriginalMessageID)
	if id == "" {
		h := in.originalHeader()
		id, _ = h.MessageID()
	}
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if strings.ContainsAny(id, "<> \t\r\n") {
		return ""
	}
	return id
}

func (in *ReceiptInput) originalSubject() string {
	h := in.originalHeader()
	s, _ := h.Subject()
	return clip(oneLine(strings.TrimSpace(s)), 200)
}

// documentTitle is the title of an outcome's document: its own, else the
// submission's document of the same uniqueId (its title, else its type).
func (in *ReceiptInput) documentTitle(o Outcome) string {
	t := o.Title
	if t == "" && in.Submission != nil {
		for _, d := range in.Submission.Documents {
			if d.UniqueID == o.UniqueID && o.UniqueID != "" {
				t = d.Title
				if t == "" {
					t = d.TypeCode.Display
				}
				break
			}
		}
	}
	if t = strings.TrimSpace(oneLine(t)); t == "" {
		return "(document sans titre / untitled document)"
	}
	return clip(t, 200)
}

func allDeposited(outs []Outcome) bool {
	for _, o := range outs {
		if !o.Deposited {
			return false
		}
	}
	return true
}

func firstRefused(outs []Outcome) (Outcome, bool) {
	for _, o := range outs {
		if !o.Deposited {
			return o, true
		}
	}
	return Outcome{}, false
}

// disposition is the Disposition field value (RFC 8098 §3.2.6, national
// form): the error names the first refused document.
func disposition(outs []Outcome) string {
	o, ok := firstRefused(outs)
	if !ok {
		return DispositionOK
	}
	return DispositionKO + receiptCode(o) + "^" + asciiLabel(reasonOf(o))
}

func receiptCode(o Outcome) string {
	c := strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return -1
	}, o.Code)
	if c == "" {
		return "REFUSED"
	}
	return clip(c, 64)
}

func reasonOf(o Outcome) string {
	if r := strings.TrimSpace(oneLine(o.Reason)); r != "" {
		return clip(r, 300)
	}
	return "no reason given"
}

// asciiLabel makes a label fit a field of the disposition-notification
// part (US-ASCII, RFC 8098 §3.1.1, one line, no "^" since it separates
// the code from the label): accents dropped from Latin letters, other
// non-ASCII as "?".
func asciiLabel(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '^':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		case r < 0x80:
			b.WriteRune(r)
		default:
			if a, ok := latinFold[r]; ok {
				b.WriteString(a)
			} else {
				b.WriteByte('?')
			}
		}
	}
	return clip(strings.TrimSpace(b.String()), 200)
}

var latinFold = func() map[rune]string {
	m := map[rune]string{'«': "\"", '»': "\"", '’': "'", '…': "...", '–': "-", '—': "-", 'œ': "oe", 'Œ': "OE", 'æ': "ae", 'Æ': "AE", 'ß': "ss", '\u00a0': " ", '\u202f': " "}
	for _, g := range []struct{ from, to string }{
		{"àâäáãå", "a"}, {"ÀÂÄÁÃÅ", "A"}, {"çć", "c"}, {"ÇĆ", "C"}, {"éèêë", "e"}, {"ÉÈÊË", "E"},
		{"îïíì", "i"}, {"ÎÏÍÌ", "I"}, {"ñ", "n"}, {"Ñ", "N"}, {"ôöóòõø", "o"}, {"ÔÖÓÒÕØ", "O"},
		{"ùûüú", "u"}, {"ÙÛÜÚ", "U"}, {"ÿý", "y"}, {"ŸÝ", "Y"},
	} {
		for _, r := range g.from {
			m[r] = g.to
		}
	}
	return m
}()

// fieldValue makes an address or identifier safe in a field of the
// notification: one line, ASCII as given (addresses are ASCII here).
func fieldValue(s string) string {
	return asciiLabel(strings.TrimSpace(s))
}

// crlf makes every bare LF of b a CRLF.
func crlf(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/40)
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}
