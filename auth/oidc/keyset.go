package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is the issuer's keys (its JWKS, RFC 7517 §5), fetched from its
// jwks_uri and cached; it is go-oidc's KeySet. Unlike go-oidc's
// RemoteKeySet, it fetches again on a key it does not know at most once
// per KeyRefreshInterval (a flood of forged tokens would otherwise be
// one request to the issuer each), and it tells the Verifier, through the
// context, whether a failure is the token's or the issuer's (go-oidc
// flattens the key set's error into a string).
type keySet struct {
	url string
	v   *Verifier

	mu       sync.Mutex
	keys     []jose.JSONWebKey
	fetched  time.Time     // of the keys
	gen      int           // successful fetches: 0 before the first
	tried    time.Time     // last fetch attempted
	inflight chan struct{} // closed when the fetch under way ends
	fetchErr error         // of the last fetch
	fetches  int
}

// sigResult is where VerifySignature leaves its verdict for Verify.
type sigResult struct {
	payload []byte // the verified payload
	err     error  // an *InvalidTokenError or an ErrUnavailable
}

type sigResultKey struct{}

// VerifySignature implements go-oidc's KeySet.
func (ks *keySet) VerifySignature(ctx context.Context, token string) ([]byte, error) {
	res, _ := ctx.Value(sigResultKey{}).(*sigResult)
	if res == nil {
		res = &sigResult{}
	}
	payload, err := ks.verify(ctx, token)
	res.payload, res.err = payload, err
	return payload, err
}

func (ks *keySet) verify(ctx context.Context, token string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(token, joseAlgorithms())
	if err != nil || len(jws.Signatures) != 1 {
		return nil, invalid(ReasonMalformed, "not a signed JWT")
	}
	kid, alg := jws.Signatures[0].Header.KeyID, jws.Signatures[0].Header.Algorithm
	snap, err := ks.cached(ctx)
	if err != nil {
		return nil, err
	}
	payload, known := verifyWith(jws, snap.keys, kid, alg)
	if payload != nil {
		return payload, nil
	}
	// Not verified by the keys in the cache: fetch them again, unless
	// that was done a moment ago (OpenID Connect Core 1.0 §10.1.1: the
	// issuer publishes a new key before it signs with it).
	if ks.v.now().Sub(snap.fetched) >= ks.v.cfg.KeyRefreshInterval {
		if snap, err = ks.refresh(ctx, snap.gen); err != nil {
			return nil, err
		}
		payload, known = verifyWith(jws, snap.keys, kid, alg)
		if payload != nil {
			return payload, nil
		}
	}
	if !known {
		return nil, invalid(ReasonUnknownKey, "the issuer publishes no key with ID %.40q", kid)
	}
	return nil, invalid(ReasonSignature, "the issuer's key %.40q does not verify its signature", kid)
}

// verifyWith tries the keys whose ID is kid (all of them when the token
// names none); known says whether one had that ID.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid, alg string) (payload []byte, known bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		// A key published for another use or algorithm (RFC 7517 §4.2,
		// §4.4) does not verify this token.
		if u := keys[i].Use; u != "" && u != "sig" {
			continue
		}
		if a := keys[i].Algorithm; a != "" && a != alg {
			continue
		}
		known = true
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true
		}
	}
	return nil, known || kid == ""
}

// snapshot is the cache at one time: the keys of the gen-th successful
// fetch, made at fetched.
type snapshot struct {
	keys    []jose.JSONWebKey
	fetched time.Time
	gen     int
}

func (ks *keySet) snapshot() snapshot {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return snapshot{ks.keys, ks.fetched, ks.gen}
}

// cached returns the keys, fetching them when there are none yet or
// when they are older than KeyMaxAge (then, if the issuer does not
// answer, the old keys serve until it does, and it is asked again at
// most once per KeyRefreshInterval).
func (ks *keySet) cached(ctx context.Context) (snapshot, error) {
	snap := ks.snapshot()
	if snap.gen == 0 {
		return ks.refresh(ctx, 0)
	}
	if ks.v.now().Sub(snap.fetched) > ks.v.cfg.KeyMaxAge {
		ks.mu.Lock()
		recent := ks.v.now().Sub(ks.tried) < ks.v.cfg.KeyRefreshInterval
		ks.mu.Unlock()
		if !recent {
			if fresh, err := ks.refresh(ctx, snap.gen); err == nil {
				return fresh, nil
			}
			ks.v.log.Warn("oidc: the cached keys of the issuer are used until it answers again",
				"issuer", ks.v.cfg.Issuer, "age", ks.v.now().Sub(snap.fetched).Round(time.Second).String())
		}
	}
	return snap, nil
}

// refresh fetches the keys, once for all the callers that saw the same
// generation of the cache: a caller whose keys are already stale waits
// for the fetch under way, or takes the newer keys.
func (ks *keySet) refresh(ctx context.Context, gen int) (snapshot, error) {
	for {
		ks.mu.Lock()
		if ks.gen != gen { // fetched meanwhile by another
			snap := snapshot{ks.keys, ks.fetched, ks.gen}
			ks.mu.Unlock()
			return snap, nil
		}
		if ch := ks.inflight; ch != nil {
			ks.mu.Unlock()
			select {
			case <-ch:
				ks.mu.Lock()
				err := ks.fetchErr
				ks.mu.Unlock()
				if err != nil {
					return snapshot{}, err
				}
				continue
			case <-ctx.Done():
				return snapshot{}, fmt.Errorf("%w: waiting for the keys of %s: %v", ErrUnavailable, ks.v.cfg.Issuer, ctx.Err())
			}
		}
		if ks.fetchErr != nil && ks.v.now().Sub(ks.tried) < ks.v.cfg.KeyRefreshInterval {
			// The issuer failed a moment ago: not asked again at once.
			err := ks.fetchErr
			ks.mu.Unlock()
			return snapshot{}, err
		}
		ch := make(chan struct{})
		ks.inflight = ch
		ks.fetches++
		ks.mu.Unlock()

		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		keys, err := ks.fetch(fctx)
		cancel()

		ks.mu.Lock()
		ks.inflight = nil
		ks.tried = ks.v.now()
		ks.fetchErr = err
		if err == nil {
			ks.keys, ks.fetched = keys, ks.tried
			ks.gen++
		}
		snap := snapshot{ks.keys, ks.fetched, ks.gen}
		close(ch)
		ks.mu.Unlock()
		if err != nil {
			ks.v.log.Warn("oidc: the issuer's keys could not be fetched", "issuer", ks.v.cfg.Issuer, "jwks_uri", ks.url, "err", err)
			return snapshot{}, err
		}
		ks.v.log.Info("oidc: the issuer's keys were fetched", "issuer", ks.v.cfg.Issuer, "keys", len(keys))
		return snap, nil
	}
}

// fetch GETs the JWKS. Keys of types or algorithms go-jose does not know
// are skipped (RFC 7517 §5: "implementations SHOULD ignore" them).
func (ks *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: the jwks_uri %q: %v", ErrUnavailable, ks.url, err)
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := ks.v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: the keys at %s could not be fetched: %v", ErrUnavailable, ks.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSLength+1))
	if err != nil {
		return nil, fmt.Errorf("%w: the keys at %s could not be read: %v", ErrUnavailable, ks.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: the keys at %s: HTTP %s", ErrUnavailable, ks.url, resp.Status)
	}
	if len(body) > maxJWKSLength {
		return nil, fmt.Errorf("%w: the keys at %s are more than %d bytes", ErrUnavailable, ks.url, maxJWKSLength)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: the keys at %s are not a JWK set: %v", ErrUnavailable, ks.url, err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := json.Unmarshal(r, &k); err != nil || !k.Valid() || !k.IsPublic() {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the JWK set at %s holds no usable public key", ErrUnavailable, ks.url)
	}
	return keys, nil
}

// KeyFetches returns how many times the keys were fetched (tests).
func (v *Verifier) KeyFetches() int {
	v.mu.Lock()
	ks := v.keys
	v.mu.Unlock()
	if ks == nil {
		return 0
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.fetches
}
