package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/carepost/carepost/limit"
)

// Limiter slows, then locks out, password guessing (SPEC §3 "Brute
// force", docs/auth.md). The authenticator asks it before every password
// check, so that a flood of guesses waits instead of computing password
// hashes (argon2id: tens of milliseconds and 19 MiB each), and tells it the
// outcome.
//
// This is the interface a shared store (Redis) implements when several
// Carepost processes serve the same accounts. Its contract:
//
//   - Failures are counted per account (as typed, folded: accountKey) and
//     per source address (IPv6: its /64, sourceKey), and forgotten some
//     time after the last one.
//   - Past a few free failures each attempt waits a delay that grows with
//     the failures, bounded by a maximum (Wait).
//   - Past a threshold of consecutive failures the account, or the source,
//     is locked for a duration: Wait refuses at once with a *LockedError
//     (errors.Is ErrLockedOut and ErrTooManyAttempts), so that the
//     password is not checked, even the right one. When the duration
//     ends, the counters of what was locked start again from zero.
//   - A lockout of an account does not apply to a source that logged in
//     to that account successfully before and has not failed on it since
//     (a "known" source): an attacker elsewhere cannot lock the owner's
//     usual devices out by failing on purpose. A lockout of a source
//     applies to every account.
//   - The failure that locks reports the lockout exactly once, to the sink
//     the implementation was built with (MemoryLimiter.OnLockout): with a
//     shared store, the process whose failure crossed the threshold.
//   - Attempts under way count toward an account's delay and threshold,
//     so that guesses sent in parallel on many connections do not escape
//     them: after a Wait that returned nil, the caller reports Fail or
//     Success; an attempt never reported (the directory failing) stops
//     counting after a couple of minutes.
//
// Implementations must be safe for concurrent use.
type Limiter interface {
	// Wait returns once an attempt to log in as account from source
	// ("ip:port") may be checked: at once for an account and an address
	// with no recent failure, later after failures. It returns a
	// *LockedError at once while the account (for this source) or the
	// source is locked, ctx's error if ctx ends first, and
	// ErrTooManyAttempts without waiting when the attempt could not start
	// before ctx's deadline or the attempts under way already reach the
	// lockout threshold.
	Wait(ctx context.Context, account, source string) error
	// Fail records a failed attempt (wrong password, unknown or inactive
	// account: the limiter does not tell them apart, nor must the caller).
	// The failure that reaches a threshold locks and reports the lockout.
	Fail(account, source string)
	// Success records a successful login: the source's failures are
	// forgotten, and the account's unless it is locked (a known source
	// logging in during an attack does not give the attacker new
	// guesses); the source becomes known to the account.
	Success(account, source string)
	// Locked says until when an attempt to log in as account from source
	// would be refused by a lockout (the zero time and false if it would
	// not), without counting anything: for mechanisms that check no
	// password (EXTERNAL, tokens) and for the operator.
	Locked(account, source string) (time.Time, bool)
}

// ErrTooManyAttempts is Wait's answer when the delay owed by the account
// or the address would outlast the attempt's deadline: the attempt is
// refused without checking the password.
var ErrTooManyAttempts = tooMany{}

type tooMany struct{}

func (tooMany) Error() string { return "auth: too many failed attempts, the attempt was not checked" }

// ErrLockedOut is matched (errors.Is) by Wait's *LockedError.
var ErrLockedOut = errors.New("auth: locked out after too many failed attempts")

// LockScope says what a lockout locks.
type LockScope string

const (
	LockAccount LockScope = "account" // one account, from the sources not known to it
	LockSource  LockScope = "source"  // one source address (IPv6: /64), every account
)

// LockedError is Wait's refusal during a lockout. It matches ErrLockedOut
// and ErrTooManyAttempts (errors.Is), so that a caller that handles the
// latter refuses a locked attempt the same way.
type LockedError struct {
	Scope LockScope
	Until time.Time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("auth: the %s is locked out after too many failed attempts, until %s", e.Scope, e.Until.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLockedOut) and errors.Is(err,
// ErrTooManyAttempts) true.
func (e *LockedError) Is(target error) bool {
	return target == ErrLockedOut || target == ErrTooManyAttempts
}

// Lockout is what a limiter reports when a failure locks an account or a
// source.
type Lockout struct {
	Scope LockScope
	// Account is the account the failure that locked tried (as typed,
	// folded: it may be no account of the directory); Source that
	// failure's source ("ip:port"); Key what is locked: the account, or
	// the source's address (IPv6: its /64).
	Account, Source, Key string
	// Failures is the count of failures in a row that reached the
	// threshold; Sources, for an account, how many distinct addresses
	// they came from (as far as the limiter remembers).
	Failures, Sources int
	// At is when it was locked, Until when the lockout ends.
	At, Until time.Time
}

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
	// never kept waiting longer than this; past the lockout threshold the
	// lockout takes over.
	DefaultMaxDelay = 15 * time.Second
	// DefaultForget is how long after its last failure an account or an
	// address is forgotten (a lockout is remembered until it ends).
	DefaultForget = time.Hour
	// DefaultMaxEntries bounds the memory of the limiter: accounts and
	// addresses remembered, each (about 150 bytes with its key).
	DefaultMaxEntries = 100_000
	// DefaultKnownFor is how long a source that logged in to an account
	// stays known to it (exempt from the account's lockout), and
	// DefaultKnownPerAccount how many sources an account knows at most
	// (the least recent goes first).
	DefaultKnownFor        = 30 * 24 * time.Hour
	DefaultKnownPerAccount = 8
	// pendingFor is how long an attempt under way counts at most: longer
	// than any password check (the IMAP command timeout is 2 minutes).
	pendingFor = 3 * time.Minute
)

// MemoryLimiter is the Limiter of one process: failures counted per
// account and per source address in memory, forgotten Forget after the
// last one or at a restart. Several processes behind one address each
// count on their own (the cluster uses a shared implementation).
//
// The delay of an attempt grows with the failures of its account and of
// its address, whichever has more: none for the first FreeFailures, then
// FirstDelay, doubling at each failure up to MaxDelay. Attempts from one
// address that failed before are also spaced by that delay even when they
// arrive in parallel on many connections, so that opening more
// connections does not multiply the rate of guesses; attempts on one
// account under way count as failures for its delay and its threshold
// until they end. Attempts on one account from many addresses are not
// queued behind each other: each waits the account's delay, so that an
// attacker cannot make the account's holder wait longer than MaxDelay.
//
// LockoutAfter failures in a row on an account lock it for
// LockoutDuration, except from the sources known to it (see Limiter);
// LockoutSourceAfter failures from one address lock the address. Zero
// never locks. OnLockout, when set, is called with each lockout (outside
// the limiter's lock, on the goroutine of the failure: it must not
// block).
//
// IPv6 sources are counted per /64, the block a single host usually holds.
type MemoryLimiter struct {
	FreeFailures int
	FirstDelay   time.Duration
	MaxDelay     time.Duration
	Forget       time.Duration
	MaxEntries   int

	LockoutAfter       int
	LockoutSourceAfter int
	LockoutDuration    time.Duration
	KnownFor           time.Duration
	KnownPerAccount    int
	OnLockout          func(Lockout)

	// now and sleep are the clock; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	accounts map[string]*failures
	sources  map[string]*failures
	known    map[string]map[string]time.Time // account → source → last success
}

type failures struct {
	count  int
	last   time.Time // of the last failure
	next   time.Time // sources: when the next queued attempt may start
	locked time.Time // until when it is locked; zero: not locked
	// pending counts the attempts under way (accounts only), since
	// pendingAt.
	pending   int
	pendingAt time.Time
	// from are the sources of an account's failures (bounded), for the
	// lockout's report.
	from map[string]struct{}
}

// NewMemoryLimiter returns a MemoryLimiter with the default delays and
// the given maximum delay (DefaultMaxDelay if zero), which never locks
// until LockoutAfter or LockoutSourceAfter is set.
func NewMemoryLimiter(maxDelay time.Duration) *MemoryLimiter {
	if maxDelay <= 0 {
		maxDelay = DefaultMaxDelay
	}
	return &MemoryLimiter{
		FreeFailures:    DefaultFreeFailures,
		FirstDelay:      min(DefaultFirstDelay, maxDelay),
		MaxDelay:        maxDelay,
		Forget:          DefaultForget,
		MaxEntries:      DefaultMaxEntries,
		LockoutDuration: 15 * time.Minute,
		KnownFor:        DefaultKnownFor,
		KnownPerAccount: DefaultKnownPerAccount,
		now:             time.Now,
		sleep:           sleepCtx,
		accounts:        map[string]*failures{},
		sources:         map[string]*failures{},
		known:           map[string]map[string]time.Time{},
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

// reserve returns how long the attempt waits, counts it under way on its
// account, and books its start in its source's queue.
func (l *MemoryLimiter) reserve(ctx context.Context, acct, src string) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a, s := l.get(l.accounts, acct, now), l.get(l.sources, src, now)
	known := l.isKnown(acct, src, now)
	if s != nil && s.locked.After(now) {
		return 0, &LockedError{Scope: LockSource, Until: s.locked}
	}
	n := 0
	if a != nil && !known {
		if a.locked.After(now) {
			return 0, &LockedError{Scope: LockAccount, Until: a.locked}
		}
		if now.Sub(a.pendingAt) > pendingFor {
			a.pending = 0
		}
		n = a.count + a.pending
		if l.LockoutAfter > 0 && n >= l.LockoutAfter {
			// The attempts under way may lock the account: no more
			// guesses until they end.
			return 0, ErrTooManyAttempts
		}
	}
	if s != nil {
		n = max(n, s.count)
	}
	d := l.delay(n)
	start := now
	if d > 0 {
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
	}
	if a == nil {
		l.makeRoom(l.accounts, now)
		a = &failures{}
		l.accounts[acct] = a
	}
	if now.Sub(a.pendingAt) > pendingFor {
		a.pending = 0
	}
	a.pending++
	a.pendingAt = now
	return start.Sub(now), nil
}

// Delay returns what an attempt to log in as account from source would
// wait now, not counting attempts queued or under way (for tests and the
// administration tools).
func (l *MemoryLimiter) Delay(account, source string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	n := 0
	acct, src := accountKey(account), sourceKey(source)
	if a := l.get(l.accounts, acct, now); a != nil && !l.isKnown(acct, src, now) {
		n = a.count
	}
	if s := l.get(l.sources, src, now); s != nil {
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

// maxFrom bounds the sources an account's failures remember.
const maxFrom = 64

// Fail implements Limiter.
func (l *MemoryLimiter) Fail(account, source string) {
	acct, src := accountKey(account), sourceKey(source)
	var events []Lockout
	l.mu.Lock()
	now := l.now()
	a := l.get(l.accounts, acct, now)
	if a == nil {
		l.makeRoom(l.accounts, now)
		a = &failures{}
		l.accounts[acct] = a
	}
	if a.pending > 0 {
		a.pending--
	}
	a.count++
	a.last = now
	if a.from == nil {
		a.from = map[string]struct{}{}
	}
	if len(a.from) < maxFrom {
		a.from[src] = struct{}{}
	}
	s := l.get(l.sources, src, now)
	if s == nil {
		l.makeRoom(l.sources, now)
		s = &failures{}
		l.sources[src] = s
	}
	s.count++
	s.last = now
	// A known source that fails is known no more: whoever types there
	// now is not trusted past the account's lockout.
	if k := l.known[acct]; k != nil {
		delete(k, src)
		if len(k) == 0 {
			delete(l.known, acct)
		}
	}
	if l.LockoutAfter > 0 && a.count >= l.LockoutAfter && a.locked.IsZero() {
		a.locked = now.Add(l.LockoutDuration)
		events = append(events, Lockout{Scope: LockAccount, Account: acct, Source: source, Key: acct,
			Failures: a.count, Sources: len(a.from), At: now, Until: a.locked})
	}
	if l.LockoutSourceAfter > 0 && s.count >= l.LockoutSourceAfter && s.locked.IsZero() {
		s.locked = now.Add(l.LockoutDuration)
		events = append(events, Lockout{Scope: LockSource, Account: acct, Source: source, Key: src,
			Failures: s.count, Sources: 1, At: now, Until: s.locked})
	}
	f := l.OnLockout
	l.mu.Unlock()
	if f != nil {
		for _, e := range events {
			f(e)
		}
	}
}

// Success implements Limiter.
func (l *MemoryLimiter) Success(account, source string) {
	acct, src := accountKey(account), sourceKey(source)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	delete(l.sources, src)
	if a := l.get(l.accounts, acct, now); a != nil {
		if a.locked.After(now) {
			if a.pending > 0 {
				a.pending--
			}
		} else {
			delete(l.accounts, acct)
		}
	}
	if l.KnownPerAccount <= 0 || l.KnownFor <= 0 {
		return
	}
	k := l.known[acct]
	if k == nil {
		if l.MaxEntries > 0 && len(l.known) >= l.MaxEntries {
			l.forgetKnown(now)
		}
		k = map[string]time.Time{}
		l.known[acct] = k
	}
	k[src] = now
	for len(k) > l.KnownPerAccount {
		oldest, at := "", now
		for s, t := range k {
			if !t.After(at) {
				oldest, at = s, t
			}
		}
		delete(k, oldest)
	}
}

// Locked implements Limiter.
func (l *MemoryLimiter) Locked(account, source string) (time.Time, bool) {
	acct, src := accountKey(account), sourceKey(source)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if s := l.get(l.sources, src, now); s != nil && s.locked.After(now) {
		return s.locked, true
	}
	if a := l.get(l.accounts, acct, now); a != nil && a.locked.After(now) && !l.isKnown(acct, src, now) {
		return a.locked, true
	}
	return time.Time{}, false
}

// isKnown says whether src logged in to acct within KnownFor and has not
// failed on it since.
func (l *MemoryLimiter) isKnown(acct, src string, now time.Time) bool {
	t, ok := l.known[acct][src]
	return ok && now.Sub(t) <= l.KnownFor
}

// forgetKnown makes room in the known sources: those past KnownFor go,
// then a tenth of the accounts at random if it is still full.
func (l *MemoryLimiter) forgetKnown(now time.Time) {
	for a, k := range l.known {
		for s, t := range k {
			if now.Sub(t) > l.KnownFor {
				delete(k, s)
			}
		}
		if len(k) == 0 {
			delete(l.known, a)
		}
	}
	for a := range l.known {
		if len(l.known) < l.MaxEntries-l.MaxEntries/10 {
			break
		}
		delete(l.known, a)
	}
}

// Len returns how many accounts and addresses are remembered (failures,
// lockouts and attempts under way; not the known sources).
func (l *MemoryLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accounts) + len(l.sources)
}

// get returns the live entry of key, dropping it once forgotten or once
// its lockout ended (the counters start again from zero).
func (l *MemoryLimiter) get(m map[string]*failures, key string, now time.Time) *failures {
	f := m[key]
	if f != nil && l.expired(f, now) {
		delete(m, key)
		return nil
	}
	return f
}

func (l *MemoryLimiter) expired(f *failures, now time.Time) bool {
	if !f.locked.IsZero() {
		return !f.locked.After(now)
	}
	return now.Sub(f.last) > l.Forget && !f.next.After(now) && (f.pending == 0 || now.Sub(f.pendingAt) > pendingFor)
}

// makeRoom keeps m under MaxEntries: forgotten entries go first, then, if
// a flood from very many addresses fills it with live ones, a tenth of
// them at random (Go's map order), so that memory stays bounded; those
// addresses start again from no failure. Locked entries are dropped last.
func (l *MemoryLimiter) makeRoom(m map[string]*failures, now time.Time) {
	if l.MaxEntries <= 0 || len(m) < l.MaxEntries {
		return
	}
	for k, f := range m {
		if l.expired(f, now) {
			delete(m, k)
		}
	}
	for _, spareLocked := range []bool{true, false} {
		for k, f := range m {
			if len(m) < l.MaxEntries-l.MaxEntries/10 {
				return
			}
			if spareLocked && f.locked.After(now) {
				continue
			}
			delete(m, k)
		}
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
