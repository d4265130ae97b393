package directory

import (
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Distinguished names of operator certificates. The white list writes
// them as text (DNCertificatOperateur), in an order and a spelling that
// vary between producers: RFC 4514 ("CN=mx.op.fr,O=Op,C=FR", most
// specific first), the reverse order, or OpenSSL's one-line form
// ("/C=FR/O=Op/CN=mx.op.fr"). A DN is compared as the multiset of its
// attributes, each type under one name and each value with case and
// runs of spaces ignored, so that these spellings of one certificate's
// subject match and nothing else does.

// dnTypeNames maps the attribute types we know (RFC 4519, RFC 5280 and
// X.520 OIDs) to one name.
var dnTypeNames = map[string]string{
	"CN": "CN", "COMMONNAME": "CN", "2.5.4.3": "CN",
	"C": "C", "COUNTRYNAME": "C", "2.5.4.6": "C",
	"O": "O", "ORGANIZATIONNAME": "O", "2.5.4.10": "O",
	"OU": "OU", "ORGANIZATIONALUNITNAME": "OU", "2.5.4.11": "OU",
	"L": "L", "LOCALITYNAME": "L", "2.5.4.7": "L",
	"ST": "ST", "S": "ST", "STATEORPROVINCENAME": "ST", "2.5.4.8": "ST",
	"STREET": "STREET", "STREETADDRESS": "STREET", "2.5.4.9": "STREET",
	"SERIALNUMBER": "SERIALNUMBER", "2.5.4.5": "SERIALNUMBER",
	"POSTALCODE": "POSTALCODE", "2.5.4.17": "POSTALCODE",
	"ORGANIZATIONIDENTIFIER": "ORGANIZATIONIDENTIFIER", "2.5.4.97": "ORGANIZATIONIDENTIFIER",
	"UID": "UID", "0.9.2342.19200300.100.1.1": "UID",
	"DC": "DC", "0.9.2342.19200300.100.1.25": "DC",
	"E": "EMAIL", "EMAIL": "EMAIL", "EMAILADDRESS": "EMAIL", "1.2.840.113549.1.9.1": "EMAIL",
	"GN": "GN", "GIVENNAME": "GN", "2.5.4.42": "GN",
	"SN": "SN", "SURNAME": "SN", "2.5.4.4": "SN",
	"T": "TITLE", "TITLE": "TITLE", "2.5.4.12": "TITLE",
}

// dnAttr normalises one attribute.
func dnAttr(typ, value string) (string, error) {
	t := strings.ToUpper(strings.TrimSpace(typ))
	t = strings.TrimPrefix(t, "OID.")
	if t == "" {
		return "", errors.New("an attribute has no type")
	}
	if name, ok := dnTypeNames[t]; ok {
		t = name
	} else if !isOID(t) && !isKeyword(t) {
		return "", fmt.Errorf("%q is not an attribute type", clip(typ, 40))
	}
	return t + "=" + strings.ToLower(strings.Join(strings.Fields(value), " ")), nil
}

func isOID(s string) bool {
	if s == "" {
		return false
	}
	for _, p := range strings.Split(s, ".") {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

func isKeyword(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '-')) {
			return false
		}
	}
	return s != ""
}

// parseDN reads a DN written as text (see above) into its normalised
// attributes, sorted.
func parseDN(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty DN")
	}
	seps := ",;+"
	if s[0] == '/' { // OpenSSL's one-line form
		s, seps = s[1:], "/"
	}
	var attrs []string
	var typ, val strings.Builder
	inValue, quoted := false, false
	flush := func() error {
		if !inValue {
			if strings.TrimSpace(typ.String()) == "" {
				return nil // a separator at the end, or two in a row
			}
			return fmt.Errorf("%q has no value", clip(typ.String(), 40))
		}
		a, err := dnAttr(typ.String(), val.String())
		if err != nil {
			return err
		}
		attrs = append(attrs, a)
		typ.Reset()
		val.Reset()
		inValue = false
		return nil
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted:
			if c == '"' {
				quoted = false
			} else if c == '\\' && i+1 < len(s) {
				i++
				val.WriteByte(s[i])
			} else {
				val.WriteByte(c)
			}
		case c == '\\':
			if i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
				b, _ := hex.DecodeString(s[i+1 : i+3])
				i += 2
				if inValue {
					val.Write(b)
				} else {
					typ.Write(b)
				}
			} else if i+1 < len(s) {
				i++
				if inValue {
					val.WriteByte(s[i])
				} else {
					typ.WriteByte(s[i])
				}
			}
		case strings.IndexByte(seps, c) >= 0:
			if err := flush(); err != nil {
				return nil, err
			}
		case c == '=' && !inValue:
			inValue = true
		case c == '"' && inValue && strings.TrimSpace(val.String()) == "":
			quoted = true
		default:
			if inValue {
				val.WriteByte(c)
			} else {
				typ.WriteByte(c)
			}
		}
	}
	if quoted {
		return nil, errors.New("a quoted value is not closed")
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(attrs) == 0 {
		return nil, errors.New("no attribute")
	}
	slices.Sort(attrs)
	return attrs, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// nameAttrs returns the normalised attributes of a certificate's subject,
// read from its attributes themselves (pkix.Name.Names), not from its
// string form: Go writes types it does not name as "2.5.4.97=#0c…".
func nameAttrs(n pkix.Name) []string {
	var attrs []string
	for _, atv := range n.Names {
		t := atv.Type.String()
		v, ok := atv.Value.(string)
		if !ok {
			v = fmt.Sprint(atv.Value)
		}
		a, err := dnAttr(t, v)
		if err != nil {
			continue
		}
		attrs = append(attrs, a)
	}
	slices.Sort(attrs)
	return attrs
}

// SameDN reports whether two DNs written as text name the same subject,
// in any of the spellings above.
func SameDN(a, b string) bool {
	x, err := parseDN(a)
	if err != nil {
		return false
	}
	y, err := parseDN(b)
	return err == nil && slices.Equal(x, y)
}
