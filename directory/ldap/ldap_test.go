package ldap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage/sqlite"
)

// fixture is a directory on SQLite in t.TempDir() with a few
// professionals, served by an LDAP view on 127.0.0.1.
type fixture struct {
	t    testing.TB
	dir  *directory.Directory
	srv  *Server
	addr string
}

const testBase = "ou=people,dc=carepost,dc=test"

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d := directory.New(db, directory.Config{Domains: []string{"carepost.test", "patient.carepost.test"}, PatientDomain: "patient.carepost.test"})
	f := &fixture{t: t, dir: d}
	opts.Dir, opts.Auth = d, auth.NewAuthenticator(d)
	if opts.BaseDN == "" {
		opts.BaseDN = testBase
	}
	f.srv, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		f.srv.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

var rpps = 1000000000

func (f *fixture) add(first, last, profession, specialty, local string, listeRouge bool) string {
	f.t.Helper()
	rpps++
	id := fmt.Sprintf("%010d", rpps)
	// Luhn key of the 10 digits.
	sum := 0
	for i := range 10 {
		d := int(id[9-i] - '0')
		if i%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	id += fmt.Sprint((10 - sum%10) % 10)
	addr := local + "@carepost.test"
	_, err := f.dir.AddProfessional(context.Background(), directory.ProfessionalInput{NationalID: "8" + id,
		FirstName: first, LastName: last, Profession: profession, Specialty: specialty, Address: addr, ListeRouge: listeRouge})
	if err != nil {
		f.t.Fatalf("add %s: %v", addr, err)
	}
	return addr
}

func (f *fixture) dial() *goldap.Conn {
	f.t.Helper()
	c, err := goldap.DialURL("ldap://" + f.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	c.SetTimeout(10 * time.Second)
	f.t.Cleanup(func() { c.Close() })
	return c
}

func search(t testing.TB, c *goldap.Conn, filter string, attrs ...string) []*goldap.Entry {
	t.Helper()
	res, err := c.Search(goldap.NewSearchRequest(testBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		t.Fatalf("search %s: %v", filter, err)
	}
	return res.Entries
}

func mails(es []*goldap.Entry) []string {
	var out []string
	for _, e := range es {
		if m := e.GetAttributeValue("mail"); m != "" {
			out = append(out, m)
		}
	}
	return out
}

func ldapCode(err error) uint16 {
	var le *goldap.Error
	if errors.As(err, &le) {
		return le.ResultCode
	}
	return 0xffff
}

func TestSearchAnonymousOnLoopback(t *testing.T) {
	f := newFixture(t, Options{})
	jean := f.add("Jean", "Dupont", "10", "SM54", "jean.dupont", false)
	f.add("Marie", "Dupuis", "60", "", "marie.dupuis", false)
	f.add("Hélène", "Martin", "10", "", "helene.martin", false)
	f.add("Paul", "Durand", "10", "", "p.martinez", false)
	f.add("Cachée", "Duchemin", "10", "", "cachee", true) // liste rouge
	c := f.dial()

	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"(sn=Dup*)", []string{"jean.dupont@carepost.test", "marie.dupuis@carepost.test"}},
		{"(mail=jean.dupont@carepost.test)", []string{jean}},
		{"(mail=JEAN.DUPONT@carepost.test)", []string{jean}},
		{"(|(cn=*martin*)(mail=*martin*))", []string{"p.martinez@carepost.test", "helene.martin@carepost.test"}},
		// Thunderbird's default autocomplete filter, for "mar".
		{"(|(cn=mar*)(mail=mar*)(sn=mar*)(givenName=mar*))", []string{"helene.martin@carepost.test", "marie.dupuis@carepost.test"}},
		// Its two-word form, "jean dup": (|(cn=%v1*%v2-*)(mail=%v1*%v2-*)(sn=%v1*%v2-*)).
		{"(|(cn=jean*dup*)(mail=jean*dup*)(sn=jean*dup*))", []string{jean}},
		{"(givenName=helene)", []string{"helene.martin@carepost.test"}},
		{"(cn=Jean Dupont)", []string{jean}},
		{"(&(sn=du*)(!(givenName=jean)))", []string{"marie.dupuis@carepost.test", "p.martinez@carepost.test"}},
		{"(title=*généraliste*)", nil},
		{"(title=*Médecine générale*)", []string{jean}},
		{"(title=Médecin)", []string{"p.martinez@carepost.test", "jean.dupont@carepost.test", "helene.martin@carepost.test"}},
		{"(sn~=pon)", []string{jean}},
		{"(sn=Duchemin)", nil}, // liste rouge: never listed
		{"(employeeType=PER)", []string{"jean.dupont@carepost.test", "marie.dupuis@carepost.test", "p.martinez@carepost.test", "helene.martin@carepost.test"}},
		{"(nosuchattr=x)", nil},
		{"(objectClass=groupOfNames)", nil},
	} {
		got := mails(search(t, c, tc.filter))
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", tc.filter, got, want)
		}
	}

	es := search(t, c, "(mail=jean.dupont@carepost.test)")
	e := es[0]
	if e.DN != "mail=jean.dupont@carepost.test,"+testBase || e.GetAttributeValue("cn") != "Jean Dupont" ||
		e.GetAttributeValue("sn") != "Dupont" || e.GetAttributeValue("givenName") != "Jean" ||
		!slices.Equal(e.GetAttributeValues("title"), []string{"Médecin", "Médecine générale"}) ||
		!slices.Contains(e.GetAttributeValues("objectClass"), "inetOrgPerson") || !strings.HasPrefix(e.GetAttributeValue("employeeNumber"), "8") {
		t.Errorf("entry: %s %v", e.DN, entryString(e))
	}
	// Attribute selection, and the entry itself as base.
	es = search(t, c, "(sn=Dupont)", "mail", "CN")
	if len(es) != 1 || len(es[0].Attributes) != 2 {
		t.Errorf("selection: %v", entryString(es[0]))
	}
	res, err := c.Search(goldap.NewSearchRequest("mail=jean.dupont@carepost.test,"+testBase, goldap.ScopeBaseObject,
		goldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
	if err != nil || len(res.Entries) != 1 || len(res.Entries[0].Attributes) != 0 {
		t.Errorf("base entry: %v %v", res, err)
	}
	// From above the base, and the base itself.
	res, err = c.Search(goldap.NewSearchRequest("dc=carepost,dc=test", goldap.ScopeWholeSubtree,
		goldap.NeverDerefAliases, 0, 0, false, "(sn=Dupont)", nil, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Errorf("from dc=: %v %v", res, err)
	}
	res, err = c.Search(goldap.NewSearchRequest(testBase, goldap.ScopeBaseObject,
		goldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("ou") != "people" {
		t.Errorf("base: %v %v", res, err)
	}
	_, err = c.Search(goldap.NewSearchRequest("ou=other,dc=x", goldap.ScopeWholeSubtree,
		goldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
	if ldapCode(err) != goldap.LDAPResultNoSuchObject {
		t.Errorf("elsewhere: %v", err)
	}
	// Root DSE.
	res, err = c.Search(goldap.NewSearchRequest("", goldap.ScopeBaseObject, goldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"namingContexts", "supportedLDAPVersion"}, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("namingContexts") != testBase ||
		res.Entries[0].GetAttributeValue("supportedLDAPVersion") != "3" {
		t.Errorf("root DSE: %v %v", res, err)
	}
}

func entryString(e *goldap.Entry) string {
	var b strings.Builder
	for _, a := range e.Attributes {
		fmt.Fprintf(&b, "%s=%q ", a.Name, a.Values)
	}
	return b.String()
}

func TestBindAndAccess(t *testing.T) {
	f := newFixture(t, Options{Anonymous: AnonymousNever})
	jean := f.add("Jean", "Dupont", "10", "", "jean.dupont", false)
	if err := f.dir.SetPassword(context.Background(), jean, "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	c := f.dial()
	_, err := c.Search(goldap.NewSearchRequest(testBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, "(sn=Dupont)", nil, nil))
	if ldapCode(err) != goldap.LDAPResultInsufficientAccessRights || !strings.Contains(err.Error(), "Bind first") {
		t.Errorf("anonymous search: %v", err)
	}
	if err := c.UnauthenticatedBind(""); ldapCode(err) != goldap.LDAPResultInappropriateAuthentication {
		t.Errorf("anonymous bind: %v", err)
	}
	err = c.Bind(jean, "wrong")
	if ldapCode(err) != goldap.LDAPResultInvalidCredentials || !strings.Contains(err.Error(), "IMAP password") {
		t.Errorf("wrong password: %v", err)
	}
	if err := c.Bind("jean.dupont", "correct horse battery"); ldapCode(err) != goldap.LDAPResultInvalidCredentials {
		t.Errorf("not an address: %v", err)
	}
	if err := c.UnauthenticatedBind(jean); ldapCode(err) != goldap.LDAPResultUnwillingToPerform {
		t.Errorf("unauthenticated bind: %v", err)
	}
	for _, name := range []string{jean, "mail=" + jean + "," + testBase, "UID=" + jean} {
		if err := c.Bind(name, "correct horse battery"); err != nil {
			t.Fatalf("bind %s: %v", name, err)
		}
	}
	if got := mails(search(t, c, "(sn=Dupont)")); !slices.Equal(got, []string{jean}) {
		t.Errorf("bound search: %v", got)
	}
	who, err := c.WhoAmI(nil)
	if err != nil || who.AuthzID != "dn:mail="+jean+","+testBase {
		t.Errorf("whoami: %v %v", who, err)
	}

	// Read-only.
	for name, err := range map[string]error{
		"add":    c.Add(goldap.NewAddRequest("mail=x@carepost.test,"+testBase, nil)),
		"delete": c.Del(goldap.NewDelRequest("mail="+jean+","+testBase, nil)),
		"modify": c.Modify(goldap.NewModifyRequest("mail="+jean+","+testBase, nil)),
		"moddn":  c.ModifyDN(goldap.NewModifyDNRequest("mail="+jean+","+testBase, "mail=y@carepost.test", true, "")),
	} {
		if ldapCode(err) != goldap.LDAPResultUnwillingToPerform || !strings.Contains(err.Error(), "read-only") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := c.Compare("mail="+jean+","+testBase, "sn", "Dupont"); ldapCode(err) != goldap.LDAPResultUnwillingToPerform {
		t.Errorf("compare: %v", err)
	}
	// The session goes on after the refusals.
	if got := mails(search(t, c, "(mail="+jean+")")); len(got) != 1 {
		t.Errorf("after refusals: %v", got)
	}
}

func TestSizeLimitAndPaging(t *testing.T) {
	f := newFixture(t, Options{MaxResults: 5})
	for i := range 12 {
		f.add("Anne", fmt.Sprintf("Lambert%02d", i), "10", "", fmt.Sprintf("anne.lambert%02d", i), false)
	}
	c := f.dial()
	res, err := c.Search(goldap.NewSearchRequest(testBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, "(sn=lambert*)", nil, nil))
	if ldapCode(err) != goldap.LDAPResultSizeLimitExceeded || res == nil || len(res.Entries) != 5 {
		t.Fatalf("server limit: %v %v", res, err)
	}
	if res.Entries[0].GetAttributeValue("sn") != "Lambert00" {
		t.Errorf("order: %s", res.Entries[0].DN)
	}
	res, err = c.Search(goldap.NewSearchRequest(testBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 3, 0, false, "(objectClass=inetOrgPerson)", nil, nil))
	if ldapCode(err) != goldap.LDAPResultSizeLimitExceeded || res == nil || len(res.Entries) != 3 {
		t.Fatalf("client limit: %v %v", res, err)
	}
	res, err = c.Search(goldap.NewSearchRequest(testBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, "(sn=lambert1*)", nil, nil))
	if err != nil || len(res.Entries) != 2 {
		t.Fatalf("under the limit: %v %v", res, err)
	}
	// Paged: pages of 2 up to the server's limit.
	res, err = c.SearchWithPaging(goldap.NewSearchRequest(testBase, goldap.ScopeSingleLevel, goldap.NeverDerefAliases, 0, 0, false, "(sn=lambert*)", []string{"mail"}, nil), 2)
	if ldapCode(err) != goldap.LDAPResultSizeLimitExceeded || res == nil || len(res.Entries) != 5 {
		t.Fatalf("paged: %v %v", res, err)
	}
}

// Clients search at once, each on its connection (the sessions are
// independent; the store's readers serve them together).
func TestConcurrentClients(t *testing.T) {
	f := newFixture(t, Options{})
	for i := range 20 {
		f.add("Luc", fmt.Sprintf("Besson%02d", i), "10", "", fmt.Sprintf("luc.besson%02d", i), false)
	}
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			c, err := goldap.DialURL("ldap://" + f.addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for range 20 {
				res, err := c.Search(goldap.NewSearchRequest(testBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, "(sn=besson*)", []string{"mail"}, nil))
				if err != nil || len(res.Entries) != 20 {
					errs <- fmt.Errorf("search: %v %v", res, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestMalformedInputDoesNotStopTheServer(t *testing.T) {
	f := newFixture(t, Options{})
	f.add("Jean", "Dupont", "10", "", "jean.dupont", false)
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := [][]byte{
		{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}, // 2 GiB announced
		{0x30, 0x80, 0, 0},                   // indefinite length
		{0x30, 0x03, 0x02, 0x01, 0x01},       // no operation
		[]byte("GET / HTTP/1.0\r\n\r\n"),
		{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}, // TLS on the plain port
	}
	for range 200 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if len(b) > 2 && rng.IntN(2) == 0 {
			b[0], b[1] = 0x30, byte(len(b)-2)&0x7f
		}
		seeds = append(seeds, b)
	}
	for _, b := range seeds {
		nc, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(2 * time.Second))
		nc.Write(b)
		nc.(*net.TCPConn).CloseWrite()
		buf := make([]byte, 4096)
		for {
			if _, err := nc.Read(buf); err != nil {
				break
			}
		}
		nc.Close()
	}
	// A message announced too large gets the Notice of Disconnection
	// (RFC 4511 §4.4.1) before the connection closes.
	nc, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	nc.Write([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff})
	p, err := ber.ReadPacket(nc)
	nc.Close()
	if err != nil || len(p.Children) != 2 || p.Children[1].Tag != opExtendedResponse ||
		!strings.Contains(p.Children[1].Children[2].Data.String(), "not a valid LDAPv3 message") ||
		p.Children[1].Children[3].Data.String() != oidNoticeOfDiscon {
		t.Errorf("notice of disconnection: %v", err)
	}
	c := f.dial()
	if got := mails(search(t, c, "(sn=Dupont)")); len(got) != 1 {
		t.Fatalf("after the garbage: %v", got)
	}
}

func TestFilterDecodeAndString(t *testing.T) {
	for _, s := range []string{
		"(sn=Dup*)", "(&(sn=a*b*c)(!(mail=*x)))", "(|(cn=*martin*)(mail=*martin*))", "(objectClass=*)",
		"(cn~=jean)", "(sn>=m)", "(sn<=m)", `(cn=a\2ab\28\29\5c)`, "(cn=Hélène)",
	} {
		p, err := goldap.CompileFilter(s)
		if err != nil {
			t.Fatal(err)
		}
		f, err := decodeFilter(p)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if f.String() != s {
			t.Errorf("%s: string %s", s, f.String())
		}
	}
	// Deep filters are refused.
	deep := strings.Repeat("(!", 20) + "(sn=x)" + strings.Repeat(")", 20)
	p, _ := goldap.CompileFilter(deep)
	if _, err := decodeFilter(p); err == nil {
		t.Error("deep filter accepted")
	}
}

func TestFilterMatches(t *testing.T) {
	l := directory.Listing{Address: "helene.martin@carepost.test", Kind: directory.KindPersonal, FirstName: "Hélène",
		LastName: "Martin", Profession: "10", Specialty: "SM54", Organisation: "Clinique des Lilas", City: "Lyon", NationalID: "810000000001"}
	e := listingEntry(&l, testBase)
	for s, want := range map[string]bool{
		"(givenName=helene)": true, "(sn=MARTIN)": true, "(cn=*lene mar*)": true, "(cn=h*n*n)": true,
		"(cn=h*z*n)": false, "(o=*lilas)": true, "(l=Lyon)": true, "(title=médecin)": true,
		"(employeeNumber=810000000001)": true, "(carepostNationalId=810000000001)": true,
		"(!(nosuch=x))": false, "(|(nosuch=x)(sn=martin))": true, "(&(nosuch=x)(sn=martin))": false,
		"(userCertificate;binary=*)": false, "(mail=*)": true, "(objectClass=person)": true,
		"(sn>=m)": true, "(sn<=l)": false, "(surname=martin)": true,
	} {
		p, err := goldap.CompileFilter(s)
		if err != nil {
			t.Fatal(s, err)
		}
		f, err := decodeFilter(p)
		if err != nil {
			t.Fatal(s, err)
		}
		if got := f.Matches(e); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}

func TestPlan(t *testing.T) {
	q := func(m func(*directory.ListingQuery)) directory.ListingQuery {
		var q directory.ListingQuery
		m(&q)
		return q
	}
	for _, tc := range []struct {
		filter string
		want   plan
	}{
		{"(mail=a@b.test)", planOf(q(func(q *directory.ListingQuery) { q.Address = "a@b.test" }))},
		{"(sn=Dup*)", planOf(q(func(q *directory.ListingQuery) { q.LastName, q.Prefix = "Dup", true }),
			q(func(q *directory.ListingQuery) { q.Organisation, q.Prefix = "Dup", true }))},
		{"(givenName=*ean*)", planOf(q(func(q *directory.ListingQuery) { q.FirstName = "ean" }))},
		{"(&(givenName=j*)(mail=a@b.test))", planOf(q(func(q *directory.ListingQuery) { q.Address, q.FirstName, q.Prefix = "a@b.test", "j", true }))},
		{"(&(givenName=jea*)(l=lyon))", planOf(q(func(q *directory.ListingQuery) { q.FirstName, q.City, q.Prefix = "jea", "lyon", true }))},
		{"(&(givenName=jea*)(title=card))", planOf(q(func(q *directory.ListingQuery) { q.FirstName, q.Prefix = "jea", true }))},
		{"(&(givenName=jea*)(mail=du*))", planOf(q(func(q *directory.ListingQuery) { q.FirstName, q.Mail, q.Prefix = "jea", "du", true }))},
		{"(|(mail=mar*)(givenName=mar*))", planOf(q(func(q *directory.ListingQuery) { q.Mail, q.Prefix = "mar", true }),
			q(func(q *directory.ListingQuery) { q.FirstName, q.Prefix = "mar", true }))},
		{"(&(sn=martin)(givenName=jul*))", planOf(q(func(q *directory.ListingQuery) { q.LastName, q.FirstName, q.Prefix = "martin", "jul", true }),
			q(func(q *directory.ListingQuery) { q.Organisation, q.FirstName, q.Prefix = "martin", "jul", true }))},
		{"(objectClass=*)", planAll},
		{"(&(objectClass=inetOrgPerson)(!(sn=x)))", planAll},
		{"(|(sn=*)(nosuch=1))", planAll},
		{"(nosuch=1)", planNone},
		{"(&(nosuch=1)(sn=x))", planNone},
		{"(employeeNumber=810001)", planOf(q(func(q *directory.ListingQuery) { q.NationalID = "810001" }))},
		{"(title=*card*)", planOf(q(func(q *directory.ListingQuery) { q.Profession = "card" }))},
		{"(sn=d*upo*)", planOf(q(func(q *directory.ListingQuery) { q.LastName = "upo" }), q(func(q *directory.ListingQuery) { q.Organisation = "upo" }))},
	} {
		p, err := goldap.CompileFilter(tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		f, err := decodeFilter(p)
		if err != nil {
			t.Fatal(err)
		}
		got := planFilter(f)
		for i := range got.qs {
			if got.qs[i].Profession == "" && got.qs[i].NationalID == "" && got.qs[i].Kind == "" && got.qs[i].Text == "" {
				t.Errorf("%s: query %d without Text: %+v", tc.filter, i, got.qs[i])
			}
			got.qs[i].Text = "" // checked above
		}
		if got.all != tc.want.all || got.none != tc.want.none || len(got.qs) != len(tc.want.qs) {
			t.Errorf("%s: plan %+v, want %+v", tc.filter, got, tc.want)
			continue
		}
		for i := range got.qs {
			if !sameQuery(got.qs[i], tc.want.qs[i]) {
				t.Errorf("%s: query %d %+v, want %+v", tc.filter, i, got.qs[i], tc.want.qs[i])
			}
		}
	}
}

func TestCollapse(t *testing.T) {
	p, _ := goldap.CompileFilter("(|(cn=dupo*)(mail=dupo*)(sn=dupo*)(givenName=dupo*))")
	f, err := decodeFilter(p)
	if err != nil {
		t.Fatal(err)
	}
	qs := collapse(planFilter(f).qs)
	if len(qs) != 1 || qs[0].Text != "dupo" || hasPrefixable(qs[0]) {
		t.Errorf("Thunderbird's filter: %+v", qs)
	}
	p, _ = goldap.CompileFilter("(|(sn=dupo*)(mail=jean*))")
	f, _ = decodeFilter(p)
	if qs := collapse(planFilter(f).qs); len(qs) != 3 {
		t.Errorf("different words: %+v", qs)
	}
}

func TestParseDN(t *testing.T) {
	for in, want := range map[string]string{
		"ou=people, dc=Carepost,dc=test": "ou=people,dc=carepost,dc=test",
		`mail=a\2Bb@x.test,ou=p`:         `mail=a\+b@x.test,ou=p`,
		"":                               "",
	} {
		r, ok := parseDN(in)
		if !ok || normDN(r) != want {
			t.Errorf("%q: %q %v", in, normDN(r), ok)
		}
	}
	for _, bad := range []string{"ou", "ou=a,", ",ou=a", "=a"} {
		if _, ok := parseDN(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	for in, want := range map[string]string{"a@b.test": "a@b.test", "mail=a@b.test,ou=x": "a@b.test", "uid=a@b.test": "a@b.test", "cn=a": ""} {
		if got, _ := bindUser(in); got != want {
			t.Errorf("bindUser(%q) = %q", in, got)
		}
	}
}
