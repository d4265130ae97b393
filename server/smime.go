package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
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
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/storage"
)

// SMIMEConfig is the [smime] section: where the S/MIME certificates of
// other operators' recipients are found (crypto/keyring). Ours are
// published on [listen] https.
type SMIMEConfig struct {
	// Gateway turns the S/MIME gateway on (SPEC §6): what leaves for
	// another operator is signed with the sender's certificate and
	// encrypted to each recipient's, or not sent (a DSN says why); what
	// comes in is decrypted and its signature's verdict added in an
	// Authentication-Results field. On by default.
	Gateway bool `toml:"gateway"`
	// AllowSignedOnly sends a recipient without a valid certificate the
	// signed message in clear instead of refusing it. Off by default.
	AllowSignedOnly bool `toml:"allow_signed_only"`
	// OAEP wraps the content key with RSA-OAEP instead of PKCS #1 v1.5
	// (docs/domain.md §6b: the Direct Project's choice).
	OAEP bool `toml:"oaep"`
	// CRLs are files (PEM or DER) of certificate revocation lists that
	// signatures and recipients' certificates are checked against; read
	// at start.
	CRLs []string `toml:"crls"`
	// AutoIssue issues a mailbox's certificates from the development CA
	// the first time the gateway needs them, when the server runs on its
	// development PKI ([tls] cert unset). On by default; ignored with a
	// certificate of the health PKI.
	AutoIssue bool `toml:"auto_issue"`
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
		Logger:    s.Logger.With("component", "keyring"),
		AutoIssue: s.autoIssue(),
	})
}

// autoIssue is the keyring's AutoIssue: the development CA issues a
// mailbox's certificates at first use, on the embedded default only.
func (s *Server) autoIssue() func(ctx context.Context, address string) error {
	if !s.Config.SMIME.AutoIssue || s.Config.TLS.Cert != "" {
		return nil
	}
	return func(ctx context.Context, address string) error {
		_, err := s.Keyring.Issue(ctx, s.PKI, address, false, false)
		ev := storage.AuditRecord{Actor: "system", Action: "pki.issue", Object: address, Outcome: "ok",
			Details: map[string]string{"why": "first use by the S/MIME gateway", "ca": "development"}}
		if err != nil {
			ev.Outcome, ev.Details["error"] = "failed", err.Error()
		}
		s.events.Record(ev) // a PKI change (issue 25)
		return err
	}
}

// smimeTransforms are the gateway's transforms (delivery/smime.go), nil
// when [smime] gateway is off.
func (s *Server) smimeTransforms(crls []*x509.RevocationList) (in, out delivery.Transform) {
	c := s.Config.SMIME
	if !c.Gateway {
		return nil, nil
	}
	trust := func(ctx context.Context) (*delivery.SMIMETrust, error) {
		// The trust anchors of the space, and our own CA: our
		// mailboxes' certificates, which our users' mail is signed with.
		anchors, err := s.trustAnchors()
		if err != nil {
			return nil, err
		}
		roots := anchors.Clone()
		roots.AddCert(s.PKI.CACert())
		return &delivery.SMIMETrust{Roots: roots, CRLs: crls}, nil
	}
	return &delivery.SMIMEInbound{AuthServID: s.Config.Hostname, Keyring: s.Keyring, Trust: trust},
		&delivery.SMIMEOutbound{Keyring: s.Keyring, Trust: trust, AllowSignedOnly: c.AllowSignedOnly, OAEP: c.OAEP}
}

// loadCRLs reads [smime] crls.
func loadCRLs(paths []string) ([]*x509.RevocationList, error) {
	var out []*x509.RevocationList
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("smime.crls: %w", err)
		}
		for len(b) > 0 {
			der := b
			if blk, rest := pem.Decode(b); blk != nil {
				if blk.Type != "X509 CRL" {
					b = rest
					continue
				}
				der, b = blk.Bytes, rest
			} else {
				b = nil
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				return nil, fmt.Errorf("smime.crls: %s: %w", p, err)
			}
			out = append(out, crl)
		}
	}
	return out, nil
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
	mux.Handle(HistoryPath, s.historyHandler()) // history.go
	s.autoconfigRoutes(mux)                     // autoconfig.go
	s.dmpRoutes(mux)                            // dmpapi.go
	mux.Handle(DirectoryPath, s.directoryHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Nothing is served at this address: the S/MIME certificates are at "+keyring.PublicationPath+"ADDRESS, a mailbox's access history at "+HistoryPath+", "+autoconfigPaths+".", http.StatusNotFound)
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
