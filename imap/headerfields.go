package imap

import (
	"bytes"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// headerSection answers BODY[HEADER], BODY[HEADER.FIELDS (…)] and
// BODY[HEADER.FIELDS.NOT (…)] of a message (not of a part) from its header
// section hdr, as imapserver.ExtractBodySection would, without parsing the
// header into a map of fields and writing it out again: the fields asked
// for are copied line by line. Clients ask for header fields of every
// message they list, so this is on the hot path of FETCH (a tenth of the
// server's CPU under imaptest went to the library's way).
//
// ok is false for a header it is not sure to answer exactly as the
// library does (a line not ending in CRLF, a stray CR or LF, a field name
// that is not an RFC 5322 token, a header not ending at a line end); the
// caller then asks the library. FuzzHeaderSection checks the two agree
// whenever ok is true.
func headerSection(hdr []byte, bs *imap.FetchItemBodySection) (out []byte, ok bool) {
	if len(bs.Part) != 0 || bs.Specifier != imap.PartSpecifierHeader {
		return nil, false
	}
	// The library keeps a field when its name, lowercased, is one of the
	// names asked for, lowercased (strings.ToLower, Unicode and all); it
	// drops a field for HEADER.FIELDS.NOT only when the name asked for is
	// a token equal to the field's but for ASCII case (wanted).
	var buf bytes.Buffer
	buf.Grow(256)
	rest := hdr
	var (
		field []byte // the field being read, with its continuation lines
		name  []byte
	)
	flush := func() {
		if field == nil {
			return
		}
		if wanted(name, bs.HeaderFields, bs.HeaderFieldsNot) {
			buf.Write(field)
		}
		field = nil
	}
	first := true
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 1 || rest[i-1] != '\r' {
			return nil, false // a bare LF, or no line end before the end
		}
		line := rest[:i+1]
		if bytes.IndexByte(line[:i-1], '\r') >= 0 {
			return nil, false // a bare CR
		}
		rest = rest[i+1:]
		if len(line) == 2 { // the empty line ending the header
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first {
				return nil, false // the library refuses such a header
			}
			field = field[:len(field)+len(line)] // a continuation line: field and line are contiguous in hdr
			continue
		}
		flush()
		first = false
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, false
		}
		name = bytes.TrimRight(line[:colon], " \t")
		if len(name) == 0 || !isToken(string(name)) {
			return nil, false
		}
		field = line
	}
	flush()
	buf.WriteString("\r\n")
	b := buf.Bytes()
	if p := bs.Partial; p != nil {
		if p.Offset > int64(len(b)) {
			return nil, true
		}
		end := min(p.Offset+p.Size, int64(len(b)))
		b = b[p.Offset:end]
	}
	return b, true
}

// wanted says whether a field of this name goes in the answer.
func wanted(name []byte, keep, drop []string) bool {
	if len(keep) > 0 {
		found := false
		for _, k := range keep {
			if !isASCII(k) {
				k = strings.ToLower(k) // as the library does: 'K' (U+212A) is "k"
			}
			if asciiEqualFold(name, k) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, k := range drop {
		if isToken(k) && asciiEqualFold(name, k) {
			return false
		}
	}
	return true
}

// asciiEqualFold: a and b are equal but for ASCII case.
func asciiEqualFold(a []byte, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i, c := range a {
		d := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isToken: s is a non-empty RFC 7230 token, the names net/textproto
// canonicalizes (and so compares without regard to ASCII case).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
