package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/carepost/carepost/directory"
)

// Ending sessions. A suspension, a new password or a revoked application
// password must end the sessions the account already has open, not only
// refuse its next login, and the change may come from another process
// (`carepost dir suspend` beside `carepost serve` on the same data
// directory) or, later, another node. The store is the truth: each account
// has a credential epoch that every such change moves in its own
// transaction (directory.AccountState). A session remembers the epoch of
// its login (Principal.Epoch); one goroutine per server reads, every
// CheckInterval, the epochs and statuses of the accounts that have open
// sessions in this process, in one query, and ends the sessions whose
// account is no longer active or whose epoch moved. A change is thus seen
// within CheckInterval plus the time of one read, whatever made it, and
// an idle server asks nothing.

// DefaultCheckInterval is how often Sessions reads the account states.
const DefaultCheckInterval = time.Second

// AccountStates is what Sessions asks the directory
// (*directory.Directory).
type AccountStates interface {
	// AccountStates returns the status and credential epoch of each of
	// addresses that exists, in one read.
	AccountStates(ctx context.Context, addresses []string) (map[string]directory.AccountState, error)
}

// Sessions is the register of the open sessions of a server, by account,
// and the one goroutine that ends them (see above). IMAP and SMTP
// sessions register at login. A nil *Sessions registers nothing. Safe for
// concurrent use.
type Sessions struct {
	dir      AccountStates
	interval time.Duration
	log      *slog.Logger

	mu   sync.Mutex
	open map[string]map[*openSession]struct{} // by account

	// ctx is cancelled by Close: it stops the watcher and the read under
	// way.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// openSession is one registered session.
type openSession struct {
	epoch int64
	end   func(reason string)
}

// NewSessions starts the watcher over dir, reading every interval
// (DefaultCheckInterval when ≤ 0). Close stops it.
func NewSessions(dir AccountStates, interval time.Duration, log *slog.Logger) *Sessions {
	if interval <= 0 {
		interval = DefaultCheckInterval
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Sessions{dir: dir, interval: interval, log: log, open: map[string]map[*openSession]struct{}{},
		done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s
}

// Register records a session of p, opened with the credentials of
// p.Epoch. end is called once, on its own goroutine, with a sentence for
// the user saying why, when the session must end: it should tell the
// client (IMAP BYE, SMTP 421) and close the connection. The session calls
// the returned function when it ends, whatever the cause.
func (s *Sessions) Register(p *Principal, end func(reason string)) (unregister func()) {
	if s == nil || p == nil || p.Address == "" {
		return func() {}
	}
	o := &openSession{epoch: p.Epoch, end: end}
	s.mu.Lock()
	set := s.open[p.Address]
	if set == nil {
		set = map[*openSession]struct{}{}
		s.open[p.Address] = set
	}
	set[o] = struct{}{}
	s.mu.Unlock()
	return func() { s.forget(p.Address, o) }
}

func (s *Sessions) forget(account string, o *openSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.open[account]
	delete(set, o)
	if len(set) == 0 {
		delete(s.open, account)
	}
}

// Close stops the watcher; the sessions stay open.
func (s *Sessions) Close() error {
	if s == nil {
		return nil
	}
	s.cancel()
	<-s.done
	return nil
}

func (s *Sessions) run() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, 10*s.interval)
		s.check(ctx)
		cancel()
	}
}

// check reads the states of the accounts with open sessions and ends the
// sessions opened before a change.
func (s *Sessions) check(ctx context.Context) {
	s.mu.Lock()
	accounts := make([]string, 0, len(s.open))
	for a := range s.open {
		accounts = append(accounts, a)
	}
	s.mu.Unlock()
	if len(accounts) == 0 {
		return
	}
	states, err := s.dir.AccountStates(ctx, accounts)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("sessions: cannot read the account states, sessions of changed accounts stay open until the next read", "err", err)
		}
		return
	}
	type ending struct {
		account string
		o       *openSession
		st      directory.AccountState
		exists  bool
	}
	var ends []ending
	s.mu.Lock()
	for _, a := range accounts {
		st, ok := states[a]
		for o := range s.open[a] {
			if ok && st.Status == directory.StatusActive && st.Epoch == o.epoch {
				continue
			}
			ends = append(ends, ending{a, o, st, ok})
			delete(s.open[a], o)
		}
		if len(s.open[a]) == 0 {
			delete(s.open, a)
		}
	}
	s.mu.Unlock()
	for _, e := range ends {
		s.log.Info("session ended: the account changed", "account", e.account, "exists", e.exists,
			"status", e.st.Status, "change", e.st.Change, "epoch_at_login", e.o.epoch, "epoch", e.st.Epoch)
		// Each on its own: telling a client that does not read may block
		// until the write times out, and must not hold the others.
		go e.o.end(EndReason(e.st, e.exists))
	}
}

// EndReason is the sentence that tells the user why a session ended, from
// the account's state (exists false: the account is gone).
func EndReason(st directory.AccountState, exists bool) string {
	switch {
	case !exists:
		return "This account no longer exists."
	case st.Status == directory.StatusSuspended:
		return "This account was suspended: it cannot be used until an administrator activates it again."
	case st.Status == directory.StatusClosed:
		return "This account was closed."
	case st.Status != directory.StatusActive:
		return "This account is not active."
	}
	switch st.Change {
	case directory.ChangePassword:
		return "The password of this account was changed: log in again with the new one."
	case directory.ChangeAppPassword:
		return "An application password of this account was revoked: log in again."
	case directory.ChangeStatus:
		return "This account was suspended and activated again: log in again."
	}
	return "The credentials of this account changed: log in again."
}
