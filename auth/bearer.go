package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/carepost/carepost/refusal"
)

// HasTokens says whether OAUTHBEARER and XOAUTH2 are offered: a token
// verifier is configured.
func (a *Authenticator) HasTokens() bool { return a.opts.Tokens != nil }

// Bearer checks an OAuth 2.0 access token given with SASL OAUTHBEARER
// (RFC 7628) or XOAUTH2 and returns the principal of the mailbox its
// claim names (Options.TokenClaimIs): an address, or a national
// identifier whose active mailboxes are the candidates. authzid (the
// OAUTHBEARER "a=" or the XOAUTH2 "user=") chooses among them and must be
// one of them.
//
// A refused token is a *refusal.Error of kind AuthFailed wrapping
// ErrInvalidToken (its reason for the log); the verifier or the directory
// failing is returned as it is: a temporary failure.
func (a *Authenticator) Bearer(ctx context.Context, token, authzid, source string) (*Principal, error) {
	if a.opts.Tokens == nil {
		return nil, refusal.New(refusal.AuthFailed, authzid, ErrTokensOff, refusal.AuthFailedText)
	}
	claim, err := a.opts.Tokens.Verify(ctx, token)
	if err != nil {
		if errors.Is(err, ErrInvalidToken) {
			return nil, refusal.New(refusal.AuthFailed, authzid, err, "The access token is not valid: it may have expired, or not be meant for this service.")
		}
		return nil, fmt.Errorf("auth: token issuer: %w", err)
	}
	dir, ok := a.dir.(IdentityDirectory)
	if !ok {
		return nil, errors.New("auth: the directory cannot identify token holders")
	}
	var candidates []string
	switch a.opts.TokenClaimIs {
	case "national_id":
		if candidates, err = dir.ByNationalID(ctx, claim); err != nil {
			return nil, err
		}
	default:
		candidates = []string{claim}
	}
	addr, err := choose(candidates, authzid, "access token")
	if err != nil {
		return nil, err
	}
	return a.identify(ctx, dir, addr, MechOAuth, source)
}
