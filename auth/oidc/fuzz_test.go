package oidc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/auth/oidc"
	"github.com/carepost/carepost/auth/oidc/oidctest"
)

// FuzzVerify feeds arbitrary tokens to a Verifier of a running issuer:
// it must never panic, and everything it does not accept is a refusal
// (the issuer is up) that does not hold the token. The seeds under
// testdata/fuzz/FuzzVerify were minted by another issuer; the live
// issuer's valid token is added here.
func FuzzVerify(f *testing.F) {
	iss := oidctest.Start(f)
	v := newVerifier(f, iss, func(c *oidc.Config) { c.KeyRefreshInterval = time.Hour })
	f.Add(iss.TokenFor("a@carepost.test", nil))
	f.Add(iss.TokenFor("a@carepost.test", map[string]any{"exp": "x", "nbf": []int{1}, "iat": 1e300}))
	f.Add(iss.Token(map[string]any{"aud": map[string]any{"a": 1}, "email": []string{"x"}}))
	f.Fuzz(func(t *testing.T, token string) {
		got, err := v.Verify(context.Background(), token)
		if err == nil {
			if got == "" {
				t.Fatal("accepted with an empty claim")
			}
			return
		}
		if !errors.Is(err, auth.ErrInvalidToken) || oidc.Reason(err) == "" {
			t.Fatalf("not a refusal: %v", err)
		}
	})
}
