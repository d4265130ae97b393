package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/carepost/carepost/refusal"
)

// ResolveRecipient decides where mail for address goes, or why it cannot:
//
//   - malformed → refusal.InvalidAddress;
//   - one of our domains → the directory entry, which must exist
//     (refusal.UnknownRecipient) and be active (RecipientInactive);
//   - a domain of the trust space → RouteRemote;
//   - anything else → refusal.OutsideTrustSpace: MSSanté is a closed space, mail
//     never leaves it for ordinary internet mail (SPEC §4).
//
// Refusals are *refusal.Error values; other errors come from the store.
func (d *Directory) ResolveRecipient(ctx context.Context, address string) (Recipient, error) {
	if strings.EqualFold(address, "postmaster") && len(d.cfg.Domains) > 0 {
		// RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be
		// accepted; it is the postmaster of this server.
		address = "postmaster@" + d.cfg.Domains[0]
	}
	addr, err := ParseAddress(address)
	if err != nil {
		return Recipient{}, err
	}
	local, domain := SplitAddress(addr)
	if d.IsLocalDomain(domain) {
		e, err := d.entry(ctx, addr)
		if errors.Is(err, ErrNotFound) && (local == "postmaster" || local == "abuse") {
			return d.postmaster(ctx, addr)
		}
		if errors.Is(err, ErrNotFound) {
			return Recipient{}, refuse(refusal.UnknownRecipient, addr,
				"The address %s does not exist in the directory of %s.", addr, domain)
		}
		if err != nil {
			return Recipient{}, fmt.Errorf("directory: resolve %s: %w", addr, err)
		}
		switch e.Status {
		case StatusActive:
			return Recipient{Address: addr, Route: RouteLocal, Entry: e}, nil
		case StatusSuspended:
			return Recipient{}, refuse(refusal.RecipientInactive, addr,
				"The mailbox %s is suspended: it cannot receive messages for now.", addr)
		default:
			return Recipient{}, refuse(refusal.RecipientInactive, addr,
				"The mailbox %s is closed: it no longer receives messages.", addr)
		}
	}
	ok, err := d.InTrustSpace(ctx, domain)
	if err != nil {
		return Recipient{}, fmt.Errorf("directory: resolve %s: %w", addr, err)
	}
	if !ok {
		return Recipient{}, refuse(refusal.OutsideTrustSpace, addr,
			"The domain %s is not part of the secure health messaging space (MSSanté): mail can only be sent to addresses of the trust space.", domain)
	}
	return Recipient{Address: addr, Route: RouteRemote}, nil
}

// postmaster resolves postmaster@ and abuse@ of a hosted domain that has
// no entry of that name (RFC 5321 §4.5.1 requires postmaster; RFC 2142
// names abuse) to the mailbox Config.Postmaster names.
func (d *Directory) postmaster(ctx context.Context, addr string) (Recipient, error) {
	if d.cfg.Postmaster == "" {
		return Recipient{}, refuse(refusal.UnknownRecipient, addr,
			"Mail for %s cannot be delivered: this server has no postmaster mailbox configured.", addr)
	}
	e, err := d.entry(ctx, d.cfg.Postmaster)
	if errors.Is(err, ErrNotFound) {
		return Recipient{}, fmt.Errorf("directory: the postmaster mailbox %s (configuration key postmaster) is not in the directory", d.cfg.Postmaster)
	}
	if err != nil {
		return Recipient{}, fmt.Errorf("directory: resolve %s: %w", addr, err)
	}
	if e.Status != StatusActive {
		return Recipient{}, refuse(refusal.RecipientInactive, addr,
			"The mailbox that receives the mail of %s is not active: it cannot receive messages for now.", addr)
	}
	return Recipient{Address: e.Address, Route: RouteLocal, Entry: e}, nil
}

// IsLocalDomain reports whether this server hosts domain (any case).
func (d *Directory) IsLocalDomain(domain string) bool {
	return d.local[strings.ToLower(strings.TrimSuffix(domain, "."))]
}

// InTrustSpace reports whether domain belongs to the secure messaging space:
// one of ours, or a domain of the white list (Store.TrustedDomains).
func (d *Directory) InTrustSpace(ctx context.Context, domain string) (bool, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if d.local[domain] {
		return true, nil
	}
	s, err := d.trustSpace(ctx)
	if err != nil {
		return false, err
	}
	_, ok := s.byDomain[domain]
	return ok, nil
}

// forgetTrustSpace drops the cache after a change made through d.
func (d *Directory) forgetTrustSpace() {
	d.trustMu.Lock()
	d.trust = nil
	d.trustMu.Unlock()
}
