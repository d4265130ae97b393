package ldap

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/carepost/carepost/directory"
)

// Filter is a search filter (RFC 4511 §4.5.1.7) as decoded from a
// SearchRequest. Attribute names are folded to their canonical form
// (canonicalAttr) when known, kept lower-cased otherwise.
type Filter struct {
	Op      FilterOp
	Attr    string
	Value   string   // equality, approx, >=, <=
	Initial string   // substrings
	Any     []string // substrings
	Final   string   // substrings
	Sub     []*Filter
}

// FilterOp is the CHOICE of a Filter.
type FilterOp int

// The CHOICEs of RFC 4511 §4.5.1, in the order of their context tags.
const (
	FilterAnd FilterOp = iota
	FilterOr
	FilterNot
	FilterEqual
	FilterSubstrings
	FilterGreaterOrEqual
	FilterLessOrEqual
	FilterPresent
	FilterApprox
	FilterExtensible
)

// Limits of a filter: deeper or larger filters are refused
// (protocolError), so that no request costs more than its size.
const (
	maxFilterDepth = 16
	maxFilterNodes = 256
)

var errFilter = errors.New("the search filter is not a valid LDAP filter (RFC 4511 §4.5.1.7)")

// decodeFilter reads a Filter from its BER packet.
func decodeFilter(p *ber.Packet) (*Filter, error) {
	n := 0
	return decodeFilterNode(p, 0, &n)
}

func decodeFilterNode(p *ber.Packet, depth int, nodes *int) (*Filter, error) {
	*nodes++
	if p == nil || depth > maxFilterDepth || *nodes > maxFilterNodes {
		return nil, fmt.Errorf("%w: too deep or too large (at most %d levels and %d items)", errFilter, maxFilterDepth, maxFilterNodes)
	}
	if p.ClassType != ber.ClassContext {
		return nil, errFilter
	}
	f := &Filter{Op: FilterOp(p.Tag)}
	switch f.Op {
	case FilterAnd, FilterOr, FilterNot:
		if p.TagType != ber.TypeConstructed || (f.Op == FilterNot && len(p.Children) != 1) {
			return nil, errFilter
		}
		for _, c := range p.Children {
			s, err := decodeFilterNode(c, depth+1, nodes)
			if err != nil {
				return nil, err
			}
			f.Sub = append(f.Sub, s)
		}
	case FilterEqual, FilterGreaterOrEqual, FilterLessOrEqual, FilterApprox:
		if p.TagType != ber.TypeConstructed || len(p.Children) != 2 {
			return nil, errFilter
		}
		attr, err1 := octets(p.Children[0])
		val, err2 := octets(p.Children[1])
		if err1 != nil || err2 != nil || !validAttrDesc(attr) {
			return nil, errFilter
		}
		f.Attr, f.Value = canonicalAttr(attr), val
	case FilterSubstrings:
		if p.TagType != ber.TypeConstructed || len(p.Children) != 2 || p.Children[1].TagType != ber.TypeConstructed {
			return nil, errFilter
		}
		attr, err := octets(p.Children[0])
		if err != nil || !validAttrDesc(attr) || len(p.Children[1].Children) == 0 {
			return nil, errFilter
		}
		f.Attr = canonicalAttr(attr)
		subs := p.Children[1].Children
		for i, s := range subs {
			if s.ClassType != ber.ClassContext || s.TagType != ber.TypePrimitive {
				return nil, errFilter
			}
			v := s.Data.String()
			switch s.Tag {
			case 0: // initial: first, at most once
				if i != 0 {
					return nil, errFilter
				}
				f.Initial = v
			case 1:
				f.Any = append(f.Any, v)
			case 2: // final: last, at most once
				if i != len(subs)-1 {
					return nil, errFilter
				}
				f.Final = v
			default:
				return nil, errFilter
			}
		}
	case FilterPresent:
		if p.TagType != ber.TypePrimitive || !validAttrDesc(p.Data.String()) {
			return nil, errFilter
		}
		f.Attr = canonicalAttr(p.Data.String())
	case FilterExtensible:
		// Evaluated as Undefined (no extensible matching here): kept so
		// that (!(...)) and (|...) around it still work.
		if p.TagType != ber.TypeConstructed {
			return nil, errFilter
		}
	default:
		return nil, errFilter
	}
	return f, nil
}

// validAttrDesc checks the form of an AttributeDescription (RFC 4512
// §2.5): a name or an OID, then options, each of letters, digits, '-'
// (and '.' in an OID).
func validAttrDesc(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, part := range strings.Split(s, ";") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
				return false
			}
		}
	}
	return true
}

// octets returns the content of an OCTET STRING (or of any primitive
// element: the attribute descriptions and values are OCTET STRINGs).
func octets(p *ber.Packet) (string, error) {
	if p == nil || p.TagType != ber.TypePrimitive {
		return "", errFilter
	}
	return p.Data.String(), nil
}

// String writes f in the string form of RFC 4515 (for the log).
func (f *Filter) String() string {
	var b strings.Builder
	f.write(&b)
	return b.String()
}

func (f *Filter) write(b *strings.Builder) {
	b.WriteByte('(')
	switch f.Op {
	case FilterAnd, FilterOr, FilterNot:
		b.WriteByte("&|!"[f.Op])
		for _, s := range f.Sub {
			s.write(b)
		}
	case FilterEqual, FilterApprox, FilterGreaterOrEqual, FilterLessOrEqual:
		b.WriteString(f.Attr)
		b.WriteString(map[FilterOp]string{FilterEqual: "=", FilterApprox: "~=", FilterGreaterOrEqual: ">=", FilterLessOrEqual: "<="}[f.Op])
		b.WriteString(escapeFilterValue(f.Value))
	case FilterSubstrings:
		b.WriteString(f.Attr + "=" + escapeFilterValue(f.Initial) + "*")
		for _, a := range f.Any {
			b.WriteString(escapeFilterValue(a) + "*")
		}
		b.WriteString(escapeFilterValue(f.Final))
	case FilterPresent:
		b.WriteString(f.Attr + "=*")
	case FilterExtensible:
		b.WriteString(":extensible:")
	}
	b.WriteByte(')')
}

// escapeFilterValue escapes as RFC 4515 §3 requires (and bytes that are
// not UTF-8).
func escapeFilterValue(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\%02x", s[i])
		case r == '*' || r == '(' || r == ')' || r == '\\' || r == 0:
			fmt.Fprintf(&b, "\\%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Three-valued logic of RFC 4511 §4.5.1.7.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUndefined
)

// Matches tells whether f holds for e (Undefined counts as false).
func (f *Filter) Matches(e *Entry) bool { return f.eval(e) == triTrue }

func (f *Filter) eval(e *Entry) tri {
	switch f.Op {
	case FilterAnd:
		r := triTrue
		for _, s := range f.Sub {
			switch s.eval(e) {
			case triFalse:
				return triFalse
			case triUndefined:
				r = triUndefined
			}
		}
		return r
	case FilterOr:
		r := triFalse
		for _, s := range f.Sub {
			switch s.eval(e) {
			case triTrue:
				return triTrue
			case triUndefined:
				r = triUndefined
			}
		}
		return r
	case FilterNot:
		switch f.Sub[0].eval(e) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUndefined
	case FilterPresent:
		if len(e.values(f.Attr)) > 0 {
			return triTrue
		}
		return triFalse
	case FilterExtensible:
		return triUndefined
	}
	if !knownAttr(f.Attr) || f.Attr == attrCert {
		// No matching rule here for an attribute this view does not
		// have, nor for certificates.
		return triUndefined
	}
	for _, v := range e.values(f.Attr) {
		if f.matchValue(v) {
			return triTrue
		}
	}
	return triFalse
}

// matchValue compares one value of the entry, folding case and accents
// as the directory's searches do (directory.FoldSearch): "Hélène" finds
// "helene". Approximate matching is "contains".
func (f *Filter) matchValue(v string) bool {
	h := directory.FoldSearch(v)
	switch f.Op {
	case FilterEqual:
		return h == directory.FoldSearch(f.Value)
	case FilterApprox:
		return strings.Contains(h, directory.FoldSearch(f.Value))
	case FilterGreaterOrEqual:
		return h >= directory.FoldSearch(f.Value)
	case FilterLessOrEqual:
		return h <= directory.FoldSearch(f.Value)
	case FilterSubstrings:
		ini, fin := directory.FoldSearch(f.Initial), directory.FoldSearch(f.Final)
		if !strings.HasPrefix(h, ini) {
			return false
		}
		h = h[len(ini):]
		for _, a := range f.Any {
			a = directory.FoldSearch(a)
			i := strings.Index(h, a)
			if i < 0 {
				return false
			}
			h = h[i+len(a):]
		}
		return strings.HasSuffix(h, fin)
	}
	return false
}
