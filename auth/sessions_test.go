package auth_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage/sqlite"
)

// TestSessionsEnd: sessions registered at login end, with a sentence that
// says why, when the account's password is set, one of its application
// passwords is revoked or it is suspended, in whichever store handle the
// change was made (a second handle on the same data directory stands for
// the other process); another account's sessions, and sessions opened
// after the change, stay.
func TestSessionsEnd(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	open := func() *directory.Directory {
		db, err := sqlite.Open(data, sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return directory.New(db, directory.Config{Domains: []string{"ch-x.mssante.fr"}})
	}
	dir, admin := open(), open()
	const pw, pw2 = "correct horse battery", "another long passphrase"
	const bob = "bob@ch-x.mssante.fr"
	for i, a := range []string{member, bob} {
		if _, err := dir.AddProfessional(ctx, directory.ProfessionalInput{
			NationalID: []string{"810001045367", "0012600631"}[i], FirstName: "A", LastName: "B", Profession: "60", Address: a,
		}); err != nil {
			t.Fatal(err)
		}
		if err := dir.SetPassword(ctx, a, pw); err != nil {
			t.Fatal(err)
		}
	}
	app, err := dir.NewAppPassword(ctx, member, "Phone")
	if err != nil {
		t.Fatal(err)
	}
	authn := auth.NewAuthenticator(dir)
	sessions := auth.NewSessions(dir, 50*time.Millisecond, nil)
	t.Cleanup(func() { sessions.Close() })

	// login registers a session and returns the channel its end reason
	// arrives on.
	login := func(user, password string) chan string {
		t.Helper()
		p, err := authn.Plain(ctx, user, password, "192.0.2.7:1")
		if err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		ended := make(chan string, 1)
		sessions.Register(p, func(reason string) { ended <- reason })
		return ended
	}
	wait := func(what string, ended chan string, want string) {
		t.Helper()
		start := time.Now()
		select {
		case r := <-ended:
			if !strings.Contains(r, want) {
				t.Fatalf("%s: session ended with %q, want %q", what, r, want)
			}
			t.Logf("%s: ended after %v: %s", what, time.Since(start).Round(time.Millisecond), r)
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: the session was not ended", what)
		}
	}
	stays := func(what string, ended ...chan string) {
		t.Helper()
		for _, e := range ended {
			select {
			case r := <-e:
				t.Fatalf("%s: a session that should stay ended: %q", what, r)
			default:
			}
		}
	}

	other := login(bob, pw)
	withApp, withPw := login(member, app), login(member, pw)
	if _, err := admin.RevokeAppPassword(ctx, member, "phone"); err != nil {
		t.Fatal(err)
	}
	wait("revoked app password", withApp, "application password of this account was revoked")
	wait("revoked app password, other session", withPw, "revoked")

	fresh := login(member, pw)
	if err := admin.SetPassword(ctx, member, pw2); err != nil {
		t.Fatal(err)
	}
	wait("new password", fresh, "password of this account was changed")

	fresh = login(member, pw2)
	unregister := func() func() {
		p, err := authn.Plain(ctx, member, pw2, "192.0.2.7:2")
		if err != nil {
			t.Fatal(err)
		}
		return sessions.Register(p, func(r string) { t.Errorf("an unregistered session was ended: %q", r) })
	}()
	unregister()
	if err := admin.SetStatus(ctx, member, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	wait("suspension", fresh, "suspended")
	// A session that is stale from the start ends at the next read: once
	// it has, the watcher has read the other account's state since every
	// change above, and left its session alone.
	probe := make(chan string, 1)
	sessions.Register(&auth.Principal{Address: member, Epoch: -1}, func(r string) { probe <- r })
	wait("stale probe", probe, "suspended")
	stays("after the changes to "+member, other)
}
