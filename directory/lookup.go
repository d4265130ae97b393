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

// Limits of the operator's listings (List): a listing is for reading, an
// export of the whole directory is another tool.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 100000
)

// List returns the entries matching f, for the operator: the liste rouge
// included unless f says otherwise is the caller's choice. f.Limit ≤ 0
// means DefaultListLimit; it is capped at MaxListLimit.
func (d *Directory) List(ctx context.Context, f ListFilter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultListLimit
	}
	f.Limit = min(f.Limit, MaxListLimit)
	f.Domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(f.Domain), "."))
	return d.store.List(ctx, f)
}

// ParseKind reads a kind of mailbox as an operator types it (any case):
// per (or professional), org, app, cab, pat (or patient).
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "per", "professional":
		return KindPersonal, nil
	case "org":
		return KindOrganisational, nil
	case "app":
		return KindApplicative, nil
	case "cab":
		return KindPractice, nil
	case "pat", "patient":
		return KindPatient, nil
	}
	return "", invalid("", "Unknown kind %q: use per, org, app, cab or patient.", s)
}

// ParseStatus reads a status as an operator types it (any case).
func ParseStatus(s string) (Status, error) {
	switch st := Status(strings.ToLower(strings.TrimSpace(s))); st {
	case StatusActive, StatusSuspended, StatusClosed:
		return st, nil
	}
	return "", invalid("", "Unknown status %q: use active, suspended or closed.", s)
}
