package storagetest

import (
	"context"
	"errors"
	"testing"

	"github.com/carepost/carepost/directory"
)

// testDirCredentialEpochs: the credential epoch moves with a new password,
// a revoked application password and a change of status, in the same
// write, and not with a new application password or a status set to what
// it was; AccountStates reads it for many accounts at once, and it
// survives a reopen.
func testDirCredentialEpochs(t *testing.T, open func(t *testing.T) directory.Store) {
	s := open(t)
	ctx := context.Background()
	dirMustAdd(t, s, dirDupont, dirNurse)
	a, b := dirDupont.Address, dirNurse.Address

	states := func(addrs ...string) map[string]directory.AccountState {
		t.Helper()
		m, err := s.AccountStates(ctx, addrs)
		if err != nil {
			t.Fatalf("AccountStates(%v): %v", addrs, err)
		}
		return m
	}
	m := states(a, b, "nobody@ch-x.mssante.fr")
	if len(m) != 2 || m[a].Status != directory.StatusActive || m[b].Status != directory.StatusActive {
		t.Fatalf("AccountStates = %+v, want the two accounts, active", m)
	}
	if m := states(); len(m) != 0 {
		t.Fatalf("AccountStates() = %+v, want empty", m)
	}
	epoch := m[a].Epoch
	other := m[b].Epoch
	c, err := s.Credentials(ctx, a)
	if err != nil || c.Epoch != epoch {
		t.Fatalf("Credentials = %+v, %v: want epoch %d as AccountStates", c, err, epoch)
	}

	// step checks that what just happened moved a's epoch (by why) or not,
	// and never b's.
	step := func(what string, moved bool, why directory.CredentialChange) {
		t.Helper()
		m := states(a, b)
		got := m[a]
		switch {
		case moved && (got.Epoch <= epoch || got.Change != why):
			t.Fatalf("after %s: state %+v, want an epoch past %d changed by %q", what, got, epoch, why)
		case !moved && got.Epoch != epoch:
			t.Fatalf("after %s: epoch %d, want it unchanged at %d", what, got.Epoch, epoch)
		}
		if m[b].Epoch != other {
			t.Fatalf("after %s on %s: the epoch of %s moved from %d to %d", what, a, b, other, m[b].Epoch)
		}
		if c, err := s.Credentials(ctx, a); err != nil || c.Epoch != got.Epoch {
			t.Fatalf("after %s: Credentials epoch %d, %v; AccountStates %d", what, c.Epoch, err, got.Epoch)
		}
		epoch = got.Epoch
	}
	if err := s.SetPassword(ctx, a, "$argon2id$one"); err != nil {
		t.Fatal(err)
	}
	step("SetPassword", true, directory.ChangePassword)
	ap, err := s.AddAppPassword(ctx, a, "Phone", "$argon2id$p")
	if err != nil {
		t.Fatal(err)
	}
	step("AddAppPassword", false, "")
	if err := s.SetStatus(ctx, a, directory.StatusActive); err != nil {
		t.Fatal(err)
	}
	step("SetStatus to the same status", false, "")
	if err := s.SetStatus(ctx, a, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	step("SetStatus(suspended)", true, directory.ChangeStatus)
	if got := states(a)[a].Status; got != directory.StatusSuspended {
		t.Fatalf("status %q, want suspended", got)
	}
	if err := s.SetStatus(ctx, a, directory.StatusActive); err != nil {
		t.Fatal(err)
	}
	step("SetStatus(active)", true, directory.ChangeStatus)

	// Revoking: another account's ID, or an unknown one, is not found and
	// moves nothing.
	bp, err := s.AddAppPassword(ctx, b, "Other", "$argon2id$o")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAppPassword(ctx, a, bp.ID); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("DeleteAppPassword(another account's) = %v, want ErrNotFound", err)
	}
	if err := s.DeleteAppPassword(ctx, "nobody@ch-x.mssante.fr", ap.ID); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("DeleteAppPassword(unknown account) = %v, want ErrNotFound", err)
	}
	step("DeleteAppPassword refused", false, "")
	if err := s.DeleteAppPassword(ctx, a, ap.ID); err != nil {
		t.Fatal(err)
	}
	step("DeleteAppPassword", true, directory.ChangeAppPassword)
	if c, _ := s.Credentials(ctx, a); len(c.AppPasswords) != 0 {
		t.Fatalf("after DeleteAppPassword: %+v", c.AppPasswords)
	}
	if c, _ := s.Credentials(ctx, b); len(c.AppPasswords) != 1 {
		t.Fatalf("the other account's app passwords: %+v", c.AppPasswords)
	}
	if err := s.DeleteAppPassword(ctx, a, ap.ID); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("DeleteAppPassword twice = %v, want ErrNotFound", err)
	}

	// The epoch is kept across a reopen.
	if cl, ok := s.(interface{ Close() error }); ok {
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
		s = open(t)
		if got := states(a)[a]; got.Epoch != epoch || got.Change != directory.ChangeAppPassword {
			t.Fatalf("after reopening: %+v, want epoch %d by app-password", got, epoch)
		}
	}
}
