package directory

import (
	"context"
	"errors"
	"strings"
)

// Search limits: a directory search is for people, not for exports.
const (
	DefaultSearchLimit = 50
	MaxSearchLimit     = 500
)

// Lookup returns the entry of address (any case). An unknown address is
// ErrNotFound (wrapped); a malformed one is a *refusal.Error of kind
// refusal.InvalidAddress.
func (d *Directory) Lookup(ctx context.Context, address string) (Entry, error) {
	addr, err := ParseAddress(address)
	if err != nil {
		return Entry{}, err
	}
	return d.store.GetEntry(ctx, addr)
}

// Search finds entries whose address, names, national identifier,
// profession, specialty or organisation contain query, case-insensitively.
// Entries on the liste rouge are never returned: this is the search that
// users and other operators see. limit ≤ 0 means DefaultSearchLimit; it is
// capped at MaxSearchLimit.
func (d *Directory) Search(ctx context.Context, query string, limit int) ([]Entry, error) {
	query = strings.TrimSpace(query)
	if query == "" {
		return nil, nil
	}
	if limit <= 0 {
		limit = DefaultSearchLimit
	}
	limit = min(limit, MaxSearchLimit)
	return d.store.Search(ctx, query, false, limit)
}

// MemberOf lists the ORG/APP/CAB mailboxes address is a member of
// (whatever their status), with its role in each.
func (d *Directory) MemberOf(ctx context.Context, address string) ([]Delegation, error) {
	addr, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	return d.store.MemberOf(ctx, addr)
}

// Delegations lists the active ORG/APP/CAB mailboxes address is a member
// of, with its role in each: a suspended or closed shared mailbox is not
// offered to its members. The statuses come from the entry cache
// (cache.go), so that a client that lists its folders at every command
// costs one read of the memberships only.
func (d *Directory) Delegations(ctx context.Context, address string) ([]Delegation, error) {
	of, err := d.MemberOf(ctx, address)
	if err != nil {
		return nil, err
	}
	out := of[:0]
	for _, del := range of {
		e, err := d.entry(ctx, del.Mailbox)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if e.Status == StatusActive {
			out = append(out, del)
		}
	}
	return out, nil
}

// Members lists the members of an ORG, APP or CAB mailbox with their
// roles, sorted by address.
func (d *Directory) Members(ctx context.Context, mailbox string) ([]Member, error) {
	e, err := d.sharedEntry(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	return d.store.Members(ctx, e.Address)
}
