package directory

import (
	"context"
	"errors"
	"fmt"

	"github.com/carepost/carepost/refusal"
)

// ErrNoSuchIdentity: a certificate or a token names nobody of the
// directory (cause of a refusal, for the log).
var ErrNoSuchIdentity = errors.New("no mailbox matches the identity proved")

// Identify returns the principal of the mailbox address, whose holder
// proved who it is by other means than a password: a TLS client
// certificate or an access token checked by package auth. Only an active
// account may log in; the refusal is of kind refusal.AuthFailed with the
// one sentence of every failed login, its Reason (ErrUnknownAccount,
// ErrAccountInactive) for the log. The login is recorded as Authenticate
// records it (inactivity rules).
func (d *Directory) Identify(ctx context.Context, address string) (Principal, error) {
	addr, err := ParseAddress(address)
	if err != nil {
		return Principal{}, refusal.New(refusal.AuthFailed, truncate(address, 254), ErrUnknownAccount, authFailedText)
	}
	e, err := d.store.GetEntry(ctx, addr)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, refusal.New(refusal.AuthFailed, addr, ErrUnknownAccount, authFailedText)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("directory: identify %s: %w", addr, err)
	}
	if e.Status != StatusActive {
		return Principal{}, refusal.New(refusal.AuthFailed, addr, fmt.Errorf("%w: %s", ErrAccountInactive, e.Status), authFailedText)
	}
	creds, err := d.store.Credentials(ctx, addr)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Principal{}, fmt.Errorf("directory: identify %s: %w", addr, err)
	}
	delegations, err := d.Delegations(ctx, addr)
	if err != nil {
		return Principal{}, fmt.Errorf("directory: identify %s: %w", addr, err)
	}
	if now := d.now(); now.Sub(e.LastLogin) >= lastLoginInterval {
		if err := d.store.RecordLogin(ctx, addr, 0, now); err != nil {
			return Principal{}, fmt.Errorf("directory: record login of %s: %w", addr, err)
		}
	}
	return Principal{Address: addr, Kind: e.Kind, NationalID: e.NationalID, Organisation: e.Organisation,
		Delegations: delegations, Epoch: creds.Epoch}, nil
}

// ByNationalID lists the addresses of the active mailboxes whose national
// identifier is id (a professional may hold several: one per practice),
// sorted. id is taken as the directory stores it (8+RPPS, 0+ADELI, or an
// INS); a bare RPPS or ADELI number is completed
// (ProfessionalNationalID).
func (d *Directory) ByNationalID(ctx context.Context, id string) ([]string, error) {
	if canon, err := ProfessionalNationalID(id); err == nil {
		id = canon
	}
	if id == "" {
		return nil, nil
	}
	es, err := d.store.List(ctx, ListFilter{NationalID: id, Status: StatusActive, IncludeListeRouge: true, Limit: 100})
	if err != nil {
		return nil, fmt.Errorf("directory: mailboxes of national id: %w", err)
	}
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.Address)
	}
	return out, nil
}
