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
	boundary := "dsn-" + strings.ToLower(rand.Text())
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: =?utf-8?q?Serveur_de_messagerie_s=C3=A9curis=C3=A9e?= <postmaster@%s>\r\n", hostname)
	fmt.Fprintf(&b, "To: <%s>\r\n", env.From)
	b.WriteString("Subject: =?utf-8?q?Message_non_distribu=C3=A9?= / Undelivered message\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <dsn-%s-%s@%s>\r\n", env.ID, strings.ToLower(rand.Text()[:10]), hostname)
	if id := strings.TrimSpace(env.Header.Get("Message-Id")); id != "" && !strings.ContainsAny(id, "\r\n") {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: %s\r\n", id, id)
	}
	b.WriteString("Auto-Submitted: auto-replied\r\n") // RFC 3834 §5
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n\r\n", boundary)
	b.WriteString("This is a delivery status notification (RFC 3464).\r\n")

	subject := env.Header.Get("Subject")
	if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = dec
	}
	var text strings.Builder
	text.WriteString("Votre message")
	if subject != "" {
		fmt.Fprintf(&text, " « %s »", subject)
	}
	text.WriteString(" n'a pas été envoyé aux destinataires suivants :\n\n")
	list := func() {
		for _, v := range vs {
			for _, r := range v.Recipients {
				fmt.Fprintf(&text, "  %s\n    %s\n", r.Address, v.Undelivered.Reason)
			}
		}
	}
	list()
	text.WriteString("\nLes autres destinataires, s'il y en a, l'ont reçu ou le recevront.\n\n----\n\nYour message")
	if subject != "" {
		fmt.Fprintf(&text, " \"%s\"", subject)
	}
	text.WriteString(" was not sent to the following recipients:\n\n")
	list()
	text.WriteString("\nThe other recipients, if any, have received it or will receive it.\n")
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
	qp := quotedprintable.NewWriter(&b)
	io.WriteString(qp, strings.ReplaceAll(text.String(), "\n", "\r\n"))
	qp.Close()

	// Machine-readable part (RFC 3464 §2).
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n\r\n", boundary)
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", hostname)
	fmt.Fprintf(&b, "Arrival-Date: %s\r\n", env.Received.Format(time.RFC1123Z))
	for _, v := range vs {
		status := v.Undelivered.Status
		if status == "" {
			status = "5.0.0"
		}
		for _, r := range v.Recipients {
			fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822; %s\r\nAction: failed\r\nStatus: %s\r\n", r.Address, status)
			fmt.Fprintf(&b, "Diagnostic-Code: x-carepost; %s\r\n", oneLine(v.Undelivered.Reason))
		}
	}
	if len(header) > 0 {
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
		b.Write(header)
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// oneLine keeps printable ASCII, at most 900 bytes (a DSN field).
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
