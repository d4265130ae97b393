package directory

import (
	"context"
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
// (whatever their status).
func (d *Directory) MemberOf(ctx context.Context, address string) ([]string, error) {
	addr, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	return d.store.MemberOf(ctx, addr)
}
