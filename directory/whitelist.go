package directory

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// WhiteList is a list of the trust space as read from a file: the national
// white list of the operators' domains (XML) or a plain list of domains.
type WhiteList struct {
	// Generated is the list's DateDeGeneration; zero when absent.
	Generated time.Time
	// Domains are the valid entries, in the order of the file, each once.
	Domains []TrustedDomain
	// Skipped are the entries left out, each with the reason, for the
	// operator's report: an invalid domain name, a domain listed twice.
	Skipped []string
}

// Limits of a white list. The national list holds a few thousand domains
// (about 1 MB); these bounds leave room for growth and keep a wrong file
// or a hostile server from filling the memory.
const (
	MaxWhiteListBytes   = 64 << 20
	maxWhiteListDomains = 200_000
	maxDNLen            = 1024
)

// ErrWhiteList is the Reason of every refusal of a white list that cannot
// be read.
var ErrWhiteList = errors.New("white list not readable")

func badList(format string, args ...any) error {
	return invalid("", format, args...)
}

// ParseWhiteList reads a list of the trust space. Two formats are
// accepted, told apart by their first character:
//
//   - the national white list (docs/ and docs/domain.md §1: namespace
//     https://listeblanche.mssante.fr/schema): a DateDeGeneration and
//     repeated Domaine elements with Nom, Description and
//     DNCertificatOperateur. Elements are matched by local name, whatever
//     their namespace prefix;
//   - a plain list: one domain a line; "#" starts a comment; blank lines
//     are ignored.
//
// Domain names are stored in their ASCII form: international names of the
// list are converted to A-labels (RFC 5891 §4.4, Punycode RFC 3492).
// An entry that is not valid is skipped and reported in Skipped; a list
// without any valid domain is refused, so that a truncated download or the
// wrong file never empties the trust space.
func ParseWhiteList(r io.Reader) (*WhiteList, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxWhiteListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("directory: read the white list: %w", err)
	}
	if len(b) > MaxWhiteListBytes {
		return nil, badList("The list is larger than %d bytes: it is not a white list of the trust space.", MaxWhiteListBytes)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a UTF-8 byte order mark
	var wl *WhiteList
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '<' {
		wl, err = parseXMLList(t)
	} else {
		wl, err = parsePlainList(b)
	}
	if err != nil {
		return nil, err
	}
	if len(wl.Domains) == 0 {
		why := ""
		if len(wl.Skipped) > 0 {
			why = " (" + wl.Skipped[0] + ")"
		}
		return nil, badList("The list names no valid domain%s: the trust space was left as it was.", why)
	}
	return wl, nil
}

// xmlDomaine is one Domaine element of the national white list.
type xmlDomaine struct {
	Nom                   string `xml:"Nom"`
	Description           string `xml:"Description"`
	DNCertificatOperateur string `xml:"DNCertificatOperateur"`
	DateMAJ               string `xml:"DateMAJ"`
}

func parseXMLList(b []byte) (*WhiteList, error) {
	wl := &WhiteList{}
	seen := map[string]bool{}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	dec.Entity = map[string]string{} // no entities but the five of XML
	n := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, badList("The white list is not well-formed XML: %s.", xmlErrorText(err))
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "DateDeGeneration":
			var s string
			if err := dec.DecodeElement(&s, &se); err != nil {
				return nil, badList("The white list is not well-formed XML: %s.", xmlErrorText(err))
			}
			wl.Generated = parseListDate(s)
		case "Domaine":
			var d xmlDomaine
			if err := dec.DecodeElement(&d, &se); err != nil {
				return nil, badList("The white list is not well-formed XML: %s.", xmlErrorText(err))
			}
			n++
			if n > maxWhiteListDomains {
				return nil, badList("The white list has more than %d domains.", maxWhiteListDomains)
			}
			wl.add(seen, d.Nom, d.Description, d.DNCertificatOperateur, parseListDate(d.DateMAJ))
		}
	}
	return wl, nil
}

// xmlErrorText is the XML decoder's error as a phrase safe to print (it
// quotes the input, which may be anything).
func xmlErrorText(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func parsePlainList(b []byte) (*WhiteList, error) {
	wl := &WhiteList{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if len(wl.Domains)+len(wl.Skipped) >= maxWhiteListDomains {
			return nil, badList("The list has more than %d domains.", maxWhiteListDomains)
		}
		if strings.ContainsAny(s, " \t") {
			wl.Skipped = append(wl.Skipped, fmt.Sprintf("line %d: one domain a line is expected, not %q", line, clip(s, 80)))
			continue
		}
		wl.add(seen, s, "", "", time.Time{})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, badList("Line %d of the list is longer than 64 KB: it is not a list of domains.", line+1)
		}
		return nil, fmt.Errorf("directory: read the list: %w", err)
	}
	return wl, nil
}

// add checks one entry and appends it, or records why it is skipped.
func (wl *WhiteList) add(seen map[string]bool, name, desc, dn string, updated time.Time) {
	raw := strings.TrimSpace(name)
	shown := clip(raw, 80)
	dom, err := asciiDomain(strings.TrimSuffix(raw, "."))
	if err == nil {
		dom, err = ParseDomain(dom)
	}
	if err != nil {
		wl.Skipped = append(wl.Skipped, fmt.Sprintf("%q: not a valid domain name", shown))
		return
	}
	if seen[dom] {
		wl.Skipped = append(wl.Skipped, fmt.Sprintf("%s: listed more than once (the first entry is kept)", dom))
		return
	}
	dn = strings.TrimSpace(dn)
	if dn != "" {
		if len(dn) > maxDNLen || !utf8.ValidString(dn) {
			wl.Skipped = append(wl.Skipped, fmt.Sprintf("%s: the operator certificate DN is not valid", dom))
			return
		}
		if _, err := parseDN(dn); err != nil {
			wl.Skipped = append(wl.Skipped, fmt.Sprintf("%s: the operator certificate DN %q cannot be read (%v)", dom, clip(dn, 80), err))
			return
		}
	}
	desc = oneLine(desc)
	seen[dom] = true
	wl.Domains = append(wl.Domains, TrustedDomain{Domain: dom, Description: desc, OperatorCertDN: dn, UpdatedAt: updated})
}

// oneLine makes a description safe to store and print: valid UTF-8,
// whitespace runs and control characters made one space, at most
// maxTextLen characters.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "?")
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == ' ' {
			space = b.Len() > 0
			continue
		}
		if n >= maxTextLen {
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		s = s[:n]
		s = strings.ToValidUTF8(s, "") + "..."
	}
	return s
}

// parseListDate reads the dates of the white list (xs:dateTime or
// xs:date); zero when absent or unreadable: they are informative.
func parseListDate(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999", "2006-01-02", "02/01/2006 15:04:05", "02/01/2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// asciiDomain returns domain in ASCII: lower case, each label with
// non-ASCII characters encoded as an A-label ("xn--" + Punycode, RFC 3492,
// RFC 5891 §4.4). Unicode normalisation (NFC, RFC 5891 §5.3) is not
// applied: the national list is written in NFC.
func asciiDomain(domain string) (string, error) {
	if !utf8.ValidString(domain) {
		return "", errors.New("not UTF-8")
	}
	domain = strings.ToLower(domain)
	ascii := true
	for i := 0; i < len(domain); i++ {
		ascii = ascii && domain[i] < 0x80
	}
	if ascii {
		return domain, nil
	}
	labels := strings.Split(domain, ".")
	for i, l := range labels {
		enc, err := punycodeLabel(l)
		if err != nil {
			return "", err
		}
		labels[i] = enc
	}
	return strings.Join(labels, "."), nil
}

// punycodeLabel encodes one label (RFC 3492 §6.3); an ASCII label is
// returned as is.
func punycodeLabel(label string) (string, error) {
	const (
		base, tmin, tmax, skew, damp = 36, 1, 26, 38, 700
		initialBias, initialN        = 72, 128
	)
	runes := []rune(label)
	var out []byte
	for _, r := range runes {
		if r < 0x80 {
			out = append(out, byte(r))
		}
	}
	b := len(out)
	if b == len(runes) {
		return label, nil
	}
	if b > 0 {
		out = append(out, '-')
	}
	digit := func(d int) byte {
		if d < 26 {
			return byte('a' + d)
		}
		return byte('0' + d - 26)
	}
	adapt := func(delta, numPoints int, first bool) int {
		if first {
			delta /= damp
		} else {
			delta /= 2
		}
		delta += delta / numPoints
		k := 0
		for delta > ((base-tmin)*tmax)/2 {
			delta /= base - tmin
			k += base
		}
		return k + (base-tmin+1)*delta/(delta+skew)
	}
	n, delta, bias, h := initialN, 0, initialBias, b
	for h < len(runes) {
		m := int(^uint32(0) >> 1)
		for _, r := range runes {
			if int(r) >= n && int(r) < m {
				m = int(r)
			}
		}
		if (m - n) > (int(^uint32(0)>>1)-delta)/(h+1) {
			return "", errors.New("punycode overflow")
		}
		delta += (m - n) * (h + 1)
		n = m
		for _, r := range runes {
			if int(r) < n {
				delta++
			}
			if int(r) == n {
				q := delta
				for k := base; ; k += base {
					t := k - bias
					if t < tmin {
						t = tmin
					} else if t > tmax {
						t = tmax
					}
					if q < t {
						break
					}
					out = append(out, digit(t+(q-t)%(base-t)))
					q = (q - t) / (base - t)
				}
				out = append(out, digit(q))
				bias = adapt(delta, h+1, h == b)
				delta = 0
				h++
			}
		}
		delta++
		n++
	}
	return "xn--" + string(out), nil
}
