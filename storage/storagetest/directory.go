package storagetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/directory"
)

// RunDirectory runs the conformance suite of directory.Store against the
// stores open returns.
//
// open is called at least once per subtest and must return an empty store
// the first time; when it is called again in the same subtest (the
// persistence test) it must reopen the same data. The suite closes a store
// that implements io.Closer before reopening; the caller closes the others
// (t.Cleanup).
func RunDirectory(t *testing.T, open func(t *testing.T) directory.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) directory.Store)
	}{
		{"AddGet", testDirAddGet},
		{"Duplicate", testDirDuplicate},
		{"Status", testDirStatus},
		{"Members", testDirMembers},
		{"Roles", testDirRoles},
		{"Search", testDirSearch},
		{"Credentials", testDirCredentials},
		{"AppPasswords", testDirAppPasswords},
		{"CredentialEpochs", testDirCredentialEpochs},
		{"TrustedDomains", testDirTrustedDomains},
		{"ReplaceTrustedDomains", testDirReplaceTrustedDomains},
		{"TrustAnchors", testDirTrustAnchors},
		{"MailboxCerts", testDirMailboxCerts},
		{"ClientCerts", testDirClientCerts},
		{"Concurrent", testDirConcurrent},
		{"Persistence", testDirPersistence},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var (
	// dirT0 has a nanosecond part, to catch a backend that truncates time.
	dirT0 = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)

	dirDupont = directory.Entry{
		Address: "jean.dupont@ch-x.mssante.fr", Kind: directory.KindPersonal, Status: directory.StatusActive,
		NationalID: "810001045367", Profession: "10", Specialty: "SM54",
		FirstName: "Jean", LastName: "Dupont", Organisation: "1750000001",
		Description: "Cardiologie", CreatedAt: dirT0,
	}
	dirNurse = directory.Entry{
		Address: "helene.martin@ch-x.mssante.fr", Kind: directory.KindPersonal, Status: directory.StatusActive,
		NationalID: "0012600631", Profession: "60", FirstName: "Hélène", LastName: "Martin", CreatedAt: dirT0,
	}
	dirHidden = directory.Entry{
		Address: "paul.durand@ch-x.mssante.fr", Kind: directory.KindPersonal, Status: directory.StatusActive,
		NationalID: "810001045367", Profession: "10", FirstName: "Paul", LastName: "Durand",
		ListeRouge: true, CreatedAt: dirT0,
	}
	dirPatient = directory.Entry{
		Address: "279035121518989@patient.mssante.fr", Kind: directory.KindPatient, Status: directory.StatusActive,
		NationalID: "279035121518989", FirstName: "Marie", LastName: "Curie",
		NotifyAddress: "marie@example.org", ListeRouge: true, CreatedAt: dirT0,
	}
)

func dirOrgBox(addr string, members ...string) directory.Entry {
	return directory.Entry{
		Address: addr, Kind: directory.KindOrganisational, Status: directory.StatusActive,
		Description: "Service " + addr, Organisation: "1750000001", Members: members, CreatedAt: dirT0,
	}
}

func dirMustAdd(t *testing.T, s directory.Store, es ...directory.Entry) {
	t.Helper()
	for _, e := range es {
		if err := s.AddEntry(context.Background(), e); err != nil {
			t.Fatalf("AddEntry(%s): %v", e.Address, err)
		}
	}
}

func dirMustGet(t *testing.T, s directory.Store, addr string) directory.Entry {
	t.Helper()
	e, err := s.GetEntry(context.Background(), addr)
	if err != nil {
		t.Fatalf("GetEntry(%s): %v", addr, err)
	}
	return e
}

// dirSameEntry compares entries field by field, times with Equal.
func dirSameEntry(t *testing.T, got, want directory.Entry) {
	t.Helper()
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.LastLogin.Equal(want.LastLogin) {
		t.Errorf("%s: times created %v last login %v, want %v and %v",
			want.Address, got.CreatedAt, got.LastLogin, want.CreatedAt, want.LastLogin)
	}
	got.CreatedAt, got.LastLogin, want.CreatedAt, want.LastLogin = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if len(got.Members) == 0 {
		got.Members = nil
	}
	if len(want.Members) == 0 {
		want.Members = nil
	} else {
		want.Members = slices.Sorted(slices.Values(want.Members))
	}
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("entry mismatch:\n got %#v\nwant %#v", got, want)
	}
}

func testDirAddGet(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	dirMustAdd(t, s, dirDupont, dirNurse, dirPatient)
	for _, want := range []directory.Entry{dirDupont, dirNurse, dirPatient} {
		dirSameEntry(t, dirMustGet(t, s, want.Address), want)
	}
	if _, err := s.GetEntry(ctx, "nobody@ch-x.mssante.fr"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("GetEntry(unknown) = %v, want ErrNotFound", err)
	}
}

func testDirDuplicate(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	dirMustAdd(t, s, dirDupont)
	dup := dirNurse
	dup.Address = dirDupont.Address
	if err := s.AddEntry(context.Background(), dup); !errors.Is(err, directory.ErrExists) {
		t.Fatalf("AddEntry(duplicate) = %v, want ErrExists", err)
	}
	// The first entry is untouched.
	dirSameEntry(t, dirMustGet(t, s, dirDupont.Address), dirDupont)
	// An entry whose member does not exist is refused as a whole.
	bad := dirOrgBox("urgences@ch-x.mssante.fr", dirDupont.Address, "ghost@ch-x.mssante.fr")
	if err := s.AddEntry(context.Background(), bad); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("AddEntry(unknown member) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetEntry(context.Background(), bad.Address); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("entry with an unknown member was half created: %v", err)
	}
}

func testDirStatus(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	dirMustAdd(t, s, dirDupont)
	for _, st := range []directory.Status{directory.StatusSuspended, directory.StatusClosed, directory.StatusActive} {
		if err := s.SetStatus(ctx, dirDupont.Address, st); err != nil {
			t.Fatalf("SetStatus(%s): %v", st, err)
		}
		if got := dirMustGet(t, s, dirDupont.Address).Status; got != st {
			t.Errorf("status = %s, want %s", got, st)
		}
	}
	if err := s.SetStatus(ctx, "nobody@ch-x.mssante.fr", directory.StatusClosed); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("SetStatus(unknown) = %v, want ErrNotFound", err)
	}
}

func testDirMembers(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	dirMustAdd(t, s, dirDupont, dirNurse, dirHidden)
	cardio := dirOrgBox("cardiologie@ch-x.mssante.fr", dirNurse.Address, dirDupont.Address)
	urg := dirOrgBox("urgences@ch-x.mssante.fr", dirDupont.Address)
	dirMustAdd(t, s, cardio, urg)
	dirSameEntry(t, dirMustGet(t, s, cardio.Address), cardio)

	memberOf := func(addr string, want ...string) {
		t.Helper()
		of, err := s.MemberOf(ctx, addr)
		if err != nil {
			t.Fatalf("MemberOf(%s): %v", addr, err)
		}
		var got []string
		for _, d := range of {
			got = append(got, d.Mailbox)
		}
		if !slices.Equal(got, want) {
			t.Errorf("MemberOf(%s) = %v, want %v", addr, got, want)
		}
	}
	memberOf(dirDupont.Address, cardio.Address, urg.Address)
	memberOf(dirNurse.Address, cardio.Address)
	memberOf(dirHidden.Address)
	memberOf("nobody@ch-x.mssante.fr")

	// SetMembers replaces, it does not add.
	if err := s.SetMembers(ctx, cardio.Address, []string{dirHidden.Address}); err != nil {
		t.Fatal(err)
	}
	if got := dirMustGet(t, s, cardio.Address).Members; !slices.Equal(got, []string{dirHidden.Address}) {
		t.Errorf("members after SetMembers = %v", got)
	}
	memberOf(dirDupont.Address, urg.Address)
	memberOf(dirHidden.Address, cardio.Address)
	if err := s.SetMembers(ctx, cardio.Address, nil); err != nil {
		t.Fatal(err)
	}
	if got := dirMustGet(t, s, cardio.Address).Members; len(got) != 0 {
		t.Errorf("members after SetMembers(nil) = %v", got)
	}
	if err := s.SetMembers(ctx, "nobody@ch-x.mssante.fr", []string{dirNurse.Address}); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("SetMembers(unknown mailbox) = %v, want ErrNotFound", err)
	}
	// An unknown member leaves the members as they were.
	if err := s.SetMembers(ctx, urg.Address, []string{dirNurse.Address, "ghost@ch-x.mssante.fr"}); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("SetMembers(unknown member) = %v, want ErrNotFound", err)
	}
	if got := dirMustGet(t, s, urg.Address).Members; !slices.Equal(got, []string{dirDupont.Address}) {
		t.Errorf("members after a refused SetMembers = %v, want unchanged", got)
	}
}

// testDirRoles: members have a role; SetMembers keeps the role of those
// who stay; AddMember adds or changes a role; RemoveMember removes one.
func testDirRoles(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	dirMustAdd(t, s, dirDupont, dirNurse, dirHidden)
	cardio := dirOrgBox("cardiologie@ch-x.mssante.fr", dirNurse.Address)
	dirMustAdd(t, s, cardio)
	members := func(want ...directory.Member) {
		t.Helper()
		got, err := s.Members(ctx, cardio.Address)
		if err != nil {
			t.Fatalf("Members: %v", err)
		}
		if len(got) == 0 {
			got = nil
		}
		if !slices.Equal(got, want) {
			t.Errorf("Members = %v, want %v", got, want)
		}
	}
	member := func(a string) directory.Member { return directory.Member{Address: a, Role: directory.RoleMember} }
	manager := func(a string) directory.Member { return directory.Member{Address: a, Role: directory.RoleManager} }
	members(member(dirNurse.Address))

	if err := s.AddMember(ctx, cardio.Address, dirDupont.Address, directory.RoleManager); err != nil {
		t.Fatal(err)
	}
	members(member(dirNurse.Address), manager(dirDupont.Address))
	of, err := s.MemberOf(ctx, dirDupont.Address)
	if err != nil || !slices.Equal(of, []directory.Delegation{{Mailbox: cardio.Address, Role: directory.RoleManager}}) {
		t.Errorf("MemberOf(manager) = %v, %v", of, err)
	}
	// Changing a role is AddMember again.
	if err := s.AddMember(ctx, cardio.Address, dirNurse.Address, directory.RoleManager); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(ctx, cardio.Address, dirNurse.Address, directory.RoleMember); err != nil {
		t.Fatal(err)
	}
	members(member(dirNurse.Address), manager(dirDupont.Address))
	// SetMembers keeps the manager a manager and adds a member.
	if err := s.SetMembers(ctx, cardio.Address, []string{dirDupont.Address, dirHidden.Address}); err != nil {
		t.Fatal(err)
	}
	members(manager(dirDupont.Address), member(dirHidden.Address))
	if got := dirMustGet(t, s, cardio.Address).Members; !slices.Equal(got, []string{dirDupont.Address, dirHidden.Address}) {
		t.Errorf("Entry.Members = %v", got)
	}

	if err := s.RemoveMember(ctx, cardio.Address, dirDupont.Address); err != nil {
		t.Fatal(err)
	}
	members(member(dirHidden.Address))
	if err := s.RemoveMember(ctx, cardio.Address, dirDupont.Address); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("RemoveMember(not a member) = %v, want ErrNotFound", err)
	}
	if err := s.AddMember(ctx, cardio.Address, "ghost@ch-x.mssante.fr", directory.RoleMember); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("AddMember(unknown member) = %v, want ErrNotFound", err)
	}
	if err := s.AddMember(ctx, "nobody@ch-x.mssante.fr", dirNurse.Address, directory.RoleMember); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("AddMember(unknown mailbox) = %v, want ErrNotFound", err)
	}
	if _, err := s.Members(ctx, "nobody@ch-x.mssante.fr"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Members(unknown mailbox) = %v, want ErrNotFound", err)
	}
	members(member(dirHidden.Address))
}

func testDirSearch(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	cardio := dirOrgBox("cardiologie@ch-x.mssante.fr", dirDupont.Address)
	dirMustAdd(t, s, dirDupont, dirNurse, dirHidden, dirPatient, cardio)

	search := func(q string, rouge bool, limit int, want ...string) {
		t.Helper()
		got, err := s.Search(ctx, q, rouge, limit)
		if err != nil {
			t.Fatalf("Search(%q): %v", q, err)
		}
		var addrs []string
		for _, e := range got {
			addrs = append(addrs, e.Address)
		}
		slices.Sort(addrs)
		slices.Sort(want)
		if !slices.Equal(addrs, want) {
			t.Errorf("Search(%q, listeRouge=%v, %d) = %v, want %v", q, rouge, limit, addrs, want)
		}
	}
	search("dupont", false, 10, dirDupont.Address)
	search("DUPONT", false, 10, dirDupont.Address)
	search("jean dupont", false, 10, dirDupont.Address)
	search("dupont jean", false, 10, dirDupont.Address) // every word, any order
	search("helene", false, 10, dirNurse.Address)       // accents folded
	search("HÉLÈNE", false, 10, dirNurse.Address)
	search("810001045367", false, 10, dirDupont.Address) // national id; Durand is on the liste rouge
	search("810001045367", true, 10, dirDupont.Address, dirHidden.Address)
	search("sm54", false, 10, dirDupont.Address)                       // specialty
	search("1750000001", false, 10, dirDupont.Address, cardio.Address) // organisation
	search("cardiolog", false, 10, dirDupont.Address, cardio.Address)  // description, address
	search("durand", false, 10)
	search("durand", true, 10, dirHidden.Address)
	search("curie", false, 10)
	search("ch-x", false, 10, dirDupont.Address, dirNurse.Address, cardio.Address)
	search("ch-x", false, 2, cardio.Address, dirDupont.Address) // ordered by last name ("" first), first name, address
	search("%", true, 10)                                       // LIKE wildcards are literal
	search("_", true, 10)
	search("nobody", true, 10)

	got, err := s.Search(ctx, "cardiologie@", false, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("Search(cardiologie@) = %v, %v", got, err)
	}
	dirSameEntry(t, got[0], cardio) // full entries, members included
}

func testDirCredentials(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	dirMustAdd(t, s, dirDupont)
	c, err := s.Credentials(ctx, dirDupont.Address)
	if err != nil || c.PasswordHash != "" || len(c.AppPasswords) != 0 {
		t.Fatalf("Credentials(no password) = %+v, %v", c, err)
	}
	for _, h := range []string{"$argon2id$first", "$argon2id$second"} {
		if err := s.SetPassword(ctx, dirDupont.Address, h); err != nil {
			t.Fatal(err)
		}
		if c, err := s.Credentials(ctx, dirDupont.Address); err != nil || c.PasswordHash != h {
			t.Fatalf("Credentials after SetPassword(%s) = %+v, %v", h, c, err)
		}
	}
	if err := s.SetPassword(ctx, "nobody@ch-x.mssante.fr", "x"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("SetPassword(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.Credentials(ctx, "nobody@ch-x.mssante.fr"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Credentials(unknown) = %v, want ErrNotFound", err)
	}
}

func testDirAppPasswords(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	dirMustAdd(t, s, dirDupont, dirNurse)
	a, err := s.AddAppPassword(ctx, dirDupont.Address, "Thunderbird", "$argon2id$a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.AddAppPassword(ctx, dirDupont.Address, "Phone", "$argon2id$b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddAppPassword(ctx, dirNurse.Address, "Other", "$argon2id$c"); err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID || a.CreatedAt.IsZero() {
		t.Fatalf("app passwords %+v %+v: want distinct non-zero IDs and a creation time", a, b)
	}
	if _, err := s.AddAppPassword(ctx, "nobody@ch-x.mssante.fr", "x", "y"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("AddAppPassword(unknown) = %v, want ErrNotFound", err)
	}
	c, err := s.Credentials(ctx, dirDupont.Address)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.AppPasswords) != 2 || c.AppPasswords[0].ID != a.ID || c.AppPasswords[1].ID != b.ID ||
		c.AppPasswords[0].Label != "Thunderbird" || c.AppPasswords[1].Hash != "$argon2id$b" {
		t.Fatalf("app passwords = %+v", c.AppPasswords)
	}

	// A login with the second app password.
	at := dirT0.Add(time.Hour)
	if err := s.RecordLogin(ctx, dirDupont.Address, b.ID, at); err != nil {
		t.Fatal(err)
	}
	if got := dirMustGet(t, s, dirDupont.Address).LastLogin; !got.Equal(at) {
		t.Errorf("LastLogin = %v, want %v", got, at)
	}
	c, _ = s.Credentials(ctx, dirDupont.Address)
	if !c.AppPasswords[0].LastUsed.IsZero() || !c.AppPasswords[1].LastUsed.Equal(at) {
		t.Errorf("LastUsed = %v / %v, want zero / %v", c.AppPasswords[0].LastUsed, c.AppPasswords[1].LastUsed, at)
	}
	// A login with the main password updates only the entry.
	at2 := at.Add(time.Minute)
	if err := s.RecordLogin(ctx, dirDupont.Address, 0, at2); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Credentials(ctx, dirDupont.Address)
	if got := dirMustGet(t, s, dirDupont.Address).LastLogin; !got.Equal(at2) || !c.AppPasswords[1].LastUsed.Equal(at) {
		t.Errorf("after a password login: LastLogin %v, app LastUsed %v", got, c.AppPasswords[1].LastUsed)
	}
	// Another account's app password ID does not touch this one.
	if err := s.RecordLogin(ctx, dirNurse.Address, b.ID, at2); err != nil {
		t.Fatal(err)
	}
	c, _ = s.Credentials(ctx, dirDupont.Address)
	if !c.AppPasswords[1].LastUsed.Equal(at) {
		t.Errorf("RecordLogin of another account changed LastUsed to %v", c.AppPasswords[1].LastUsed)
	}
	if err := s.RecordLogin(ctx, "nobody@ch-x.mssante.fr", 0, at); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("RecordLogin(unknown) = %v, want ErrNotFound", err)
	}
}

func testDirTrustedDomains(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	if l, err := s.TrustedDomains(ctx); err != nil || len(l) != 0 {
		t.Fatalf("TrustedDomains(empty) = %v, %v", l, err)
	}
	b := directory.TrustedDomain{Domain: "ch-b.mssante.fr", Description: "CH B", OperatorCertDN: "CN=op-b", UpdatedAt: dirT0}
	a := directory.TrustedDomain{Domain: "ap-hm.mssante.fr", Description: "AP-HM", UpdatedAt: dirT0}
	for _, d := range []directory.TrustedDomain{b, a} {
		if err := s.AddTrustedDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// Adding again updates.
	b.Description, b.OperatorCertDN, b.UpdatedAt = "CH B (new)", "CN=op-b2", dirT0.Add(time.Hour)
	if err := s.AddTrustedDomain(ctx, b); err != nil {
		t.Fatal(err)
	}
	l, err := s.TrustedDomains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []directory.TrustedDomain{a, b}
	if len(l) != 2 {
		t.Fatalf("TrustedDomains = %+v, want %+v", l, want)
	}
	for i := range want {
		if l[i].Domain != want[i].Domain || l[i].Description != want[i].Description ||
			l[i].OperatorCertDN != want[i].OperatorCertDN || !l[i].UpdatedAt.Equal(want[i].UpdatedAt) {
			t.Errorf("TrustedDomains[%d] = %+v, want %+v", i, l[i], want[i])
		}
	}
}

func testDirReplaceTrustedDomains(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	if info, err := s.TrustListInfo(ctx); err != nil || info != (directory.TrustListInfo{}) {
		t.Fatalf("TrustListInfo(empty) = %+v, %v", info, err)
	}
	for _, d := range []string{"old-a.mssante.fr", "kept.mssante.fr"} {
		if err := s.AddTrustedDomain(ctx, directory.TrustedDomain{Domain: d, UpdatedAt: dirT0}); err != nil {
			t.Fatal(err)
		}
	}
	info := directory.TrustListInfo{Source: "https://example.test/liste.xml", Generated: dirT0.Add(-time.Hour), ImportedAt: dirT0}
	list := []directory.TrustedDomain{
		{Domain: "kept.mssante.fr", Description: "Kept", OperatorCertDN: "CN=op-k", UpdatedAt: dirT0},
		{Domain: "new.mssante.fr", Description: "New"}, // no UpdatedAt: the import's time
	}
	if err := s.ReplaceTrustedDomains(ctx, list, info); err != nil {
		t.Fatal(err)
	}
	l, err := s.TrustedDomains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].Domain != "kept.mssante.fr" || l[0].OperatorCertDN != "CN=op-k" ||
		l[1].Domain != "new.mssante.fr" || !l[1].UpdatedAt.Equal(dirT0) {
		t.Fatalf("after replace: %+v", l)
	}
	got, err := s.TrustListInfo(ctx)
	if err != nil || got.Source != info.Source || !got.Generated.Equal(info.Generated) || !got.ImportedAt.Equal(info.ImportedAt) {
		t.Fatalf("TrustListInfo = %+v, %v; want %+v", got, err, info)
	}
	// A list that fails half-way (a domain twice) changes nothing.
	bad := []directory.TrustedDomain{{Domain: "x.mssante.fr"}, {Domain: "x.mssante.fr"}}
	if err := s.ReplaceTrustedDomains(ctx, bad, directory.TrustListInfo{Source: "bad", ImportedAt: dirT0.Add(time.Hour)}); err == nil {
		t.Fatal("a list with a domain twice was stored")
	}
	if l2, _ := s.TrustedDomains(ctx); len(l2) != 2 || l2[0].Domain != "kept.mssante.fr" {
		t.Fatalf("after a failed replace: %+v", l2)
	}
	if got, _ := s.TrustListInfo(ctx); got.Source != info.Source {
		t.Fatalf("after a failed replace the info is %+v", got)
	}
	// Remove.
	if err := s.RemoveTrustedDomain(ctx, "NEW.mssante.fr"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTrustedDomain(ctx, "new.mssante.fr"); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("RemoveTrustedDomain twice = %v, want ErrNotFound", err)
	}
	if l, _ := s.TrustedDomains(ctx); len(l) != 1 {
		t.Fatalf("after remove: %+v", l)
	}
	// An empty list empties the trust space.
	if err := s.ReplaceTrustedDomains(ctx, nil, info); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.TrustedDomains(ctx); len(l) != 0 {
		t.Fatalf("after replace with nothing: %+v", l)
	}
}

func testDirTrustAnchors(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	if l, err := s.TrustAnchors(ctx); err != nil || len(l) != 0 {
		t.Fatalf("TrustAnchors(empty) = %v, %v", l, err)
	}
	b := directory.TrustAnchor{Fingerprint: "bb", Subject: "CN=B", DER: []byte{2, 0, 1}, AddedAt: dirT0}
	a := directory.TrustAnchor{Fingerprint: "aa", Subject: "CN=A", DER: []byte{1}, AddedAt: dirT0}
	for _, x := range []directory.TrustAnchor{b, a, b} {
		if err := s.AddTrustAnchor(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.TrustAnchors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].Subject != "CN=A" || l[1].Fingerprint != "bb" || string(l[1].DER) != string(b.DER) || !l[1].AddedAt.Equal(dirT0) {
		t.Fatalf("TrustAnchors = %+v", l)
	}
}

// testDirConcurrent checks that concurrent writers and readers neither fail
// nor lose writes (run it with -race).
func testDirConcurrent(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	dirMustAdd(t, s, dirDupont)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			e := dirNurse
			e.Address = fmt.Sprintf("user%02d@ch-x.mssante.fr", i)
			if err := s.AddEntry(ctx, e); err != nil {
				errs <- err
				return
			}
			if _, err := s.AddAppPassword(ctx, e.Address, "dev", "h"); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := s.GetEntry(ctx, dirDupont.Address); err != nil {
				errs <- err
			}
			if err := s.RecordLogin(ctx, dirDupont.Address, 0, dirT0); err != nil {
				errs <- err
			}
			if _, err := s.Search(ctx, "user", false, 100); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.Search(ctx, "user", false, 100)
	if err != nil || len(got) != n {
		t.Fatalf("after concurrent adds, Search found %d entries (%v), want %d", len(got), err, n)
	}
}

func testDirPersistence(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	cardio := dirOrgBox("cardiologie@ch-x.mssante.fr", dirDupont.Address)
	dirMustAdd(t, s, dirDupont, cardio)
	if err := s.SetPassword(ctx, dirDupont.Address, "$argon2id$p"); err != nil {
		t.Fatal(err)
	}
	ap, err := s.AddAppPassword(ctx, dirDupont.Address, "Phone", "$argon2id$a")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordLogin(ctx, dirDupont.Address, ap.ID, dirT0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, cardio.Address, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if err := s.AddTrustedDomain(ctx, directory.TrustedDomain{Domain: "ch-b.mssante.fr", UpdatedAt: dirT0}); err != nil {
		t.Fatal(err)
	}
	if c, ok := s.(io.Closer); ok {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}

	s = open(t)
	want := dirDupont
	want.LastLogin = dirT0
	dirSameEntry(t, dirMustGet(t, s, dirDupont.Address), want)
	wantOrg := cardio
	wantOrg.Status = directory.StatusSuspended
	dirSameEntry(t, dirMustGet(t, s, cardio.Address), wantOrg)
	c, err := s.Credentials(ctx, dirDupont.Address)
	if err != nil || c.PasswordHash != "$argon2id$p" || len(c.AppPasswords) != 1 ||
		c.AppPasswords[0].ID != ap.ID || !c.AppPasswords[0].LastUsed.Equal(dirT0) {
		t.Errorf("credentials after reopen = %+v, %v", c, err)
	}
	if l, err := s.TrustedDomains(ctx); err != nil || len(l) != 1 || l[0].Domain != "ch-b.mssante.fr" {
		t.Errorf("trusted domains after reopen = %+v, %v", l, err)
	}
	if of, err := s.MemberOf(ctx, dirDupont.Address); err != nil ||
		!slices.Equal(of, []directory.Delegation{{Mailbox: cardio.Address, Role: directory.RoleMember}}) {
		t.Errorf("MemberOf after reopen = %v, %v", of, err)
	}
}
