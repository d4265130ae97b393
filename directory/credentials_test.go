package directory_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

// TestRevokeAppPassword: an application password is revoked by ID or by
// label, stops working at once, and moves the epoch that the principal of
// a login carries, so that the sessions opened before end (auth.Sessions).
func TestRevokeAppPassword(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	phone, err := f.d.NewAppPassword(ctx, dupont, "Phone")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.d.NewAppPassword(ctx, dupont, "Tablet"); err != nil {
		t.Fatal(err)
	}
	// Labels are unique per account, whatever the case…
	_, err = f.d.NewAppPassword(ctx, dupont, "tablet")
	refused(t, err, refusal.InvalidInput, `already has an application password labelled "Tablet"`)
	// …but a store made before that rule may hold two: revoking by label
	// then asks for the ID.
	h, err := crypto.HashAppPassword(crypto.GenerateAppPassword())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.AddAppPassword(ctx, dupont, "tablet", h); err != nil {
		t.Fatal(err)
	}
	before, err := f.d.Authenticate(ctx, dupont, phone)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := f.d.AccountStates(ctx, []string{dupont}); st[dupont].Epoch != before.Epoch {
		t.Fatalf("login epoch %d, AccountStates %+v", before.Epoch, st)
	}
	aps, err := f.d.AppPasswords(ctx, "Jean.Dupont@ch-x.mssante.fr")
	if err != nil || len(aps) != 3 || aps[0].Label != "Phone" || aps[0].Hash != "" {
		t.Fatalf("AppPasswords = %+v, %v: want three, without hashes", aps, err)
	}

	_, err = f.d.RevokeAppPassword(ctx, dupont, "TABLET")
	refused(t, err, refusal.InvalidInput, "give the ID")
	_, err = f.d.RevokeAppPassword(ctx, dupont, "laptop")
	refused(t, err, refusal.InvalidInput, `no application password with the ID or label "laptop"`)
	_, err = f.d.RevokeAppPassword(ctx, martin, "phone")
	refused(t, err, refusal.InvalidInput, "no application password")

	got, err := f.d.RevokeAppPassword(ctx, dupont, "phone")
	if err != nil || got.ID != aps[0].ID || got.Label != "Phone" {
		t.Fatalf("RevokeAppPassword(phone) = %+v, %v", got, err)
	}
	_, err = f.d.Authenticate(ctx, dupont, phone)
	refused(t, err, refusal.AuthFailed, "")
	st, _ := f.d.AccountStates(ctx, []string{dupont})
	if st[dupont].Epoch == before.Epoch || st[dupont].Change != directory.ChangeAppPassword {
		t.Fatalf("after revoking: %+v, want the epoch moved from %d", st[dupont], before.Epoch)
	}
	after, err := f.d.Authenticate(ctx, dupont, pw)
	if err != nil || after.Epoch != st[dupont].Epoch {
		t.Fatalf("login after revoking: epoch %d, %v; want %d", after.Epoch, err, st[dupont].Epoch)
	}
	// By ID, and gone from the list.
	if _, err := f.d.RevokeAppPassword(ctx, dupont, " "+strconv.FormatInt(aps[2].ID, 10)+" "); err != nil {
		t.Fatal(err)
	}
	if aps, _ := f.d.AppPasswords(ctx, dupont); len(aps) != 1 || aps[0].Label != "Tablet" {
		t.Fatalf("left: %+v", aps)
	}
}
