package auth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage/sqlite"
)

// newLockingLimiter is a limiter on a virtual clock that locks after 20
// failures on an account, 100 from an address, for 15 minutes, and
// records its lockouts.
func newLockingLimiter() (*auth.MemoryLimiter, *virtualClock, *[]auth.Lockout) {
	l, c := newVirtualLimiter()
	l.LockoutAfter, l.LockoutSourceAfter, l.LockoutDuration = 20, 100, 15*time.Minute
	var mu sync.Mutex
	var got []auth.Lockout
	l.OnLockout = func(e auth.Lockout) { mu.Lock(); got = append(got, e); mu.Unlock() }
	return l, c, &got
}

// guess is one attempt as the authenticator makes it: Wait, then the
// outcome.
func guess(l auth.Limiter, account, source string, right bool) error {
	if err := l.Wait(context.Background(), account, source); err != nil {
		return err
	}
	if right {
		l.Success(account, source)
	} else {
		l.Fail(account, source)
	}
	return nil
}

// Twenty failures lock the account: the next attempt is refused at once,
// even with the right password, reported once; when the lockout ends the
// right password works and the account's counters start again.
func TestLimiterLockoutAndExpiry(t *testing.T) {
	l, clock, got := newLockingLimiter()
	const acct, src = "Helene.Martin@ch-x.mssante.fr", "203.0.113.9:4000"
	for i := range 20 {
		if err := guess(l, acct, src, false); err != nil {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if len(*got) != 1 {
		t.Fatalf("%d lockouts reported, want 1: %+v", len(*got), *got)
	}
	e := (*got)[0]
	if e.Scope != auth.LockAccount || e.Account != "helene.martin@ch-x.mssante.fr" || e.Failures != 20 || e.Sources != 1 ||
		e.Source != src || !e.Until.Equal(e.At.Add(15*time.Minute)) {
		t.Errorf("lockout: %+v", e)
	}
	clock.last()
	err := guess(l, acct, src, true)
	var le *auth.LockedError
	if !errors.As(err, &le) || le.Scope != auth.LockAccount || !le.Until.Equal(e.Until) ||
		!errors.Is(err, auth.ErrLockedOut) || !errors.Is(err, auth.ErrTooManyAttempts) {
		t.Fatalf("right password while locked: %v", err)
	}
	if d := clock.last(); d != 0 {
		t.Errorf("a locked attempt waited %v; it must be refused at once", d)
	}
	// From another address too (never known to the account).
	if err := guess(l, acct, "198.51.100.7:1", true); !errors.Is(err, auth.ErrLockedOut) {
		t.Errorf("another address while locked: %v", err)
	}
	if until, locked := l.Locked(acct, src); !locked || !until.Equal(e.Until) {
		t.Errorf("Locked = %v, %v", until, locked)
	}
	// More failures during the lockout report nothing more (they are not
	// even checked).
	for range 5 {
		guess(l, acct, src, false)
	}
	if len(*got) != 1 {
		t.Errorf("%d lockouts reported", len(*got))
	}

	clock.advance(15*time.Minute + time.Second)
	if _, locked := l.Locked(acct, src); locked {
		t.Fatal("still locked after the duration")
	}
	if err := guess(l, acct, "198.51.100.7:1", true); err != nil {
		t.Fatalf("right password after the lockout: %v", err)
	}
	if d := clock.last(); d != 0 {
		t.Errorf("after the lockout, from a fresh address, the login waited %v", d)
	}
	// The account's counters started again: five free failures.
	for range 5 {
		guess(l, acct, "198.51.100.8:1", false)
	}
	if d := l.Delay(acct, "198.51.100.9:1"); d != 0 {
		t.Errorf("after the lockout the account's failures were not forgotten: delay %v", d)
	}
}

// An address that logged in to the account before, and did not fail
// since, is not locked out by an attacker elsewhere, nor slowed by the
// attacker's failures; once it fails it is known no more.
func TestLimiterKnownSourceNotLockedOut(t *testing.T) {
	l, clock, _ := newLockingLimiter()
	const acct, owner, attacker = "owner@ch-x.mssante.fr", "192.0.2.10:1", "203.0.113.9:1"
	if err := guess(l, acct, owner, true); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		guess(l, acct, attacker, false)
	}
	if _, locked := l.Locked(acct, attacker); !locked {
		t.Fatal("not locked")
	}
	clock.last()
	if err := guess(l, acct, owner, true); err != nil {
		t.Fatalf("the owner's known address is locked out: %v", err)
	}
	if d := clock.last(); d != 0 {
		t.Errorf("the owner's known address waited %v", d)
	}
	// The owner's login did not lift the lockout for the attacker.
	if err := guess(l, acct, attacker, true); !errors.Is(err, auth.ErrLockedOut) {
		t.Errorf("the attacker after the owner's login: %v", err)
	}
	// A failure from the known address makes it unknown: locked too.
	guess(l, acct, owner, false)
	if err := guess(l, acct, owner, true); !errors.Is(err, auth.ErrLockedOut) {
		t.Errorf("a known address that failed: %v", err)
	}
}

// A hundred failures from one address on many accounts lock the address
// for every account, and report it once.
func TestLimiterSourceLockout(t *testing.T) {
	l, clock, got := newLockingLimiter()
	const src = "[2001:db8:1:2::1]:1"
	for i := range 100 {
		guess(l, fmt.Sprintf("u%d@ch-x.mssante.fr", i), src, false)
	}
	if len(*got) != 1 || (*got)[0].Scope != auth.LockSource || (*got)[0].Key != "2001:db8:1:2::/64" || (*got)[0].Failures != 100 {
		t.Fatalf("lockouts: %+v", *got)
	}
	// Another address of the /64, another account: locked.
	err := guess(l, "new@ch-x.mssante.fr", "[2001:db8:1:2:ffff::9]:5", true)
	var le *auth.LockedError
	if !errors.As(err, &le) || le.Scope != auth.LockSource {
		t.Fatalf("another account from the locked /64: %v", err)
	}
	if err := guess(l, "new@ch-x.mssante.fr", "192.0.2.1:5", true); err != nil {
		t.Errorf("another address: %v", err)
	}
	clock.advance(16 * time.Minute)
	if err := guess(l, "new@ch-x.mssante.fr", src, true); err != nil {
		t.Errorf("after the lockout: %v", err)
	}
}

// Guesses sent in parallel before any failure is recorded count as they
// run: past the free ones they wait, and no more than the threshold are
// ever checked at once, so that a burst of connections does not escape
// the defence (issue #26: twenty parallel guesses were all checked at
// once).
func TestLimiterCountsAttemptsUnderWay(t *testing.T) {
	l, _, _ := newLockingLimiter()
	var waits []time.Duration
	l.SetClock(time.Now, func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return nil })
	const acct = "burst@ch-x.mssante.fr"
	var refused int
	for i := range 30 {
		// Every Wait before any outcome: all under way at once.
		if err := l.Wait(context.Background(), acct, fmt.Sprintf("203.0.113.%d:1", i)); err != nil {
			if !errors.Is(err, auth.ErrTooManyAttempts) || errors.Is(err, auth.ErrLockedOut) {
				t.Fatalf("attempt %d: %v", i, err)
			}
			refused++
		}
	}
	if refused != 10 {
		t.Errorf("%d attempts refused, want the 10 past the threshold of 20", refused)
	}
	for i, w := range waits {
		if i < l.FreeFailures+1 && w != 0 {
			t.Errorf("attempt %d waited %v", i, w)
		}
		if i > l.FreeFailures && w == 0 {
			t.Errorf("attempt %d, past the free failures, did not wait", i)
		}
	}
}

// With RequireAppPasswords the account's own password is refused to mail
// clients with the one sentence, cause app-password-required, and does
// not count toward the lockout; an application password works, and the
// account password still works for the owner's web tools (PlainAccount).
func TestAppPasswordRequired(t *testing.T) {
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
	const pw = "correct horse battery"
	if err := dir.SetPassword(ctx, member, pw); err != nil {
		t.Fatal(err)
	}
	app, err := dir.NewAppPassword(ctx, member, "phone")
	if err != nil {
		t.Fatal(err)
	}
	lim, _, got := newLockingLimiter()
	a := auth.New(dir, auth.Options{Limiter: lim, RequireAppPasswords: true})
	for i := range 25 {
		_, err := a.Plain(ctx, member, pw, "192.0.2.7:1")
		if !refusal.Is(err, refusal.AuthFailed) || auth.CauseOf(err) != auth.CauseAppPasswordRequired {
			t.Fatalf("attempt %d with the account password: %v (%v)", i, err, auth.CauseOf(err))
		}
		if err.Error() != refusal.AuthFailedText {
			t.Errorf("the client is told %q", err.Error())
		}
	}
	if len(*got) != 0 {
		t.Errorf("the account password locked the account: %+v", *got)
	}
	p, err := a.Plain(ctx, member, app, "192.0.2.7:1")
	if err != nil || p.Address != member {
		t.Fatalf("application password: %v, %v", p, err)
	}
	if _, err := a.PlainAccount(ctx, member, pw, "192.0.2.7:1"); err != nil {
		t.Errorf("PlainAccount with the account password: %v", err)
	}
	// Without the option the account password works.
	if _, err := auth.New(dir, auth.Options{Limiter: lim}).Plain(ctx, member, pw, "192.0.2.7:1"); err != nil {
		t.Errorf("without RequireAppPasswords: %v", err)
	}
	// A wrong password is still a wrong password.
	if _, err := a.Plain(ctx, member, "wrong", "192.0.2.7:1"); auth.CauseOf(err) != auth.CauseWrongPassword {
		t.Errorf("wrong password: %v", err)
	}
}

// An attempt whose outcome is never reported (the directory failed)
// stops counting after a few minutes.
func TestLimiterForgetsAttemptsNeverReported(t *testing.T) {
	l, clock, _ := newLockingLimiter()
	const acct = "lost@ch-x.mssante.fr"
	for i := range 20 {
		if err := l.Wait(context.Background(), acct, fmt.Sprintf("192.0.2.%d:1", i)); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if err := l.Wait(context.Background(), acct, "192.0.2.99:1"); !errors.Is(err, auth.ErrTooManyAttempts) {
		t.Fatalf("the 21st attempt under way: %v", err)
	}
	clock.advance(5 * time.Minute)
	clock.last()
	if err := l.Wait(context.Background(), acct, "192.0.2.99:1"); err != nil {
		t.Fatalf("after the attempts under way were forgotten: %v", err)
	}
	if d := clock.last(); d != 0 {
		t.Errorf("waited %v", d)
	}
}
