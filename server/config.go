// Package server assembles Carepost: it reads the configuration, opens the
// data directory (keys, development PKI, store, directory) and runs every
// listener. `carepost serve` is a thin shell around it, and tests boot the
// whole server in-process with Start on random loopback ports.
package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/crypto/keyring"
)

// Config is the whole configuration. The TOML keys mirror the command-line
// flags (SPEC §11); every field has a default (Defaults) so that
// `carepost serve` runs with no configuration at all, on loopback only.
type Config struct {
	// Data is the data directory: database, message bodies, keys, PKI.
	Data string `toml:"data"`
	// Hostname is the name of this server in greetings and in its TLS
	// certificate.
	Hostname string `toml:"hostname"`
	// Domains are the mail domains hosted here.
	Domains []string `toml:"domains"`
	// PatientDomain hosts patient mailboxes (<INS>@patient_domain).
	PatientDomain string `toml:"patient_domain"`
	// Postmaster is the mailbox (of a hosted domain, in the directory)
	// that receives the mail of postmaster@ and abuse@ of every hosted
	// domain (RFC 5321 §4.5.1, RFC 2142). Empty: such mail is refused
	// with a sentence, and serve warns at start.
	Postmaster string `toml:"postmaster"`
	// MaxMessageSize is the largest message accepted, in bytes.
	MaxMessageSize int64 `toml:"max_message_size"`
	// MaxMIMEDepth and MaxMIMEParts bound the MIME structure of a message
	// (levels of multipart and message/rfc822 nesting, and parts in all):
	// a message past them is refused (SMTP 554 5.6.0, APPEND NO), so that
	// no message can make parsing it cost more than its size.
	MaxMIMEDepth int `toml:"max_mime_depth"`
	MaxMIMEParts int `toml:"max_mime_parts"`
	// SessionCheckInterval is how often the server reads the status and
	// credential epoch of the accounts with open IMAP and SMTP sessions,
	// to end those of an account suspended, or whose password was changed
	// or application password revoked, by any process (auth.Sessions).
	SessionCheckInterval Duration `toml:"session_check_interval"`

	Listen ListenConfig `toml:"listen"`
	Limits LimitsConfig `toml:"limits"`
	TLS    TLSConfig    `toml:"tls"`
	Log    LogConfig    `toml:"log"`
	Store  StoreConfig  `toml:"storage"`
	Debug  DebugConfig  `toml:"debug"`
	Queue  QueueConfig  `toml:"queue"`
	DKIM   DKIMConfig   `toml:"dkim"`
	// Routes sends the mail of a domain of the trust space to a fixed
	// "host:port" instead of its MX servers (a peer reached over a private
	// link; two operators on one machine; tests on loopback).
	Routes map[string]string `toml:"routes"`
	Trust  TrustConfig       `toml:"trust"`
	SMIME  SMIMEConfig       `toml:"smime"`
	Audit  AuditConfig       `toml:"audit"`
	Auth   AuthConfig        `toml:"auth"`
	LDAP   LDAPConfig        `toml:"ldap"`
	DMP    DMPConfig         `toml:"dmp"`

	// AtRestKeyFile holds the 32-byte key that encrypts message bodies
	// (raw or 64 hex characters). Default: <data>/keys/at-rest.key, created
	// on first start.
	AtRestKeyFile string `toml:"at_rest_key_file"`
}

// ListenConfig gives the address of each listener; "" disables one.
type ListenConfig struct {
	SMTP        string `toml:"smtp"`        // MX, other operators (25)
	Submission  string `toml:"submission"`  // STARTTLS (587)
	Submissions string `toml:"submissions"` // implicit TLS (465)
	IMAP        string `toml:"imap"`        // STARTTLS (143)
	IMAPS       string `toml:"imaps"`       // implicit TLS (993)
	// HTTPS serves, over TLS 1.2 or later with the server certificate,
	// the publication of the mailboxes' S/MIME certificates
	// (/.well-known/carepost/smime/ADDRESS, crypto/keyring), the settings
	// of mail clients (autoconfig.go); later the portal and its APIs.
	HTTPS string `toml:"https"`
	// Metrics serves Prometheus metrics (/metrics) and the health
	// endpoints (/healthz, /readyz) over plain HTTP, without
	// authentication; "" (the default) disables it. It must be a loopback
	// address unless MetricsAllowRemote is set: the metrics carry no mail
	// and no address, but they show the traffic and the login failures
	// of the service, and anyone who reaches the port can read them.
	Metrics string `toml:"metrics"`
	// MetricsAllowRemote lets Metrics listen on a non-loopback address
	// (a Prometheus server on another host): keep that address on a
	// management network or behind a firewall.
	MetricsAllowRemote bool `toml:"metrics_allow_remote"`
	// LDAP and LDAPS serve the read-only LDAP view of the directory
	// ([ldap], directory/ldap): plain LDAP only on a loopback address
	// (StartTLS offered), LDAPS with implicit TLS.
	LDAP  string `toml:"ldap"`
	LDAPS string `toml:"ldaps"`
}

// LimitsConfig bounds what clients may hold and how fast they may go, so
// that no client, and no flood from one address, takes the service away
// from the others. The connection limits apply to each listener on its
// own, below TLS (server/limits.go); past one, a new connection gets
// "421 4.7.0" (SMTP) or "* BYE" (IMAP) with a sentence and is closed, and
// the sessions already open go on. Refusals are logged once per address
// and per minute, with how many were refused since the last line.
type LimitsConfig struct {
	// ConnectionsPerAddress: open connections from one address (IPv6: one
	// /64) on one listener. Behind a NAT a whole establishment shares an
	// address, and a mail client holds several IMAP connections: raise it
	// there.
	ConnectionsPerAddress int `toml:"connections_per_address"`
	// Connections: open connections on one listener, all addresses
	// together. Keep the sum over the listeners under the process's limit
	// of open files (LimitNOFILE in deploy/carepost.service).
	Connections int `toml:"connections"`
	// HandshakeTimeout bounds the TLS handshake of the implicit-TLS
	// listeners (a client that never sends its ClientHello is closed)
	// and whatever precedes the greeting; the protocol libraries bound
	// the greeting's write and each command afterwards.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// TransferTimeout bounds a whole SMTP DATA or BDAT transfer and a
	// whole IMAP APPEND literal, beside the timeout on each read.
	TransferTimeout Duration `toml:"transfer_timeout"`
	// CommandsPerSecond: past this rate (with a burst of two seconds'
	// worth), a session's commands wait their turn; 0 disables it. The
	// default, 500, is above what a busy legitimate session sends (practice
	// software submitting a batch with MAIL, RCPT, DATA sends some 400 a
	// second on this machine kind; imaptest's clients about 250): at 50,
	// durable submission with 16 clients fell from 464 to 288 msg/s.
	CommandsPerSecond int `toml:"commands_per_second"`
	// LoginDelayMax bounds the delay a failed login adds to the next
	// attempts on the same account or from the same address (the delay
	// doubles from one second at each failure after five).
	LoginDelayMax Duration `toml:"login_delay_max"`
}

// TLSConfig points to an operator's certificate. When both are empty the
// server certificate comes from the development PKI in <data>/pki.
type TLSConfig struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// StoreConfig tunes the mail store.
type StoreConfig struct {
	// FlagSync says when a change of flags or an expunge reaches the
	// disk. "deferred" (the default): it is written at once, so that
	// every session sees it and a crash of Carepost loses none, and is
	// fsynced with the next message stored or within a second; a power
	// cut can undo that last second of flag changes and expunges (as
	// Dovecot's default fsync_mode=optimized does), never a message.
	// "immediate": fsynced before the reply, like every message is.
	FlagSync string `toml:"flag_sync"`
}

// QueueConfig tunes the outbound queue: mail for other operators of the
// trust space (queue/).
type QueueConfig struct {
	// RetryInitial is the wait after a first failed attempt, doubled at
	// each attempt up to RetryMax; Lifetime is how long a message is
	// tried before its sender gets a delivery status notification (RFC
	// 5321 §4.5.4.1 advises 4 to 5 days).
	RetryInitial Duration `toml:"retry_initial"`
	RetryMax     Duration `toml:"retry_max"`
	Lifetime     Duration `toml:"lifetime"`
	// Concurrency is how many messages are delivered at once.
	Concurrency int `toml:"concurrency"`
}

// DKIMConfig sets the signing of outbound mail (RFC 6376).
type DKIMConfig struct {
	// Selector names the keys in <data>/dkim: <selector>-ed25519 and
	// <selector>-rsa, created on first start; `carepost pki dkim` prints
	// their DNS records.
	Selector string `toml:"selector"`
}

// LogConfig sets the logs (log/slog on standard error).
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// DebugConfig holds tools for operators investigating performance.
type DebugConfig struct {
	// Pprof, when set, serves Go's profiler (net/http/pprof) on this
	// address, e.g. "127.0.0.1:6060". Keep it on loopback: profiles show
	// memory contents.
	Pprof string `toml:"pprof"`
}

// Defaults returns the embedded default configuration (SPEC §11).
func Defaults() Config {
	return Config{
		Data:                 "./carepost-data",
		Hostname:             "mail.carepost.test",
		Domains:              []string{"carepost.test", "patient.carepost.test"},
		PatientDomain:        "patient.carepost.test",
		MaxMessageSize:       25 << 20,
		MaxMIMEDepth:         64,
		MaxMIMEParts:         10000,
		SessionCheckInterval: Duration(auth.DefaultCheckInterval),
		Listen: ListenConfig{
			SMTP:        "127.0.0.1:2525",
			Submission:  "127.0.0.1:5587",
			Submissions: "127.0.0.1:4465",
			IMAP:        "127.0.0.1:1143",
			IMAPS:       "127.0.0.1:9993",
			HTTPS:       "127.0.0.1:8443",
			LDAP:        "127.0.0.1:3389",
			LDAPS:       "127.0.0.1:6636",
		},
		Limits: LimitsConfig{
			ConnectionsPerAddress: 100,
			Connections:           3000,
			HandshakeTimeout:      Duration(20 * time.Second),
			TransferTimeout:       Duration(30 * time.Minute),
			CommandsPerSecond:     500,
			LoginDelayMax:         Duration(15 * time.Second),
		},
		Log:   LogConfig{Level: "info", Format: "text"},
		Store: StoreConfig{FlagSync: "deferred"},
		Queue: QueueConfig{
			RetryInitial: Duration(time.Minute),
			RetryMax:     Duration(2 * time.Hour),
			Lifetime:     Duration(5 * 24 * time.Hour),
			Concurrency:  8,
		},
		DKIM:  DKIMConfig{Selector: "carepost"},
		Trust: TrustConfig{RefreshInterval: Duration(24 * time.Hour), StaleAfter: Duration(72 * time.Hour), DKIMLookup: "dns"},
		Audit: AuditConfig{Enabled: true, CheckpointEvents: 1000, CheckpointInterval: Duration(10 * time.Minute),
			Retention: Duration(365 * 24 * time.Hour), SealInterval: Duration(time.Second)},
		Auth:  defaultAuth(),
		LDAP:  defaultLDAP(),
		DMP:   defaultDMP(),
		SMIME: SMIMEConfig{Gateway: true, AutoIssue: true, CacheTTL: Duration(keyring.DefaultCacheTTL), FetchTimeout: Duration(keyring.DefaultFetchTimeout)},
	}
}

// Load reads a TOML file over the defaults. Unknown keys are refused, so a
// typo does not silently fall back to a default.
func Load(path string) (Config, error) {
	cfg := Defaults()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		keys := make([]string, len(undec))
		for i, k := range undec {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("config %s: unknown key(s) %s (see deploy/carepost.toml for the valid keys)", path, strings.Join(keys, ", "))
	}
	return cfg, nil
}

// Validate checks the configuration and says which key to fix.
func (c *Config) Validate() error {
	var errs []error
	if c.Data == "" {
		errs = append(errs, errors.New("data: the data directory must be set"))
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " /@") {
		errs = append(errs, fmt.Errorf("hostname: %q is not a host name", c.Hostname))
	}
	if len(c.Domains) == 0 {
		errs = append(errs, errors.New("domains: list at least one mail domain hosted here"))
	}
	for i, d := range c.Domains {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" || !strings.Contains(d, ".") || strings.ContainsAny(d, " /@") {
			errs = append(errs, fmt.Errorf("domains: %q is not a domain name", c.Domains[i]))
		}
		c.Domains[i] = d
	}
	c.PatientDomain = strings.ToLower(strings.TrimSpace(c.PatientDomain))
	if c.PatientDomain != "" {
		found := false
		for _, d := range c.Domains {
			found = found || d == c.PatientDomain
		}
		if !found {
			errs = append(errs, fmt.Errorf("patient_domain: %q must also be listed in domains", c.PatientDomain))
		}
	}
	if c.Postmaster != "" {
		c.Postmaster = strings.ToLower(strings.TrimSpace(c.Postmaster))
		at := strings.LastIndexByte(c.Postmaster, '@')
		hosted := false
		for _, d := range c.Domains {
			hosted = hosted || (at > 0 && c.Postmaster[at+1:] == d)
		}
		if !hosted {
			errs = append(errs, fmt.Errorf("postmaster: %q must be an address of one of the hosted domains", c.Postmaster))
		}
	}
	if c.MaxMessageSize < 1024 {
		errs = append(errs, fmt.Errorf("max_message_size: %d bytes is too small", c.MaxMessageSize))
	}
	if c.MaxMIMEDepth < 2 || c.MaxMIMEDepth > 100 {
		errs = append(errs, fmt.Errorf("max_mime_depth: %d is not between 2 and 100 levels", c.MaxMIMEDepth))
	}
	if c.MaxMIMEParts < 2 || c.MaxMIMEParts > 100000 {
		errs = append(errs, fmt.Errorf("max_mime_parts: %d is not between 2 and 100000 parts", c.MaxMIMEParts))
	}
	if d := time.Duration(c.SessionCheckInterval); d < 100*time.Millisecond || d > time.Minute {
		errs = append(errs, fmt.Errorf("session_check_interval: %v is not between 100ms and 1m", d))
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("tls: set both cert and key, or neither (then the development PKI is used)"))
	}
	for name, addr := range map[string]string{"listen.smtp": c.Listen.SMTP, "listen.submission": c.Listen.Submission,
		"listen.submissions": c.Listen.Submissions, "listen.imap": c.Listen.IMAP, "listen.imaps": c.Listen.IMAPS, "listen.https": c.Listen.HTTPS} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not HOST:PORT", name, addr))
		}
	}
	if c.Listen.Metrics != "" {
		if _, _, err := net.SplitHostPort(c.Listen.Metrics); err != nil {
			errs = append(errs, fmt.Errorf("listen.metrics: %q is not HOST:PORT", c.Listen.Metrics))
		} else if !c.Listen.MetricsAllowRemote && !isLoopback(c.Listen.Metrics) {
			errs = append(errs, fmt.Errorf("listen.metrics: %q is not a loopback address: the metrics have no authentication; use 127.0.0.1:PORT, or set listen.metrics_allow_remote = true to serve them on this address", c.Listen.Metrics))
		}
	}
	errs = append(errs, c.Limits.validate()...)
	errs = append(errs, c.Queue.validate()...)
	if c.DKIM.Selector == "" || strings.Trim(strings.ToLower(c.DKIM.Selector), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		errs = append(errs, fmt.Errorf("dkim.selector: %q is not a selector (letters, digits and dashes)", c.DKIM.Selector))
	}
	routes := make(map[string]string, len(c.Routes))
	for d, addr := range c.Routes {
		dl := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if dl == "" || !strings.Contains(dl, ".") || strings.ContainsAny(dl, " /@") {
			errs = append(errs, fmt.Errorf("routes: %q is not a domain name", d))
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("routes: the route of %s, %q, is not HOST:PORT", d, addr))
		}
		routes[dl] = addr
	}
	c.Routes = routes
	errs = append(errs, c.Trust.validate()...)
	errs = append(errs, c.SMIME.validate()...)
	errs = append(errs, c.Audit.validate()...)
	errs = append(errs, c.Auth.validate()...)
	errs = append(errs, c.validateLDAP()...)
	errs = append(errs, c.DMP.validate()...)
	errs = append(errs, c.DMP.validateGrid()...) // dmpapi.go
	if c.Debug.Pprof != "" {
		if _, _, err := net.SplitHostPort(c.Debug.Pprof); err != nil {
			errs = append(errs, fmt.Errorf("debug.pprof: %q is not HOST:PORT", c.Debug.Pprof))
		} else if !isLoopback(c.Debug.Pprof) {
			errs = append(errs, fmt.Errorf("debug.pprof: %q must be a loopback address (profiles show memory contents)", c.Debug.Pprof))
		}
	}
	switch c.Store.FlagSync {
	case "", "deferred", "immediate":
	default:
		errs = append(errs, fmt.Errorf("storage.flag_sync: %q is not deferred or immediate", c.Store.FlagSync))
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	return errors.Join(errs...)
}

func (q QueueConfig) validate() []error {
	var errs []error
	if d := time.Duration(q.RetryInitial); d < 10*time.Millisecond || d > 24*time.Hour {
		errs = append(errs, fmt.Errorf("queue.retry_initial: %v is not between 10ms and 24h", d))
	}
	if d := time.Duration(q.RetryMax); d < time.Duration(q.RetryInitial) || d > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("queue.retry_max: %v is not between queue.retry_initial (%v) and 168h", d, time.Duration(q.RetryInitial)))
	}
	if d := time.Duration(q.Lifetime); d < time.Duration(q.RetryInitial) || d > 30*24*time.Hour {
		errs = append(errs, fmt.Errorf("queue.lifetime: %v is not between queue.retry_initial (%v) and 720h", d, time.Duration(q.RetryInitial)))
	}
	if q.Concurrency < 1 || q.Concurrency > 1000 {
		errs = append(errs, fmt.Errorf("queue.concurrency: %d is not between 1 and 1000", q.Concurrency))
	}
	return errs
}

func (l LimitsConfig) validate() []error {
	var errs []error
	if l.Connections < 1 || l.Connections > 1_000_000 {
		errs = append(errs, fmt.Errorf("limits.connections: %d is not between 1 and 1000000 connections per listener", l.Connections))
	}
	if l.ConnectionsPerAddress < 1 || l.ConnectionsPerAddress > l.Connections {
		errs = append(errs, fmt.Errorf("limits.connections_per_address: %d is not between 1 and limits.connections (%d)", l.ConnectionsPerAddress, l.Connections))
	}
	if d := time.Duration(l.HandshakeTimeout); d < time.Second || d > 5*time.Minute {
		errs = append(errs, fmt.Errorf("limits.handshake_timeout: %v is not between 1s and 5m", d))
	}
	if d := time.Duration(l.TransferTimeout); d < time.Second || d > 24*time.Hour {
		errs = append(errs, fmt.Errorf("limits.transfer_timeout: %v is not between 1s and 24h", d))
	}
	if l.CommandsPerSecond < 0 || l.CommandsPerSecond > 100_000 {
		errs = append(errs, fmt.Errorf("limits.commands_per_second: %d is not between 0 (no limit) and 100000", l.CommandsPerSecond))
	}
	if d := time.Duration(l.LoginDelayMax); d < time.Second || d > 10*time.Minute {
		errs = append(errs, fmt.Errorf("limits.login_delay_max: %v is not between 1s and 10m", d))
	}
	return errs
}

// Duration is a time.Duration written in the configuration as "1s",
// "500ms", "2m".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler (TOML strings).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"1s\" or \"500ms\"", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
