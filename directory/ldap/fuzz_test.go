package ldap

import (
	"bufio"
	"bytes"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/carepost/carepost/directory"
)

// FuzzRequest feeds bytes to what reads a client's messages: the framing,
// the envelope, a search request's decoding (filter included), its plan
// and its evaluation, and the DN parsing of bases and bind names. None may
// panic; a decoded filter must write itself in RFC 4515 form.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{"(sn=Dup*)", "(|(cn=mar*)(mail=mar*)(sn=mar*)(givenName=mar*))",
		"(&(objectClass=inetOrgPerson)(!(title=*card*))(o~=lilas))", "(mail=jean.dupont@carepost.test)", "(sn>=m)"} {
		p, err := goldap.CompileFilter(s)
		if err != nil {
			f.Fatal(err)
		}
		req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, opSearchRequest, nil, "")
		req.AppendChild(octetString(testBase))
		req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(2), ""))
		req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(0), ""))
		req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
		req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(0), ""))
		req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
		req.AppendChild(p)
		attrs := ber.NewSequence("")
		attrs.AppendChild(octetString("mail"))
		req.AppendChild(attrs)
		f.Add(message(1, req).Bytes())
	}
	bind := ber.Encode(ber.ClassApplication, ber.TypeConstructed, opBindRequest, nil, "")
	bind.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(3), ""))
	bind.AppendChild(octetString("mail=a@b.test,ou=people,dc=b,dc=test"))
	bind.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "secret", ""))
	f.Add(message(2, bind).Bytes())
	f.Add([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff})
	l := directory.Listing{Address: "helene.martin@carepost.test", FirstName: "Hélène", LastName: "Martin", Profession: "10"}
	entry := listingEntry(&l, testBase)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := readMessage(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		req, err := parseRequest(p)
		if err != nil {
			return
		}
		switch req.op.Tag {
		case opSearchRequest:
			sr, err := parseSearch(req.op)
			if err != nil {
				return
			}
			if rdns, ok := parseDN(sr.base); ok {
				normDN(rdns)
			}
			planFilter(sr.filter)
			sr.filter.Matches(entry)
			if _, err := goldap.CompileFilter(sr.filter.String()); err != nil && sr.filter.Op != FilterExtensible &&
				!bytes.Contains([]byte(sr.filter.String()), []byte(":extensible:")) {
				t.Errorf("filter %q does not compile back: %v", sr.filter.String(), err)
			}
		case opBindRequest:
			if len(req.op.Children) > 1 {
				if name, err := octets(req.op.Children[1]); err == nil {
					bindUser(name)
				}
			}
		}
		for _, c := range req.controls {
			if c.oid == oidPaging {
				parsePaging(c.value)
			}
		}
	})
}
