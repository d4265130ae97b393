package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/mail"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
)

// Header limits. The header is the only part of a message the pipeline
// reads; the body streams through untouched.
const (
	// maxHeaderLine bounds one physical header line, line ending included.
	// RFC 5322 §2.1.1 says 998 characters plus CRLF; we allow twice that,
	// as go-smtp does for SMTP lines (RFC 5321 §4.5.3.1.6 asks for
	// leniency), which also covers BDAT where go-smtp does not count lines.
	maxHeaderLine = 2000
	// maxHeaderBytes bounds the whole header section, kept in memory while
	// it is checked.
	maxHeaderBytes = 1 << 20
	// headerBufferSize is the bufio size used to read the header: larger
	// than maxHeaderLine so that a too long line is seen as such.
	headerBufferSize = 4096
)

// headerSyntaxError is a header the pipeline refuses to carry; why is a
// phrase for the sender.
type headerSyntaxError struct{ why string }

func (e *headerSyntaxError) Error() string { return e.why }

// readHeader reads the header section of a message from br: every line up
// to the empty line that ends it (RFC 5322 §2.1). It returns the header
// lines as received (each ending with its newline) and the separating empty
// line ("\r\n", or "\n" for bare-LF input; empty when the message has no
// body). A last line without a newline at end of input gets "\r\n".
//
// A read error of br is returned as is (the caller knows whether it was the
// size limit or the connection); a header the pipeline refuses to carry is
// a *headerSyntaxError: a line longer than maxHeaderLine, a header section
// longer than maxHeaderBytes, or a NUL byte (RFC 5322 §2.2 forbids it and it
// breaks IMAP clients).
func readHeader(br *bufio.Reader) (header, sep []byte, err error) {
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			return nil, nil, &headerSyntaxError{fmt.Sprintf("a header line is longer than %d bytes (RFC 5322 §2.1.1 allows 998)", maxHeaderLine)}
		case err == io.EOF:
			if len(line) == 0 {
				return header, nil, nil
			}
			// Last line without its newline: complete it, so that what we
			// store is a well-formed header.
			if line[len(line)-1] == '\r' {
				line = append(line[:len(line):len(line)], '\n')
			} else {
				line = append(line[:len(line):len(line)], '\r', '\n')
			}
		case err != nil:
			return nil, nil, err
		}
		if len(line) > maxHeaderLine {
			return nil, nil, &headerSyntaxError{fmt.Sprintf("a header line is longer than %d bytes (RFC 5322 §2.1.1 allows 998)", maxHeaderLine)}
		}
		if isBlankLine(line) {
			return header, append([]byte(nil), line...), nil
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, nil, &headerSyntaxError{"the header contains a NUL character (RFC 5322 §2.2)"}
		}
		if len(header)+len(line) > maxHeaderBytes {
			return nil, nil, &headerSyntaxError{fmt.Sprintf("the header is longer than %d bytes", maxHeaderBytes)}
		}
		header = append(header, line...)
		if err == io.EOF {
			return header, nil, nil
		}
	}
}

func isBlankLine(line []byte) bool {
	return string(line) == "\r\n" || string(line) == "\n"
}

// parseHeader parses the raw header lines returned by readHeader.
func parseHeader(raw []byte) (textproto.Header, error) {
	r := bufio.NewReader(io.MultiReader(bytes.NewReader(raw), strings.NewReader("\r\n")))
	h, err := textproto.ReadHeader(r)
	if err != nil {
		return h, &headerSyntaxError{"the header is not made of \"Name: value\" lines (RFC 5322 §2.2)"}
	}
	return h, nil
}

// addressParser reads address lists. Only the addresses matter here, so a
// display name in a charset Go does not know (RFC 2047) is passed through
// as is instead of making the whole header unreadable.
var addressParser = mail.AddressParser{
	WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
	},
}

// fromAddresses returns the addresses of the From field, which must appear
// exactly once and name at least one mailbox (RFC 5322 §3.6, §3.6.2), and
// of the Sender field if present.
func fromAddresses(h textproto.Header) (from []string, sender string, err error) {
	values := h.Values("From")
	switch len(values) {
	case 0:
		return nil, "", &headerSyntaxError{"the message has no From: header (RFC 5322 §3.6 requires one)"}
	case 1:
	default:
		return nil, "", &headerSyntaxError{"the message has more than one From: header (RFC 5322 §3.6 allows one)"}
	}
	list, perr := addressParser.ParseList(values[0])
	if perr != nil || len(list) == 0 {
		return nil, "", &headerSyntaxError{"the From: header does not hold a valid address (RFC 5322 §3.4)"}
	}
	for _, a := range list {
		from = append(from, a.Address)
	}
	if sv := h.Values("Sender"); len(sv) > 0 {
		if len(sv) > 1 {
			return nil, "", &headerSyntaxError{"the message has more than one Sender: header (RFC 5322 §3.6 allows one)"}
		}
		a, perr := addressParser.Parse(sv[0])
		if perr != nil {
			return nil, "", &headerSyntaxError{"the Sender: header does not hold a valid address (RFC 5322 §3.4)"}
		}
		sender = a.Address
	}
	return from, sender, nil
}

// receivedField builds the Received: trace field that every SMTP server
// prepends (RFC 5321 §4.4), in the syntax of RFC 5321 §4.4 / RFC 5322
// §3.6.7:
//
//	Received: from <helo> (<[ip]>)
//		by <hostname> with <ESMTP|ESMTPS|ESMTPA|ESMTPSA> id <transaction id>
//		[for <recipient>]; <date>
//
// The protocol names are those of RFC 3848 (S: TLS, A: authenticated). The
// "for" clause is written only for a single recipient: the body is stored
// once for all recipients, and naming them would disclose Bcc recipients
// to one another (RFC 5321 §7.2).
func receivedField(src Source, hostname, id string, rcpts []string, now time.Time) []byte {
	var b strings.Builder
	b.WriteString("Received: from ")
	b.WriteString(heloForTrace(src.Helo))
	if lit := addressLiteral(src.RemoteAddr); lit != "" {
		b.WriteString(" (")
		b.WriteString(lit)
		b.WriteString(")")
	}
	b.WriteString("\r\n\tby ")
	b.WriteString(hostname)
	b.WriteString(" with ")
	b.WriteString(protocolName(src))
	b.WriteString(" id ")
	b.WriteString(id)
	if len(rcpts) == 1 && isTraceSafe(rcpts[0]) {
		b.WriteString("\r\n\tfor <")
		b.WriteString(rcpts[0])
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(now.Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return []byte(b.String())
}

// protocolName is the "with" value of RFC 3848.
func protocolName(src Source) string {
	p := "ESMTP"
	if src.TLS {
		p += "S"
	}
	if src.Principal != nil {
		p += "A"
	}
	return p
}

// heloForTrace returns the client's HELO/EHLO name if it can be written
// into a header as is, and "unknown" otherwise: go-smtp accepts any word
// there, and a header must never carry the peer's control characters.
func heloForTrace(helo string) string {
	if helo == "" || len(helo) > 255 {
		return "unknown"
	}
	for i := 0; i < len(helo); i++ {
		c := helo[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == '_' || c == ':' || c == '[' || c == ']':
		default:
			return "unknown"
		}
	}
	return helo
}

// isTraceSafe reports whether s (an address accepted by the directory) can
// go into a header: printable ASCII without spaces or angle brackets.
func isTraceSafe(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// addressLiteral formats the peer's IP as an RFC 5321 §4.1.3 address
// literal ("[192.0.2.1]", "[IPv6:2001:db8::1]"), or "" when unknown.
func addressLiteral(remote string) string {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}

// submissionFields returns the fields a Message Submission Agent adds when
// the client left them out: Message-ID (RFC 6409 §8.3, RFC 5322 §3.6.4) and
// Date (RFC 6409 §8.2, RFC 5322 §3.6.1), so that every message of the space
// can be traced and threaded.
func submissionFields(h textproto.Header, hostname, id string, now time.Time) []byte {
	var b bytes.Buffer
	if !h.Has("Message-Id") {
		fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", id, hostname)
	}
	if !h.Has("Date") {
		fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	return b.Bytes()
}

// domainOf returns the domain of an address (after the last @), lower case.
func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(addr[at+1:])
}

// asHeaderError tells a header refusal from a read error.
func asHeaderError(err error) (*headerSyntaxError, bool) {
	var he *headerSyntaxError
	ok := errors.As(err, &he)
	return he, ok
}
