package directory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

// A second mailbox with a national identifier already in the directory
// is refused unless allowed, with a reason that is kept with the entry.
func TestDuplicateNationalID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	in := directory.ProfessionalInput{NationalID: "10001045367", FirstName: "Jean", LastName: "Dupont",
		Profession: "10", Address: "jean.dupont2@ch-x.mssante.fr"}
	_, err := f.d.AddProfessional(ctx, in)
	refused(t, err, refusal.InvalidInput, "The national identifier 810001045367 already belongs to jean.dupont@ch-x.mssante.fr")
	if !errors.Is(err, directory.ErrDuplicateNationalID) {
		t.Errorf("%v does not wrap ErrDuplicateNationalID", err)
	}
	in.AllowDuplicateID = true
	_, err = f.d.AddProfessional(ctx, in)
	refused(t, err, refusal.InvalidInput, "--allow-duplicate-id needs --reason")
	in.AllowDuplicateID, in.DuplicateReason = false, "second practice"
	_, err = f.d.AddProfessional(ctx, in)
	refused(t, err, refusal.InvalidInput, "only given with --allow-duplicate-id")
	fresh := in
	fresh.NationalID, fresh.AllowDuplicateID, fresh.Address = "10001045409", true, "fresh@ch-x.mssante.fr"
	_, err = f.d.AddProfessional(ctx, fresh)
	refused(t, err, refusal.InvalidInput, "has no mailbox yet")

	in.AllowDuplicateID = true
	if _, err := f.d.AddProfessional(ctx, in); err != nil {
		t.Fatal(err)
	}
	e, err := f.d.Lookup(ctx, in.Address)
	if err != nil || e.DuplicateIDReason != "second practice" || e.NationalID != "810001045367" {
		t.Fatalf("Lookup = %+v, %v: want the reason kept", e, err)
	}
	// The same address again is still "already exists", not a duplicate id.
	_, err = f.d.AddProfessional(ctx, in)
	if !errors.Is(err, directory.ErrExists) {
		t.Errorf("the same address twice: %v", err)
	}
}

// List is the operator's view: every kind (patients and the liste rouge
// included), filtered by kind, status, domain and words.
func TestList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	list := func(fl directory.ListFilter) []string {
		t.Helper()
		fl.IncludeListeRouge = true
		es, err := f.d.List(ctx, fl)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Address)
		}
		return out
	}
	if all := list(directory.ListFilter{}); len(all) != 5 {
		t.Errorf("List() = %v, want the 5 entries of the fixture", all)
	}
	if pats := list(directory.ListFilter{Kind: directory.KindPatient}); len(pats) != 1 || pats[0] != "279035121518989@patient.mssante.fr" {
		t.Errorf("List(patients) = %v", pats)
	}
	if pats := list(directory.ListFilter{Kind: directory.KindPatient, Query: "curie"}); len(pats) != 1 {
		t.Errorf("List(patients, curie) = %v", pats)
	}
	if got := list(directory.ListFilter{Status: directory.StatusClosed}); len(got) != 1 || got[0] != closedOr {
		t.Errorf("List(closed) = %v", got)
	}
	if got := list(directory.ListFilter{Domain: "Patient.MSSante.fr."}); len(got) != 1 {
		t.Errorf("List(domain) = %v", got)
	}
	if got := list(directory.ListFilter{Domain: "mssante.fr"}); len(got) != 0 {
		t.Errorf("List(parent domain) = %v: a domain is matched whole", got)
	}
	if got := list(directory.ListFilter{Kind: directory.KindOrganisational, Status: directory.StatusActive}); len(got) != 1 || got[0] != cardio {
		t.Errorf("List(active org) = %v", got)
	}
	for in, want := range map[string]directory.Kind{"PER": directory.KindPersonal, "patient": directory.KindPatient, "Org": directory.KindOrganisational} {
		if k, err := directory.ParseKind(in); err != nil || k != want {
			t.Errorf("ParseKind(%q) = %q, %v", in, k, err)
		}
	}
	_, err := directory.ParseKind("boss")
	refused(t, err, refusal.InvalidInput, "use per, org, app, cab or patient")
	_, err = directory.ParseStatus("gone")
	refused(t, err, refusal.InvalidInput, "use active, suspended or closed")
}

// The trust space lists other operators' domains, each once.
func TestAddTrustedDomainRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	refused(t, f.d.AddTrustedDomain(ctx, "ch-x.MSSANTE.fr", ""), refusal.InvalidInput, "is hosted by this server")
	err := f.d.AddTrustedDomain(ctx, "ch-b.mssante.fr", "again")
	refused(t, err, refusal.InvalidInput, "The domain ch-b.mssante.fr is in the trust space already.")
	if !errors.Is(err, directory.ErrTrustedDomainExists) {
		t.Errorf("%v does not wrap ErrTrustedDomainExists", err)
	}
	ds, err := f.store.TrustedDomains(ctx)
	if err != nil || len(ds) != 1 || ds[0].Description != "Centre hospitalier B" {
		t.Fatalf("trust space = %+v, %v: want the first entry unchanged", ds, err)
	}
}

func TestLabels(t *testing.T) {
	for code, want := range map[string]string{"10": "10 (Médecin)", "60": "60 (Infirmier)", "77": "77", "": ""} {
		if got := directory.ProfessionLabel(code); got != want {
			t.Errorf("ProfessionLabel(%q) = %q, want %q", code, got, want)
		}
	}
	for code, want := range map[string]string{"SM54": "SM54 (Médecine générale)", "SX99": "SX99"} {
		if got := directory.SpecialtyLabel(code); got != want {
			t.Errorf("SpecialtyLabel(%q) = %q, want %q", code, got, want)
		}
	}
}
