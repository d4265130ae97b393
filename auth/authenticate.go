package auth

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

// Directory is what the authenticator asks the directory
// (*directory.Directory).
type Directory interface {
	// Authenticate checks a password or an application password; a
	// refusal is a *refusal.Error of kind refusal.AuthFailed.
	Authenticate(ctx context.Context, username, password string) (directory.Principal, error)
	// Delegations lists the active shared mailboxes address is a member
	// of, with its role in each.
	Delegations(ctx context.Context, address string) ([]directory.Delegation, error)
}

// Authenticator turns a successful authentication by the directory into a
// *Principal. Safe for concurrent use.
type Authenticator struct {
	dir  Directory
	lim  Limiter
	opts Options
}

// NewAuthenticator returns an Authenticator over dir with a limiter of its
// own (NewMemoryLimiter's defaults). Services of one process should share
// one limiter: see NewLimitedAuthenticator.
func NewAuthenticator(dir Directory) *Authenticator {
	return New(dir, Options{})
}

// NewLimitedAuthenticator returns an Authenticator over dir whose password
// checks are slowed by lim (never nil). The server gives one limiter to
// every listener, so that IMAP and SMTP AUTH count the same failures.
func NewLimitedAuthenticator(dir Directory, lim Limiter) *Authenticator {
	return New(dir, Options{Limiter: lim})
}

// Plain checks the credentials of SASL PLAIN (RFC 4616) or IMAP LOGIN,
// given by a mail client at source ("ip:port"). The directory's refusal is
// returned as it is (one sentence whatever the cause); any other error is
// the directory failing.
//
// The limiter is asked before the directory computes the password's hash,
// so that a flood of guesses waits instead of using the processor; an
// attempt it turns away (slowed past the deadline, or locked out) is
// refused with the same sentence as a wrong password (refusal.AuthFailed,
// Reason ErrTooManyAttempts or a *LockedError, for the log).
//
// With Options.RequireAppPasswords the account's own password is refused
// with that sentence too (Reason ErrAppPasswordRequired): mail clients
// use application passwords (SPEC §3). Such an attempt is not a guess,
// the password was right: it counts as a success for the limiter, so that
// a device still configured with the old password does not lock its owner
// out (docs/auth.md).
func (a *Authenticator) Plain(ctx context.Context, username, password, source string) (*Principal, error) {
	return a.plain(ctx, username, password, source, a.opts.RequireAppPasswords)
}

// PlainAccount is Plain for the owner's own web tools (the access history
// on [listen] https): the account's password is accepted whatever
// RequireAppPasswords says, which concerns mail clients (IMAP, SMTP).
func (a *Authenticator) PlainAccount(ctx context.Context, username, password, source string) (*Principal, error) {
	return a.plain(ctx, username, password, source, false)
}

func (a *Authenticator) plain(ctx context.Context, username, password, source string, appOnly bool) (*Principal, error) {
	if err := a.lim.Wait(ctx, username, source); err != nil {
		if errors.Is(err, ErrTooManyAttempts) {
			return nil, refusal.New(refusal.AuthFailed, "", err, refusal.AuthFailedText)
		}
		return nil, err
	}
	dp, err := a.dir.Authenticate(ctx, username, password)
	if err != nil {
		if refusal.Is(err, refusal.AuthFailed) {
			a.lim.Fail(username, source)
		}
		return nil, err
	}
	a.lim.Success(username, source)
	if appOnly && dp.AppPassword == 0 {
		return nil, refusal.New(refusal.AuthFailed, dp.Address, ErrAppPasswordRequired, refusal.AuthFailedText)
	}
	return &Principal{
		Address:      dp.Address,
		Kind:         dp.Kind,
		NationalID:   dp.NationalID,
		Organisation: dp.Organisation,
		Mechanism:    MechPlain,
		Source:       source,
		Delegations:  slices.Clone(dp.Delegations),
		Epoch:        dp.Epoch,
	}, nil
}

// Locked says until when a login as account from source is refused by the
// guessing defence's lockout (docs/auth.md), without counting anything.
// Plain asks it itself (Limiter.Wait); a mechanism that checks no password
// may ask it before logging in.
func (a *Authenticator) Locked(account, source string) (time.Time, bool) {
	return a.lim.Locked(account, source)
}

// ErrAppPasswordRequired is the Reason of the refusal of an account's own
// password by Plain when Options.RequireAppPasswords is set.
var ErrAppPasswordRequired = errors.New("the account's own password is refused to mail clients: an application password is required")

// Refresh returns a copy of p whose delegations are read again from the
// directory, so that a member added, removed or given another role is seen
// by a session that logged in before (an IMAP session refreshes when it
// opens or lists shared folders). p itself is never changed: it may be in
// the context of work under way.
func (a *Authenticator) Refresh(ctx context.Context, p *Principal) (*Principal, error) {
	if p == nil || p.Address == "" {
		return p, nil
	}
	ds, err := a.dir.Delegations(ctx, p.Address)
	if err != nil {
		return nil, err
	}
	if slices.Equal(ds, p.Delegations) {
		return p, nil
	}
	q := *p
	q.Delegations = ds
	return &q, nil
}
