package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/crypto/keyring"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/directory/ldap"
	"github.com/carepost/carepost/imap"
	"github.com/carepost/carepost/metrics"
	"github.com/carepost/carepost/queue"
	"github.com/carepost/carepost/smtp"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/cache"
	"github.com/carepost/carepost/storage/sqlite"
)

// Server is an open data directory and, once started, its listeners.
type Server struct {
	Config Config
	Logger *slog.Logger
	PKI    *crypto.PKI
	Store  *sqlite.DB
	// Audit is the store's audit trail, where the protocol adapters
	// append the events that change nothing (logins, reads); nil when
	// [audit] enabled is false. The sealer started by Start chains it.
	Audit    storage.AuditLog
	Dir      *directory.Directory
	Pipeline *delivery.Pipeline
	TLS      *tls.Config
	// Cache is the store as the protocol adapters read it (IMAP, later
	// the portal): one cache per server, so that they share it. Set by
	// Start.
	Cache *cache.Store
	// Metrics are this server's, on a registry of its own (several
	// servers may run in one process: tests), served on [listen] metrics.
	Metrics *metrics.Metrics

	// Queue delivers the outbound queue; set by Start.
	Queue *queue.Runner

	// events records the audit events that change nothing
	// (auditevents.go); authn checks passwords for every listener, with
	// one limiter (HTTPS too: history.go). Set by Start.
	events *audit.Recorder
	authn  *auth.Authenticator
	// acct is the guessing defence's lockouts and the inactivity job
	// (accounts.go). Set by Start.
	acct *accounts

	// Keyring holds the mailboxes' S/MIME certificates and keys and finds
	// other operators' recipients' (crypto/keyring): the smime.Keyring
	// of the gateway's transforms, and what [listen] https publishes.
	Keyring *keyring.Keyring

	mu        sync.Mutex
	anchors   func() (*x509.CertPool, error)
	dkim      []delivery.DKIMKey // loaded on first use (dkimKeys)
	runner    atomic.Pointer[queue.Runner]
	addrs     map[string]net.Addr
	listeners []net.Listener
	closers   []func() error
	serveLock *os.File // released last, once the store is closed
	keyFile   string   // the at-rest key's file
	stopAudit func()   // stops the audit sealer (server/audit.go), before the store closes
	wg        sync.WaitGroup
	// Readiness (health.go), guarded by mu: started once every listener
	// serves, closing from Close on, down names the listeners whose
	// serving stopped on an error, readyStore is the store the checks
	// write to (Close clears the Store field).
	started, closing bool
	down             []string
	readyStore       *sqlite.DB
	// dmp is the DMP vault's grid, loaded once (dmpapi.go).
	dmp dmpState
}

// Open validates cfg and opens its data directory: the at-rest key (created
// on first start), the development PKI (likewise), the database and the
// directory. The command-line tools use Open alone; `serve` then calls
// Start.
func Open(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.Data, err)
	}
	keyFile := cfg.AtRestKeyFile
	if keyFile == "" {
		if err := os.MkdirAll(filepath.Join(cfg.Data, "keys"), 0o700); err != nil {
			return nil, err
		}
		keyFile = filepath.Join(cfg.Data, "keys", "at-rest.key")
	}
	key, err := crypto.LoadOrCreateKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("at_rest_key_file: %w", err)
	}
	pki, err := crypto.OpenPKI(filepath.Join(cfg.Data, "pki"))
	if err != nil {
		return nil, err
	}
	var tlsConfig *tls.Config
	if cfg.TLS.Cert != "" {
		if tlsConfig, err = crypto.LoadServerTLS(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			return nil, err
		}
	} else {
		cert, err := pki.ServerCertificate(cfg.Hostname)
		if err != nil {
			return nil, fmt.Errorf("development PKI: %w", err)
		}
		tlsConfig = crypto.ServerTLSConfig(cert)
	}
	m := metrics.New()
	store, err := sqlite.Open(filepath.Join(cfg.Data, "store"), sqlite.Options{Key: key, Summarize: imap.Summarize,
		DeferFlagSync: cfg.Store.FlagSync != "immediate", ObserveFsync: m.ObserveFsync, Audit: cfg.Audit.Enabled})
	if err != nil {
		return nil, err
	}
	dcfg := directory.Config{Domains: cfg.Domains, PatientDomain: cfg.PatientDomain, Postmaster: cfg.Postmaster}
	if cfg.TLS.Cert == "" {
		// The development PKI's CA is a trust anchor of server-to-server
		// TLS, beside those of `carepost trust add-ca`: instances that
		// share it trust each other.
		dcfg.Anchors = append(dcfg.Anchors, pki.CACert())
	}
	dir := directory.New(store, dcfg)
	s := &Server{
		Config:  cfg,
		Logger:  logger,
		PKI:     pki,
		Store:   store,
		Dir:     dir,
		TLS:     tlsConfig,
		Metrics: m,
		addrs:   map[string]net.Addr{},
	}
	if cfg.Audit.Enabled {
		s.Audit = store
	}
	s.keyFile = keyFile
	s.Keyring = s.newKeyring()
	s.importMailboxFiles(context.Background())
	signer := &delivery.DKIMSigner{Local: dir.IsLocalDomain, Keys: s.dkimKeys}
	spoolDir := filepath.Join(cfg.Data, "spool")
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	crls, err := loadCRLs(cfg.SMIME.CRLs)
	if err != nil {
		return nil, err
	}
	// Inbound DKIM first (it signed what came over the wire), then the
	// S/MIME gateway (decrypt and verify for our mailboxes, sign and
	// encrypt for other operators), then the DKIM signature of what
	// leaves.
	transforms := []delivery.Transform{delivery.DKIMVerifier{AuthServID: cfg.Hostname, Keys: cfg.Trust.dkimKeys(), LookupTXT: cfg.Trust.dkimLookup()}}
	in, out := s.smimeTransforms(crls)
	if in != nil {
		transforms = append(transforms, in)
	}
	// The headers of a DMP package, read in clear (after the inbound
	// gateway decrypted it, before the outbound one encrypts).
	if h := s.dmpHeaders(); h != nil {
		transforms = append(transforms, h)
	}
	if out != nil {
		transforms = append(transforms, out)
	}
	transforms = append(transforms, signer)
	hooks := delivery.NewHookRunner(logger.With("component", "hooks"), 0)
	s.Pipeline = delivery.New(dir, store, delivery.Options{
		Hostname:       cfg.Hostname,
		MaxMessageSize: cfg.MaxMessageSize,
		Logger:         logger.With("component", "delivery"),
		Spool:          &delivery.Spooler{Dir: spoolDir},
		Summarize:      summarizer(imap.Limits{Depth: cfg.MaxMIMEDepth, Parts: cfg.MaxMIMEParts}),
		Hooks:          hooks,
		Observe:        m.ObserveDelivery,
		// Inbound DKIM (RFC 6376) recorded in Authentication-Results
		// (RFC 8601), fields claiming our name from outside removed; then
		// the signature of what leaves for another operator.
		Transforms: transforms,
		Outbound:   true,
		Queued: func() {
			if r := s.runner.Load(); r != nil {
				r.Kick()
			}
		},
	})
	if cfg.DMP.Enabled {
		h, err := s.dmpHook()
		if err != nil {
			s.Close()
			return nil, err
		}
		hooks.Add(h)
	}
	return s, nil
}

// DKIMKeys returns the keys that sign outbound mail, kept in <data>/dkim
// and created there on first use (crypto.LoadOrCreateDKIMKeys).
func (s *Server) DKIMKeys() ([]crypto.DKIMKey, error) {
	return crypto.LoadOrCreateDKIMKeys(filepath.Join(s.Config.Data, "dkim"), s.Config.DKIM.Selector)
}

// dkimKeys gives the signing transform its keys, loading (or creating)
// them at the first message that leaves for another operator.
func (s *Server) dkimKeys() ([]delivery.DKIMKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dkim != nil {
		return s.dkim, nil
	}
	keys, err := s.DKIMKeys()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		s.dkim = append(s.dkim, delivery.DKIMKey{Selector: k.Selector, Signer: k.Signer})
	}
	return s.dkim, nil
}

// SetTrustAnchors replaces where the outbound queue takes the CA
// certificates that a remote operator's server certificate must chain to.
// By default they are the directory's trust anchors (`carepost trust
// add-ca`, and the development CA when no operator certificate is
// configured), the same that the MX checks client certificates against. It
// may be called at any time: each new connection asks again.
func (s *Server) SetTrustAnchors(f func() (*x509.CertPool, error)) {
	s.mu.Lock()
	s.anchors = f
	s.mu.Unlock()
}

func (s *Server) trustAnchors() (*x509.CertPool, error) {
	s.mu.Lock()
	f := s.anchors
	s.mu.Unlock()
	if f != nil {
		return f()
	}
	return s.Dir.TrustAnchors(context.Background())
}

// startQueue starts the delivery of the outbound queue.
func (s *Server) startQueue() {
	cfg := s.Config
	r := queue.New(queue.Options{
		Store:    s.Store,
		Hostname: cfg.Hostname,
		// Start holds the data directory's lock (lockServe): no other
		// runner of this node is alive on this store.
		ReleaseAtStart: true,
		Routes:         cfg.Routes,
		TrustAnchors:   s.trustAnchors,
		ClientCertificate: func() (*tls.Certificate, error) {
			// Our operator certificate: the server's (the development
			// PKI's carries the clientAuth usage).
			if len(s.TLS.Certificates) == 0 {
				return nil, errors.New("no server certificate")
			}
			return &s.TLS.Certificates[0], nil
		},
		Notify:       s.Pipeline.Notify,
		RetryInitial: time.Duration(cfg.Queue.RetryInitial),
		RetryMax:     time.Duration(cfg.Queue.RetryMax),
		Lifetime:     time.Duration(cfg.Queue.Lifetime),
		Concurrency:  cfg.Queue.Concurrency,
		Logger:       s.Logger.With("component", "queue"),
		Audit:        s.events,
	})
	s.Queue = r
	s.runner.Store(r)
	r.Start()
	s.closers = append(s.closers, r.Close)
}

// Start opens every configured listener and serves them in the background.
func (s *Server) Start() error {
	cfg := s.Config
	lock, err := lockServe(cfg.Data)
	if err != nil {
		return err
	}
	s.serveLock = lock
	if err := s.startAudit(); err != nil {
		s.Close()
		return err
	}
	if w := atRestKeyWarning(cfg, s.keyFile); w != "" {
		s.Logger.Warn(w, "at_rest_key_file", s.keyFile, "data", cfg.Data)
	}
	if cfg.Postmaster == "" {
		s.Logger.Warn("no postmaster mailbox: mail for postmaster@ and abuse@ of the hosted domains is refused; set postmaster in the configuration to a mailbox of the directory (RFC 5321 §4.5.1 requires one)")
	} else if e, err := s.Dir.Lookup(context.Background(), cfg.Postmaster); err != nil || e.Status != directory.StatusActive {
		s.Logger.Warn("the postmaster mailbox is not an active mailbox of the directory: mail for postmaster@ and abuse@ will fail until it is", "postmaster", cfg.Postmaster)
	}
	s.warnIfStale(context.Background())
	s.startAuditEvents(s.Audit)
	if cfg.Trust.RefreshURL != "" {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.refreshTrust(ctx) }()
		s.closers = append(s.closers, func() error { cancel(); <-done; return nil })
	}
	// One watcher for every listener: the sessions of an account whose
	// credentials or status change end, whichever process changed them.
	sessions := auth.NewSessions(s.Dir, time.Duration(cfg.SessionCheckInterval), s.Logger.With("component", "sessions"))
	s.closers = append(s.closers, sessions.Close)
	// One limiter of password guesses for every listener, so that IMAP
	// and SMTP AUTH count the same failures (auth.MemoryLimiter: this
	// process only); its lockouts, and the inactive accounts, are
	// accounts.go's.
	aopts, err := s.authOptions(s.startAccounts())
	if err != nil {
		s.Close()
		return err
	}
	authn := auth.New(s.Dir, aopts)
	s.authn = authn
	userTLS := s.clientTLS() // IMAP and submission: client certificates asked for
	s.Cache = cache.New(s.Store, cache.Options{Logger: s.Logger.With("component", "cache")})
	s.Metrics.WatchCache(s.Cache)
	imapServer := imap.New(imap.Options{
		Store:          s.Cache,
		Accounts:       imapAccounts{authn, s.Store},
		OAuthScope:     cfg.Auth.OIDC.Scope,
		Appender:       s.Pipeline,
		TLSConfig:      userTLS,
		Logger:         s.Logger.With("component", "imap"),
		MaxMessageSize: cfg.MaxMessageSize,
		LiteralTimeout: time.Duration(cfg.Limits.TransferTimeout),
		Sessions:       sessions,
		Metrics:        s.Metrics.IMAP(),
		Audit:          s.events,
	})
	s.closers = append(s.closers, imapServer.Close, s.Cache.Stop)
	s.startQueue()
	newSMTP := func(name string, mode smtp.Mode, implicit bool) *smtp.Server {
		tc := s.TLS
		if mode == smtp.ModeSubmission {
			tc = userTLS
		}
		srv := smtp.New(s.Pipeline, s.Dir, smtp.Options{
			Mode:           mode,
			Hostname:       cfg.Hostname,
			TLSConfig:      tc,
			OAuthScope:     cfg.Auth.OIDC.Scope,
			ImplicitTLS:    implicit,
			MaxMessageSize: cfg.MaxMessageSize,
			Logger:         s.Logger.With("component", "smtp"),
			DataTimeout:    time.Duration(cfg.Limits.TransferTimeout),
			Authenticator:  authn,
			Sessions:       sessions,
			Metrics:        s.Metrics.SMTP(name),
			Audit:          s.events,
		})
		s.closers = append(s.closers, srv.Close)
		return srv
	}
	type listener struct {
		name, addr string
		tls        bool
		serve      func(net.Listener) error
		tlsConfig  *tls.Config // nil: s.TLS
	}
	var ls []listener
	if cfg.Listen.SMTP != "" {
		ls = append(ls, listener{"smtp", cfg.Listen.SMTP, false, newSMTP("smtp", smtp.ModeMX, false).Serve, nil})
	}
	if cfg.Listen.Submission != "" {
		ls = append(ls, listener{"submission", cfg.Listen.Submission, false, newSMTP("submission", smtp.ModeSubmission, false).Serve, nil})
	}
	if cfg.Listen.Submissions != "" {
		ls = append(ls, listener{"submissions", cfg.Listen.Submissions, true, newSMTP("submissions", smtp.ModeSubmission, true).Serve, userTLS})
	}
	if cfg.Listen.IMAP != "" {
		ls = append(ls, listener{"imap", cfg.Listen.IMAP, false, imapServer.Serve, nil})
	}
	if cfg.Listen.IMAPS != "" {
		ls = append(ls, listener{"imaps", cfg.Listen.IMAPS, true, imapServer.Serve, userTLS})
	}
	if cfg.Listen.HTTPS != "" {
		ls = append(ls, listener{"https", cfg.Listen.HTTPS, true, s.serveHTTPS(), s.httpsTLS()})
	}
	if cfg.Listen.LDAP != "" || cfg.Listen.LDAPS != "" {
		// The read-only LDAP view of the directory (address books):
		// plain on loopback with StartTLS, and LDAPS.
		view, err := s.ldapView(authn)
		if err != nil {
			s.Close()
			return err
		}
		s.closers = append(s.closers, view.Close)
		if cfg.Listen.LDAP != "" {
			ls = append(ls, listener{"ldap", cfg.Listen.LDAP, false, view.Serve, nil})
		}
		if cfg.Listen.LDAPS != "" {
			ls = append(ls, listener{"ldaps", cfg.Listen.LDAPS, true, view.Serve, nil})
		}
	}
	if cfg.Listen.Metrics != "" {
		ls = append(ls, listener{"metrics", cfg.Listen.Metrics, false, s.serveMetrics(), nil})
	}
	if cfg.Debug.Pprof != "" {
		ls = append(ls, listener{"pprof", cfg.Debug.Pprof, false, servePprof, nil})
	}
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.Close()
			return fmt.Errorf("listen.%s: cannot listen on %s: %w", l.name, l.addr, err)
		}
		s.mu.Lock()
		s.addrs[l.name] = ln.Addr()
		s.listeners = append(s.listeners, ln)
		s.mu.Unlock()
		ln = s.limitListener(ln, l.name, l.tls, l.tlsConfig)
		if l.name == "imap" || l.name == "imaps" {
			ln = imap.Listener(ln) // below TLS: see imap/cork.go
		}
		if l.tls {
			tc := l.tlsConfig
			if tc == nil {
				tc = s.TLS
			}
			ln = newHandshakeListener(ln, tc, time.Duration(cfg.Limits.HandshakeTimeout), s.Logger, l.name)
		}
		s.wg.Add(1)
		go func(l listener, ln net.Listener) {
			defer s.wg.Done()
			err := l.serve(ln)
			if err != nil && !errors.Is(err, net.ErrClosed) {
				s.Logger.Error("listener stopped", "listener", l.name, "err", err)
			}
			s.mu.Lock()
			if !s.closing {
				s.down = append(s.down, l.name)
			}
			s.mu.Unlock()
		}(l, ln)
		mode := tlsMode(l.tls)
		if l.name == "metrics" || l.name == "pprof" {
			mode = "none" // plain HTTP, loopback unless allowed (config.go)
		}
		s.Logger.Info("listening", "listener", l.name, "addr", ln.Addr().String(), "tls", mode)
	}
	s.logNotServed()
	s.mu.Lock()
	s.started, s.readyStore = true, s.Store
	s.mu.Unlock()
	return nil
}

// logNotServed says, once at start, which listeners are not served and
// why, so that an operator looking for a port in the log finds the
// reason instead of nothing.
func (s *Server) logNotServed() {
	l := s.Config.Listen
	for _, off := range []struct{ name, addr string }{{"smtp", l.SMTP}, {"submission", l.Submission},
		{"submissions", l.Submissions}, {"imap", l.IMAP}, {"imaps", l.IMAPS}, {"ldap", l.LDAP}, {"ldaps", l.LDAPS}, {"metrics", l.Metrics}} {
		if off.addr == "" {
			s.Logger.Info("not listening", "listener", off.name, "reason", "listen."+off.name+" is empty in the configuration")
		}
	}
	if l.HTTPS == "" {
		s.Logger.Info("not listening", "listener", "https", "reason", "listen.https is empty in the configuration: the mailboxes' S/MIME certificates are not published")
	}
}

// limitListener wraps a listener's raw TCP listener with the connection
// limits (server/limits.go); the metrics' and the profiler's listeners
// are left alone.
func (s *Server) limitListener(ln net.Listener, name string, implicitTLS bool, tlsConfig *tls.Config) net.Listener {
	var refuse func(net.Conn, string)
	switch name {
	case "https":
		refuse = httpsRefusal(tlsConfig)
	case "smtp", "submission", "submissions":
		refuse = smtpRefusal(s.Config.Hostname, s.TLS, implicitTLS)
	case "imap", "imaps":
		refuse = imapRefusal(s.TLS, implicitTLS)
	case "ldap", "ldaps":
		refuse = func(c net.Conn, sentence string) { refuseWith(c, s.TLS, implicitTLS, string(ldap.Refusal(sentence))) }
	default:
		return ln
	}
	lim := s.Config.Limits
	return newLimitListener(ln, listenerLimits{name: "listen." + name, perSource: lim.ConnectionsPerAddress,
		total: lim.Connections, handshake: time.Duration(lim.HandshakeTimeout), rate: lim.CommandsPerSecond, refuse: refuse}, s.Logger)
}

func tlsMode(implicit bool) string {
	if implicit {
		return "implicit"
	}
	return "starttls"
}

// Addr returns the address a listener is bound to ("smtp", "submission",
// "submissions", "imap", "imaps", "ldap", "ldaps", "metrics", "pprof"), or
// nil.
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[name]
}

// Close stops the listeners, waits for them, and closes the store.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closing = true
	closers := s.closers
	s.closers = nil
	s.mu.Unlock()
	var errs []error
	for _, c := range closers {
		if err := c(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.listeners = nil
	s.mu.Unlock()
	s.wg.Wait()
	// Every listener and the queue stopped: the last events are written
	// before the store closes.
	if err := s.stopAuditEvents(); err != nil {
		errs = append(errs, err)
	}
	if s.Pipeline != nil {
		s.Pipeline.Close() // the after-commit hooks under way, before the store
	}
	if s.stopAudit != nil {
		s.stopAudit() // seals what the listeners wrote, signs a last checkpoint
		s.stopAudit = nil
	}
	if s.Store != nil {
		errs = append(errs, s.Store.Close())
		s.Store = nil
	}
	if s.serveLock != nil {
		s.serveLock.Close()
		s.serveLock = nil
	}
	return errors.Join(errs...)
}

// imapAccounts adapts the authenticator to what the IMAP adapter asks.
type imapAccounts struct {
	*auth.Authenticator
	store storage.Store
}

func (a imapAccounts) Authenticate(ctx context.Context, username, password, source string) (*auth.Principal, error) {
	p, err := a.Plain(ctx, username, password, source)
	if err != nil {
		return nil, err
	}
	// The mail folders are made with the directory entry; make them here
	// too if that step failed, so that a valid user always has an INBOX.
	if _, err := a.store.GetMailbox(ctx, p.Address, "INBOX"); errors.Is(err, storage.ErrNoAccount) || errors.Is(err, storage.ErrNoMailbox) {
		if err := a.store.CreateAccount(ctx, p.Address); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// summarizer is the message path's summarizer: IMAP's ENVELOPE and
// BODYSTRUCTURE of every message, read as a stream, and a refusal for a
// structure past the limits.
func summarizer(lim imap.Limits) func(io.Reader) ([]byte, error) {
	return func(r io.Reader) ([]byte, error) {
		sum, err := imap.SummarizeReader(r, lim)
		var le *imap.StructureLimitError
		if errors.As(err, &le) {
			return nil, le.Refusal()
		}
		return sum, err
	}
}
