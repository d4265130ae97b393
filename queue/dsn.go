package queue

import (
	"bufio"
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/storage"
)

// buildDSN writes the delivery status notification (delivery.DSN) for
// the recipients of e that failed, with each one's last error and, for a
// remote reply, the reply as the Diagnostic-Code.
func buildDSN(hostname string, e *storage.QueueEntry, failed []storage.QueueRecipient, header []byte, now time.Time) []byte {
	d := delivery.DSN{Hostname: hostname, Sender: e.From, ID: strconv.FormatInt(e.ID, 10), Header: header, Arrival: e.Created,
		French: "n'a pas pu être remis aux destinataires suivants", English: "could not be delivered to the following recipients",
		SentDate: true, Retried: true}
	for _, r := range failed {
		status, diag := statusOf(r.LastError)
		d.Failed = append(d.Failed, delivery.DSNRecipient{Address: r.Address, Reason: r.LastError, Status: status,
			Diagnostic: diag, DiagnosticType: "smtp", LastAttempt: now})
	}
	return d.Bytes(now)
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
		return status, delivery.OneLine(lastErr)
	}
	if strings.HasPrefix(lastErr, "expired") {
		// Delivery time expired (RFC 3463 X.4.7), with the last reply.
		if m := replyAnyRE.FindStringSubmatch(lastErr); m != nil {
			return "5.4.7", delivery.OneLine(m[1])
		}
		return "5.4.7", ""
	}
	if strings.Contains(lastErr, "no mail server") || strings.Contains(lastErr, "null MX") {
		return "5.1.2", "" // bad destination system address
	}
	return "5.0.0", ""
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
