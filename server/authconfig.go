package server

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// AuthConfig is the [auth] section: how professionals, software and
// patients prove who they are on IMAP and submission (SPEC §3), and the
// defence against guessing and against forgotten accounts.
type AuthConfig struct {
	// RequireAppPasswords refuses the account's own password over IMAP
	// and SMTP: mail clients log in with an application password
	// (`carepost user app-password`), a client certificate or a token.
	// Off in the embedded default (the README's walkthrough), on in
	// deploy/carepost.toml.
	RequireAppPasswords bool `toml:"require_app_passwords"`
	// External offers SASL EXTERNAL on IMAP and submission to a client
	// that presented a TLS certificate issued by the operator's CA or by
	// one of ClientCAs (RFC 4422 Appendix A): the smart-card / e-CPS
	// model, and practice software's certificate.
	External bool `toml:"external"`
	// ClientCAs are PEM files of the certificate authorities whose client
	// certificates identify professionals and software (the health
	// sector's PKI), beside the operator's own CA.
	ClientCAs []string `toml:"client_cas"`
	// LockoutAfter is how many failed logins in a row on one account
	// lock it for LockoutDuration (its owner is notified, the lockout
	// traced); 0 never locks. Before that, each failure past the fifth
	// delays the next attempt ([limits] login_delay_max).
	LockoutAfter int `toml:"lockout_after"`
	// LockoutSourceAfter is the same threshold for one source address
	// (IPv6: one /64), all accounts together; 0 never locks.
	LockoutSourceAfter int `toml:"lockout_source_after"`
	// LockoutDuration is how long a lockout lasts.
	LockoutDuration Duration `toml:"lockout_duration"`
	// NotifyLockout sends the account's owner a message (to its
	// notification address, else to the mailbox) when it is locked.
	NotifyLockout bool `toml:"notify_lockout"`
	// WarnInactiveAfter and SuspendInactiveAfter: an account with no
	// successful login for that long is warned by mail, then suspended
	// (traced). 0 turns either off.
	WarnInactiveAfter    Duration `toml:"warn_inactive_after"`
	SuspendInactiveAfter Duration `toml:"suspend_inactive_after"`
	// OIDC configures SASL OAUTHBEARER (RFC 7628) and XOAUTH2 with
	// access tokens of an OpenID Connect issuer (the Pro Santé Connect
	// model). Off while Issuer is empty.
	OIDC OIDCConfig `toml:"oidc"`
}

// OIDCConfig is the [auth.oidc] section.
type OIDCConfig struct {
	// Issuer is the issuer's URL: its discovery document is
	// ISSUER/.well-known/openid-configuration (https; http only on a
	// loopback address, for tests).
	Issuer string `toml:"issuer"`
	// Audience is the value a token's "aud" must hold (the client ID
	// registered for the mail service at the issuer).
	Audience string `toml:"audience"`
	// Claim names the claim that identifies the account, and ClaimIs
	// what it holds: "address" (an e-mail address of the directory) or
	// "national_id" (the RPPS-based national identifier of a
	// professional, matched against the directory's entries).
	Claim   string `toml:"claim"`
	ClaimIs string `toml:"claim_is"`
	// CAFile is a PEM file of the CA of the issuer's https certificate,
	// when it is not one the system trusts (a test issuer).
	CAFile string `toml:"ca_file"`
	// Scope is what mail clients ask the issuer for (named in the
	// autoconfiguration documents).
	Scope string `toml:"scope"`
}

// defaultAuth is the embedded default of [auth].
func defaultAuth() AuthConfig {
	return AuthConfig{
		External:           true,
		LockoutAfter:       20,
		LockoutSourceAfter: 100,
		LockoutDuration:    Duration(15 * time.Minute),
		NotifyLockout:      true,
		OIDC:               OIDCConfig{Claim: "email", ClaimIs: "address", Scope: "openid email"},
	}
}

func (c *AuthConfig) validate() []error {
	var errs []error
	if c.LockoutAfter < 0 || c.LockoutAfter > 10000 {
		errs = append(errs, fmt.Errorf("auth.lockout_after: %d is not between 0 (never) and 10000 failures", c.LockoutAfter))
	} else if c.LockoutAfter > 0 && c.LockoutAfter < 6 {
		errs = append(errs, fmt.Errorf("auth.lockout_after: %d would lock an account before its owner's usual typing mistakes are forgiven (the first five failures); use 6 or more, or 0", c.LockoutAfter))
	}
	if c.LockoutSourceAfter < 0 || c.LockoutSourceAfter > 1_000_000 {
		errs = append(errs, fmt.Errorf("auth.lockout_source_after: %d is not between 0 (never) and 1000000 failures", c.LockoutSourceAfter))
	} else if c.LockoutSourceAfter > 0 && c.LockoutSourceAfter < 6 {
		errs = append(errs, fmt.Errorf("auth.lockout_source_after: %d is too low (6 or more, or 0)", c.LockoutSourceAfter))
	}
	if d := time.Duration(c.LockoutDuration); (c.LockoutAfter > 0 || c.LockoutSourceAfter > 0) && (d < time.Second || d > 24*time.Hour) {
		errs = append(errs, fmt.Errorf("auth.lockout_duration: %v is not between 1s and 24h", d))
	}
	w, s := time.Duration(c.WarnInactiveAfter), time.Duration(c.SuspendInactiveAfter)
	if w < 0 || (w > 0 && w < time.Hour) {
		errs = append(errs, fmt.Errorf("auth.warn_inactive_after: %v is not 0 (never) or at least 1h", w))
	}
	if s < 0 || (s > 0 && s < time.Hour) {
		errs = append(errs, fmt.Errorf("auth.suspend_inactive_after: %v is not 0 (never) or at least 1h", s))
	}
	if w > 0 && s > 0 && w >= s {
		errs = append(errs, fmt.Errorf("auth.warn_inactive_after (%v) must come before auth.suspend_inactive_after (%v)", w, s))
	}
	for _, f := range c.ClientCAs {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, fmt.Errorf("auth.client_cas: an empty file name"))
		}
	}
	errs = append(errs, c.OIDC.validate()...)
	return errs
}

// Enabled says whether OAUTHBEARER and XOAUTH2 are offered.
func (c *OIDCConfig) Enabled() bool { return c.Issuer != "" }

func (c *OIDCConfig) validate() []error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	u, err := url.Parse(c.Issuer)
	switch {
	case err != nil || u.Host == "":
		errs = append(errs, fmt.Errorf("auth.oidc.issuer: %q is not a URL", c.Issuer))
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(net.JoinHostPort(u.Hostname(), "80")):
	default:
		errs = append(errs, fmt.Errorf("auth.oidc.issuer: %q must be an https URL (http only on a loopback address, for tests)", c.Issuer))
	}
	if c.Audience == "" {
		errs = append(errs, fmt.Errorf("auth.oidc.audience: set the client ID that tokens for this service carry in \"aud\""))
	}
	if c.Claim == "" {
		errs = append(errs, fmt.Errorf("auth.oidc.claim: name the claim that identifies the account (email, or the claim holding the national identifier)"))
	}
	switch c.ClaimIs {
	case "address", "national_id":
	default:
		errs = append(errs, fmt.Errorf("auth.oidc.claim_is: %q is not address or national_id", c.ClaimIs))
	}
	return errs
}
