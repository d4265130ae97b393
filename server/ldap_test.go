package server_test

import (
	"context"
	"crypto/x509"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// The LDAP view (issue #27 items 3 and 4) tried as a new user would with
// an address book: find a professional's address, bind with the IMAP
// password, read the published S/MIME certificate, over plain LDAP on
// loopback, StartTLS and LDAPS with the development CA.

const ldapBase = "ou=people,dc=carepost,dc=test"

func startLDAP(t *testing.T) *servertest.Instance {
	t.Helper()
	return servertest.Start(t, func(c *server.Config) {
		c.Listen.LDAP, c.Listen.LDAPS = "127.0.0.1:0", "127.0.0.1:0"
	})
}

func ldapErrCode(err error) uint16 {
	var le *goldap.Error
	if errors.As(err, &le) {
		return le.ResultCode
	}
	return 0xffff
}

func ldapSearch(t *testing.T, c *goldap.Conn, filter string, attrs ...string) []*goldap.Entry {
	t.Helper()
	res, err := c.Search(goldap.NewSearchRequest(ldapBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
	if err != nil {
		t.Fatalf("search %s: %v", filter, err)
	}
	return res.Entries
}

func TestLDAPAddressBook(t *testing.T) {
	i := startLDAP(t)
	ctx := context.Background()
	add := func(first, last, specialty, address string) {
		t.Helper()
		if _, err := i.Server.AddProfessional(ctx, directory.ProfessionalInput{NationalID: "8" + servertest.NextRPPS(),
			FirstName: first, LastName: last, Profession: "10", Specialty: specialty, Address: address}); err != nil {
			t.Fatal(err)
		}
	}
	jean := "jean.dupont@carepost.test"
	add("Jean", "Dupont", "SM54", jean)
	add("Marie", "Curie", "", "marie.curie@carepost.test")
	add("Pierre", "Martin", "", "pierre.martin@carepost.test")
	if err := i.Dir.SetPassword(ctx, jean, "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	c, err := goldap.DialURL("ldap://" + i.AddrOf("ldap"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetTimeout(10 * time.Second)
	// Anonymous, from loopback.
	for filter, want := range map[string][]string{
		"(sn=Dup*)":                        {jean},
		"(mail=jean.dupont@carepost.test)": {jean},
		"(|(cn=*martin*)(mail=*martin*))":  {"pierre.martin@carepost.test"},
		// Thunderbird's autocomplete for "cur".
		"(|(cn=cur*)(mail=cur*)(sn=cur*)(givenName=cur*))": {"marie.curie@carepost.test"},
	} {
		var got []string
		for _, e := range ldapSearch(t, c, filter, "mail", "cn") {
			got = append(got, e.GetAttributeValue("mail"))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", filter, got, want)
		}
	}
	e := ldapSearch(t, c, "(sn=Dupont)")[0]
	if e.GetAttributeValue("cn") != "Jean Dupont" || e.GetAttributeValue("title") != "Médecin" ||
		len(e.GetRawAttributeValues("userCertificate;binary")) != 0 {
		t.Errorf("entry before a certificate: %s %v", e.DN, e.Attributes)
	}

	// A bind with the IMAP password; a wrong one is 49.
	if err := c.Bind(jean, "wrong"); ldapErrCode(err) != goldap.LDAPResultInvalidCredentials {
		t.Errorf("wrong password: %v", err)
	}
	if err := c.Bind("mail="+jean+","+ldapBase, "correct horse battery"); err != nil {
		t.Fatalf("bind: %v", err)
	}
	i.DialIMAP(t, jean, "correct horse battery", nil).Close() // the same credentials
	// Both binds are in the audit trail, without the password.
	var outcomes []string
	for _, r := range trail(t, i, "ldap.bind") {
		outcomes = append(outcomes, r.Outcome+":"+r.Account)
		for _, v := range r.Details {
			if strings.Contains(v, "correct horse") || v == "wrong" {
				t.Errorf("password in the audit trail: %v", r.Details)
			}
		}
	}
	if !slices.Equal(outcomes, []string{"refused:" + jean, "ok:" + jean}) {
		t.Errorf("ldap.bind events: %v", outcomes)
	}

	// Item 4: the published S/MIME certificate.
	issued, err := i.Keyring.Issue(ctx, i.PKI, jean, false, false)
	if err != nil {
		t.Fatal(err)
	}
	e = ldapSearch(t, c, "(mail="+jean+")", "mail", "userCertificate;binary")[0]
	ders := e.GetRawAttributeValues("userCertificate;binary")
	if len(ders) != len(issued) || len(ders) == 0 {
		t.Fatalf("certificates: %d, issued %d", len(ders), len(issued))
	}
	cert, err := x509.ParseCertificate(ders[0])
	if err != nil || !slices.Contains(cert.EmailAddresses, jean) {
		t.Fatalf("certificate: %v %v", cert, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: i.PKI.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Errorf("certificate does not chain to the CA: %v", err)
	}
	if e := ldapSearch(t, c, "(mail="+jean+")")[0]; len(e.GetRawAttributeValues("userCertificate;binary")) != len(ders) {
		t.Errorf("all attributes without the certificate")
	}
	if e := ldapSearch(t, c, "(mail="+jean+")", "cn")[0]; len(e.Attributes) != 1 {
		t.Errorf("cn only: %v", e.Attributes)
	}

	// Read-only.
	err = c.Modify(&goldap.ModifyRequest{DN: "mail=" + jean + "," + ldapBase,
		Changes: []goldap.Change{{Operation: goldap.ReplaceAttribute, Modification: goldap.PartialAttribute{Type: "sn", Vals: []string{"X"}}}}})
	if ldapErrCode(err) != goldap.LDAPResultUnwillingToPerform {
		t.Errorf("modify: %v", err)
	}
	if err := c.Del(goldap.NewDelRequest("mail="+jean+","+ldapBase, nil)); ldapErrCode(err) != goldap.LDAPResultUnwillingToPerform {
		t.Errorf("delete: %v", err)
	}

	// StartTLS on the plain listener, then a bind.
	st, err := goldap.DialURL("ldap://" + i.AddrOf("ldap"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.StartTLS(i.ClientTLS()); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := st.Bind(jean, "correct horse battery"); err != nil {
		t.Fatalf("bind after StartTLS: %v", err)
	}
	if len(ldapSearch(t, st, "(sn=Curie)")) != 1 {
		t.Error("search after StartTLS")
	}

	// LDAPS with the development CA; the client is on loopback, so
	// anonymous works there too.
	tc, err := goldap.DialURL("ldaps://"+i.AddrOf("ldaps"), goldap.DialWithTLSConfig(i.ClientTLS()))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if got := ldapSearch(t, tc, "(sn=Curie)", "mail"); len(got) != 1 || got[0].GetAttributeValue("mail") != "marie.curie@carepost.test" {
		t.Errorf("ldaps: %v", got)
	}
	if err := tc.Bind(jean, "wrong"); ldapErrCode(err) != goldap.LDAPResultInvalidCredentials {
		t.Errorf("ldaps wrong password: %v", err)
	}
}

// Anonymous access is refused with [ldap] anonymous = "never", and a bind
// then opens the view.
func TestLDAPAnonymousNever(t *testing.T) {
	i := servertest.Start(t, func(c *server.Config) {
		c.Listen.LDAPS = "127.0.0.1:0"
		c.LDAP.Anonymous = "never"
	})
	pierre := i.AddProfessional("martin", "pw-for-martin")
	c, err := goldap.DialURL("ldaps://"+i.AddrOf("ldaps"), goldap.DialWithTLSConfig(i.ClientTLS()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Search(goldap.NewSearchRequest(ldapBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, "(sn=martin)", nil, nil))
	if ldapErrCode(err) != goldap.LDAPResultInsufficientAccessRights {
		t.Errorf("anonymous: %v", err)
	}
	if err := c.Bind(pierre, "pw-for-martin"); err != nil {
		t.Fatal(err)
	}
	if got := ldapSearch(t, c, "(sn=martin)"); len(got) != 1 {
		t.Errorf("bound: %v", got)
	}
}

func TestLDAPConfig(t *testing.T) {
	cfg, err := server.Load(filepath.Join("..", "deploy", "carepost.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if def := server.Defaults(); cfg.LDAP != def.LDAP || cfg.Listen.LDAP != def.Listen.LDAP || cfg.Listen.LDAPS != def.Listen.LDAPS {
		t.Errorf("deploy/carepost.toml [ldap] drifted from the defaults: %+v %+v", cfg.LDAP, def.LDAP)
	}
	cfg = server.Defaults()
	cfg.Listen.LDAP = "0.0.0.0:389"
	cfg.LDAP.Anonymous = "sometimes"
	cfg.LDAP.MaxResults = 1000
	cfg.LDAP.BaseDN = "not a dn"
	err = cfg.Validate()
	for _, want := range []string{"listen.ldap: \"0.0.0.0:389\" is not a loopback address", "ldap.anonymous", "ldap.max_results", "ldap.base_dn"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no %q in %v", want, err)
		}
	}
	cfg = server.Defaults()
	cfg.Listen.LDAPS = "0.0.0.0:636"
	cfg.LDAP.BaseDN = "ou=annuaire,o=hopital"
	if err := cfg.Validate(); err != nil {
		t.Errorf("ldaps on every address: %v", err)
	}
}
