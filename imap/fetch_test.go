package imap_test

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// literal returns the content of the literal that follows item in a
// response ("BODY[1] {12}\r\n…"), and whether it was there.
func literal(line, item string) (string, bool) {
	i := strings.Index(line, item+" {")
	if i < 0 {
		i = strings.Index(line, item+" ~{")
		if i < 0 {
			return "", false
		}
	}
	rest := line[i+len(item)+1:]
	rest = strings.TrimPrefix(rest, "~")
	j := strings.Index(rest, "}\r\n")
	n, err := strconv.Atoi(rest[1:j])
	if err != nil || j+3+n > len(rest) {
		return "", false
	}
	return rest[j+3 : j+3+n], true
}

// The parts of the multipart test message.
const (
	pdfBytes   = "%PDF-1.4\n\x00\x01\x02 binaire \xff\xfe\n%%EOF\n"
	textPart   = "R=C3=A9sultats normaux, h=C3=A9moglobine 14 g/dL.\r\nBien confraternellement,\r\nDr Martin\r\n"
	part2Head  = "Content-Type: application/pdf; name=\"cr.pdf\"\r\nContent-Disposition: attachment; filename=\"cr.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	mainHeader = "From: \"Dr Alice Martin\" <alice@carepost.test>\r\n" +
		"To: undisclosed-recipients:;\r\n" +
		"Cc: \"Bob Durand\" <bob@carepost.test>, carol@carepost.test\r\n" +
		"Subject: =?utf-8?q?Compte_rendu_d'h=C3=A9mato?=\r\n" +
		"Date: Tue, 24 Nov 2026 09:15:00 +0100\r\n" +
		"Message-ID: <cr-42@carepost.test>\r\n" +
		"In-Reply-To: <demande-41@carepost.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n"
)

func multipartMessage() (msg, text, pdfB64 string) {
	pdfB64 = base64.StdEncoding.EncodeToString([]byte(pdfBytes)) + "\r\n"
	text = "This is a MIME message.\r\n" +
		"--b0undary\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		textPart +
		"\r\n--b0undary\r\n" +
		part2Head + pdfB64 +
		"\r\n--b0undary--\r\n"
	return mainHeader + text, text, pdfB64
}

// SELECT and EXAMINE report what RFC 9051 §6.3.2 and RFC 3501 §6.3.1 list.
func TestSelectExamine(t *testing.T) {
	srv, users := start(t, "alice")
	a := users[0]
	r := login(t, srv, a)
	r.mustAppend("INBOX", `\Seen`, "", simple(a, a, "lu", "x"))
	r.mustAppend("INBOX", `$Important \Flagged`, "", simple(a, a, "important", "y"))
	uid3 := r.mustAppend("INBOX", "", "", simple(a, a, "nouveau", "z"))

	// A second session looks first without claiming \Recent.
	e := login(t, srv, a)
	u := e.ok("EXAMINE INBOX")
	for _, want := range []string{"* 3 EXISTS", "* 3 RECENT", "* OK [UNSEEN 2]", "* OK [PERMANENTFLAGS ()]"} {
		if find(u, want) == "" {
			t.Errorf("EXAMINE lacks %q: %q", want, u)
		}
	}

	tag := r.send("SELECT INBOX")
	u, st := r.wait(tag)
	if !strings.HasPrefix(st, "OK [READ-WRITE]") {
		t.Errorf("SELECT: %s", st)
	}
	want := []string{
		"* 3 EXISTS",
		"* 3 RECENT",
		"* OK [UNSEEN 2] ",
		"* OK [UIDVALIDITY ",
		fmt.Sprintf("* OK [UIDNEXT %d] ", uid3+1),
		`* FLAGS (\Seen \Answered \Flagged \Deleted \Draft $Important)`,
		`* OK [PERMANENTFLAGS (\Seen \Answered \Flagged \Deleted \Draft $Important \*)] `,
	}
	if len(u) != len(want) {
		t.Errorf("SELECT: %q", u)
	}
	for i := range want {
		if i >= len(u) || !strings.HasPrefix(u[i], want[i]) {
			t.Errorf("SELECT response %d: %q, want %q…", i, u, want[i])
			break
		}
	}
	// The claim is made: a later SELECT elsewhere sees no recent message.
	u = login(t, srv, a).ok("SELECT INBOX")
	if find(u, "* 0 RECENT") == "" {
		t.Errorf("second SELECT: %q", u)
	}
	_, st = e.do("EXAMINE INBOX")
	if !strings.HasPrefix(st, "OK [READ-ONLY]") {
		t.Errorf("EXAMINE: %s", st)
	}
	// Selecting again closes the previous mailbox (RFC 9051 §6.3.2).
	if u := r.sel("Sent"); find(u, "* OK [CLOSED]") == "" || find(u, "* 0 EXISTS") == "" {
		t.Errorf("SELECT while selected: %q", u)
	}
	if st := r.no("SELECT Nothing"); !strings.Contains(st, "[NONEXISTENT]") {
		t.Errorf("SELECT missing: %s", st)
	}
	// A failed SELECT leaves the session unselected.
	if _, st := r.do("FETCH 1 FLAGS"); !strings.HasPrefix(st, "BAD") {
		t.Errorf("FETCH after a failed SELECT: %s", st)
	}
}

// FETCH of a multipart message with an attachment: every item, byte-exact.
func TestFetchItems(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	msg, text, pdfB64 := multipartMessage()
	uid := r.mustAppend("INBOX", "", "24-Nov-2026 09:20:00 +0100", msg)
	r.sel("INBOX")

	u := r.ok("FETCH 1 (UID RFC822.SIZE INTERNALDATE FLAGS ENVELOPE)")
	if len(u) != 1 {
		t.Fatalf("FETCH: %q", u)
	}
	// The library separates addresses with a space, which the grammar of
	// RFC 9051 §9 (env-to = "(" 1*address ")") does not have; parsers
	// accept it.
	wantEnv := `ENVELOPE ("Tue, 24 Nov 2026 09:15:00 +0100" "=?utf-8?q?Compte_rendu_d'h=C3=A9mato?=" ` +
		`(("Dr Alice Martin" NIL "alice" "carepost.test")) (("Dr Alice Martin" NIL "alice" "carepost.test")) (("Dr Alice Martin" NIL "alice" "carepost.test")) ` +
		`((NIL NIL "undisclosed-recipients" NIL) (NIL NIL NIL NIL)) ` +
		`(("Bob Durand" NIL "bob" "carepost.test") (NIL NIL "carol" "carepost.test")) NIL ` +
		`"<demande-41@carepost.test>" "<cr-42@carepost.test>")`
	want := fmt.Sprintf(`* 1 FETCH (UID %d FLAGS (\Recent) INTERNALDATE "24-Nov-2026 09:20:00 +0100" RFC822.SIZE %d %s)`, uid, len(msg), wantEnv)
	if u[0] != want {
		t.Errorf("FETCH:\n got %s\nwant %s", u[0], want)
	}

	u = r.ok("FETCH 1 (BODYSTRUCTURE)")
	wantBS := fmt.Sprintf(`* 1 FETCH (UID %d BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" %d 3 NIL NIL NIL NIL)`+
		`("application" "pdf" ("name" "cr.pdf") NIL NIL "base64" %d NIL ("attachment" ("filename" "cr.pdf")) NIL NIL) `+
		`"mixed" ("boundary" "b0undary") NIL NIL NIL))`, uid, len(textPart), len(pdfB64))
	if len(u) != 1 || u[0] != wantBS {
		t.Errorf("BODYSTRUCTURE:\n got %q\nwant %q", u, wantBS)
	}
	// Non-extended BODY.
	u = r.ok("FETCH 1 (BODY)")
	if len(u) != 1 || !strings.Contains(u[0], `BODY (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" `) || strings.Contains(u[0], "attachment") {
		t.Errorf("BODY: %q", u)
	}

	sections := []struct{ fetch, item, want string }{
		{"BODY.PEEK[]", "BODY[]", msg},
		{"BODY.PEEK[HEADER]", "BODY[HEADER]", mainHeader},
		{"BODY.PEEK[HEADER.FIELDS (Subject)]", `BODY[HEADER.FIELDS ("Subject")]`, "Subject: =?utf-8?q?Compte_rendu_d'h=C3=A9mato?=\r\n\r\n"},
		{"BODY.PEEK[HEADER.FIELDS.NOT (Subject Cc From To Date Message-ID In-Reply-To)]", `BODY[HEADER.FIELDS.NOT ("Subject" "Cc" "From" "To" "Date" "Message-ID" "In-Reply-To")]`,
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n"},
		{"BODY.PEEK[TEXT]", "BODY[TEXT]", text},
		{"BODY.PEEK[1]", "BODY[1]", textPart},
		{"BODY.PEEK[1.MIME]", "BODY[1.MIME]", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"},
		{"BODY.PEEK[2.MIME]", "BODY[2.MIME]", part2Head},
		{"BODY.PEEK[2]", "BODY[2]", pdfB64},
		{"BODY.PEEK[]<10.20>", "BODY[]<10>", msg[10:30]},
		{"BODY.PEEK[]<0.10000000>", "BODY[]<0>", msg},
		{"BODY.PEEK[]<100000.10>", "BODY[]<100000>", ""},
		{"BODY.PEEK[1]<4.6>", "BODY[1]<4>", textPart[4:10]},
		{"BINARY.PEEK[2]", "BINARY[2]", pdfBytes},
		{"BINARY.PEEK[1]", "BINARY[1]", "Résultats normaux, hémoglobine 14 g/dL.\r\nBien confraternellement,\r\nDr Martin\r\n"},
		{"BODY.PEEK[3]", "BODY[3]", ""},
	}
	for _, s := range sections {
		u := r.ok("FETCH 1 (%s)", s.fetch)
		if len(u) != 1 {
			t.Errorf("FETCH %s: %q", s.fetch, u)
			continue
		}
		got, ok := literal(u[0], s.item)
		if !ok || got != s.want {
			t.Errorf("FETCH %s: got %q (found %v), want %q\n%q", s.fetch, got, ok, s.want, u[0])
		}
	}
	u = r.ok("FETCH 1 (BINARY.SIZE[2] BINARY.SIZE[1])")
	if len(u) != 1 || !strings.Contains(u[0], fmt.Sprintf("BINARY.SIZE[2] %d BINARY.SIZE[1] %d", len(pdfBytes), len("Résultats normaux, hémoglobine 14 g/dL.\r\nBien confraternellement,\r\nDr Martin\r\n"))) {
		t.Errorf("BINARY.SIZE: %q", u)
	}
	// The macros.
	u = r.ok("FETCH 1 FAST")
	if len(u) != 1 || !strings.Contains(u[0], "RFC822.SIZE") || !strings.Contains(u[0], "INTERNALDATE") || !strings.Contains(u[0], "FLAGS") {
		t.Errorf("FETCH FAST: %q", u)
	}
	u = r.ok("UID FETCH %d (FLAGS)", uid)
	if len(u) != 1 || u[0] != fmt.Sprintf(`* 1 FETCH (UID %d FLAGS (\Recent))`, uid) {
		t.Errorf("UID FETCH: %q", u)
	}
	// Nothing for numbers that do not exist.
	if u := r.ok("UID FETCH %d (FLAGS)", uid+10); len(u) != 0 {
		t.Errorf("UID FETCH of a missing UID: %q", u)
	}
}

// BODY[] without .PEEK sets \Seen and the FETCH response says so; under
// EXAMINE it does not (RFC 9051 §6.4.5).
func TestFetchSetsSeen(t *testing.T) {
	srv, users := start(t, "alice")
	a := users[0]
	r := login(t, srv, a)
	r.mustAppend("INBOX", "", "", simple(a, a, "un", "x"))
	r.mustAppend("INBOX", "", "", simple(a, a, "deux", "y"))

	e := login(t, srv, a)
	e.ok("EXAMINE INBOX")
	u := e.ok("FETCH 1 (BODY[TEXT])")
	if len(u) != 1 || strings.Contains(u[0], `\Seen`) {
		t.Errorf("FETCH BODY[] under EXAMINE: %q", u)
	}
	if u := e.ok("FETCH 1 (FLAGS)"); strings.Contains(u[0], `\Seen`) {
		t.Errorf("EXAMINE set \\Seen: %q", u)
	}

	r.sel("INBOX")
	u = r.ok("FETCH 1 (BODY[])")
	if len(u) != 1 || !regexp.MustCompile(`FLAGS \([^)]*\\Seen`).MatchString(u[0]) {
		t.Errorf("FETCH BODY[] response without \\Seen: %q", u)
	}
	u = r.ok("FETCH 2 (RFC822.TEXT)")
	if len(u) != 1 || !strings.Contains(u[0], `\Seen`) {
		t.Errorf("FETCH RFC822.TEXT: %q", u)
	}
	// Already \Seen: one response, flags included once.
	u = r.ok("FETCH 1 (BODY[HEADER])")
	if len(u) != 1 || strings.Count(u[0], "FLAGS") != 1 {
		t.Errorf("FETCH BODY[] of a seen message: %q", u)
	}
	if st := r.ok("STATUS INBOX (UNSEEN)"); find(st, "UNSEEN 0") == "" {
		t.Errorf("STATUS after reading: %q", st)
	}
	// The other session is told.
	u = e.ok("NOOP")
	if count(u, `^\* [12] FETCH \(.*FLAGS \(.*\\Seen`) != 2 {
		t.Errorf("other session after \\Seen: %q", u)
	}
}

// A message go-imap's parser cannot give parts to (a multipart without
// its boundary) is still fetched: the session is not dropped.
func TestFetchMalformed(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	msgs := []string{
		"Subject: no boundary\r\nContent-Type: multipart/mixed\r\n\r\nno parts here\r\n",
		"Subject: wrong boundary\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--other\r\n\r\nx\r\n",
		"Content-Type: message/rfc822\r\n\r\nnot a message",
		"no header at all",
		"Content-Type: text/plain; charset=\"unterminated\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
		"From: a@b\r\nTo: group: a@b, (comment) <c@d>;, broken <<\r\nSubject: =?x-unknown?q?abc?=\r\n\r\nbody\r\n",
	}
	for _, m := range msgs {
		r.mustAppend("INBOX", "", "", m)
	}
	r.sel("INBOX")
	u := r.ok("FETCH 1:* (ENVELOPE BODYSTRUCTURE BODY BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[TEXT] BINARY.PEEK[1] BINARY.SIZE[1])")
	if len(u) != len(msgs) {
		t.Errorf("FETCH of malformed messages: %d responses, want %d: %q", len(u), len(msgs), u)
	}
	r.ok("NOOP")
}

// imap.Envelope is what go-imap's client makes of the ENVELOPE: the group
// comes back as a group.
func TestFetchEnvelopeClient(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	msg, _, _ := multipartMessage()
	r.mustAppend("INBOX", "", "", msg)
	c := client(t, srv, users[0], nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch: %v %v", msgs, err)
	}
	env := msgs[0].Envelope
	if env.Subject != "Compte rendu d'hémato" || len(env.To) != 2 || !env.To[0].IsGroupStart() || !env.To[1].IsGroupEnd() ||
		env.To[0].Mailbox != "undisclosed-recipients" || len(env.Cc) != 2 || env.Cc[1].Addr() != "carol@carepost.test" {
		t.Errorf("envelope %+v", env)
	}
}

// Defaults the message leaves implicit are stated: a part without
// Content-Type, or a text part without charset, is US-ASCII (RFC 2045
// §5.2, RFC 2046 §4.1.2); addresses with comments or a route keep their
// mailbox and host, a comment standing for a missing display name
// (RFC 5322 §3.4, §4.4).
func TestFetchDefaults(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	r.mustAppend("INBOX", "", "", "From: alice@carepost.test (Alice Martin)\r\nTo: <@relay.example:bob@carepost.test>\r\n"+
		"Cc: <carol (cabinet)@ (ville) carepost.test>\r\nSubject: nu\r\n\r\nhello\r\n")
	r.mustAppend("INBOX", "", "", "Content-Type: text/html\r\n\r\n<p>x</p>\r\n")
	r.sel("INBOX")
	u := r.ok("FETCH 1:2 BODYSTRUCTURE")
	if want := `("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1 NIL NIL NIL NIL)`; len(u) != 2 || !strings.Contains(u[0], want) {
		t.Errorf("BODYSTRUCTURE without Content-Type: %q, want %s", u, want)
	}
	if want := `("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)`; len(u) != 2 || !strings.Contains(u[1], want) {
		t.Errorf("BODYSTRUCTURE of text/html without charset: %q, want %s", u, want)
	}
	u = r.ok("FETCH 1 ENVELOPE")
	want := `NIL "nu" (("Alice Martin" NIL "alice" "carepost.test")) (("Alice Martin" NIL "alice" "carepost.test")) ` +
		`(("Alice Martin" NIL "alice" "carepost.test")) ((NIL NIL "bob" "carepost.test")) ((NIL NIL "carol" "carepost.test")) NIL NIL NIL)`
	if len(u) != 1 || !strings.HasSuffix(u[0], want+")") {
		t.Errorf("ENVELOPE:\n got %q\nwant …%s)", u, want)
	}
}

// A header section longer than what the store keeps apart (64 KiB) is
// still answered whole.
func TestFetchLongHeader(t *testing.T) {
	srv, users := start(t, "alice")
	r := login(t, srv, users[0])
	var h strings.Builder
	h.WriteString("From: <alice@carepost.test>\r\nSubject: long\r\n")
	for i := 0; h.Len() < 70<<10; i++ {
		fmt.Fprintf(&h, "X-Trace-%d: %s\r\n", i, strings.Repeat("t", 60))
	}
	h.WriteString("To: <bob@carepost.test>\r\n\r\n")
	header := h.String()
	r.mustAppend("INBOX", "", "", header+"body\r\n")
	r.sel("INBOX")
	u := r.ok("FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (To)] ENVELOPE)")
	if len(u) != 1 {
		t.Fatalf("FETCH: %d responses", len(u))
	}
	if got, ok := literal(u[0], "BODY[HEADER]"); !ok || got != header {
		t.Errorf("BODY[HEADER]: %d bytes, want %d", len(got), len(header))
	}
	if got, _ := literal(u[0], `BODY[HEADER.FIELDS ("To")]`); got != "To: <bob@carepost.test>\r\n\r\n" {
		t.Errorf("HEADER.FIELDS (To) after 70 KiB: %q", got)
	}
	if !strings.Contains(u[0], `((NIL NIL "bob" "carepost.test"))`) {
		t.Errorf("ENVELOPE lacks the To after 70 KiB")
	}
}
