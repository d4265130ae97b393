package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"
)

// notifyUndelivered tells the envelope sender which recipients got no
// copy and why (Version.Undelivered): a delivery status notification
// (RFC 3464) in a multipart/report (RFC 6522), delivered by Notify to
// the sender's mailbox once the message is committed for the others.
// The message is accepted (the other recipients have it); a notification
// that cannot be delivered is logged, since the sender's client was
// already told "250" for the others' sake.
//
// Implementation notes: the notification is written here rather than by
// the outbound queue (queue/dsn.go), because these recipients never
// reach the queue: the refusal happens before the commit. Both write the
// same kind of report, in French and English.
func (p *Pipeline) notifyUndelivered(ctx context.Context, env *Envelope, vs []Version) {
	var addrs []string
	for _, v := range vs {
		for _, r := range v.Recipients {
			addrs = append(addrs, r.Address)
			p.log.Warn("recipient not delivered", "tx", env.ID, "rcpt", r.Address, "why", v.Undelivered.Reason)
		}
	}
	if env.From == "" {
		p.log.Warn("no sender to notify of the recipients not delivered (null reverse-path)", "tx", env.ID, "rcpts", addrs)
		return
	}
	var header []byte
	if len(vs) > 0 {
		header = rawHeader(vs[0].Msg)
	}
	msg := undeliveredDSN(p.opts.Hostname, env, vs, header, p.now())
	if err := p.Notify(context.WithoutCancel(ctx), env.From, msg); err != nil {
		p.log.Error("the delivery status notification for the recipients not delivered could not be stored", "tx", env.ID, "to", env.From, "err", err)
	}
}

// rawHeader returns the header section of a message (bounded).
func rawHeader(m Staged) []byte {
	br := bufio.NewReaderSize(io.LimitReader(m.Open(), maxHeaderBytes), headerBufferSize)
	raw, _, err := readHeader(br)
	if err != nil {
		return nil
	}
	return raw
}

// undeliveredDSN writes the notification.
func undeliveredDSN(hostname string, env *Envelope, vs []Version, header []byte, now time.Time) []byte {
	d := DSN{Hostname: hostname, Sender: env.From, ID: env.ID, Header: header, Arrival: env.Received,
		French:  "n'a pas été envoyé aux destinataires suivants",
		English: "was not sent to the following recipients"}
	for _, v := range vs {
		status := v.Undelivered.Status
		if status == "" {
			status = "5.0.0"
		}
		for _, r := range v.Recipients {
			d.Failed = append(d.Failed, DSNRecipient{Address: r.Address, Reason: v.Undelivered.Reason,
				Status: status, DiagnosticType: "x-carepost", Diagnostic: v.Undelivered.Reason})
		}
	}
	return d.Bytes(now)
}

// DSN is a delivery status notification (RFC 3464) of failed recipients,
// to the envelope sender: a multipart/report (RFC 6522) with a
// human-readable part in French then English, the machine-readable
// message/delivery-status, and the header of the original message
// (text/rfc822-headers: the sender has the body in its Sent folder; it is
// not copied again). The outbound queue (queue/dsn.go) and the message
// path (notifyUndelivered) write theirs with it.
type DSN struct {
	Hostname string // the reporting server
	// Sender is the original envelope sender, the notification's
	// recipient; the notification comes from postmaster of its domain
	// (of Hostname if it has none).
	Sender string
	ID     string // makes the notification's Message-ID unique
	Header []byte // the original header section, nil if unknown
	// Arrival is when the message was received.
	Arrival time.Time
	// French and English say what happened, after "Votre message « S »"
	// and "Your message "S"" (and the sending date when SentDate).
	French, English string
	SentDate        bool
	// Retried, when set, says that the message is not tried again.
	Retried bool
	Failed  []DSNRecipient
}

// DSNRecipient is one failed recipient of a DSN.
type DSNRecipient struct {
	Address string
	Reason  string // for people, in the human-readable part
	Status  string // RFC 3463
	// Diagnostic, when set, is the Diagnostic-Code of DiagnosticType
	// ("smtp" for a remote reply, RFC 3464 §2.3.6).
	Diagnostic, DiagnosticType string
	LastAttempt                time.Time // zero: none
}

// Bytes writes the notification.
func (d DSN) Bytes(now time.Time) []byte {
	boundary := "dsn-" + strings.ToLower(rand.Text())
	from := "postmaster@" + domainOf(d.Sender)
	if domainOf(d.Sender) == "" {
		from = "postmaster@" + d.Hostname
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: =?utf-8?q?Serveur_de_messagerie_s=C3=A9curis=C3=A9e?= <%s>\r\n", from)
	fmt.Fprintf(&b, "To: <%s>\r\n", d.Sender)
	b.WriteString("Subject: =?utf-8?q?Message_non_distribu=C3=A9?= / Undelivered message\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <dsn-%s-%s@%s>\r\n", d.ID, strings.ToLower(rand.Text()[:10]), d.Hostname)
	if id := headerValue(d.Header, "Message-ID"); id != "" {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: %s\r\n", id, id)
	}
	b.WriteString("Auto-Submitted: auto-replied\r\n") // RFC 3834 §5
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	b.WriteString("This is a delivery status notification (RFC 3464).\r\n")

	// Human-readable part.
	subject := headerValue(d.Header, "Subject")
	if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = dec
	}
	var text strings.Builder
	list := func() {
		for _, r := range d.Failed {
			fmt.Fprintf(&text, "  %s\n    %s\n", r.Address, r.Reason)
		}
	}
	text.WriteString("Votre message")
	if subject != "" {
		fmt.Fprintf(&text, " « %s »", subject)
	}
	if d.SentDate {
		fmt.Fprintf(&text, ", envoyé le %s,", frenchDate(d.Arrival))
	}
	fmt.Fprintf(&text, " %s :\n\n", d.French)
	list()
	text.WriteString("\nLes autres destinataires, s'il y en a, l'ont reçu ou le recevront.")
	if d.Retried {
		text.WriteString(" Ce message ne sera plus réessayé pour ceux-ci.")
	}
	text.WriteString("\n\n----\n\nYour message")
	if subject != "" {
		fmt.Fprintf(&text, " \"%s\"", subject)
	}
	if d.SentDate {
		fmt.Fprintf(&text, ", sent on %s,", d.Arrival.UTC().Format("2 January 2006 15:04 UTC"))
	}
	fmt.Fprintf(&text, " %s:\n\n", d.English)
	list()
	text.WriteString("\nThe other recipients, if any, have received it or will receive it.")
	if d.Retried {
		text.WriteString(" It will not be tried again for these ones.")
	}
	text.WriteString("\n")
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
	qp := quotedprintable.NewWriter(&b)
	io.WriteString(qp, strings.ReplaceAll(text.String(), "\n", "\r\n"))
	qp.Close()

	// Machine-readable part (RFC 3464 §2).
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", d.Hostname)
	fmt.Fprintf(&b, "Arrival-Date: %s\r\n", d.Arrival.Format(time.RFC1123Z))
	for _, r := range d.Failed {
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n", r.Address, r.Status)
		if r.Diagnostic != "" {
			fmt.Fprintf(&b, "Diagnostic-Code: %s; %s\r\n", r.DiagnosticType, OneLine(r.Diagnostic))
		}
		if !r.LastAttempt.IsZero() {
			fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", r.LastAttempt.Format(time.RFC1123Z))
		}
	}
	if len(d.Header) > 0 {
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
		b.Write(d.Header)
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

var frenchMonths = []string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}

func frenchDate(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%d %s %d à %02d:%02d UTC", t.Day(), frenchMonths[t.Month()-1], t.Year(), t.Hour(), t.Minute())
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

// OneLine keeps printable ASCII, at most 900 bytes (a DSN field).
func OneLine(s string) string {
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
