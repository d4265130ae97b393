package auth_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage/sqlite"
)

// TestCauseOfLogin: every way a login fails against a real directory is
// told apart for the log (auth.CauseOf), while the client's refusal is
// one and the same sentence.
func TestCauseOfLogin(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := directory.New(db, directory.Config{Domains: []string{"ch-x.mssante.fr"}})
	const active, suspended = "helene.martin@ch-x.mssante.fr", "paul.durand@ch-x.mssante.fr"
	for i, addr := range []string{active, suspended} {
		if _, err := dir.AddProfessional(ctx, directory.ProfessionalInput{
			NationalID: []string{"810001045367", "810002837655"}[i], FirstName: "Test", LastName: "Test" + addr[:4],
			Profession: "60", Address: addr,
		}); err != nil {
			t.Fatal(err)
		}
	}
	const pw = "correct horse battery"
	for _, addr := range []string{active, suspended} {
		if err := dir.SetPassword(ctx, addr, pw); err != nil {
			t.Fatal(err)
		}
	}
	if err := dir.SetStatus(ctx, suspended, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	a := auth.NewAuthenticator(dir)

	for _, tc := range []struct {
		name, user, password string
		want                 auth.Cause
	}{
		{"unknown account", "nobody@ch-x.mssante.fr", pw, auth.CauseUnknownAccount},
		{"not an address", "nobody", pw, auth.CauseUnknownAccount},
		{"wrong password", active, "wrong password", auth.CauseWrongPassword},
		{"suspended, right password", suspended, pw, auth.CauseInactive},
		{"suspended, wrong password", suspended, "wrong password", auth.CauseWrongPassword},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Plain(ctx, tc.user, tc.password, "192.0.2.9:1000")
			if err == nil {
				t.Fatal("login accepted")
			}
			if got := auth.CauseOf(err); got != tc.want {
				t.Errorf("cause = %v, want %v (err %v)", got, tc.want, err)
			}
			if err.Error() != refusal.AuthFailedText {
				t.Errorf("the client would read %q, want the one sentence %q", err.Error(), refusal.AuthFailedText)
			}
		})
	}

	// Causes found outside the directory.
	for _, tc := range []struct {
		err  error
		want auth.Cause
	}{
		{refusal.New(refusal.AuthFailed, "", auth.ErrTooManyAttempts, refusal.AuthFailedText), auth.CauseThrottled},
		{refusal.New(refusal.AuthFailed, "", auth.ErrAuthzIdentity, refusal.AuthFailedText), auth.CauseAuthzIdentity},
		{refusal.New(refusal.TLSRequired, "", nil, "Start TLS first."), auth.CauseTLSRequired},
		{refusal.New(refusal.MalformedMessage, "", nil, "Unreadable."), auth.CauseMalformed},
		{errors.New("database is locked"), auth.CauseUnavailable},
	} {
		if got := auth.CauseOf(tc.err); got != tc.want {
			t.Errorf("CauseOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	seen := map[string]bool{}
	for _, c := range auth.Causes() {
		if s := c.String(); s == "unknown" || seen[s] {
			t.Errorf("cause %d has no name of its own: %q", int(c), s)
		} else {
			seen[s] = true
		}
	}
}
