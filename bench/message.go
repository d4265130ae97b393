package bench

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"time"
)

// Subjects rotate through these, so that IMAP SEARCH SUBJECT finds some
// messages and not others (one in len(subjects)).
var subjects = []string{
	"Compte rendu de consultation",
	"Demande d'avis cardiologique",
	"Resultats de biologie",
	"Lettre de sortie d'hospitalisation",
	"Adressage en rhumatologie",
}

var words = strings.Fields(`patient consultation examen clinique tension arterielle
traitement posologie ordonnance bilan sanguin hemoglobine creatinine glycemie
antecedents allergie penicilline suivi rendez-vous echographie radiographie
thoracique cardiologue medecin traitant infirmier kinesitherapie douleur
lombaire fievre toux dyspnee auscultation normale conclusion avis confrere
hospitalisation sortie surveillance controle semaines mois resultat compte
rendu dossier merci cordialement chere cher madame monsieur docteur`)

// messageMaker builds realistic RFC 5322 test messages of a given size:
// a plain header (Date, From, To, Subject, a unique Message-ID, MIME) and a
// 7-bit text body in CRLF lines. The body filler is built once and shared,
// so that making a message costs the client almost nothing next to the
// server's work.
type messageMaker struct {
	from   string
	domain string
	size   int
	run    string // random per run: Message-IDs stay unique across runs
	filler []byte
}

func newMessageMaker(from string, size int) *messageMaker {
	domain := "bench.invalid"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i < len(from)-1 {
		domain = from[i+1:]
	}
	var r [6]byte
	rand.Read(r[:])
	return &messageMaker{from: from, domain: domain, size: size, run: hex.EncodeToString(r[:]), filler: filler(size)}
}

// filler returns at least n bytes of text in lines of at most 76
// characters, each ending in CRLF; no line starts with a dot, so DATA's
// dot-stuffing (RFC 5321 §4.5.2) never changes the size.
func filler(n int) []byte {
	rng := mrand.New(mrand.NewPCG(1, 2))
	var b bytes.Buffer
	b.Grow(n + 80)
	line := 0
	for b.Len() < n {
		w := words[rng.IntN(len(words))]
		if line > 0 && line+1+len(w) > 76 {
			b.WriteString("\r\n")
			line = 0
		}
		if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// subject is the subject of message idx.
func subject(idx int) string { return subjects[idx%len(subjects)] }

// header writes the header and the first body line of message idx to buf.
func (m *messageMaker) header(buf *bytes.Buffer, idx int, to []string) {
	buf.Reset()
	fmt.Fprintf(buf, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(buf, "From: Bench Sender <%s>\r\n", m.from)
	buf.WriteString("To: ")
	for i, t := range to {
		if i > 0 {
			buf.WriteString(",\r\n ")
		}
		fmt.Fprintf(buf, "<%s>", t)
	}
	buf.WriteString("\r\n")
	fmt.Fprintf(buf, "Subject: %s (bench %d)\r\n", subject(idx), idx)
	fmt.Fprintf(buf, "Message-ID: <%s.%d@%s>\r\n", m.run, idx, m.domain)
	buf.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n")
	buf.WriteString("X-Mailer: carepost-bench\r\n\r\n")
	fmt.Fprintf(buf, "Message %d of bench run %s.\r\n", idx, m.run)
}

// tail is the rest of the body that brings a message whose header is
// hdr bytes long to the asked size (or just past the header if the size
// is smaller). It always ends in CRLF.
func (m *messageMaker) tail(hdr int) (body []byte, end string) {
	n := m.size - hdr
	if n < 2 {
		return nil, ""
	}
	body = m.filler[:n-2]
	end = "\r\n"
	if len(body) > 0 && body[len(body)-1] == '\r' {
		// The cut fell inside a CRLF: never leave a bare CR.
		body, end = body[:len(body)-1], " \r\n"
	}
	return body, end
}

// writeTo writes message idx, built in buf, to w and returns its size.
func (m *messageMaker) writeTo(w io.Writer, buf *bytes.Buffer, idx int, to []string) (int64, error) {
	m.header(buf, idx, to)
	body, end := m.tail(buf.Len())
	n := int64(buf.Len() + len(body) + len(end))
	if _, err := w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	if _, err := w.Write(body); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(w, end); err != nil {
		return 0, err
	}
	return n, nil
}

// whole returns message idx whole (for APPEND, which needs the size first).
func (m *messageMaker) whole(idx int, to []string) []byte {
	var buf bytes.Buffer
	var out bytes.Buffer
	m.writeTo(&out, &buf, idx, to)
	return out.Bytes()
}
