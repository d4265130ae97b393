package server

import (
	"errors"
	"fmt"
	"net"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/directory/ldap"
)

// LDAPConfig sets the read-only LDAP view of the directory, the address
// book of mail clients (directory/ldap), served on [listen] ldap (plain,
// loopback only, StartTLS offered) and ldaps (implicit TLS).
type LDAPConfig struct {
	// BaseDN is the suffix of the entries (mail=ADDRESS,BASE). Empty:
	// ou=people under the first hosted domain (ou=people,dc=carepost,dc=test).
	BaseDN string `toml:"base_dn"`
	// Anonymous says who may search without a bind: "loopback" (the
	// default: clients on this machine), "never", or "always" (anyone who
	// reaches the port: the directory's listings are then public).
	Anonymous string `toml:"anonymous"`
	// MaxResults bounds the entries of one search (sizeLimitExceeded
	// past it); at most 499.
	MaxResults int `toml:"max_results"`
}

func defaultLDAP() LDAPConfig {
	return LDAPConfig{Anonymous: ldap.AnonymousLoopback, MaxResults: ldap.DefaultMaxResults}
}

// validateLDAP checks [ldap] and the LDAP listeners.
func (c *Config) validateLDAP() []error {
	var errs []error
	for name, addr := range map[string]string{"listen.ldap": c.Listen.LDAP, "listen.ldaps": c.Listen.LDAPS} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not HOST:PORT", name, addr))
		}
	}
	if c.Listen.LDAP != "" && !isLoopback(c.Listen.LDAP) {
		errs = append(errs, fmt.Errorf("listen.ldap: %q is not a loopback address: plain LDAP would carry the passwords of binds in clear; serve remote clients on listen.ldaps (implicit TLS) and keep listen.ldap on 127.0.0.1", c.Listen.LDAP))
	}
	switch c.LDAP.Anonymous {
	case "", ldap.AnonymousLoopback, ldap.AnonymousNever, ldap.AnonymousAlways:
	default:
		errs = append(errs, fmt.Errorf("ldap.anonymous: %q is not loopback, never or always", c.LDAP.Anonymous))
	}
	if c.LDAP.MaxResults < 0 || c.LDAP.MaxResults >= directory.MaxSearchLimit {
		errs = append(errs, fmt.Errorf("ldap.max_results: %d is not between 1 and %d (0: %d)", c.LDAP.MaxResults, directory.MaxSearchLimit-1, ldap.DefaultMaxResults))
	}
	if c.LDAP.BaseDN != "" {
		if _, err := ldap.New(ldap.Options{BaseDN: c.LDAP.BaseDN}); err != nil {
			errs = append(errs, errors.New("ldap.base_dn: "+err.Error()))
		}
	}
	return errs
}

// ldapView builds the LDAP view served on [listen] ldap and ldaps.
func (s *Server) ldapView(authn *auth.Authenticator) (*ldap.Server, error) {
	cfg := s.Config.LDAP
	base := cfg.BaseDN
	if base == "" {
		base = ldap.BaseDN(s.Config.Domains[0])
	}
	opts := ldap.Options{Dir: s.Dir, Auth: authn, BaseDN: base, Anonymous: cfg.Anonymous, MaxResults: cfg.MaxResults,
		StartTLS: s.TLS, Logger: s.Logger.With("component", "ldap")}
	if s.events != nil {
		opts.Audit = s.events
	}
	return ldap.New(opts)
}
