package auth

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/carepost/carepost/limit"
)

// Limiter slows password guessing (SPEC §3 "Brute force"). The
// authenticator asks it before every password check, so that a flood of
// guesses waits instead of computing password hashes (argon2id: tens of
// milliseconds and 19 MiB each), and tells it the outcome.
//
// This interface is the one the strong-authentication work completes
// (lockout after N failures, notification of the account holder) and that
// a shared store (Redis) implements when several Carepost processes serve
// the same accounts. Implementations must be safe for concurrent use.
type Limiter interface {
	// Wait returns once an attempt to log in as account from source
	// ("ip:port") may be checked: at once for an account and an address
	// with no recent failure, later after failures. It returns ctx's error
	// if ctx ends first, and ErrTooManyAttempts without waiting when the
	// attempt could not start before ctx's deadline.
	Wait(ctx context.Context, account, source string) error
	// Fail records a failed attempt (wrong password, unknown or inactive
	// account: the limiter does not tell them apart, nor must the caller).
	Fail(account, source string)
	// Success records a successful login: the account's failures, and
	// those of its source, are forgotten.
	Success(account, source string)
}

// ErrTooManyAttempts is Wait's answer when the delay owed by the account
// or the address would outlast the attempt's deadline: the attempt is
// refused without checking the password.
var ErrTooManyAttempts = tooMany{}

type tooMany struct{}

func (tooMany) Error() string { return "auth: too many failed attempts, the attempt was not checked" }

// Delays of the in-memory limiter.
const (
	// DefaultFreeFailures is how many failures in a row cost nothing: a
	// user mistyping a password a few times is not slowed.
	DefaultFreeFailures = 5
	// DefaultFirstDelay is the delay after the first failure past the
	// free ones; each further failure doubles it, up to the maximum.
	DefaultFirstDelay = time.Second
	// DefaultMaxDelay bounds the delay of one attempt: the account's
	// holder, who may be the one typing after an attacker's flood, is
	// never kept waiting longer than this (lockout is the
	// strong-authentication issue's, not this limiter's).
	DefaultMaxDelay = 15 * time.Second
	// DefaultForget is how long after its last failure an account or an
	// address is forgotten.
	DefaultForget = time.Hour
	// DefaultMaxEntries bounds the memory of the limiter: accounts and
	// addresses remembered, each (about 150 bytes with its key).
	DefaultMaxEntries = 100_000
)

// MemoryLimiter is the Limiter of one process: failures counted per
// account and per source address in memory, forgotten DefaultForget after
// the last one or at a restart. Several processes behind one address
// each count on their own (the cluster uses a shared implementation).
//
// The delay of an attempt grows with the failures of its account and of
// its address, whichever has more: none for the first FreeFailures, then
// FirstDelay, doubling at each failure up to MaxDelay. Attempts from one
// address that failed before are also spaced by that delay even when they
// arrive in parallel on many connections, so that opening more
// connections does not multiply the rate of guesses. Attempts on one
// account from many addresses are not queued behind each other: each waits
// the account's delay, so that an attacker cannot make the account's
// holder wait longer than MaxDelay.
//
// IPv6 sources are counted per /64, the block a single host usually holds.
type MemoryLimiter struct {
	FreeFailures int
	FirstDelay   time.Duration
	MaxDelay     time.Duration
	Forget       time.Duration
	MaxEntries   int

	// now and sleep are the clock; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	accounts map[string]*failures
	sources  map[string]*failures
}

type failures struct {
	count int
	last  time.Time // of the last failure
	next  time.Time // sources: when the next queued attempt may start
}

// NewMemoryLimiter returns a MemoryLimiter with the default delays and
// the given maximum delay (DefaultMaxDelay if zero).
func NewMemoryLimiter(maxDelay time.Duration) *MemoryLimiter {
	if maxDelay <= 0 {
		maxDelay = DefaultMaxDelay
	}
	return &MemoryLimiter{
		FreeFailures: DefaultFreeFailures,
		FirstDelay:   min(DefaultFirstDelay, maxDelay),
		MaxDelay:     maxDelay,
		Forget:       DefaultForget,
		MaxEntries:   DefaultMaxEntries,
		now:          time.Now,
		sleep:        sleepCtx,
		accounts:     map[string]*failures{},
		sources:      map[string]*failures{},
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait implements Limiter.
func (l *MemoryLimiter) Wait(ctx context.Context, account, source string) error {
	d, err := l.reserve(ctx, accountKey(account), sourceKey(source))
	if err != nil {
		return err
	}
	return l.sleep(ctx, d)
}

// reserve returns how long the attempt waits, and books its start in its
// source's queue.
func (l *MemoryLimiter) reserve(ctx context.Context, acct, src string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a, s := l.get(l.accounts, acct, now), l.get(l.sources, src, now)
	n := 0
	if a != nil {
		n = a.count
	}
	if s != nil {
		n = max(n, s.count)
	}
	d := l.delay(n)
	if d == 0 {
		return 0, nil
	}
	start := now
	if s != nil && s.next.After(start) {
		start = s.next
	}
	start = start.Add(d)
	if dl, ok := ctx.Deadline(); ok && start.After(dl) {
		return 0, ErrTooManyAttempts
	}
	if s != nil {
		s.next = start
	}
	return start.Sub(now), nil
}

// Delay returns what an attempt to log in as account from source would
// wait now, not counting attempts queued before it (for tests and the
// administration tools).
func (l *MemoryLimiter) Delay(account, source string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	n := 0
	if a := l.get(l.accounts, accountKey(account), now); a != nil {
		n = a.count
	}
	if s := l.get(l.sources, sourceKey(source), now); s != nil {
		n = max(n, s.count)
	}
	return l.delay(n)
}

// delay is the wait owed after n failures.
func (l *MemoryLimiter) delay(n int) time.Duration {
	n -= l.FreeFailures
	if n <= 0 {
		return 0
	}
	d := l.FirstDelay
	for i := 1; i < n && d < l.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.MaxDelay)
}

// Fail implements Limiter.
func (l *MemoryLimiter) Fail(account, source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, e := range []struct {
		m   map[string]*failures
		key string
	}{{l.accounts, accountKey(account)}, {l.sources, sourceKey(source)}} {
		f := l.get(e.m, e.key, now)
		if f == nil {
			l.makeRoom(e.m, now)
			f = &failures{}
			e.m[e.key] = f
		}
		f.count++
		f.last = now
	}
}

// Success implements Limiter.
func (l *MemoryLimiter) Success(account, source string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.accounts, accountKey(account))
	delete(l.sources, sourceKey(source))
}

// Len returns how many accounts and addresses are remembered.
func (l *MemoryLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accounts) + len(l.sources)
}

// get returns the live entry of key, dropping it once forgotten.
func (l *MemoryLimiter) get(m map[string]*failures, key string, now time.Time) *failures {
	f := m[key]
	if f != nil && l.expired(f, now) {
		delete(m, key)
		return nil
	}
	return f
}

func (l *MemoryLimiter) expired(f *failures, now time.Time) bool {
	return now.Sub(f.last) > l.Forget && !f.next.After(now)
}

// makeRoom keeps m under MaxEntries: forgotten entries go first, then, if
// a flood from very many addresses fills it with live ones, a tenth of
// them at random (Go's map order), so that memory stays bounded; those
// addresses start again from no failure.
func (l *MemoryLimiter) makeRoom(m map[string]*failures, now time.Time) {
	if l.MaxEntries <= 0 || len(m) < l.MaxEntries {
		return
	}
	for k, f := range m {
		if l.expired(f, now) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < l.MaxEntries-l.MaxEntries/10 {
			break
		}
		delete(m, k)
	}
}

// accountKey is the account as typed, folded as the directory folds
// addresses; bounded, since a client may send a megabyte as a user name.
func accountKey(account string) string {
	account = strings.ToLower(strings.TrimSpace(account))
	if len(account) > 320 { // RFC 5321 §4.5.3.1: 64 + 1 + 255
		account = account[:320]
	}
	return account
}

// sourceKey is the client's address without its port, IPv6 cut to its
// /64 (limit.Source).
func sourceKey(source string) string { return limit.Source(source) }
