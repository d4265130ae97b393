package auth

import (
	"context"
	"slices"

	"carepost/directory"
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
	dir Directory
}

// NewAuthenticator returns an Authenticator over dir.
func NewAuthenticator(dir Directory) *Authenticator { return &Authenticator{dir: dir} }

// Plain checks the credentials of SASL PLAIN (RFC 4616) or IMAP LOGIN,
// given by a client at source ("ip:port"). The directory's refusal is
// returned as it is (one sentence whatever the cause); any other error is
// the directory failing.
func (a *Authenticator) Plain(ctx context.Context, username, password, source string) (*Principal, error) {
	dp, err := a.dir.Authenticate(ctx, username, password)
	if err != nil {
		return nil, err
	}
	return &Principal{
		Address:     dp.Address,
		Kind:        dp.Kind,
		NationalID:  dp.NationalID,
		Mechanism:   MechPlain,
		Source:      source,
		Delegations: slices.Clone(dp.Delegations),
		Epoch:       dp.Epoch,
	}, nil
}

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
