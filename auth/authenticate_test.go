package auth_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage/sqlite"
)

// TestAuthenticatorPlain: a successful directory authentication becomes a
// Principal with the account's kind, national identifier, the mechanism,
// the client's address and its delegations with their roles; Refresh sees
// a role changed after the login without changing the principal it was
// given.
func TestAuthenticatorPlain(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := directory.New(db, directory.Config{Domains: []string{"ch-x.mssante.fr"}})
	if _, err := dir.AddProfessional(ctx, directory.ProfessionalInput{
		NationalID: "810001045367", FirstName: "Hélène", LastName: "Martin", Profession: "60", Address: member,
	}); err != nil {
		t.Fatal(err)
	}
	for _, box := range []string{org, other} {
		if _, err := dir.AddMailbox(ctx, directory.KindOrganisational, box, []string{member}, "Service"); err != nil {
			t.Fatal(err)
		}
	}
	if err := dir.SetStatus(ctx, other, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	const pw = "correct horse battery"
	if err := dir.SetPassword(ctx, member, pw); err != nil {
		t.Fatal(err)
	}
	a := auth.NewAuthenticator(dir)

	p, err := a.Plain(ctx, "Helene.Martin@ch-x.mssante.fr", pw, "192.0.2.7:51234")
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Principal{Address: member, Kind: directory.KindPersonal, NationalID: "810001045367",
		Mechanism: auth.MechPlain, Source: "192.0.2.7:51234",
		// The suspended shared mailbox is not offered.
		Delegations: []auth.Delegation{{Mailbox: org, Role: auth.RoleMember}}}
	if p.Address != want.Address || p.Kind != want.Kind || p.NationalID != want.NationalID ||
		p.Mechanism != want.Mechanism || p.Source != want.Source || !slices.Equal(p.Delegations, want.Delegations) {
		t.Errorf("principal = %+v, want %+v", *p, want)
	}
	if !p.Can(org, auth.Insert) || p.Can(org, auth.Expunge) {
		t.Errorf("member rights on %s: %v", org, auth.Rights(p, org))
	}

	if _, err := a.Plain(ctx, member, "wrong password!", "192.0.2.7:1"); !refusal.Is(err, refusal.AuthFailed) {
		t.Errorf("wrong password: %v", err)
	}

	if same, err := a.Refresh(ctx, p); err != nil || same != p {
		t.Errorf("Refresh without change = %p, %v; want the same principal", same, err)
	}
	if err := dir.AddMember(ctx, org, member, directory.RoleManager); err != nil {
		t.Fatal(err)
	}
	q, err := a.Refresh(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Can(org, auth.Expunge) || p.Can(org, auth.Expunge) || q.Source != p.Source || q.Mechanism != p.Mechanism {
		t.Errorf("after promotion: refreshed %v, original %v", auth.Rights(q, org), auth.Rights(p, org))
	}
}

func TestContext(t *testing.T) {
	if auth.FromContext(context.Background()) != nil {
		t.Error("a bare context has a principal")
	}
	p := principal(member)
	if got := auth.FromContext(auth.WithPrincipal(context.Background(), p)); got != p {
		t.Errorf("FromContext = %v", got)
	}
}
