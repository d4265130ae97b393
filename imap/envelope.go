package imap

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// extractEnvelope builds the ENVELOPE (RFC 9051 §7.5.2). It completes the
// library's ExtractEnvelope, which drops address groups ("undisclosed
// recipients:;", RFC 5322 §3.4): a group is sent as a start marker (NIL
// host, group name as mailbox), its members, and an end marker. Sender and
// Reply-To default to From as the RFC asks.
func extractEnvelope(h textproto.Header) *imap.Envelope {
	env := imapserver.ExtractEnvelope(h)
	env.From = addressList(h.Get("From"))
	env.Sender = addressList(h.Get("Sender"))
	env.ReplyTo = addressList(h.Get("Reply-To"))
	env.To = addressList(h.Get("To"))
	env.Cc = addressList(h.Get("Cc"))
	env.Bcc = addressList(h.Get("Bcc"))
	if len(env.Sender) == 0 {
		env.Sender = env.From
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = env.From
	}
	return env
}

// addressList parses an address-list with groups.
func addressList(v string) []imap.Address {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	var out []imap.Address
	for _, seg := range splitTopLevel(v) {
		if name, members, ok := cutGroup(seg); ok {
			out = append(out, imap.Address{Mailbox: decodeWord(strings.TrimSpace(name))})
			out = append(out, plainAddresses(members)...)
			out = append(out, imap.Address{})
			continue
		}
		out = append(out, plainAddresses(seg)...)
	}
	return out
}

func plainAddresses(s string) []imap.Address {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	addrs, err := mail.ParseAddressList(s)
	if err != nil {
		return nil
	}
	var out []imap.Address
	for _, a := range addrs {
		mailbox, host, ok := strings.Cut(a.Address, "@")
		if !ok {
			continue
		}
		out = append(out, imap.Address{Name: a.Name, Mailbox: mailbox, Host: host})
	}
	return out
}

// splitTopLevel splits at commas outside quotes, comments, angle brackets
// and groups (a group's own commas stay inside it).
func splitTopLevel(s string) []string {
	var parts []string
	depth, inQuote, inAngle, inGroup, start := 0, false, false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '<':
			inAngle = true
		case c == '>':
			inAngle = false
		case inAngle:
		case c == ':':
			inGroup = true
		case c == ';':
			inGroup = false
		case c == ',' && !inGroup:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// cutGroup recognises "name: members;" outside quotes and angle brackets.
func cutGroup(seg string) (name, members string, ok bool) {
	inQuote, inAngle, depth := false, false, 0
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth > 0:
		case c == '<':
			inAngle = true
		case c == '>':
			inAngle = false
		case c == ':' && !inAngle:
			rest := seg[i+1:]
			if j := strings.LastIndexByte(rest, ';'); j >= 0 {
				rest = rest[:j]
			}
			return strings.Trim(seg[:i], " \t\""), rest, true
		}
	}
	return "", "", false
}

func decodeWord(s string) string {
	if d, err := mimeDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}
