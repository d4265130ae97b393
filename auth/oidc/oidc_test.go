package oidc_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/auth/oidc"
	"github.com/carepost/carepost/auth/oidc/oidctest"
)

func newVerifier(t testing.TB, iss *oidctest.Issuer, mod func(*oidc.Config)) *oidc.Verifier {
	t.Helper()
	client, err := oidc.NewHTTPClient(iss.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	cfg := oidc.Config{Issuer: iss.URL(), Audience: iss.Audience(), Claim: "email", HTTPClient: client, KeyRefreshInterval: -1}
	if mod != nil {
		mod(&cfg)
	}
	v, err := oidc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wantRefused(t *testing.T, v *oidc.Verifier, token, reason string) {
	t.Helper()
	got, err := v.Verify(context.Background(), token)
	if err == nil {
		t.Fatalf("token accepted (claim %q), want refused: %s", got, reason)
	}
	if !errors.Is(err, auth.ErrInvalidToken) || errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("want a refusal (%s), got %v", reason, err)
	}
	if r := oidc.Reason(err); r != reason {
		t.Fatalf("reason %q, want %q (%v)", r, reason, err)
	}
	if token != "" && strings.Contains(err.Error(), token) {
		t.Fatalf("the error holds the token: %v", err)
	}
}

func wantAccepted(t *testing.T, v *oidc.Verifier, token, want string) {
	t.Helper()
	got, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("token refused: %v", err)
	}
	if got != want {
		t.Fatalf("claim %q, want %q", got, want)
	}
}

// A token of the issuer for the audience, unexpired, with a verified
// email is accepted; each check refuses with its reason.
func TestOIDCVerifyChecks(t *testing.T) {
	iss := oidctest.Start(t)
	v := newVerifier(t, iss, nil)
	const addr = "dr.martin@carepost.test"
	wantAccepted(t, v, iss.TokenFor(addr, nil), addr)
	// aud as an array holding ours.
	wantAccepted(t, v, iss.TokenFor(addr, map[string]any{"aud": []string{"other", iss.Audience()}}), addr)
	// Within the clock skew.
	wantAccepted(t, v, iss.TokenFor(addr, map[string]any{"exp": time.Now().Add(-20 * time.Second)}), addr)
	wantAccepted(t, v, iss.TokenFor(addr, map[string]any{"nbf": time.Now().Add(20 * time.Second), "iat": time.Now().Add(20 * time.Second)}), addr)
	// email_verified absent: accepted (the issuer vouches for the claim).
	wantAccepted(t, v, iss.Token(map[string]any{"email": addr}), addr)

	for _, c := range []struct {
		name   string
		token  string
		reason string
	}{
		{"expired", iss.TokenFor(addr, map[string]any{"exp": time.Now().Add(-2 * time.Minute)}), oidc.ReasonExpired},
		{"no exp", iss.TokenFor(addr, map[string]any{"exp": nil}), oidc.ReasonNoExpiry},
		{"exp a string", iss.TokenFor(addr, map[string]any{"exp": "tomorrow"}), oidc.ReasonMalformed},
		{"nbf ahead", iss.TokenFor(addr, map[string]any{"nbf": time.Now().Add(10 * time.Minute)}), oidc.ReasonNotYetValid},
		{"iat ahead", iss.TokenFor(addr, map[string]any{"iat": time.Now().Add(10 * time.Minute)}), oidc.ReasonIssuedInFuture},
		{"wrong audience", iss.TokenFor(addr, map[string]any{"aud": "another-client"}), oidc.ReasonAudience},
		{"wrong audience list", iss.TokenFor(addr, map[string]any{"aud": []string{"a", "b"}}), oidc.ReasonAudience},
		{"no audience", iss.TokenFor(addr, map[string]any{"aud": nil}), oidc.ReasonAudience},
		{"wrong issuer", iss.TokenFor(addr, map[string]any{"iss": "https://evil.example"}), oidc.ReasonIssuer},
		{"no email", iss.Token(map[string]any{"sub": "x"}), oidc.ReasonMissingClaim},
		{"empty email", iss.TokenFor("", nil), oidc.ReasonMissingClaim},
		{"email a number", iss.Token(map[string]any{"email": 42}), oidc.ReasonMissingClaim},
		{"email not verified", iss.TokenFor(addr, map[string]any{"email_verified": false}), oidc.ReasonEmailNotVerified},
		{"email not verified (string)", iss.TokenFor(addr, map[string]any{"email_verified": "false"}), oidc.ReasonEmailNotVerified},
		{"unpublished key", iss.UnpublishedToken(map[string]any{"email": addr}), oidc.ReasonUnknownKey},
		{"forged", iss.ForgedToken(map[string]any{"email": addr}), oidc.ReasonSignature},
		{"garbage", "not-a-token", oidc.ReasonMalformed},
		{"empty", "", oidc.ReasonMalformed},
		{"three dots", "a.b.c", oidc.ReasonMalformed},
		{"alg none", unsigned(iss.TokenFor(addr, nil)), oidc.ReasonAlgorithm},
		{"HS256", hs256(t, iss.URL(), iss.Audience(), addr), oidc.ReasonAlgorithm},
		{"too long", strings.Repeat("a", 17<<10), oidc.ReasonMalformed},
	} {
		t.Run(c.name, func(t *testing.T) { wantRefused(t, v, c.token, c.reason) })
	}

	// Another claim: sub, or a national identifier.
	vs := newVerifier(t, iss, func(c *oidc.Config) { c.Claim = "sub" })
	wantAccepted(t, vs, iss.Token(map[string]any{"sub": "810012345678", "email_verified": false}), "810012345678")
	vn := newVerifier(t, iss, func(c *oidc.Config) { c.Claim = "idnat" })
	wantAccepted(t, vn, iss.Token(map[string]any{"sub": "x", "idnat": "810012345678"}), "810012345678")
	wantRefused(t, vn, iss.Token(map[string]any{"sub": "x"}), oidc.ReasonMissingClaim)
}

// unsigned turns a token into an "alg":"none" one with the same claims.
func unsigned(token string) string {
	parts := strings.Split(token, ".")
	return "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + "."
}

// RS256, PS256 and ES256 keys all verify.
func TestOIDCAlgorithms(t *testing.T) {
	iss := oidctest.Start(t)
	v := newVerifier(t, iss, nil)
	for _, alg := range []oidctest.Algorithm{"PS256", "ES256", "RS256"} {
		if _, err := iss.Rotate(alg); err != nil {
			t.Fatal(err)
		}
		wantAccepted(t, v, iss.TokenFor("a@carepost.test", nil), "a@carepost.test")
	}
}

// The issuer rotates its key: a token signed by the new key is accepted by
// the same verifier (the keys are fetched again on the unknown key ID),
// one signed by a key never published is refused; a token of the retired
// key is refused once the keys are fetched again.
func TestOIDCKeyRotation(t *testing.T) {
	iss := oidctest.Start(t)
	v := newVerifier(t, iss, nil)
	old := iss.TokenFor("a@carepost.test", nil)
	wantAccepted(t, v, old, "a@carepost.test")
	wantAccepted(t, v, iss.TokenFor("a@carepost.test", nil), "a@carepost.test")
	if n := v.KeyFetches(); n != 1 {
		t.Fatalf("%d key fetches for two tokens of one key, want 1 (cached)", n)
	}
	if _, err := iss.Rotate("ES256"); err != nil {
		t.Fatal(err)
	}
	// The old key stays in the cache until the keys are fetched again.
	wantAccepted(t, v, old, "a@carepost.test")
	wantAccepted(t, v, iss.TokenFor("b@carepost.test", nil), "b@carepost.test")
	if n := v.KeyFetches(); n != 2 {
		t.Fatalf("%d key fetches after a rotation, want 2", n)
	}
	wantRefused(t, v, old, oidc.ReasonUnknownKey)
	wantRefused(t, v, iss.UnpublishedToken(map[string]any{"email": "b@carepost.test"}), oidc.ReasonUnknownKey)
	if _, d := iss.Requests(); d < 3 {
		t.Fatalf("the issuer served its keys %d times", d)
	}
	// An overlapping rotation: both keys verify.
	cur := iss.TokenFor("c@carepost.test", nil)
	if _, err := iss.Publish("RS256"); err != nil {
		t.Fatal(err)
	}
	wantAccepted(t, v, iss.TokenFor("c@carepost.test", nil), "c@carepost.test")
	wantAccepted(t, v, cur, "c@carepost.test")
}

// Tokens naming keys not in the cache fetch the keys at most once per
// KeyRefreshInterval.
func TestOIDCKeyRefreshInterval(t *testing.T) {
	iss := oidctest.Start(t)
	v := newVerifier(t, iss, func(c *oidc.Config) { c.KeyRefreshInterval = time.Hour })
	wantAccepted(t, v, iss.TokenFor("a@carepost.test", nil), "a@carepost.test")
	for range 5 {
		wantRefused(t, v, iss.UnpublishedToken(map[string]any{"email": "a@carepost.test"}), oidc.ReasonUnknownKey)
		wantRefused(t, v, iss.ForgedToken(map[string]any{"email": "a@carepost.test"}), oidc.ReasonSignature)
	}
	if _, n := iss.Requests(); n != 1 {
		t.Fatalf("the keys were fetched %d times for forged tokens, want once", n)
	}
}

// The verifier is made while the issuer is down; logins fail with a
// temporary error that says what failed, the issuer is not asked again
// before the back-off, and once it is up tokens are accepted.
func TestOIDCIssuerDown(t *testing.T) {
	// Nothing listens on the port at first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	client, err := oidc.NewHTTPClient("")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	v, err := oidc.New(oidc.Config{Issuer: "https://" + addr, Audience: oidctest.DefaultAudience, Claim: "email",
		HTTPClient: client, Now: clock, DiscoveryBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A syntactically valid token, so that the issuer is asked.
	tok := mintFor(t, "https://"+addr)
	_, err = v.Verify(context.Background(), tok)
	if !errors.Is(err, oidc.ErrUnavailable) || errors.Is(err, auth.ErrInvalidToken) ||
		!strings.Contains(err.Error(), "https://"+addr+"/.well-known/openid-configuration") {
		t.Fatalf("issuer down: %v", err)
	}
	for range 10 {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, oidc.ErrUnavailable) || !strings.Contains(err.Error(), "not tried again before") {
			t.Fatalf("within the back-off: %v", err)
		}
	}
	if n := v.Discoveries(); n != 1 {
		t.Fatalf("%d discoveries within the back-off, want 1", n)
	}
	// Garbage never reaches the issuer.
	wantRefused(t, v, "garbage", oidc.ReasonMalformed)

	iss, err := oidctest.New(oidctest.Options{Addr: addr, Dir: dir})
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer iss.Close()
	client2, err := oidc.NewHTTPClient(iss.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	v, err = oidc.New(oidc.Config{Issuer: iss.URL(), Audience: iss.Audience(), Claim: "email", HTTPClient: client2, Now: clock, DiscoveryBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// Up but answering 503: the same, with the status.
	iss.SetDown(true)
	if _, err := v.Verify(context.Background(), iss.TokenFor("a@carepost.test", nil)); !errors.Is(err, oidc.ErrUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("issuer answering 503: %v", err)
	}
	iss.SetDown(false)
	if _, err := v.Verify(context.Background(), iss.TokenFor("a@carepost.test", nil)); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("within the back-off: %v", err)
	}
	advance(1100 * time.Millisecond)
	wantAccepted(t, v, iss.TokenFor("a@carepost.test", nil), "a@carepost.test")
	if d, _ := iss.Requests(); d != 2 {
		t.Fatalf("%d discoveries, want 2", d)
	}
	// Keys out of reach later: a cached key still verifies; an unknown
	// key is a temporary failure, not a refusal.
	iss.SetDown(true)
	advance(10 * time.Second)
	wantAccepted(t, v, iss.TokenFor("a@carepost.test", nil), "a@carepost.test")
	if _, err := v.Verify(context.Background(), iss.UnpublishedToken(map[string]any{"email": "a@carepost.test"})); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("unknown key while the keys are out of reach: %v", err)
	}
}

// mintFor mints a token for issuer with a fresh issuer's key.
func mintFor(t *testing.T, issuer string) string {
	other := oidctest.Start(t)
	return other.Token(map[string]any{"iss": issuer, "email": "a@carepost.test"})
}

// Many logins at once during the first discovery: one discovery, one key
// fetch.
func TestOIDCConcurrentFirstUse(t *testing.T) {
	iss := oidctest.Start(t)
	v := newVerifier(t, iss, func(c *oidc.Config) { c.KeyRefreshInterval = 0 })
	tok := iss.TokenFor("a@carepost.test", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if d, k := iss.Requests(); d != 1 || k != 1 {
		t.Fatalf("%d discoveries and %d key fetches, want 1 and 1", d, k)
	}
}

// The configuration is checked at New, without contacting anyone.
func TestOIDCNewConfig(t *testing.T) {
	for _, c := range []oidc.Config{
		{Issuer: "", Audience: "a", Claim: "email"},
		{Issuer: "http://issuer.example", Audience: "a", Claim: "email"},
		{Issuer: "https://issuer.example", Claim: "email"},
		{Issuer: "https://issuer.example", Audience: "a"},
	} {
		if _, err := oidc.New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if _, err := oidc.New(oidc.Config{Issuer: "http://127.0.0.1:1", Audience: "a", Claim: "email"}); err != nil {
		t.Errorf("http on loopback refused: %v", err)
	}
	if _, err := oidc.NewHTTPClient("/nonexistent/ca.pem"); err == nil {
		t.Error("a missing CA file accepted")
	}
}

// hs256 mints an HS256 token (a shared secret: never accepted, whatever
// the key).
func hs256(t *testing.T, issuer, audience, addr string) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(oidctest.Fill(map[string]any{"email": addr}, issuer, audience, time.Minute))
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Keys are fetched again when they are KeyMaxAge old: a key the issuer
// withdrew stops verifying even under its own ID; an issuer down then
// leaves the cached keys in use.
func TestOIDCKeyMaxAge(t *testing.T) {
	iss := oidctest.Start(t)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	v := newVerifier(t, iss, func(c *oidc.Config) { c.Now = clock; c.KeyRefreshInterval = 0; c.KeyMaxAge = time.Hour })
	long := map[string]any{"exp": time.Now().Add(5 * time.Hour)}
	old := iss.TokenFor("a@carepost.test", long)
	wantAccepted(t, v, old, "a@carepost.test")
	if _, err := iss.Rotate("RS256"); err != nil {
		t.Fatal(err)
	}
	advance(30 * time.Minute)
	wantAccepted(t, v, old, "a@carepost.test") // cached
	advance(31 * time.Minute)
	wantRefused(t, v, old, oidc.ReasonUnknownKey)
	cur := iss.TokenFor("a@carepost.test", long)
	wantAccepted(t, v, cur, "a@carepost.test")
	iss.SetDown(true)
	advance(2 * time.Hour)
	wantAccepted(t, v, cur, "a@carepost.test")
	if n := v.KeyFetches(); n < 3 {
		t.Fatalf("%d key fetches", n)
	}
}

// The RFC 7628 §3.2.2 status, and a verifier made from a CA file.
func TestOIDCFailureStatusAndCAFile(t *testing.T) {
	iss := oidctest.Start(t)
	v, err := oidc.New(oidc.Config{Issuer: iss.URL(), Audience: iss.Audience(), Claim: "email", CAFile: iss.CAFile()})
	if err != nil {
		t.Fatal(err)
	}
	wantAccepted(t, v, iss.TokenFor("a@carepost.test", nil), "a@carepost.test")
	want := `{"status":"invalid_token","scope":"openid email","openid-configuration":"` + iss.URL() + `/.well-known/openid-configuration"}`
	if got := string(v.FailureStatus("openid email")); got != want {
		t.Fatalf("status %s, want %s", got, want)
	}
	if _, err := oidc.New(oidc.Config{Issuer: iss.URL(), Audience: "a", Claim: "email", CAFile: "/nonexistent.pem"}); err == nil {
		t.Fatal("a missing CA file accepted")
	}
}
