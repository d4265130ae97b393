package keyring

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/carepost/carepost/crypto/smime"
	"github.com/carepost/carepost/directory"
)

// The client side of publication (publish.go): another operator's
// recipient's certificates, fetched from the endpoint configured for its
// domain.
//
// Bounds: one fetch takes at most FetchTimeout (connection, TLS, headers
// and body), reads at most maxResponse bytes and keeps at most
// maxCertsPerAddress certificates; no redirect is followed (the endpoint
// is configured, not discovered); fetches of one address are coalesced.

// DefaultFetchTimeout bounds one fetch when Options.FetchTimeout is 0.
const DefaultFetchTimeout = 15 * time.Second

// maxResponse bounds a response body: a few certificates in PEM are some
// 2 KB each, with their chains some 10 KB.
const maxResponse = 64 << 10

// maxCertsPerAddress bounds what one answer stores.
const maxCertsPerAddress = 8

type flight struct {
	done chan struct{}
	cert *x509.Certificate
	err  error
}

// refresh fetches the certificates of addr from base, replaces the cached
// ones in the store, and returns the newest encryption certificate;
// concurrent calls for one address share one fetch.
func (k *Keyring) refresh(ctx context.Context, base, addr string) (*x509.Certificate, error) {
	k.mu.Lock()
	if f, ok := k.flights[addr]; ok {
		k.mu.Unlock()
		select {
		case <-f.done:
			return f.cert, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	k.flights[addr] = f
	k.mu.Unlock()
	f.cert, f.err = k.refreshOnce(ctx, base, addr)
	k.mu.Lock()
	delete(k.flights, addr)
	k.mu.Unlock()
	close(f.done)
	return f.cert, f.err
}

func (k *Keyring) refreshOnce(ctx context.Context, base, addr string) (*x509.Certificate, error) {
	certs, err := k.fetch(ctx, base, addr)
	now := k.now()
	if errors.Is(err, errNotPublished) {
		if err := k.store.ReplaceFetchedCerts(ctx, addr, nil); err != nil {
			return nil, err
		}
		k.mu.Lock()
		if len(k.misses) >= maxCached {
			clear(k.misses)
		}
		k.misses[addr] = now.Add(min(missTTL, k.ttl))
		k.mu.Unlock()
		return nil, smime.ErrNoCertificate
	}
	if err != nil {
		return nil, err
	}
	var rows []directory.MailboxCert
	var newest *x509.Certificate
	for _, c := range certs {
		if !names(c, addr) || !k.validAt(c, now) {
			k.logger.Warn("S/MIME certificate endpoint: a certificate is left out (it does not name the address or is not valid now)",
				"address", addr, "endpoint", base, "subject", c.Subject.String())
			continue
		}
		for _, u := range usagesOf(c) {
			rows = append(rows, directory.MailboxCert{Address: addr, Usage: u, Fingerprint: fingerprint(c), DER: c.Raw,
				NotAfter: c.NotAfter, Created: c.NotBefore, Remote: true, FetchedAt: now})
			if u == directory.UsageEncrypt && (newest == nil || c.NotBefore.After(newest.NotBefore)) {
				newest = c
			}
		}
	}
	if err := k.store.ReplaceFetchedCerts(ctx, addr, rows); err != nil {
		return nil, err
	}
	if newest == nil {
		return nil, smime.ErrNoCertificate
	}
	return newest, nil
}

// errNotPublished: the endpoint answered 404.
var errNotPublished = errors.New("not published")

// FetchCount is how many requests this Keyring sent to endpoints.
func (k *Keyring) FetchCount() int64 { return atomic.LoadInt64(&k.fetches) }

// fetch asks base for the certificates of addr.
func (k *Keyring) fetch(ctx context.Context, base, addr string) ([]*x509.Certificate, error) {
	if k.anchors == nil {
		return nil, errors.New("keyring: no trust anchors to verify the endpoint with")
	}
	roots, err := k.anchors()
	if err != nil {
		return nil, fmt.Errorf("keyring: trust anchors: %w", err)
	}
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if k.clientCrt != nil {
		tlsConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := k.clientCrt()
			if err != nil || c == nil {
				return &tls.Certificate{}, nil // none: the endpoint shows less
			}
			return c, nil
		}
	}
	client := &http.Client{
		Timeout: k.timeout,
		Transport: &http.Transport{
			TLSClientConfig:        tlsConfig,
			DialContext:            (&net.Dialer{Timeout: k.timeout}).DialContext,
			TLSHandshakeTimeout:    k.timeout,
			ResponseHeaderTimeout:  k.timeout,
			DisableKeepAlives:      true, // one fetch per address per CacheTTL
			MaxResponseHeaderBytes: 16 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the endpoint redirected: redirects are not followed (configure the final address in [smime.endpoints])")
		},
	}
	u := base + PublicationPath + url.PathEscape(addr)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("keyring: endpoint %s: %w", base, err)
	}
	req.Header.Set("Accept", pemChainType)
	atomic.AddInt64(&k.fetches, 1)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keyring: fetch the certificate of %s from %s: %w", addr, base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: fetch the certificate of %s from %s: %w", addr, base, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, errNotPublished
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("keyring: fetch the certificate of %s from %s: HTTP %s", addr, base, resp.Status)
	case len(body) > maxResponse:
		return nil, fmt.Errorf("keyring: fetch the certificate of %s from %s: the answer is larger than %d bytes", addr, base, maxResponse)
	}
	certs, err := ParseCertificatesPEM(body)
	if err != nil {
		return nil, fmt.Errorf("keyring: the answer of %s for %s: %w", base, addr, err)
	}
	if len(certs) > maxCertsPerAddress {
		certs = certs[:maxCertsPerAddress]
	}
	return certs, nil
}

// ParseCertificatesPEM reads the CERTIFICATE blocks of a PEM text (other
// blocks are skipped; a private key is refused, never read). It is what
// the fetch reads from another operator: fuzzed (FuzzParseCertificatesPEM).
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, errors.New("it holds a private key")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate in it")
	}
	return out, nil
}

func fingerprint(c *x509.Certificate) string {
	return hex.EncodeToString(sha256Sum(c.Raw))
}
