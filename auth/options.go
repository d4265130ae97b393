package auth

import (
	"context"
	"crypto/x509"
	"errors"
)

// Options configure an Authenticator beyond its directory (New).
type Options struct {
	// Limiter slows and locks out password guessing; nil gets
	// NewMemoryLimiter's defaults (which never lock). Services of one
	// process share one.
	Limiter Limiter
	// RequireAppPasswords refuses the account's own password in Plain:
	// mail clients log in with an application password, a certificate or
	// a token (SPEC §3).
	RequireAppPasswords bool
	// ClientCAs are the authorities whose TLS client certificates External
	// accepts (the operator's CA and the health sector's); nil accepts
	// none.
	ClientCAs *x509.CertPool
	// Tokens checks the access tokens of OAUTHBEARER and XOAUTH2; nil
	// turns both off. TokenClaimIs says what the claim it returns holds:
	// "address" or "national_id".
	Tokens       TokenVerifier
	TokenClaimIs string
}

// TokenVerifier checks an OAuth 2.0 bearer token (RFC 6750) presented with
// SASL OAUTHBEARER (RFC 7628) or XOAUTH2, and returns the value of the
// claim that names the account (auth/oidc.Verifier). A token refused for
// what it is (signature, issuer, audience, expiry, missing claim) is an
// error wrapping ErrInvalidToken; any other error is the issuer or its
// keys out of reach, a temporary failure.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (string, error)
}

// ErrInvalidToken is wrapped by every refusal of a token by a
// TokenVerifier.
var ErrInvalidToken = errors.New("auth: the access token is not valid")

// New returns an Authenticator over dir configured by opts.
func New(dir Directory, opts Options) *Authenticator {
	if opts.Limiter == nil {
		opts.Limiter = NewMemoryLimiter(0)
	}
	return &Authenticator{dir: dir, lim: opts.Limiter, opts: opts}
}
