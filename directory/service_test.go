package directory_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage/sqlite"
)

const (
	pw       = "un mot de passe solide"
	dupont   = "jean.dupont@ch-x.mssante.fr"
	martin   = "helene.martin@ch-x.mssante.fr"
	cardio   = "cardiologie@ch-x.mssante.fr"
	closedOr = "ancien-service@ch-x.mssante.fr"
)

// fixture is a Directory over a real SQLite store in a temporary directory,
// with two professionals, a patient, a shared mailbox and one trusted
// remote domain.
type fixture struct {
	d     *directory.Directory
	store *sqlite.DB
	clock atomic.Int64 // unix nanoseconds
}

func (f *fixture) now() time.Time          { return time.Unix(0, f.clock.Load()) }
func (f *fixture) advance(d time.Duration) { f.clock.Add(int64(d)) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{store: db}
	f.clock.Store(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC).UnixNano())
	domains := []string{"CH-X.mssante.fr", "patient.mssante.fr"}
	f.d = directory.New(db, directory.Config{Domains: domains, PatientDomain: "patient.mssante.fr"})
	directory.SetClock(f.d, f.now)
	if domains[0] != "CH-X.mssante.fr" {
		t.Error("New rewrote the caller's Domains slice")
	}
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.d.AddProfessional(ctx, directory.ProfessionalInput{
		NationalID: "810001045367", FirstName: "Jean", LastName: "Dupont",
		Profession: "10", Specialty: "sm54", Address: "Jean.Dupont@ch-x.mssante.fr",
	}))
	must(f.d.AddProfessional(ctx, directory.ProfessionalInput{
		NationalID: "012600631", FirstName: "Hélène", LastName: "Martin",
		Profession: "60", Address: martin,
	}))
	must(f.d.AddPatient(ctx, directory.PatientInput{INS: "279035121518989", FirstName: "Marie", LastName: "Curie", Notify: "Marie@Example.org"}))
	must(f.d.AddMailbox(ctx, directory.KindOrganisational, cardio, []string{dupont}, "Cardiologie"))
	must(f.d.AddMailbox(ctx, directory.KindOrganisational, closedOr, []string{dupont}, "Closed service"))
	must(nil, f.d.SetStatus(ctx, closedOr, directory.StatusClosed))
	must(nil, f.d.SetPassword(ctx, dupont, pw))
	must(nil, f.d.AddTrustedDomain(ctx, "CH-B.mssante.fr.", "Centre hospitalier B"))
	return f
}

// refused asserts err is a *refusal.Error of kind and its text contains
// want.
func refused(t *testing.T, err error, kind refusal.Kind, want string) {
	t.Helper()
	re, ok := refusal.As(err)
	if !ok || re.Kind != kind {
		t.Fatalf("got %v (%T), want a *refusal.Error of kind %v", err, err, kind)
	}
	if !strings.Contains(re.Error(), want) {
		t.Fatalf("refusal %q does not say %q", re.Error(), want)
	}
}

func TestAuthenticate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	p, err := f.d.Authenticate(ctx, "JEAN.Dupont@ch-x.MSSANTE.fr", pw)
	if err != nil {
		t.Fatal(err)
	}
	if p.Address != dupont || p.Kind != directory.KindPersonal {
		t.Errorf("principal = %+v", p)
	}
	// The closed shared mailbox is not offered.
	if len(p.Delegations) != 1 || p.Delegations[0] != (directory.Delegation{Mailbox: cardio, Role: directory.RoleMember}) {
		t.Errorf("delegations = %v, want [%s]", p.Delegations, cardio)
	}
	if e, _ := f.d.Lookup(ctx, dupont); !e.LastLogin.Equal(f.now()) {
		t.Errorf("LastLogin = %v, want %v", e.LastLogin, f.now())
	}

	// Application passwords, typed as given or with other case and spaces.
	app, err := f.d.NewAppPassword(ctx, dupont, "Thunderbird")
	if err != nil {
		t.Fatal(err)
	}
	f.advance(time.Hour)
	for _, typed := range []string{app, strings.ToUpper(strings.ReplaceAll(app, "-", " "))} {
		if p, err := f.d.Authenticate(ctx, dupont, typed); err != nil || p.Address != dupont {
			t.Errorf("Authenticate(app password %q) = %+v, %v", typed, p, err)
		}
	}
	creds, _ := f.store.Credentials(ctx, dupont)
	if len(creds.AppPasswords) != 1 || !creds.AppPasswords[0].LastUsed.Equal(f.now()) {
		t.Errorf("app password LastUsed not recorded: %+v", creds.AppPasswords)
	}

	// Every failure has the same text.
	fails := map[string][2]string{
		"wrong password":       {dupont, pw + "!"},
		"empty password":       {dupont, ""},
		"other's app password": {martin, app},
		"no password set":      {martin, pw},
		"unknown user":         {"nobody@ch-x.mssante.fr", pw},
		"malformed user":       {"jean dupont", pw},
		"remote user":          {"x@ch-b.mssante.fr", pw},
	}
	var texts []string
	for name, c := range fails {
		_, err := f.d.Authenticate(ctx, c[0], c[1])
		re, ok := refusal.As(err)
		if !ok || re.Kind != refusal.AuthFailed {
			t.Errorf("%s: %v, want an AuthFailed refusal", name, err)
			continue
		}
		texts = append(texts, re.Error())
	}
	for _, tx := range texts {
		if tx != texts[0] {
			t.Errorf("failure texts differ (user enumeration): %q vs %q", tx, texts[0])
		}
	}

	// A suspended account is refused at its next login, then works again
	// once reactivated.
	if err := f.d.SetStatus(ctx, dupont, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	_, err = f.d.Authenticate(ctx, dupont, pw)
	refused(t, err, refusal.AuthFailed, texts[0])
	_, err = f.d.Authenticate(ctx, dupont, app)
	refused(t, err, refusal.AuthFailed, texts[0])
	if err := f.d.SetStatus(ctx, dupont, directory.StatusActive); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Authenticate(ctx, dupont, pw); err != nil {
		t.Errorf("after reactivation: %v", err)
	}
}

func TestResolveRecipient(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	r, err := f.d.ResolveRecipient(ctx, "Jean.DUPONT@ch-x.mssante.fr")
	if err != nil || r.Route != directory.RouteLocal || r.Address != dupont || r.Entry.LastName != "Dupont" {
		t.Errorf("local: %+v, %v", r, err)
	}
	r, err = f.d.ResolveRecipient(ctx, "279035121518989@PATIENT.mssante.fr")
	if err != nil || r.Route != directory.RouteLocal || r.Entry.Kind != directory.KindPatient {
		t.Errorf("patient: %+v, %v", r, err)
	}
	r, err = f.d.ResolveRecipient(ctx, "someone@ch-b.mssante.fr")
	if err != nil || r.Route != directory.RouteRemote || r.Address != "someone@ch-b.mssante.fr" {
		t.Errorf("remote: %+v, %v", r, err)
	}

	_, err = f.d.ResolveRecipient(ctx, "nobody@ch-x.mssante.fr")
	refused(t, err, refusal.UnknownRecipient, "The address nobody@ch-x.mssante.fr does not exist in the directory of ch-x.mssante.fr.")
	_, err = f.d.ResolveRecipient(ctx, closedOr)
	refused(t, err, refusal.RecipientInactive, "The mailbox "+closedOr+" is closed")
	if err := f.d.SetStatus(ctx, martin, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	_, err = f.d.ResolveRecipient(ctx, martin)
	refused(t, err, refusal.RecipientInactive, "The mailbox "+martin+" is suspended")
	_, err = f.d.ResolveRecipient(ctx, "Dr.House@GMAIL.com")
	refused(t, err, refusal.OutsideTrustSpace, "The domain gmail.com is not part of the secure health messaging space (MSSanté)")
	_, err = f.d.ResolveRecipient(ctx, "dupont@@ch-x.mssante.fr")
	refused(t, err, refusal.InvalidAddress, "more than one @")

	// A domain added through the Directory is trusted at once.
	if err := f.d.AddTrustedDomain(ctx, "ap-hm.mssante.fr", ""); err != nil {
		t.Fatal(err)
	}
	if r, err := f.d.ResolveRecipient(ctx, "x@ap-hm.mssante.fr"); err != nil || r.Route != directory.RouteRemote {
		t.Errorf("newly trusted domain: %+v, %v", r, err)
	}
	// One added behind its back (CLI, other node) is seen once the cache
	// expires.
	if err := f.store.AddTrustedDomain(ctx, directory.TrustedDomain{Domain: "chu-c.mssante.fr"}); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Minute)
	if ok, err := f.d.InTrustSpace(ctx, "CHU-C.mssante.fr"); !ok || err != nil {
		t.Errorf("InTrustSpace(chu-c) after the cache expired = %v, %v", ok, err)
	}
	for dom, want := range map[string]bool{"ch-x.mssante.fr": true, "PATIENT.mssante.fr.": true, "ch-b.mssante.fr": true, "gmail.com": false} {
		if ok, err := f.d.InTrustSpace(ctx, dom); ok != want || err != nil {
			t.Errorf("InTrustSpace(%s) = %v, %v", dom, ok, err)
		}
	}
	if !f.d.IsLocalDomain("CH-X.MSSANTE.FR") || f.d.IsLocalDomain("ch-b.mssante.fr") {
		t.Error("IsLocalDomain")
	}
}

// TestMembers: roles in a shared mailbox through the Directory, with the
// sentences an operator reads.
func TestMembers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.d.AddMember(ctx, "Cardiologie@ch-x.mssante.fr", "Helene.Martin@ch-x.mssante.fr", directory.RoleManager); err != nil {
		t.Fatal(err)
	}
	ms, err := f.d.Members(ctx, cardio)
	want := []directory.Member{{Address: martin, Role: directory.RoleManager}, {Address: dupont, Role: directory.RoleMember}}
	// Sorted by address: helene.martin before jean.dupont.
	if err != nil || len(ms) != 2 || ms[0] != want[0] || ms[1] != want[1] {
		t.Errorf("Members = %v, %v; want %v", ms, err, want)
	}
	p, err := f.d.Delegations(ctx, martin)
	if err != nil || len(p) != 1 || p[0] != (directory.Delegation{Mailbox: cardio, Role: directory.RoleManager}) {
		t.Errorf("Delegations(manager) = %v, %v", p, err)
	}
	// SetMembers (add-mailbox --members, set-members) keeps the roles of
	// those who stay.
	if err := f.d.SetMembers(ctx, cardio, []string{martin}); err != nil {
		t.Fatal(err)
	}
	if ms, _ := f.d.Members(ctx, cardio); len(ms) != 1 || ms[0] != want[0] {
		t.Errorf("Members after SetMembers = %v", ms)
	}
	refused(t, f.d.AddMember(ctx, cardio, martin, "boss"), refusal.InvalidInput, "use member or manager")
	refused(t, f.d.AddMember(ctx, dupont, martin, directory.RoleMember), refusal.InvalidInput, "only ORG, APP and CAB mailboxes have members")
	refused(t, f.d.AddMember(ctx, cardio, "279035121518989@patient.mssante.fr", directory.RoleMember), refusal.InvalidInput, "cannot be a member")
	refused(t, f.d.AddMember(ctx, cardio, "ghost@ch-x.mssante.fr", directory.RoleMember), refusal.InvalidInput, "does not exist")
	refused(t, f.d.RemoveMember(ctx, cardio, dupont), refusal.InvalidInput, dupont+" is not a member of "+cardio)
	if err := f.d.RemoveMember(ctx, cardio, martin); err != nil {
		t.Fatal(err)
	}
	if ms, err := f.d.Members(ctx, cardio); err != nil || len(ms) != 0 {
		t.Errorf("Members after RemoveMember = %v, %v", ms, err)
	}
	if _, err := f.d.Members(ctx, "nobody@ch-x.mssante.fr"); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("Members(unknown) = %v", err)
	}
	for _, c := range []struct {
		in   string
		want directory.Role
	}{{"", directory.RoleMember}, {"Manager", directory.RoleManager}, {" member ", directory.RoleMember}} {
		if r, err := directory.ParseRole(c.in); err != nil || r != c.want {
			t.Errorf("ParseRole(%q) = %q, %v", c.in, r, err)
		}
	}
	refused(t, func() error { _, err := directory.ParseRole("admin"); return err }(), refusal.InvalidInput, "use member or manager")
}

func TestAdmin(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	good := directory.ProfessionalInput{
		NationalID: "10001045383", FirstName: "Ana", LastName: "Lopez", Profession: "21", Address: "ana.lopez@ch-x.mssante.fr",
	}
	e, err := f.d.AddProfessional(ctx, good)
	if err != nil || e.NationalID != "810001045383" || e.Kind != directory.KindPersonal || e.Status != directory.StatusActive {
		t.Fatalf("AddProfessional = %+v, %v", e, err)
	}
	_, err = f.d.AddProfessional(ctx, good)
	refused(t, err, refusal.InvalidInput, "already exists")
	if !errors.Is(err, directory.ErrExists) {
		t.Errorf("a taken address: %v does not wrap ErrExists", err)
	}

	// kind is a refusal.Kind, or a sentinel the error wraps.
	bad := func(mod func(*directory.ProfessionalInput), kind any, want string) {
		t.Helper()
		in := good
		in.Address = "other@ch-x.mssante.fr"
		mod(&in)
		_, err := f.d.AddProfessional(ctx, in)
		k, isKind := kind.(refusal.Kind)
		sentinel, _ := kind.(error)
		if err == nil || (isKind && !refusal.Is(err, k)) || (!isKind && !errors.Is(err, sentinel)) || !strings.Contains(err.Error(), want) {
			t.Errorf("AddProfessional(%+v) = %v; want %v saying %q", in, err, kind, want)
		}
	}
	bad(func(in *directory.ProfessionalInput) { in.NationalID = "10001045368" }, directory.ErrInvalidIdentifier, "Luhn")
	bad(func(in *directory.ProfessionalInput) { in.Profession = "35" }, directory.ErrInvalidIdentifier, "10 (Médecin)")
	bad(func(in *directory.ProfessionalInput) { in.Specialty = "54" }, directory.ErrInvalidIdentifier, "SM54")
	bad(func(in *directory.ProfessionalInput) { in.LastName = "  " }, directory.ErrInvalidEntry, "last name are both required")
	bad(func(in *directory.ProfessionalInput) { in.FirstName = "A\x00" }, directory.ErrInvalidEntry, "control character")
	bad(func(in *directory.ProfessionalInput) { in.Address = "x@gmail.com" }, directory.ErrInvalidEntry, "not in a domain of this server")
	bad(func(in *directory.ProfessionalInput) { in.Address = "x@patient.mssante.fr" }, directory.ErrInvalidEntry, "reserved for patient")
	bad(func(in *directory.ProfessionalInput) { in.Address = "x y@ch-x.mssante.fr" }, refusal.InvalidAddress, "a space")

	// Patients.
	p, err := f.d.Lookup(ctx, "279035121518989@patient.mssante.fr")
	if err != nil || p.NationalID != "279035121518989" || p.NotifyAddress != "marie@example.org" || !p.ListeRouge {
		t.Errorf("patient entry = %+v, %v", p, err)
	}
	if _, err := f.d.AddPatient(ctx, directory.PatientInput{INS: "279035121518988", FirstName: "A", LastName: "B"}); !errors.Is(err, directory.ErrInvalidIdentifier) {
		t.Errorf("AddPatient(bad key) = %v", err)
	}
	other := directory.New(f.store, directory.Config{Domains: []string{"ch-x.mssante.fr"}, PatientDomain: "patient.mssante.fr"})
	if _, err := other.AddPatient(ctx, directory.PatientInput{INS: "185069912345623", FirstName: "A", LastName: "B"}); err == nil || !strings.Contains(err.Error(), "patient_domain") {
		t.Errorf("AddPatient without a patient domain of ours = %v", err)
	}

	// Shared mailboxes.
	_, err = f.d.AddMailbox(ctx, directory.KindPersonal, "x@ch-x.mssante.fr", nil, "")
	refused(t, err, refusal.InvalidInput, "ORG, APP or CAB")
	_, err = f.d.AddMailbox(ctx, directory.KindApplicative, "lab@ch-x.mssante.fr", []string{"ghost@ch-x.mssante.fr"}, "")
	refused(t, err, refusal.InvalidInput, "ghost@ch-x.mssante.fr does not exist")
	_, err = f.d.AddMailbox(ctx, directory.KindApplicative, "lab@ch-x.mssante.fr", []string{"279035121518989@patient.mssante.fr"}, "")
	refused(t, err, refusal.InvalidInput, "patient mailbox")
	m, err := f.d.AddMailbox(ctx, directory.KindPractice, "cabinet@ch-x.mssante.fr", []string{martin, "HELENE.MARTIN@ch-x.mssante.fr", dupont}, "Cabinet")
	if err != nil || len(m.Members) != 2 {
		t.Errorf("AddMailbox(CAB) = %+v, %v", m, err)
	}
	refused(t, f.d.SetMembers(ctx, dupont, []string{martin}), refusal.InvalidInput, "only ORG, APP and CAB")

	// Passwords.
	refused(t, f.d.SetPassword(ctx, martin, "short"), refusal.InvalidInput, "at least 12 characters, it has 5")
	if err := f.d.SetPassword(ctx, "nobody@ch-x.mssante.fr", pw); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("SetPassword(unknown) = %v", err)
	}
	if _, err := f.d.NewAppPassword(ctx, "279035121518989@patient.mssante.fr", ""); !errors.Is(err, directory.ErrInvalidEntry) {
		t.Errorf("NewAppPassword(patient) = %v", err)
	}
	for i := range directory.MaxAppPasswords {
		if _, err := f.d.NewAppPassword(ctx, martin, ""); err != nil {
			t.Fatalf("app password %d: %v", i, err)
		}
	}
	_, err = f.d.NewAppPassword(ctx, martin, "")
	refused(t, err, refusal.InvalidInput, "maximum")

	// Status and trust space input.
	refused(t, f.d.SetStatus(ctx, martin, "deleted"), refusal.InvalidInput, "Unknown status")
	if err := f.d.SetStatus(ctx, "nobody@ch-x.mssante.fr", directory.StatusClosed); !errors.Is(err, directory.ErrNotFound) {
		t.Errorf("SetStatus(unknown) = %v", err)
	}
	refused(t, f.d.AddTrustedDomain(ctx, "not a domain", ""), refusal.InvalidAddress, "a space")
}

func TestSearch(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.d.AddProfessional(ctx, directory.ProfessionalInput{
		NationalID: "810001045367", FirstName: "Paul", LastName: "Durand", Profession: "10",
		Address: "paul.durand@ch-x.mssante.fr", ListeRouge: true,
		AllowDuplicateID: true, DuplicateReason: "test of the liste rouge",
	}); err != nil {
		t.Fatal(err)
	}
	got := func(q string, limit int) []string {
		es, err := f.d.Search(ctx, q, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Address)
		}
		return out
	}
	if r := got("helene", 0); len(r) != 1 || r[0] != martin {
		t.Errorf("Search(helene) = %v", r)
	}
	if r := got("810001045367", 0); len(r) != 1 || r[0] != dupont {
		t.Errorf("Search(RPPS) = %v (liste rouge and patients must not appear)", r)
	}
	if r := got("curie", 0); len(r) != 0 {
		t.Errorf("Search(patient) = %v", r)
	}
	if r := got("ch-x", 1); len(r) != 1 {
		t.Errorf("Search(limit 1) = %v", r)
	}
	if r := got("   ", 0); len(r) != 0 {
		t.Errorf("Search(blank) = %v", r)
	}
	if of, err := f.d.MemberOf(ctx, "JEAN.DUPONT@ch-x.mssante.fr"); err != nil || len(of) != 2 {
		t.Errorf("MemberOf = %v, %v", of, err)
	}
}

// Deliveries read entries through a short cache: a change made through the
// same Directory is seen at once, one made by another process (here another
// Directory over the same store, as `carepost dir suspend` beside the
// server) within entryTTL.
func TestEntryCache(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.d.ResolveRecipient(ctx, martin); err != nil {
		t.Fatal(err)
	}
	if err := f.d.SetStatus(ctx, martin, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.ResolveRecipient(ctx, martin); !refusal.Is(err, refusal.RecipientInactive) {
		t.Fatalf("suspension through the same Directory not seen at once: %v", err)
	}
	other := directory.New(f.store, directory.Config{Domains: []string{"ch-x.mssante.fr"}})
	if err := other.SetStatus(ctx, martin, directory.StatusActive); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.ResolveRecipient(ctx, martin); !refusal.Is(err, refusal.RecipientInactive) {
		t.Fatalf("expected the cached (suspended) entry within the TTL, got %v", err)
	}
	f.advance(3 * time.Second)
	if _, err := f.d.ResolveRecipient(ctx, martin); err != nil {
		t.Fatalf("another process's change not seen after the TTL: %v", err)
	}
	// Unknown addresses are cached too, and appear once added here.
	if _, err := f.d.ResolveRecipient(ctx, "new.one@ch-x.mssante.fr"); !refusal.Is(err, refusal.UnknownRecipient) {
		t.Fatal(err)
	}
	if _, err := f.d.AddProfessional(ctx, directory.ProfessionalInput{NationalID: "810001045391", FirstName: "N", LastName: "O",
		Profession: "10", Address: "new.one@ch-x.mssante.fr"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.ResolveRecipient(ctx, "new.one@ch-x.mssante.fr"); err != nil {
		t.Fatalf("an address added through the same Directory not seen at once: %v", err)
	}
}

// Identical logins arriving together share one hash check: a client
// opening several connections at once costs one argon2id computation.
// Wrong passwords are still refused, each one.
func TestLoginFlight(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const n = 8
	try := func(pass string) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = f.d.Authenticate(ctx, dupont, pass)
			}()
		}
		wg.Wait()
		return errs
	}
	before := crypto.Derivations()
	for i, err := range try(pw + "x") {
		if !refusal.Is(err, refusal.AuthFailed) {
			t.Fatalf("wrong password, login %d: %v", i, err)
		}
	}
	wrong := crypto.Derivations() - before
	if wrong < 1 || wrong > n {
		t.Fatalf("%d concurrent wrong passwords cost %d hash checks", n, wrong)
	}
	before = crypto.Derivations()
	for i, err := range try(pw) {
		if err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	if got := crypto.Derivations() - before; got != 1 {
		t.Fatalf("%d concurrent identical logins cost %d hash checks, want 1", n, got)
	}
}

// The login cache never lets an old password in: a password changed by
// another process (another Directory over the same store) misses it, a
// wrong password is refused after a cached success, and an application
// password is remembered apart from the main one.
func TestLoginCache(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := f.d.Authenticate(ctx, dupont, pw); err != nil {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	if _, err := f.d.Authenticate(ctx, dupont, pw+"x"); !refusal.Is(err, refusal.AuthFailed) {
		t.Fatalf("wrong password after a cached success: %v", err)
	}
	other := directory.New(f.store, directory.Config{Domains: []string{"ch-x.mssante.fr"}})
	if err := other.SetPassword(ctx, dupont, "a brand new passphrase"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Authenticate(ctx, dupont, pw); !refusal.Is(err, refusal.AuthFailed) {
		t.Fatalf("the old password still works from the cache after a change elsewhere: %v", err)
	}
	if _, err := f.d.Authenticate(ctx, dupont, "a brand new passphrase"); err != nil {
		t.Fatal(err)
	}
	app, err := f.d.NewAppPassword(ctx, dupont, "phone")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := f.d.Authenticate(ctx, dupont, app); err != nil {
			t.Fatalf("app password login %d: %v", i, err)
		}
	}
	if err := f.d.SetStatus(ctx, dupont, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.Authenticate(ctx, dupont, app); !refusal.Is(err, refusal.AuthFailed) {
		t.Fatalf("a suspended account logged in from the cache: %v", err)
	}
}

// postmaster@ and abuse@ of every hosted domain, and "Postmaster" alone
// (RFC 5321 §4.1.1.3), resolve to the configured mailbox.
func TestPostmasterAlone(t *testing.T) {
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	d := directory.New(db, directory.Config{Domains: []string{"ch-x.mssante.fr", "patient.mssante.fr"}, Postmaster: "IT@ch-x.mssante.fr"})
	if _, err := d.AddMailbox(ctx, directory.KindOrganisational, "it@ch-x.mssante.fr", nil, "IT"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"Postmaster", "postmaster@ch-x.mssante.fr", "Abuse@patient.mssante.fr"} {
		r, err := d.ResolveRecipient(ctx, a)
		if err != nil || r.Address != "it@ch-x.mssante.fr" || r.Route != directory.RouteLocal {
			t.Errorf("%s resolved to %+v, %v", a, r, err)
		}
	}
	// Other local parts are not aliases.
	if _, err := d.ResolveRecipient(ctx, "hostmaster@ch-x.mssante.fr"); !refusal.Is(err, refusal.UnknownRecipient) {
		t.Errorf("hostmaster: %v", err)
	}
}
