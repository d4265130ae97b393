// Package oidctest is an OpenID Connect issuer for tests and for trying
// OAUTHBEARER by hand (`carepost oidc test-issuer`, docs/oauth.md): it
// listens on a loopback address only, over TLS with a certificate of its
// own CA (written as PEM for the client to trust), serves its discovery
// document (OpenID Connect Discovery 1.0 §4) and its keys (JWKS, RFC
// 7517), and mints signed access tokens (RFC 7519) for any claims. It can
// rotate its key and mint with a key it never published. It has no
// authorization or token endpoint: tokens are minted by the test (Token)
// or by `carepost oidc token`.
package oidctest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	cpcrypto "github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/limit"
)

// DefaultAudience is the "aud" of tokens minted without one, and the
// audience the server is configured with against this issuer.
const DefaultAudience = "carepost"

// DefaultTTL is the lifetime of tokens minted without "exp".
const DefaultTTL = 5 * time.Minute

// Files of the issuer's directory.
const (
	stateFile   = "issuer.json" // State: the URL, audience and CA file
	signingFile = "signing.key" // the signing key, PKCS#8 PEM
	pkiDir      = "tls"         // the CA and the TLS certificate (crypto.PKI)
)

// Options configure New.
type Options struct {
	// Addr is where to listen: a loopback address and port
	// ("127.0.0.1:0", "[::1]:8444", "localhost:8444"); "" is
	// "127.0.0.1:0". Any other address is refused.
	Addr string
	// Dir keeps the CA, the TLS certificate, the signing key and
	// issuer.json; they are reused when present, so the CA file and the
	// key stay the same across restarts. Required.
	Dir string
	// Audience is the "aud" of tokens minted without one; "" is
	// DefaultAudience.
	Audience string
}

// State is what issuer.json records for `carepost oidc token` (and the
// configuration to paste).
type State struct {
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
	CAFile   string `json:"ca_file"`
}

// key is a signing key and its ID.
type key struct {
	kid    string
	alg    jose.SignatureAlgorithm
	signer crypto.Signer
}

func (k *key) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.signer.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// Issuer is a running test issuer.
type Issuer struct {
	url      string
	audience string
	dir      string
	caFile   string
	caPEM    []byte
	srv      *http.Server
	ln       net.Listener

	mu        sync.Mutex
	current   *key
	published []*key
	down      bool
	discovery int
	jwks      int
}

// IsLoopback says whether addr ("host:port") is on a loopback address,
// the only ones the test issuer listens on.
func IsLoopback(addr string) bool { return limit.IsLoopback(addr) }

// New starts an issuer as opts say. Close stops it.
func New(opts Options) (*Issuer, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if !IsLoopback(opts.Addr) {
		return nil, fmt.Errorf("oidctest: %q is not a loopback address and port (127.0.0.1:PORT, [::1]:PORT or localhost:PORT): the test issuer mints tokens for anyone and must not be reachable from elsewhere", opts.Addr)
	}
	if opts.Dir == "" {
		return nil, errors.New("oidctest: no directory for the issuer's keys")
	}
	if opts.Audience == "" {
		opts.Audience = DefaultAudience
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	pki, err := cpcrypto.OpenPKI(filepath.Join(opts.Dir, pkiDir))
	if err != nil {
		return nil, err
	}
	cert, err := pki.ServerCertificate("localhost")
	if err != nil {
		return nil, err
	}
	signer, err := loadOrCreateKey(filepath.Join(opts.Dir, signingFile))
	if err != nil {
		return nil, err
	}
	k, err := newKey(signer)
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if host, port, _ := net.SplitHostPort(addr); host == "localhost" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oidctest: cannot listen on %s: %w", opts.Addr, err)
	}
	i := &Issuer{
		url:       "https://" + ln.Addr().String(),
		audience:  opts.Audience,
		dir:       opts.Dir,
		caFile:    pki.CAPath(),
		caPEM:     pki.CAPEM(),
		ln:        ln,
		current:   k,
		published: []*key{k},
	}
	st, _ := json.MarshalIndent(i.State(), "", "  ")
	if err := os.WriteFile(filepath.Join(opts.Dir, stateFile), append(st, '\n'), 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET /jwks", i.serveJWKS)
	noLogin := func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "This test issuer has no login page and issues no token here: mint one with carepost oidc token.", http.StatusNotImplemented)
	}
	mux.HandleFunc("/authorize", noLogin)
	mux.HandleFunc("/token", noLogin)
	tlsConf := cpcrypto.ServerTLSConfig(cert)
	i.srv = &http.Server{Handler: mux, TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second}
	go i.srv.Serve(tls.NewListener(ln, tlsConf))
	return i, nil
}

// TB is what Start needs of a test (testing.TB): an interface of its own,
// so that the carepost binary, which runs the issuer for `carepost oidc
// test-issuer`, does not link package testing.
type TB interface {
	Helper()
	TempDir() string
	Fatal(args ...any)
	Cleanup(func())
}

// Start starts an issuer on 127.0.0.1 with a random port and its keys in
// a temporary directory of t, stopped at the end of the test.
func Start(t TB) *Issuer {
	t.Helper()
	i, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { i.Close() })
	return i
}

// Close stops the issuer.
func (i *Issuer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return i.srv.Shutdown(ctx)
}

// URL is the issuer's URL ([auth.oidc] issuer, the tokens' "iss").
func (i *Issuer) URL() string { return i.url }

// Audience is the "aud" of tokens minted without one.
func (i *Issuer) Audience() string { return i.audience }

// CAFile is the PEM file of the CA of the issuer's TLS certificate
// ([auth.oidc] ca_file).
func (i *Issuer) CAFile() string { return i.caFile }

// CAPEM is the CA certificate in PEM.
func (i *Issuer) CAPEM() []byte { return i.caPEM }

// CertPool holds the CA, for a TLS client.
func (i *Issuer) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(i.caPEM)
	return p
}

// HTTPClient trusts the issuer's CA.
func (i *Issuer) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: i.CertPool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// State is what issuer.json holds.
func (i *Issuer) State() State {
	return State{Issuer: i.url, Audience: i.audience, CAFile: i.caFile}
}

// KeyID is the ID of the key that signs now.
func (i *Issuer) KeyID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.current.kid
}

// SetDown makes the issuer answer 503 to everything (true) or serve
// again (false): an issuer out of order, for tests of the verifier's
// back-off.
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

// Requests returns how many times the discovery document and the keys
// were served.
func (i *Issuer) Requests() (discovery, jwks int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.discovery, i.jwks
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	i.discovery++
	down := i.down
	i.mu.Unlock()
	if down {
		http.Error(w, "the test issuer is down", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{
		"issuer":                                i.url,
		"jwks_uri":                              i.url + "/jwks",
		"authorization_endpoint":                i.url + "/authorize",
		"token_endpoint":                        i.url + "/token",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "PS256", "ES256"},
		"scopes_supported":                      []string{"openid", "email"},
		"claims_supported":                      []string{"sub", "email", "email_verified"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.mu.Lock()
	i.jwks++
	down := i.down
	var set jose.JSONWebKeySet
	for _, k := range i.published {
		set.Keys = append(set.Keys, k.public())
	}
	i.mu.Unlock()
	if down {
		http.Error(w, "the test issuer is down", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// Algorithm names the key Rotate makes: RS256 (RSA-2048), PS256
// (RSA-2048) or ES256 (ECDSA P-256).
type Algorithm = jose.SignatureAlgorithm

// Rotate replaces the signing key by a new one for alg ("" is RS256):
// the JWKS publishes the new key only, as after a rotation once the old
// key is retired. It returns the new key's ID.
func (i *Issuer) Rotate(alg Algorithm) (string, error) {
	k, err := generate(alg)
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.current, i.published = k, []*key{k}
	return k.kid, nil
}

// Publish adds a new key for alg to the JWKS beside the current one and
// makes it the signing key (a rotation with overlap); it returns its ID.
func (i *Issuer) Publish(alg Algorithm) (string, error) {
	k, err := generate(alg)
	if err != nil {
		return "", err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.current, i.published = k, append(i.published, k)
	return k.kid, nil
}

// Token mints a token signed by the current key. claims override the
// defaults: "iss" the issuer, "aud" Audience, "iat" now, "exp" now +
// DefaultTTL; a claim set to nil is left out (e.g. "exp": nil). A
// time.Time value is written as a NumericDate.
func (i *Issuer) Token(claims map[string]any) string {
	i.mu.Lock()
	k := i.current
	i.mu.Unlock()
	return i.mustSign(k, claims)
}

// TokenFor mints a token for a mailbox address: "sub" and "email" the
// address, "email_verified" true, and the defaults of Token; extra
// claims are added last.
func (i *Issuer) TokenFor(address string, extra map[string]any) string {
	c := map[string]any{"sub": address, "email": address, "email_verified": true}
	for n, v := range extra {
		c[n] = v
	}
	return i.Token(c)
}

// UnpublishedToken mints a token with a key the issuer never published,
// under a key ID of its own.
func (i *Issuer) UnpublishedToken(claims map[string]any) string {
	k, err := generate(jose.RS256)
	if err != nil {
		panic(err)
	}
	return i.mustSign(k, claims)
}

// ForgedToken mints a token with a key the issuer never published but
// under the key ID of its current key: a forgery.
func (i *Issuer) ForgedToken(claims map[string]any) string {
	i.mu.Lock()
	cur := i.current
	i.mu.Unlock()
	k, err := generate(cur.alg)
	if err != nil {
		panic(err)
	}
	k.kid = cur.kid
	return i.mustSign(k, claims)
}

func (i *Issuer) mustSign(k *key, claims map[string]any) string {
	t, err := Sign(k.signer, k.kid, k.alg, i.fill(claims))
	if err != nil {
		panic(err)
	}
	return t
}

// fill adds the default claims.
func (i *Issuer) fill(claims map[string]any) map[string]any {
	return Fill(claims, i.url, i.audience, DefaultTTL)
}

// Fill returns claims with "iss", "aud", "iat" and "exp" (now + ttl)
// added where absent, nil values removed and time.Time values turned
// into NumericDates (RFC 7519 §2).
func Fill(claims map[string]any, issuer, audience string, ttl time.Duration) map[string]any {
	now := time.Now()
	out := map[string]any{
		"iss": issuer,
		"aud": audience,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	for n, v := range claims {
		out[n] = v
	}
	for n, v := range out {
		switch t := v.(type) {
		case nil:
			delete(out, n)
		case time.Time:
			out[n] = t.Unix()
		}
	}
	return out
}

// Sign signs claims as a JWT (RFC 7519) with signer, whose key ID kid is
// put in the header.
func Sign(signer crypto.Signer, kid string, alg jose.SignatureAlgorithm, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: signer, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func generate(alg jose.SignatureAlgorithm) (*key, error) {
	var signer crypto.Signer
	var err error
	switch alg {
	case "", jose.RS256, jose.PS256:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("oidctest: algorithm %q is not RS256, PS256 or ES256", alg)
	}
	if err != nil {
		return nil, err
	}
	k, err := newKey(signer)
	if err != nil {
		return nil, err
	}
	if alg != "" {
		k.alg = alg
	}
	return k, nil
}

// newKey names a key by its thumbprint (RFC 7638), so that a key kept in
// a file keeps its ID; RSA keys sign RS256, ECDSA keys ES256.
func newKey(signer crypto.Signer) (*key, error) {
	jwk := jose.JSONWebKey{Key: signer.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	k := &key{kid: fmt.Sprintf("%x", tp[:8]), alg: jose.RS256, signer: signer}
	if _, ok := signer.(*ecdsa.PrivateKey); ok {
		k.alg = jose.ES256
	}
	return k, nil
}

// loadOrCreateKey reads the signing key of path (PKCS#8 PEM), creating an
// RSA-2048 key there when there is none.
func loadOrCreateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("oidctest: %s is not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("oidctest: %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("oidctest: %s is not a signing key", path)
	}
	return s, nil
}

// ReadState reads the issuer.json of an issuer's directory.
func ReadState(dir string) (State, error) {
	var st State
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%s holds no test issuer: start one with carepost oidc test-issuer (--dir %s)", dir, dir)
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	return st, nil
}

// MintFromDir mints a token with the signing key kept in dir by an issuer
// (New), for the issuer and audience of its issuer.json unless claims
// set them; ttl is the lifetime when claims have no "exp".
func MintFromDir(dir string, claims map[string]any, ttl time.Duration) (string, State, error) {
	st, err := ReadState(dir)
	if err != nil {
		return "", st, err
	}
	path := filepath.Join(dir, signingFile)
	if _, err := os.Stat(path); err != nil {
		return "", st, fmt.Errorf("%s holds no signing key (%v)", dir, err)
	}
	signer, err := loadOrCreateKey(path)
	if err != nil {
		return "", st, err
	}
	k, err := newKey(signer)
	if err != nil {
		return "", st, err
	}
	t, err := Sign(k.signer, k.kid, k.alg, Fill(claims, st.Issuer, st.Audience, ttl))
	return t, st, err
}
