// Package oidc checks the access tokens that mail clients present with
// SASL OAUTHBEARER (RFC 7628) and XOAUTH2: JSON Web Tokens (RFC 7519)
// signed by an OpenID Connect issuer configured by its URL (the Pro Santé
// Connect model, docs/oauth.md).
//
// Verifier discovers the issuer (OpenID Connect Discovery 1.0: its
// /.well-known/openid-configuration) at the first token it checks, not
// when it is made, so that the server starts while the issuer is down;
// it fetches the issuer's keys (the JWKS, RFC 7517) and fetches them
// again when a token names a key it does not know (the issuer rotated its
// keys, OpenID Connect Core 1.0 §10.1.1), at most once per
// Config.KeyRefreshInterval. It checks the signature (RS256, PS256,
// ES256), the issuer, the audience, the expiry, "nbf" and "iat" (with
// Config.ClockSkew), and returns the value of the configured claim.
//
// The token itself is never logged nor put in an error.
package oidc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/limit"
)

// Algorithms are the signature algorithms accepted (RFC 7518 §3.1): the
// issuer's keys may be RSA or ECDSA P-256. "none" and the HMAC ones never
// are.
var Algorithms = []string{gooidc.RS256, gooidc.PS256, gooidc.ES256}

// Defaults of Config.
const (
	DefaultClockSkew          = time.Minute
	DefaultKeyRefreshInterval = 5 * time.Second
	DefaultKeyMaxAge          = time.Hour
	DefaultDiscoveryBackoff   = 2 * time.Second
	maxDiscoveryBackoff       = time.Minute
	fetchTimeout              = 10 * time.Second
	maxTokenLength            = 16 << 10
	maxJWKSLength             = 1 << 20
)

// Config configures a Verifier ([auth.oidc], docs/oauth.md).
type Config struct {
	// Issuer is the issuer's URL, exactly as its tokens' "iss" claim
	// and its discovery document's "issuer" spell it.
	Issuer string
	// Audience must be one of a token's "aud" values (the client ID
	// registered at the issuer for the mail service).
	Audience string
	// Claim names the claim whose value Verify returns: "email", "sub",
	// or the claim holding a professional's national identifier. It must
	// be a non-empty string in the token. A token whose "email_verified"
	// is false is refused when Claim is "email".
	Claim string
	// CAFile is a PEM file of the CA of the issuer's https certificate
	// ([auth.oidc] ca_file), for the client New makes when HTTPClient is
	// nil: NewHTTPClient(CAFile).
	CAFile string
	// HTTPClient fetches the discovery document and the keys; nil gets
	// NewHTTPClient(CAFile).
	HTTPClient *http.Client
	// Logger receives the issuer's events (discovered, keys fetched,
	// unreachable); nil discards them.
	Logger *slog.Logger

	// ClockSkew is how far the issuer's clock and ours may disagree on
	// "exp", "nbf" and "iat"; 0 gets DefaultClockSkew, a negative value
	// none.
	ClockSkew time.Duration
	// KeyRefreshInterval is the least time between two fetches of the
	// keys caused by tokens naming a key not in the cache, so that a
	// flood of forged tokens does not hammer the issuer; 0 gets
	// DefaultKeyRefreshInterval, a negative value none.
	KeyRefreshInterval time.Duration
	// KeyMaxAge is how long fetched keys are used before they are
	// fetched again (so that a key the issuer withdrew stops being
	// accepted); 0 gets DefaultKeyMaxAge.
	KeyMaxAge time.Duration
	// DiscoveryBackoff is the wait after a failed discovery before the
	// next token tries again; it doubles at each failure up to a minute.
	// 0 gets DefaultDiscoveryBackoff.
	DiscoveryBackoff time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// NewHTTPClient returns the client that talks to the issuer: TLS 1.2 at
// least (SPEC §3), trusting the CA certificates of the PEM file caFile
// only when it is given (a private or test issuer), the system's
// otherwise; a 10 s timeout; redirects to https only.
func NewHTTPClient(caFile string) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("oidc: the issuer's CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("oidc: the issuer's CA file %s holds no PEM certificate", caFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.MaxIdleConnsPerHost = 4
	return &http.Client{Transport: tr, Timeout: fetchTimeout, CheckRedirect: httpsRedirects}, nil
}

// httpsRedirects follows at most 5 redirects, to https URLs only (http on
// a loopback address): the keys are never fetched in the clear.
func httpsRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("more than 5 redirects")
	}
	if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && isLoopback(req.URL.Hostname())) {
		return fmt.Errorf("redirected to %s, not an https URL", req.URL.Redacted())
	}
	return nil
}

// Verifier checks access tokens of one issuer; it implements
// auth.TokenVerifier. It is safe for concurrent use.
type Verifier struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	now    func() time.Time

	mu        sync.Mutex
	idv       *gooidc.IDTokenVerifier // nil until discovered
	keys      *keySet
	inflight  chan struct{} // closed when the discovery under way ends
	lastTry   time.Time
	lastErr   error
	backoff   time.Duration
	discovery int // discoveries attempted, for tests
}

var _ auth.TokenVerifier = (*Verifier)(nil)

// New returns a Verifier for cfg. It checks the configuration but does
// not contact the issuer: that happens at the first Verify.
func New(cfg Config) (*Verifier, error) {
	u, err := url.Parse(cfg.Issuer)
	switch {
	case err != nil || u.Host == "":
		return nil, fmt.Errorf("oidc: the issuer %q is not a URL", cfg.Issuer)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("oidc: the issuer %q must be an https URL (http only on a loopback address, for tests)", cfg.Issuer)
	}
	if cfg.Audience == "" {
		return nil, errors.New("oidc: the audience (the client ID that tokens for this service carry in \"aud\") is not set")
	}
	if cfg.Claim == "" {
		return nil, errors.New("oidc: the claim that names the account is not set")
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = DefaultClockSkew
	} else if cfg.ClockSkew < 0 {
		cfg.ClockSkew = 0
	}
	if cfg.KeyRefreshInterval == 0 {
		cfg.KeyRefreshInterval = DefaultKeyRefreshInterval
	} else if cfg.KeyRefreshInterval < 0 {
		cfg.KeyRefreshInterval = 0
	}
	if cfg.KeyMaxAge <= 0 {
		cfg.KeyMaxAge = DefaultKeyMaxAge
	}
	if cfg.DiscoveryBackoff <= 0 {
		cfg.DiscoveryBackoff = DefaultDiscoveryBackoff
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger, client: cfg.HTTPClient, now: cfg.Now}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.client == nil {
		if v.client, err = NewHTTPClient(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

func isLoopback(host string) bool { return limit.IsLoopbackHost(host) }

// Issuer returns the issuer's URL.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// DiscoveryURL is the issuer's discovery document, which RFC 7628 §3.2.2
// puts in the failure status ("openid-configuration").
func (v *Verifier) DiscoveryURL() string {
	return strings.TrimSuffix(v.cfg.Issuer, "/") + "/.well-known/openid-configuration"
}

// FailureStatus is the JSON status of a refused token that the server
// sends as its last challenge of OAUTHBEARER (RFC 7628 §3.2.2) and of
// XOAUTH2: "invalid_token" (RFC 6750 §3.1), the scope to ask for
// ([auth.oidc] scope, none when empty) and the discovery document.
func (v *Verifier) FailureStatus(scope string) []byte {
	st := struct {
		Status string `json:"status"`
		Scope  string `json:"scope,omitempty"`
		Config string `json:"openid-configuration"`
	}{"invalid_token", scope, v.DiscoveryURL()}
	b, _ := json.Marshal(st)
	return b
}

// ErrUnavailable is wrapped by the errors of Verify that are no refusal
// of the token: the issuer's discovery document or keys could not be
// fetched (a temporary failure; the client may try again later).
var ErrUnavailable = errors.New("oidc: the token issuer is unavailable")

// InvalidTokenError is a token refused for what it is; it wraps
// auth.ErrInvalidToken. Reason is short and fixed ("expired", "wrong
// audience", …: the Reason constants), for logs and metrics; Detail says
// more, without the token.
type InvalidTokenError struct {
	Reason string
	Detail string
}

func (e *InvalidTokenError) Error() string {
	if e.Detail == "" {
		return "access token refused: " + e.Reason
	}
	return "access token refused: " + e.Reason + ": " + e.Detail
}

// Unwrap makes errors.Is(err, auth.ErrInvalidToken) true.
func (e *InvalidTokenError) Unwrap() error { return auth.ErrInvalidToken }

// Reasons of InvalidTokenError.
const (
	ReasonMalformed        = "malformed"             // not a signed JWT, or claims not JSON
	ReasonAlgorithm        = "unsupported algorithm" // not RS256, PS256 or ES256
	ReasonUnknownKey       = "unknown signing key"   // no key of the issuer has its key ID
	ReasonSignature        = "bad signature"         // the key named does not verify it
	ReasonIssuer           = "wrong issuer"
	ReasonAudience         = "wrong audience"
	ReasonNoExpiry         = "no expiry"
	ReasonExpired          = "expired"
	ReasonNotYetValid      = "not yet valid"        // "nbf" ahead of now
	ReasonIssuedInFuture   = "issued in the future" // "iat" ahead of now
	ReasonMissingClaim     = "missing claim"        // the configured claim absent, empty or not a string
	ReasonEmailNotVerified = "email not verified"
)

func invalid(reason, format string, args ...any) error {
	return &InvalidTokenError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Reason returns the Reason of an InvalidTokenError in err's chain, or
// "" when err is no refusal of the token.
func Reason(err error) string {
	var ie *InvalidTokenError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ""
}

// Verify checks token and returns the value of the configured claim. A
// token refused for what it is gives an *InvalidTokenError (wrapping
// auth.ErrInvalidToken); an issuer out of reach an error wrapping
// ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, token string) (string, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return "", invalid(ReasonMalformed, "the token is empty")
	}
	if len(token) > maxTokenLength {
		return "", invalid(ReasonMalformed, "the token is %d bytes long, more than %d", len(token), maxTokenLength)
	}
	// Parsed first, before the issuer is asked anything: garbage costs
	// no request.
	jws, err := jose.ParseSignedCompact(token, joseAlgorithms())
	if err != nil {
		if alg, ok := headerAlgorithm(token); ok && !slices.Contains(Algorithms, alg) {
			return "", invalid(ReasonAlgorithm, "signed with %.20q, not %s", alg, strings.Join(Algorithms, ", "))
		}
		return "", invalid(ReasonMalformed, "not a signed JWT (JWS compact serialization, RFC 7515)")
	}
	if len(jws.Signatures) != 1 {
		return "", invalid(ReasonMalformed, "the token has %d signatures", len(jws.Signatures))
	}
	idv, err := v.discover(ctx)
	if err != nil {
		return "", err
	}
	var res sigResult
	tok, err := idv.Verify(context.WithValue(ctx, sigResultKey{}, &res), token)
	switch {
	case res.err != nil: // the key set's own verdict
		return "", res.err
	case err != nil && res.payload == nil:
		return "", invalid(ReasonMalformed, "%v", err)
	case err != nil:
		// Signed by the issuer but refused by go-oidc: say which.
		var c struct {
			Issuer   string          `json:"iss"`
			Audience json.RawMessage `json:"aud"`
		}
		if json.Unmarshal(res.payload, &c) != nil {
			return "", invalid(ReasonMalformed, "the claims are not a JSON object")
		}
		if c.Issuer != v.cfg.Issuer {
			return "", invalid(ReasonIssuer, "issued by %q, not %q", c.Issuer, v.cfg.Issuer)
		}
		if !audienceHas(c.Audience, v.cfg.Audience) {
			return "", invalid(ReasonAudience, "for %s, not %q", string(c.Audience), v.cfg.Audience)
		}
		return "", invalid(ReasonMalformed, "%v", err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return "", invalid(ReasonMalformed, "the claims are not a JSON object")
	}
	if err := v.checkTimes(claims); err != nil {
		return "", err
	}
	return v.claim(claims)
}

func audienceHas(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && slices.Contains(many, want)
}

// numericDate reads a NumericDate claim (RFC 7519 §2): a JSON number of
// seconds. ok is false when the claim is absent; err when it is not a
// finite number.
func numericDate(claims map[string]any, name string) (t time.Time, ok bool, err error) {
	raw, present := claims[name]
	if !present {
		return time.Time{}, false, nil
	}
	f, isNum := raw.(float64)
	if !isNum || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return time.Time{}, true, invalid(ReasonMalformed, "%q is not a date (a number of seconds)", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// checkTimes checks "exp" (required), "nbf" and "iat" (RFC 7519 §4.1.4,
// §4.1.5, §4.1.6) against now, allowing ClockSkew.
func (v *Verifier) checkTimes(claims map[string]any) error {
	now, skew := v.now(), v.cfg.ClockSkew
	exp, ok, err := numericDate(claims, "exp")
	if err != nil {
		return err
	}
	if !ok {
		return invalid(ReasonNoExpiry, "the token has no \"exp\"")
	}
	if !now.Before(exp.Add(skew)) {
		return invalid(ReasonExpired, "it expired at %s", exp.UTC().Format(time.RFC3339))
	}
	nbf, ok, err := numericDate(claims, "nbf")
	if err != nil {
		return err
	}
	if ok && now.Add(skew).Before(nbf) {
		return invalid(ReasonNotYetValid, "it is valid from %s", nbf.UTC().Format(time.RFC3339))
	}
	iat, ok, err := numericDate(claims, "iat")
	if err != nil {
		return err
	}
	if ok && now.Add(skew).Before(iat) {
		return invalid(ReasonIssuedInFuture, "issued at %s", iat.UTC().Format(time.RFC3339))
	}
	return nil
}

// claim returns the configured claim, a non-empty string.
func (v *Verifier) claim(claims map[string]any) (string, error) {
	name := v.cfg.Claim
	s, _ := claims[name].(string)
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid(ReasonMissingClaim, "the token has no %q claim (a non-empty string)", name)
	}
	if name == "email" {
		// OpenID Connect Core §5.1: email_verified is a boolean; some
		// issuers send it as a string.
		switch ev := claims["email_verified"].(type) {
		case bool:
			if !ev {
				return "", invalid(ReasonEmailNotVerified, "\"email_verified\" is false")
			}
		case string:
			if strings.EqualFold(ev, "false") {
				return "", invalid(ReasonEmailNotVerified, "\"email_verified\" is false")
			}
		}
	}
	return s, nil
}

func joseAlgorithms() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(Algorithms))
	for i, a := range Algorithms {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}

// headerAlgorithm reads the "alg" of a compact JWS's protected header
// (RFC 7515 §4.1.1), to tell a token signed otherwise ("none", HS256…)
// from garbage in the reason logged.
func headerAlgorithm(token string) (string, bool) {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil || h.Alg == "" {
		return "", false
	}
	return h.Alg, true
}

// discover returns the go-oidc verifier and key set, discovering the
// issuer if it was not yet. A failed discovery is not tried again before
// its back-off has passed: the tokens meanwhile get the same error.
func (v *Verifier) discover(ctx context.Context) (*gooidc.IDTokenVerifier, error) {
	v.mu.Lock()
	if v.idv != nil {
		idv := v.idv
		v.mu.Unlock()
		return idv, nil
	}
	if ch := v.inflight; ch != nil {
		v.mu.Unlock()
		select {
		case <-ch:
			v.mu.Lock()
			idv, err := v.idv, v.lastErr
			v.mu.Unlock()
			if idv != nil {
				return idv, nil
			}
			return nil, err
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for the discovery of %s: %v", ErrUnavailable, v.cfg.Issuer, ctx.Err())
		}
	}
	if !v.lastTry.IsZero() && v.now().Sub(v.lastTry) < v.backoff {
		err := fmt.Errorf("%w (not tried again before %s)", v.lastErr, v.lastTry.Add(v.backoff).UTC().Format(time.RFC3339))
		v.mu.Unlock()
		return nil, err
	}
	ch := make(chan struct{})
	v.inflight = ch
	v.discovery++
	v.mu.Unlock()

	// Detached from the login that caused it: the discovery serves every
	// later one, and its back-off must not be set by a client that hung
	// up.
	dctx, cancel := context.WithTimeout(gooidc.ClientContext(context.WithoutCancel(ctx), v.client), fetchTimeout)
	idv, ks, err := v.discoverOnce(dctx)
	cancel()

	v.mu.Lock()
	defer v.mu.Unlock()
	defer close(ch)
	v.inflight = nil
	v.lastTry = v.now()
	if err != nil {
		if v.backoff == 0 {
			v.backoff = v.cfg.DiscoveryBackoff
		} else {
			v.backoff = min(2*v.backoff, maxDiscoveryBackoff)
		}
		v.lastErr = err
		v.log.Warn("oidc: the token issuer could not be discovered; OAUTHBEARER and XOAUTH2 logins fail until it is",
			"issuer", v.cfg.Issuer, "retry_in", v.backoff.String(), "err", err)
		return nil, err
	}
	v.idv, v.keys, v.lastErr, v.backoff = idv, ks, nil, 0
	v.log.Info("oidc: token issuer discovered", "issuer", v.cfg.Issuer, "jwks_uri", ks.url)
	return idv, nil
}

func (v *Verifier) discoverOnce(ctx context.Context) (*gooidc.IDTokenVerifier, *keySet, error) {
	p, err := gooidc.NewProvider(ctx, v.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the discovery document %s/.well-known/openid-configuration could not be used: %v",
			ErrUnavailable, strings.TrimSuffix(v.cfg.Issuer, "/"), err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
		return nil, nil, fmt.Errorf("%w: the discovery document of %s names no jwks_uri", ErrUnavailable, v.cfg.Issuer)
	}
	u, err := url.Parse(meta.JWKSURI)
	if err != nil || !(u.Scheme == "https" || (u.Scheme == "http" && isLoopback(u.Hostname()))) {
		return nil, nil, fmt.Errorf("%w: the jwks_uri %q of %s is not an https URL", ErrUnavailable, meta.JWKSURI, v.cfg.Issuer)
	}
	ks := &keySet{url: meta.JWKSURI, v: v}
	idv := gooidc.NewVerifier(v.cfg.Issuer, ks, &gooidc.Config{
		ClientID:             v.cfg.Audience,
		SupportedSigningAlgs: Algorithms,
		// Checked by checkTimes, with the clock skew and a required exp.
		SkipExpiryCheck: true,
	})
	return idv, ks, nil
}

// Discoveries returns how many discoveries were attempted (tests).
func (v *Verifier) Discoveries() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.discovery
}
