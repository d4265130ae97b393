package ldap

import (
	"strings"

	"github.com/carepost/carepost/directory"
)

// The attributes of a listing's entry (inetOrgPerson, RFC 2798; the
// certificate as RFC 4523 names it). Filters and attribute lists may use
// any case and the aliases of canonicalAttr.
const (
	attrObjectClass  = "objectClass"
	attrUID          = "uid"
	attrMail         = "mail"
	attrCN           = "cn"
	attrDisplayName  = "displayName"
	attrSN           = "sn"
	attrGivenName    = "givenName"
	attrTitle        = "title"
	attrO            = "o"
	attrL            = "l"
	attrEmployeeNum  = "employeeNumber" // the national identifier (8+RPPS, 0+ADELI)
	attrEmployeeType = "employeeType"   // the mailbox kind: PER, ORG, APP, CAB
	attrCert         = "userCertificate;binary"
	attrOU           = "ou"
)

// userAttrs are the attributes of a listing's entry, in the order they
// are sent.
var userAttrs = []string{attrObjectClass, attrUID, attrMail, attrCN, attrDisplayName, attrSN, attrGivenName,
	attrTitle, attrO, attrL, attrEmployeeNum, attrEmployeeType, attrCert}

var attrByLower = func() map[string]string {
	m := map[string]string{}
	for _, a := range append(userAttrs, attrOU) {
		m[strings.ToLower(a)] = a
	}
	for alias, a := range map[string]string{
		"commonname": attrCN, "surname": attrSN, "gn": attrGivenName, "rfc822mailbox": attrMail,
		"userid": attrUID, "organizationname": attrO, "localityname": attrL,
		"organizationalunitname": attrOU, "usercertificate": attrCert,
		"carepostnationalid": attrEmployeeNum, "2.5.4.3": attrCN, "2.5.4.4": attrSN, "2.5.4.42": attrGivenName,
		"0.9.2342.19200300.100.1.3": attrMail, "2.5.4.36": attrCert, "2.5.4.0": attrObjectClass,
	} {
		m[alias] = a
	}
	return m
}()

// canonicalAttr returns the canonical name of an attribute description,
// the description lower-cased when this view does not know it. Options
// other than ";binary" are ignored (RFC 4512 §2.5: "cn;lang-fr" is cn).
func canonicalAttr(desc string) string {
	l := strings.ToLower(strings.TrimSpace(desc))
	if a, ok := attrByLower[l]; ok {
		return a
	}
	if i := strings.IndexByte(l, ';'); i > 0 {
		if a, ok := attrByLower[l[:i]]; ok {
			return a
		}
	}
	return l
}

func knownAttr(a string) bool { _, ok := attrByLower[strings.ToLower(a)]; return ok }

// objectClasses of a listing's entry; of the base entry.
var (
	personClasses = []string{"top", "person", "organizationalPerson", "inetOrgPerson"}
	baseClasses   = []string{"top", "organizationalUnit"}
)

// Entry is one entry of the view, as sent in a SearchResultEntry.
type Entry struct {
	DN    string
	Attrs []Attr
}

// Attr is one attribute of an Entry.
type Attr struct {
	Name   string
	Values []string // binary values (certificates) are strings of bytes
}

func (e *Entry) values(attr string) []string {
	for _, a := range e.Attrs {
		if a.Name == attr {
			return a.Values
		}
	}
	return nil
}

func (e *Entry) add(name string, values ...string) {
	var vs []string
	for _, v := range values {
		if v != "" {
			vs = append(vs, v)
		}
	}
	if len(vs) > 0 {
		e.Attrs = append(e.Attrs, Attr{Name: name, Values: vs})
	}
}

// listingEntry maps a listing to its entry under baseDN:
// mail=ADDRESS,BASE. cn is "First Last", or the organisation's name, or
// the address for a mailbox with neither; sn is the last name, or cn.
func listingEntry(l *directory.Listing, baseDN string) *Entry {
	e := &Entry{DN: attrMail + "=" + escapeDNValue(l.Address) + "," + baseDN}
	cn := strings.TrimSpace(l.FirstName + " " + l.LastName)
	if cn == "" {
		cn = l.Organisation
	}
	if cn == "" {
		cn = l.Address
	}
	sn := l.LastName
	if sn == "" {
		sn = cn
	}
	e.add(attrObjectClass, personClasses...)
	e.add(attrUID, l.Address)
	e.add(attrMail, l.Address)
	e.add(attrCN, cn)
	e.add(attrDisplayName, cn)
	e.add(attrSN, sn)
	e.add(attrGivenName, l.FirstName)
	e.add(attrTitle, named(l.ProfessionName, l.Profession, directory.Professions), named(l.SpecialtyName, l.Specialty, directory.Specialties))
	e.add(attrO, l.Organisation)
	e.add(attrL, l.City)
	e.add(attrEmployeeNum, l.NationalID)
	e.add(attrEmployeeType, string(l.Kind))
	var certs []string
	for _, c := range l.Certificates {
		certs = append(certs, string(c))
	}
	e.add(attrCert, certs...)
	return e
}

// label names a code of a nomenclature ("Médecin" for TRE_G15 "10"), the
// code itself when it has no label here.
// named is the label a national listing gives (name), else the table's
// label of code, else code.
func named(name, code string, labels map[string]string) string {
	if name != "" {
		return name
	}
	return label(code, labels)
}

func label(code string, labels map[string]string) string {
	if l, ok := labels[code]; ok {
		return l
	}
	return code
}

// escapeDNValue escapes an attribute value for a DN (RFC 4514 §2.4).
func escapeDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0,
			c == ' ' && (i == 0 || i == len(v)-1), c == '#' && i == 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == 0:
			b.WriteString(`\00`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// rdn is one attribute=value of a DN, the type lower-cased, the value
// unescaped.
type rdn struct{ attr, value string }

// parseDN splits a DN (RFC 4514) into its RDNs; multi-valued RDNs (a+b)
// are kept as one value. ok is false for a string that is not a DN.
func parseDN(dn string) (rdns []rdn, ok bool) {
	dn = strings.TrimSpace(dn)
	if dn == "" {
		return nil, true
	}
	var cur strings.Builder
	var attr string
	inValue := false
	flush := func() bool {
		if !inValue {
			return false
		}
		rdns = append(rdns, rdn{attr: strings.ToLower(strings.TrimSpace(attr)), value: strings.TrimSpace(cur.String())})
		cur.Reset()
		inValue = false
		return true
	}
	for i := 0; i < len(dn); i++ {
		c := dn[i]
		switch {
		case c == '\\' && i+1 < len(dn):
			if i+2 < len(dn) && isHex(dn[i+1]) && isHex(dn[i+2]) {
				cur.WriteByte(unhex(dn[i+1])<<4 | unhex(dn[i+2]))
				i += 2
			} else {
				cur.WriteByte(dn[i+1])
				i++
			}
		case c == '=' && !inValue:
			attr = cur.String()
			cur.Reset()
			inValue = true
		case (c == ',' || c == ';') && inValue:
			flush()
		case c == ',' || c == ';' || c == '\\':
			return nil, false
		default:
			cur.WriteByte(c)
		}
	}
	if !flush() || strings.TrimSpace(attr) == "" {
		return nil, false
	}
	for _, r := range rdns {
		if r.attr == "" {
			return nil, false
		}
	}
	return rdns, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// normDN is the form in which DNs are compared: types and values
// lower-cased, spaces around separators removed, values escaped again.
func normDN(rdns []rdn) string {
	parts := make([]string, len(rdns))
	for i, r := range rdns {
		parts[i] = canonicalLower(r.attr) + "=" + escapeDNValue(strings.ToLower(r.value))
	}
	return strings.Join(parts, ",")
}

func canonicalLower(attr string) string {
	switch attr {
	case "rfc822mailbox":
		return "mail"
	case "userid":
		return "uid"
	case "domaincomponent":
		return "dc"
	case "organizationalunitname":
		return "ou"
	}
	return attr
}
