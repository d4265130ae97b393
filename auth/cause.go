package auth

import (
	"errors"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

// Cause is why a login failed, for the operator: the log line of each
// failure and the carepost_auth_failures_total metric. The client is
// never told which (refusal.AuthFailedText is the one sentence), so that
// nobody can probe which accounts exist or are suspended.
type Cause int

const (
	_ Cause = iota
	// CauseUnknownAccount: no account has this address, or the user name
	// is not an address.
	CauseUnknownAccount
	// CauseWrongPassword: neither the password nor an application
	// password matched.
	CauseWrongPassword
	// CauseInactive: the password matched an account that is suspended
	// or closed.
	CauseInactive
	// CauseThrottled: too many recent failures for the account or the
	// address; the password was not checked (Limiter).
	CauseThrottled
	// CauseAuthzIdentity: SASL PLAIN named an authorization identity
	// other than the user's own.
	CauseAuthzIdentity
	// CauseTLSRequired: credentials offered before TLS (LOGIN before
	// STARTTLS): refused without being checked.
	CauseTLSRequired
	// CauseMalformed: the SASL exchange could not be read.
	CauseMalformed
	// CauseUnavailable: the directory could not answer (a temporary
	// failure, not the client's).
	CauseUnavailable
	// CauseBadCertificate: EXTERNAL without a client certificate, or
	// with one no client CA vouches for.
	CauseBadCertificate
	// CauseInvalidToken: OAUTHBEARER or XOAUTH2 with a token refused
	// (signature, issuer, audience, expiry).
	CauseInvalidToken
	// CauseNoIdentity: a certificate or a token that names no mailbox,
	// or not the one asked for.
	CauseNoIdentity
	// CauseLockedOut: the account or the address is locked out after too
	// many failures (Limiter); the password was not checked.
	CauseLockedOut
	// CauseAppPasswordRequired: the account's own password was right but
	// mail clients must use an application password
	// (Options.RequireAppPasswords).
	CauseAppPasswordRequired
	causeEnd
)

var causeNames = [...]string{
	CauseUnknownAccount:      "unknown-account",
	CauseWrongPassword:       "wrong-password",
	CauseInactive:            "inactive",
	CauseThrottled:           "throttled",
	CauseAuthzIdentity:       "authz-identity",
	CauseTLSRequired:         "tls-required",
	CauseMalformed:           "malformed",
	CauseUnavailable:         "unavailable",
	CauseBadCertificate:      "bad-certificate",
	CauseInvalidToken:        "invalid-token",
	CauseNoIdentity:          "no-identity",
	CauseLockedOut:           "locked-out",
	CauseAppPasswordRequired: "app-password-required",
}

// String names the cause for logs and metric labels.
func (c Cause) String() string {
	if c > 0 && c < causeEnd {
		return causeNames[c]
	}
	return "unknown"
}

// Causes returns every cause, for tables that cover them all (metrics).
func Causes() []Cause {
	out := make([]Cause, 0, int(causeEnd)-1)
	for c := Cause(1); c < causeEnd; c++ {
		out = append(out, c)
	}
	return out
}

// ErrAuthzIdentity is the Reason of a PLAIN login naming another
// authorization identity (nobody logs in as someone else).
var ErrAuthzIdentity = errors.New("the authorization identity differs from the user name")

// CauseOf tells why err refused a login (Authenticator.Plain's error, or
// an adapter's own refusal). An error that is no refusal is the directory
// failing: CauseUnavailable.
func CauseOf(err error) Cause {
	switch {
	case errors.Is(err, ErrLockedOut):
		return CauseLockedOut
	case errors.Is(err, ErrAppPasswordRequired):
		return CauseAppPasswordRequired
	case errors.Is(err, ErrTooManyAttempts):
		return CauseThrottled
	case errors.Is(err, directory.ErrUnknownAccount):
		return CauseUnknownAccount
	case errors.Is(err, directory.ErrWrongPassword):
		return CauseWrongPassword
	case errors.Is(err, directory.ErrAccountInactive):
		return CauseInactive
	case errors.Is(err, ErrAuthzIdentity):
		return CauseAuthzIdentity
	case errors.Is(err, ErrNoCertificate), errors.Is(err, ErrBadCertificate):
		return CauseBadCertificate
	case errors.Is(err, ErrInvalidToken), errors.Is(err, ErrTokensOff):
		return CauseInvalidToken
	case errors.Is(err, ErrNoIdentity):
		return CauseNoIdentity
	}
	switch refusal.KindOf(err) {
	case refusal.TLSRequired:
		return CauseTLSRequired
	case refusal.AuthFailed:
		// A refusal without one of the reasons above: a directory of
		// another kind; the password is what it refused.
		return CauseWrongPassword
	case refusal.MalformedMessage, refusal.InvalidInput:
		return CauseMalformed
	}
	return CauseUnavailable
}
