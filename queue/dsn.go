package queue

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"regexp"
	"strings"
	"time"

	"github.com/carepost/carepost/storage"
)

// buildDSN writes the delivery status notification (RFC 3464) for the
// recipients of e that failed: a multipart/report (RFC 6522) with a
// human-readable part in French then English, the machine-readable
// message/delivery-status, and the header of the original message
// (text/rfc822-headers: the sender has the body in its Sent folder; it is
// not copied again).
func buildDSN(hostname string, e *storage.QueueEntry, failed []storage.QueueRecipient, header []byte, now time.Time) []byte {
	boundary := "dsn-" + strings.ToLower(rand.Text())
	from := "postmaster@" + domainOf(e.From)
	if domainOf(e.From) == "" {
		from = "postmaster@" + hostname
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: =?utf-8?q?Serveur_de_messagerie_s=C3=A9curis=C3=A9e?= <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", e.From)
	fmt.Fprintf(&b, "Subject: =?utf-8?q?Message_non_distribu=C3=A9?= / Undelivered message\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <dsn-%d-%s@%s>\r\n", e.ID, strings.ToLower(rand.Text()[:10]), hostname)
	if id := headerValue(header, "Message-ID"); id != "" {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: %s\r\n", id, id)
	}
	b.WriteString("Auto-Submitted: auto-replied\r\n") // RFC 3834 §5
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	b.WriteString("This is a delivery status notification (RFC 3464).\r\n")

	// Human-readable part.
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
	var text strings.Builder
	subject := headerValue(header, "Subject")
	if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = dec
	}
	fmt.Fprintf(&text, "Votre message")
	if subject != "" {
		fmt.Fprintf(&text, " « %s »", subject)
	}
	fmt.Fprintf(&text, ", envoyé le %s, n'a pas pu être remis aux destinataires suivants :\n\n", frenchDate(e.Created))
	for _, r := range failed {
		fmt.Fprintf(&text, "  %s\n    %s\n", r.Address, r.LastError)
	}
	fmt.Fprintf(&text, "\nLes autres destinataires, s'il y en a, l'ont reçu ou le recevront. Ce message ne sera plus réessayé pour ceux-ci.\n")
	fmt.Fprintf(&text, "\n----\n\nYour message")
	if subject != "" {
		fmt.Fprintf(&text, " \"%s\"", subject)
	}
	fmt.Fprintf(&text, ", sent on %s, could not be delivered to the following recipients:\n\n", e.Created.UTC().Format("2 January 2006 15:04 UTC"))
	for _, r := range failed {
		fmt.Fprintf(&text, "  %s\n    %s\n", r.Address, r.LastError)
	}
	fmt.Fprintf(&text, "\nThe other recipients, if any, have received it or will receive it. It will not be tried again for these ones.\n")
	qp := quotedprintable.NewWriter(&b)
	io.WriteString(qp, strings.ReplaceAll(text.String(), "\n", "\r\n"))
	qp.Close()

	// Machine-readable part (RFC 3464 §2).
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", hostname)
	fmt.Fprintf(&b, "Arrival-Date: %s\r\n", e.Created.Format(time.RFC1123Z))
	for _, r := range failed {
		status, diag := statusOf(r.LastError)
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n", r.Address, status)
		if diag != "" {
			fmt.Fprintf(&b, "Diagnostic-Code: smtp; %s\r\n", diag)
		}
		fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", now.Format(time.RFC1123Z))
	}

	// The original header.
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
	b.Write(header)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

var (
	replyRE    = regexp.MustCompile(`^([245])\d\d(?: ([245]\.\d{1,3}\.\d{1,3}))?\b`)
	replyAnyRE = regexp.MustCompile(`\b([245]\d\d(?: [245]\.\d{1,3}\.\d{1,3})? .*)$`)
)

// statusOf returns the Status (RFC 3463) and the remote reply, if any, of
// a recipient's last error.
func statusOf(lastErr string) (status, diag string) {
	if m := replyRE.FindStringSubmatch(lastErr); m != nil {
		status = m[2]
		if status == "" {
			status = m[1] + ".0.0"
		}
		if status[0] != '5' {
			status = "5" + status[1:]
		}
		return status, oneLine(lastErr)
	}
	if strings.HasPrefix(lastErr, "expired") {
		// Delivery time expired (RFC 3463 X.4.7), with the last reply.
		if m := replyAnyRE.FindStringSubmatch(lastErr); m != nil {
			return "5.4.7", oneLine(m[1])
		}
		return "5.4.7", ""
	}
	if strings.Contains(lastErr, "no mail server") || strings.Contains(lastErr, "null MX") {
		return "5.1.2", "" // bad destination system address
	}
	return "5.0.0", ""
}

func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	if len(s) > 900 {
		s = s[:900]
	}
	return s
}

var frenchMonths = []string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}

func frenchDate(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %s %d à %02d:%02d UTC", t.Day(), frenchMonths[t.Month()-1], t.Year(), t.Hour(), t.Minute())
}

// readHeader returns the header section of a message (up to 64 KiB).
func readHeader(r io.Reader) []byte {
	br := bufio.NewReader(io.LimitReader(r, 64<<10))
	var out bytes.Buffer
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		out.Write(line)
		if err != nil {
			break
		}
	}
	return out.Bytes()
}

// headerValue returns the unfolded value of the first field name in
// header, with its control characters removed ("" if absent).
func headerValue(header []byte, name string) string {
	lines := strings.Split(string(header), "\n")
	for i := 0; i < len(lines); i++ {
		k, v, ok := strings.Cut(lines[i], ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) || strings.HasPrefix(lines[i], " ") || strings.HasPrefix(lines[i], "\t") {
			continue
		}
		for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t")) {
			i++
			v += " " + strings.TrimSpace(lines[i])
		}
		return strings.TrimSpace(strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, v))
	}
	return ""
}
