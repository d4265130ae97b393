package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/carepost/carepost/crypto/keyring"
)

// SMIMEConfig is the [smime] section: where the S/MIME certificates of
// other operators' recipients are found (crypto/keyring). Ours are
// published on [listen] https.
type SMIMEConfig struct {
	// Endpoints maps a domain of another operator to the base URL of its
	// publication endpoint ("ch-b.mssante.fr" = "https://mx.ch-b.fr:8443");
	// the certificate of a recipient there is fetched from
	// BASE/.well-known/carepost/smime/ADDRESS, over TLS verified against
	// the trust anchors. A certificate imported by hand (`carepost pki
	// import ADDRESS FILE --remote`) needs no endpoint, and wins.
	Endpoints map[string]string `toml:"endpoints"`
	// CacheTTL is how long a fetched certificate is used before it is
	// fetched again (kept in the store: every process and node uses it).
	CacheTTL Duration `toml:"cache_ttl"`
	// FetchTimeout bounds one fetch, connection to last byte.
	FetchTimeout Duration `toml:"fetch_timeout"`
}

func (c *SMIMEConfig) validate() []error {
	var errs []error
	if d := time.Duration(c.CacheTTL); d < time.Minute || d > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("smime.cache_ttl: %v is not between 1m and 720h", d))
	}
	if d := time.Duration(c.FetchTimeout); d < time.Second || d > 5*time.Minute {
		errs = append(errs, fmt.Errorf("smime.fetch_timeout: %v is not between 1s and 5m", d))
	}
	eps := make(map[string]string, len(c.Endpoints))
	for d, u := range c.Endpoints {
		dl := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if dl == "" || !strings.Contains(dl, ".") || strings.ContainsAny(dl, " /@") {
			errs = append(errs, fmt.Errorf("smime.endpoints: %q is not a domain name", d))
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme != "https" || pu.Host == "" || (pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" {
			errs = append(errs, fmt.Errorf("smime.endpoints: the endpoint of %s, %q, is not a base URL https://HOST[:PORT] (the certificates decide to whom mail is encrypted: https only)", d, u))
		}
		eps[dl] = strings.TrimRight(u, "/")
	}
	c.Endpoints = eps
	return errs
}

// newKeyring is the server's keyring: the store's certificates, the
// endpoints of [smime], verified with the trust anchors of the outbound
// queue, our operator certificate presented to them.
func (s *Server) newKeyring() *keyring.Keyring {
	return keyring.New(keyring.Options{
		Store:        s.Store,
		Dir:          s.Dir,
		Endpoints:    s.Config.SMIME.Endpoints,
		CacheTTL:     time.Duration(s.Config.SMIME.CacheTTL),
		FetchTimeout: time.Duration(s.Config.SMIME.FetchTimeout),
		TrustAnchors: s.trustAnchors,
		ClientCertificate: func() (*tls.Certificate, error) {
			if len(s.TLS.Certificates) == 0 {
				return nil, errors.New("no server certificate")
			}
			return &s.TLS.Certificates[0], nil
		},
		Logger: s.Logger.With("component", "keyring"),
	})
}

// httpsTimeouts bound the requests of the https listener: the
// publication answers a few kilobytes.
const (
	httpsReadTimeout  = 30 * time.Second
	httpsWriteTimeout = 30 * time.Second
	httpsIdleTimeout  = 2 * time.Minute
	httpsMaxHeader    = 16 << 10
)

// serveHTTPS returns the server of [listen] https: the publication of the
// mailboxes' certificates. The listener is wrapped in TLS by Start (the
// server certificate, crypto.ServerTLSConfig's policy); a client may
// present its operator certificate (RequestClientCert: checked by the
// handler against the trust anchors, directory.VerifyOperator, never
// required by the TLS layer, so that browsers reach the portal later).
func (s *Server) serveHTTPS() func(net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle(keyring.PublicationPath, s.Keyring.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Nothing is served at this address: the S/MIME certificates are at "+keyring.PublicationPath+"ADDRESS.", http.StatusNotFound)
	})
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: httpsReadTimeout,
		ReadTimeout:       httpsReadTimeout,
		WriteTimeout:      httpsWriteTimeout,
		IdleTimeout:       httpsIdleTimeout,
		MaxHeaderBytes:    httpsMaxHeader,
	}
	s.closers = append(s.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(ctx)
	})
	return func(ln net.Listener) error {
		err := hs.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// httpsTLS is the TLS configuration of [listen] https: the server's, with
// the operator certificate of a client asked for, not required.
func (s *Server) httpsTLS() *tls.Config {
	c := s.TLS.Clone()
	c.ClientAuth = tls.RequestClientCert
	c.NextProtos = []string{"h2", "http/1.1"}
	return c
}

// httpsRefusal answers a connection refused by the limits with a 503
// (RFC 9110 §15.6.4) and the sentence.
func httpsRefusal(config *tls.Config) func(net.Conn, string) {
	return func(c net.Conn, sentence string) {
		body := sentence + "\n"
		refuseWith(c, config, true, fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	}
}

// importMailboxFiles moves into the store the S/MIME certificates and keys
// that `carepost pki issue` wrote to <data>/pki/mailboxes/ADDRESS.crt|.key
// before they were kept there: each pair is imported (sealed, like any
// import) and its files are removed, so that no private key stays on disk
// in clear. A pair that cannot be imported (the mailbox is gone, the
// certificate expired) is left with a warning. Running twice, or in two
// processes at once, imports the same rows again: harmless.
func (s *Server) importMailboxFiles(ctx context.Context) {
	dir := filepath.Join(s.PKI.Dir(), "mailboxes")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		addr, ok := strings.CutSuffix(e.Name(), ".crt")
		if !ok || e.IsDir() {
			continue
		}
		crt, keyFile := filepath.Join(dir, e.Name()), filepath.Join(dir, addr+".key")
		data, err := os.ReadFile(crt)
		if err == nil {
			var key []byte
			if key, err = os.ReadFile(keyFile); err == nil || errors.Is(err, os.ErrNotExist) {
				data, err = append(data, key...), nil
			}
		}
		if err == nil {
			_, err = s.Keyring.Import(ctx, addr, data, keyring.ImportOptions{})
		}
		if err != nil {
			s.Logger.Warn("an S/MIME certificate file of an older version was not moved into the store; import it with carepost pki import, or remove it",
				"file", crt, "err", err)
			continue
		}
		os.Remove(keyFile)
		os.Remove(crt)
		s.Logger.Info("S/MIME certificate moved from its files into the store (key sealed)", "address", addr)
	}
	os.Remove(dir) // once empty
}
