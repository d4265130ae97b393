package imap

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Address lists (RFC 5322 §3.4 with the obsolete syntax of §4.4), parsed
// leniently as ENVELOPE (RFC 9051 §7.5.2) and SEARCH FROM/TO/CC/BCC need
// them: comments anywhere ("user (x)@ (y) example.org"), a comment as the
// display name when there is none ("user@example.org (Real Name)"), source
// routes ("<@route:user@example.org>", dropped: go-imap's imap.Address has
// no field for them), groups ("team: a@x, b@y;") and missing parts.
// net/mail and go-message refuse most of these, and a single refusal would
// lose the whole header.

// Placeholders for a part the header lacks, as Dovecot writes them: a NIL
// host would read as a group marker (RFC 9051 §7.5.2).
const (
	missingMailbox = "MISSING_MAILBOX"
	missingDomain  = "MISSING_DOMAIN"
)

type addrTokKind uint8

const (
	tokWord    addrTokKind = iota + 1 // atom (dots included) or quoted-string
	tokComment                        // (...) content
	tokSpecial                        // one of < > @ , : ; [
	tokLiteral                        // [domain literal], brackets included
)

type addrTok struct {
	kind addrTokKind
	text string
	// quoted: a quoted-string, kept as one word even if it holds spaces.
	quoted bool
}

// maxAddrTokens bounds the work on one header (a hostile 1 MB header
// of commas would otherwise make as many empty entries).
const maxAddrTokens = 10000

func tokenizeAddresses(s string) []addrTok {
	var toks []addrTok
	for i := 0; i < len(s) && len(toks) < maxAddrTokens; {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '"':
			var b strings.Builder
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				if s[i] != '\r' && s[i] != '\n' {
					b.WriteByte(s[i])
				}
				i++
			}
			i++ // closing quote, if any
			toks = append(toks, addrTok{kind: tokWord, text: b.String(), quoted: true})
		case c == '(':
			depth := 0
			var b strings.Builder
			for ; i < len(s); i++ {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if ch == '(' {
					depth++
					if depth == 1 {
						continue
					}
				}
				if ch == ')' {
					depth--
					if depth == 0 {
						i++
						break
					}
				}
				b.WriteByte(ch)
			}
			toks = append(toks, addrTok{kind: tokComment, text: strings.TrimSpace(b.String())})
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				j = len(s) - i - 1
			}
			toks = append(toks, addrTok{kind: tokLiteral, text: s[i : i+j+1]})
			i += j + 1
		case strings.IndexByte("<>@,:;", c) >= 0:
			toks = append(toks, addrTok{kind: tokSpecial, text: s[i : i+1]})
			i++
		case c == ')' || c == ']' || c == '\\':
			i++ // stray: ignored
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n\"()[]<>@,:;\\", rune(s[j])) {
				j++
			}
			toks = append(toks, addrTok{kind: tokWord, text: s[i:j]})
			i = j
		}
	}
	return toks
}

type addrParser struct {
	toks []addrTok
	i    int
	out  []imap.Address
}

func (p *addrParser) peek() *addrTok {
	if p.i < len(p.toks) {
		return &p.toks[p.i]
	}
	return nil
}

func (p *addrParser) isSpecial(c string) bool {
	t := p.peek()
	return t != nil && t.kind == tokSpecial && t.text == c
}

// parseAddressList parses an address-list. Groups become a start marker
// (the group name as mailbox, no host), their members, and an end marker
// (all empty), as ENVELOPE writes them (RFC 9051 §7.5.2).
func parseAddressList(s string) []imap.Address {
	p := &addrParser{toks: tokenizeAddresses(s)}
	for p.i < len(p.toks) {
		start := p.i
		p.address(false)
		if p.isSpecial(",") || p.isSpecial(";") || p.isSpecial(">") || p.i == start {
			p.i++ // separator, or a token no rule takes
		}
	}
	return p.out
}

// address parses one mailbox or group. Inside a group, ":" and ";" end it.
func (p *addrParser) address(inGroup bool) {
	var phrase []string
	var comment string
	for t := p.peek(); t != nil; t = p.peek() {
		switch {
		case t.kind == tokWord || t.kind == tokLiteral:
			phrase = append(phrase, t.text)
			p.i++
			continue
		case t.kind == tokComment:
			if comment == "" {
				comment = t.text
			}
			p.i++
			continue
		}
		break
	}
	t := p.peek()
	switch {
	case t != nil && t.text == ":" && !inGroup:
		p.i++
		// A group without a name cannot be marked (its start marker would
		// read as an end marker): its members are listed alone.
		group := decodeWord(strings.Join(phrase, " "))
		if group != "" {
			p.out = append(p.out, imap.Address{Mailbox: group})
		}
		for q := p.peek(); q != nil && !p.isSpecial(";"); q = p.peek() {
			start := p.i
			p.address(true)
			if p.isSpecial(",") || p.i == start {
				p.i++
			}
		}
		if p.isSpecial(";") {
			p.i++
		}
		if group != "" {
			p.out = append(p.out, imap.Address{})
		}
	case t != nil && t.text == "<":
		p.i++
		name := strings.Join(phrase, " ")
		if name == "" {
			name = comment
		}
		p.skipRoute()
		mailbox, host := p.addrSpec(">")
		if p.isSpecial(">") {
			p.i++
		}
		p.skipComments()
		p.add(name, mailbox, host)
	case t != nil && t.text == "@":
		// addr-spec without angle brackets: the words so far are the
		// local part, a comment after it the display name.
		local := strings.Join(phrase, "")
		mailbox, host := p.addrSpec("")
		if mailbox == "" {
			mailbox = local
		} else {
			mailbox = local + mailbox
		}
		if c := p.skipComments(); c != "" {
			comment = c
		}
		p.add(comment, mailbox, host)
	default:
		// A word alone ("undisclosed-recipients" without its ":;").
		if len(phrase) > 0 {
			p.add(comment, strings.Join(phrase, ""), "")
		}
	}
}

// skipRoute drops an obs-route ("@a,@b:") after "<".
func (p *addrParser) skipRoute() {
	if !p.isSpecial("@") {
		return
	}
	for j := p.i; j < len(p.toks); j++ {
		t := &p.toks[j]
		if t.kind == tokSpecial && t.text == ":" {
			p.i = j + 1
			return
		}
		if t.kind == tokSpecial && (t.text == ">" || t.text == ";") {
			return
		}
	}
}

// addrSpec reads local-part "@" domain up to end (">" or, when empty, the
// end of the address), skipping comments.
func (p *addrParser) addrSpec(end string) (mailbox, host string) {
	var local, domain strings.Builder
	cur := &local
	for t := p.peek(); t != nil; t = p.peek() {
		if t.kind == tokSpecial {
			if t.text == "@" && cur == &local {
				cur = &domain
				p.i++
				continue
			}
			if t.text == end || end == "" || t.text == "," || t.text == ";" {
				break
			}
			if t.text == "@" { // a second "@": keep it in the domain
				cur.WriteString("@")
				p.i++
				continue
			}
			break
		}
		if t.kind == tokComment {
			if end == "" && cur == &domain && domain.Len() > 0 {
				break // a trailing comment: the caller's display name
			}
			p.i++
			continue
		}
		if end == "" && cur == &domain && domain.Len() > 0 && !strings.HasPrefix(t.text, ".") &&
			!strings.HasSuffix(domain.String(), ".") {
			break // a word after a complete domain belongs to no address
		}
		cur.WriteString(t.text)
		p.i++
	}
	return local.String(), domain.String()
}

// skipComments consumes comments and returns the first one.
func (p *addrParser) skipComments() string {
	var first string
	for t := p.peek(); t != nil && t.kind == tokComment; t = p.peek() {
		if first == "" {
			first = t.text
		}
		p.i++
	}
	return first
}

func (p *addrParser) add(name, mailbox, host string) {
	if mailbox == "" && host == "" {
		return // "<>" (null return path) or nothing at all
	}
	if mailbox == "" {
		mailbox = missingMailbox
	}
	if host == "" {
		host = missingDomain
	}
	p.out = append(p.out, imap.Address{Name: decodeWord(name), Mailbox: mailbox, Host: host})
}

// decodeWord decodes RFC 2047 encoded words in a display name.
func decodeWord(s string) string {
	if d, err := mimeDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}
