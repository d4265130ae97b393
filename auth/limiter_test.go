package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage/sqlite"
)

// virtualClock is a clock that advances only when the limiter sleeps, so
// that minutes of delays are checked in the time the password hashes take.
type virtualClock struct {
	mu    sync.Mutex
	t     time.Time
	slept []time.Duration
}

func (c *virtualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *virtualClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slept = append(c.slept, d)
	c.t = c.t.Add(d)
	return ctx.Err()
}

// last returns the last sleep and forgets the record.
func (c *virtualClock) last() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.slept) == 0 {
		return 0
	}
	d := c.slept[len(c.slept)-1]
	c.slept = nil
	return d
}

func (c *virtualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newVirtualLimiter() (*auth.MemoryLimiter, *virtualClock) {
	l := auth.NewMemoryLimiter(0)
	c := &virtualClock{t: time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)}
	l.SetClock(c.now, c.sleep)
	return l, c
}

// Issue 21 "Guessing, slowed": 200 wrong passwords for one account from one
// address take at least a minute, counted on the limiter's clock while the
// directory checks every password for real; another account from another
// address is not slowed at all, and the delay is owed before the password
// is checked.
func TestGuessingIsSlowed(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := directory.New(db, directory.Config{Domains: []string{"ch-x.mssante.fr"}})
	const pw = "correct horse battery"
	for i, a := range []string{member, "paul.durand@ch-x.mssante.fr"} {
		if _, err := dir.AddProfessional(ctx, directory.ProfessionalInput{
			NationalID: []string{"810001045367", "810001045375"}[i], FirstName: "A", LastName: "B", Profession: "60", Address: a,
		}); err != nil {
			t.Fatal(err)
		}
		if err := dir.SetPassword(ctx, a, pw); err != nil {
			t.Fatal(err)
		}
	}
	lim, clock := newVirtualLimiter()
	a := auth.NewLimitedAuthenticator(dir, lim)

	start := clock.now()
	for i := range 200 {
		_, err := a.Plain(ctx, member, fmt.Sprintf("guess %d", i), "203.0.113.9:40000")
		if !refusal.Is(err, refusal.AuthFailed) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if took := clock.now().Sub(start); took < time.Minute {
		t.Errorf("200 wrong passwords took %v, want at least a minute", took)
	} else {
		t.Logf("200 wrong passwords took %v", took)
	}
	clock.last()

	// Another account from another address: no delay, and it logs in.
	if p, err := a.Plain(ctx, "paul.durand@ch-x.mssante.fr", pw, "198.51.100.4:1234"); err != nil || p == nil {
		t.Fatalf("other account: %v", err)
	}
	if d := clock.last(); d != 0 {
		t.Errorf("another account from another address waited %v", d)
	}
	// The attacker's address is slowed on any account, and the attacked
	// account from any address.
	if d := lim.Delay("paul.durand@ch-x.mssante.fr", "203.0.113.9:1"); d == 0 {
		t.Error("the guessing address is not slowed on another account")
	}
	if d := lim.Delay(member, "198.51.100.4:1"); d == 0 {
		t.Error("the guessed account is not slowed from another address")
	}
	// The right password, after the delay, works and forgets the failures.
	if _, err := a.Plain(ctx, member, pw, "203.0.113.9:40001"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if d := clock.last(); d == 0 {
		t.Error("the right password after 200 failures was checked without delay")
	}
	if d := lim.Delay(member, "203.0.113.9:1"); d != 0 {
		t.Errorf("after a success the delay is %v", d)
	}
}

// The delay is owed before the directory is asked: an attempt that
// cannot start before its deadline is refused without a password check.
func TestLimiterRefusesPastDeadline(t *testing.T) {
	lim, clock := newVirtualLimiter()
	for range 10 {
		lim.Fail("x@y.fr", "192.0.2.1:1")
	}
	ctx, cancel := context.WithDeadline(context.Background(), clock.now().Add(time.Second))
	defer cancel()
	if err := lim.Wait(ctx, "x@y.fr", "192.0.2.1:2"); err != auth.ErrTooManyAttempts {
		t.Errorf("Wait = %v, want ErrTooManyAttempts", err)
	}
}

// Parallel attempts from one address that failed before are spaced by the
// delay: more connections do not mean more guesses per minute.
func TestLimiterQueuesParallelAttempts(t *testing.T) {
	lim, clock := newVirtualLimiter()
	for range lim.FreeFailures + 1 {
		lim.Fail("x@y.fr", "192.0.2.1:1")
	}
	d := lim.Delay("z@y.fr", "192.0.2.1:1")
	if d == 0 {
		t.Fatal("no delay after the free failures")
	}
	var waits []time.Duration
	lim.SetClock(clock.now, func(ctx context.Context, w time.Duration) error { waits = append(waits, w); return nil })
	for i := range 5 {
		lim.Wait(context.Background(), fmt.Sprintf("user%d@y.fr", i), "192.0.2.1:2")
	}
	for i, w := range waits {
		if want := time.Duration(i+1) * d; w != want {
			t.Errorf("attempt %d waits %v, want %v", i, w, want)
		}
	}
}

// Memory stays bounded under a flood from many addresses, and failures are
// forgotten after a while.
func TestLimiterBounded(t *testing.T) {
	lim, clock := newVirtualLimiter()
	lim.MaxEntries = 1000
	for i := range 20000 {
		lim.Fail(fmt.Sprintf("u%d@y.fr", i), fmt.Sprintf("10.%d.%d.%d:1", i>>16, (i>>8)&255, i&255))
	}
	if n := lim.Len(); n > 2*lim.MaxEntries {
		t.Errorf("%d entries remembered, want at most %d", n, 2*lim.MaxEntries)
	}
	for range 10 {
		lim.Fail("a@y.fr", "192.0.2.1:1")
	}
	if lim.Delay("a@y.fr", "192.0.2.1:1") == 0 {
		t.Fatal("no delay after 10 failures")
	}
	clock.advance(lim.Forget + time.Minute)
	if d := lim.Delay("a@y.fr", "192.0.2.1:1"); d != 0 {
		t.Errorf("delay %v after the failures should be forgotten", d)
	}
	// IPv6 addresses count per /64.
	for range 10 {
		lim.Fail("b@y.fr", "[2001:db8:1:2::1]:1")
	}
	if lim.Delay("c@y.fr", "[2001:db8:1:2:ffff::9]:5") == 0 {
		t.Error("another address of the same /64 is not slowed")
	}
}
