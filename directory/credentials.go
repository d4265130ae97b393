package directory

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/carepost/carepost/refusal"
)

// AppPasswords lists the application passwords of address in creation
// order, without their hashes.
func (d *Directory) AppPasswords(ctx context.Context, address string) ([]AppPassword, error) {
	_, aps, err := d.appPasswords(ctx, address)
	return aps, err
}

// appPasswords returns the canonical address and its application
// passwords, without their hashes.
func (d *Directory) appPasswords(ctx context.Context, address string) (string, []AppPassword, error) {
	e, err := d.Lookup(ctx, address)
	if err != nil {
		return "", nil, err
	}
	creds, err := d.store.Credentials(ctx, e.Address)
	if err != nil {
		return "", nil, err
	}
	out := creds.AppPasswords
	for i := range out {
		out[i].Hash = ""
	}
	return e.Address, out, nil
}

// RevokeAppPassword removes an application password of address, named by
// its ID or, when that is not a number, by its label (any case), and
// returns it without its hash. The account's open sessions end within
// seconds (the credential epoch moves, see AccountState), in whichever
// process they are; its other devices log in again with their own
// passwords. A label shared by several application passwords is refused:
// the ID says which.
func (d *Directory) RevokeAppPassword(ctx context.Context, address, idOrLabel string) (AppPassword, error) {
	addr, aps, err := d.appPasswords(ctx, address)
	if err != nil {
		return AppPassword{}, err
	}
	name := strings.TrimSpace(idOrLabel)
	var found []AppPassword
	if id, err := strconv.ParseInt(name, 10, 64); err == nil {
		for _, ap := range aps {
			if ap.ID == id {
				found = append(found, ap)
			}
		}
	}
	if len(found) == 0 {
		for _, ap := range aps {
			if strings.EqualFold(ap.Label, name) {
				found = append(found, ap)
			}
		}
	}
	switch len(found) {
	case 0:
		return AppPassword{}, refusal.New(refusal.InvalidInput, addr, ErrNotFound,
			"The account %s has no application password with the ID or label %q (carepost user app-password list %s lists them).", addr, name, addr)
	case 1:
	default:
		return AppPassword{}, invalid(addr, "The account %s has %d application passwords labelled %q: give the ID of the one to revoke.", addr, len(found), name)
	}
	ap := found[0]
	if err := d.store.DeleteAppPassword(ctx, addr, ap.ID); err != nil {
		if errors.Is(err, ErrNotFound) { // revoked meanwhile by someone else
			return AppPassword{}, refusal.New(refusal.InvalidInput, addr, ErrNotFound,
				"The application password %d of %s was already revoked.", ap.ID, addr)
		}
		return AppPassword{}, err
	}
	return ap, nil
}

// AccountStates returns the status and credential epoch of each of
// addresses that exists (Store.AccountStates): what auth.Sessions reads to
// end the sessions of an account that was suspended or whose credentials
// changed.
func (d *Directory) AccountStates(ctx context.Context, addresses []string) (map[string]AccountState, error) {
	return d.store.AccountStates(ctx, addresses)
}
