package directory

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/refusal"
)

// authFailedText is the one sentence of every failed login, whatever the
// cause (unknown address, wrong password, suspended account): telling them
// apart would let anyone probe which addresses exist (user enumeration).
const authFailedText = refusal.AuthFailedText

// The causes of a failed login, kept as the Reason of the refusal for the
// log and the metrics (auth.CauseOf), never shown to the client.
var (
	ErrUnknownAccount  = errors.New("no account has this address")
	ErrWrongPassword   = errors.New("the password is wrong")
	ErrAccountInactive = errors.New("the account is not active (suspended or closed)")
)

// dummyHash is checked when there is no real hash to check (unknown user,
// no password set), so that such a failure takes as long as a wrong
// password and timing does not reveal which addresses exist.
var dummyHash = sync.OnceValue(func() string {
	b := make([]byte, 16)
	rand.Read(b)
	h, err := crypto.HashPassword(fmt.Sprintf("%x", b))
	if err != nil {
		panic("directory: cannot compute the dummy password hash: " + err.Error())
	}
	return h
})

func spendDummyCheck(password string) {
	crypto.VerifyPassword(dummyHash(), password)
}

// Authenticate checks a login: username is the mailbox address (any case),
// password is the account's password or one of its application passwords
// (typed with any case, spaces or dashes). Only active accounts may log in.
//
// Every refusal is a *refusal.Error of kind refusal.AuthFailed with the
// same text, whose Reason (ErrUnknownAccount, ErrWrongPassword,
// ErrAccountInactive) says why, for the log only;
// other errors (the store failing) are returned as they are and should be
// reported as temporary failures.
//
// The cost of a refusal is one full password hash whether or not the
// account exists; an account with application passwords adds one cheap
// check per application password when the candidate has their shape.
func (d *Directory) Authenticate(ctx context.Context, username, password string) (Principal, error) {
	addr, err := ParseAddress(username)
	if err != nil {
		spendDummyCheck(password)
		return Principal{}, refusal.New(refusal.AuthFailed, truncate(username, 254), ErrUnknownAccount, authFailedText)
	}
	fail := func(why error) error { return refusal.New(refusal.AuthFailed, addr, why, authFailedText) }

	e, err := d.store.GetEntry(ctx, addr)
	if errors.Is(err, ErrNotFound) {
		spendDummyCheck(password)
		return Principal{}, fail(ErrUnknownAccount)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("directory: authenticate %s: %w", addr, err)
	}
	creds, err := d.store.Credentials(ctx, addr)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Principal{}, fmt.Errorf("directory: authenticate %s: %w", addr, err)
	}

	ok, appID := d.cachedCheck(addr, password, creds)
	if !ok {
		ok, appID = d.checkOnce(addr, password, creds)
	}
	// The status is checked after the password so that a suspended
	// account costs the same as any other refusal.
	if !ok {
		return Principal{}, fail(ErrWrongPassword)
	}
	if e.Status != StatusActive {
		return Principal{}, fail(fmt.Errorf("%w: %s", ErrAccountInactive, e.Status))
	}

	delegations, err := d.Delegations(ctx, addr)
	if err != nil {
		return Principal{}, fmt.Errorf("directory: authenticate %s: %w", addr, err)
	}
	// The last login feeds the inactivity rules (CNIL: a mailbox unused
	// for a year is closed), counted in days: recording it once an hour at
	// most spares a disk write at every connection of a busy client.
	if now := d.now(); loginStale(e, creds, appID, now) {
		if err := d.store.RecordLogin(ctx, addr, appID, now); err != nil {
			return Principal{}, fmt.Errorf("directory: record login of %s: %w", addr, err)
		}
	}
	return Principal{Address: addr, Kind: e.Kind, NationalID: e.NationalID, Organisation: e.Organisation, Delegations: delegations, Epoch: creds.Epoch, AppPassword: appID}, nil
}

// verifyCredentials checks password against the account's password, then
// its application passwords; it costs one full hash check even when the
// account has no password (timing must not tell).
func verifyCredentials(creds Credentials, password string) (bool, int64) {
	ok := false
	if creds.PasswordHash != "" {
		// A malformed stored hash is a non-match, never a way in.
		ok, _ = crypto.VerifyPassword(creds.PasswordHash, password)
	} else {
		spendDummyCheck(password)
	}
	if ok {
		return true, 0
	}
	if len(creds.AppPasswords) > 0 {
		if norm, shaped := crypto.NormalizeAppPassword(password); shaped {
			for _, ap := range creds.AppPasswords {
				if m, _ := crypto.VerifyPassword(ap.Hash, norm); m {
					return true, ap.ID
				}
			}
		}
	}
	return false, 0
}

// matchedHash is the stored hash that verifyCredentials matched.
func matchedHash(creds Credentials, appID int64) string {
	if appID == 0 {
		return creds.PasswordHash
	}
	for _, ap := range creds.AppPasswords {
		if ap.ID == appID {
			return ap.Hash
		}
	}
	return ""
}

// loginStale reports whether the last login (and, for an application
// password, its last use) is older than lastLoginInterval.
func loginStale(e Entry, creds Credentials, appID int64, now time.Time) bool {
	if now.Sub(e.LastLogin) >= lastLoginInterval {
		return true
	}
	for _, ap := range creds.AppPasswords {
		if ap.ID == appID {
			return now.Sub(ap.LastUsed) >= lastLoginInterval
		}
	}
	return false
}
