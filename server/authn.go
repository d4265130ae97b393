package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/auth/oidc"
)

// authOptions builds the authenticator's options from [auth]: the client
// CAs of SASL EXTERNAL (the operator's CA, which `carepost pki issue
// --client` issues from, and the files of client_cas), application
// passwords required or not, and the token verifier when an issuer is
// configured.
func (s *Server) authOptions(lim auth.Limiter) (auth.Options, error) {
	cfg := s.Config.Auth
	opts := auth.Options{Limiter: lim, RequireAppPasswords: cfg.RequireAppPasswords}
	if cfg.External {
		pool := x509.NewCertPool()
		pool.AddCert(s.PKI.CACert())
		for _, f := range cfg.ClientCAs {
			b, err := os.ReadFile(f)
			if err != nil {
				return opts, fmt.Errorf("auth.client_cas: %w", err)
			}
			if !pool.AppendCertsFromPEM(b) {
				return opts, fmt.Errorf("auth.client_cas: %s holds no PEM certificate", f)
			}
		}
		opts.ClientCAs = pool
	}
	if o := cfg.OIDC; o.Enabled() {
		// The issuer is not asked here: the server starts while it is
		// down, and the first token login discovers it (auth/oidc).
		v, err := oidc.New(oidc.Config{Issuer: o.Issuer, Audience: o.Audience, Claim: o.Claim, CAFile: o.CAFile,
			Logger: s.Logger.With("component", "oidc")})
		if err != nil {
			return opts, fmt.Errorf("auth.oidc: %w", err)
		}
		opts.Tokens, opts.TokenClaimIs = v, o.ClaimIs
	}
	return opts, nil
}

// clientTLS is the TLS configuration of the IMAP and submission listeners:
// the server's, asking for a client certificate when SASL EXTERNAL is on
// (RequestClientCert: never required nor verified by the handshake, so
// that a client without one, or with one of another authority, still
// logs in otherwise; auth.Authenticator.External verifies it).
func (s *Server) clientTLS() *tls.Config {
	if !s.Config.Auth.External {
		return s.TLS
	}
	c := s.TLS.Clone()
	c.ClientAuth = tls.RequestClientCert
	return c
}
