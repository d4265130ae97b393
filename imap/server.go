// Package imap is Carepost's IMAP4rev1/IMAP4rev2 service: an adapter from
// go-imap v2's imapserver (pinned at v2.0.0-beta.8, kept behind this
// package so that a newer release or a fork is one go.mod line) to the
// mail store (storage.Store) and the directory (Accounts). It holds no SQL
// and no file paths.
//
// Layout, as go-imap's reference backend: server.go (listener, options,
// capabilities), session.go (one connection: login, names, panic guard),
// mailboxes.go (LIST, CREATE, DELETE, RENAME, SUBSCRIBE, STATUS),
// tracker.go (each session's view of a selected mailbox: queued updates,
// sequence numbers, \Recent), selected.go (SELECT, polls, IDLE),
// fetch.go, search.go (searchindex.go: what SEARCH asks of the header
// index), update.go (STORE, COPY, MOVE, EXPUNGE, APPEND). The state of a
// selected mailbox (UIDs, flags, dates, sizes), the header index and the
// digests are storage's: storage/cache, shared with the portal.
//
// Implementation notes:
//   - Sequence numbers: every mailbox selected in this process has one
//     shared cache.Mailbox holding its UIDs in order (the server's view),
//     kept by the store's hints and Changes; each session has a queue of
//     the updates it has not yet been told of, through which its sequence
//     numbers are translated (RFC 9051 §7.5.1: EXPUNGE is only sent when
//     the client can accept it). go-imap's MailboxTracker is not used: it cannot do
//     \Recent per session, nor FLAGS before the FETCH that uses a new
//     keyword, nor a STORE's own FETCH while an EXPUNGE waits.
//   - Shared mailboxes: a member of an organisational mailbox sees it under
//     "Shared/<address>/" (RFC 2342 other users' namespace). What the
//     session may do there (and anywhere) is asked of auth.Rights through
//     session.allow, for every command; a refusal is NO [NOPERM] with
//     auth's sentence. No rule of its own is kept here.
package imap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/limit"
	"github.com/carepost/carepost/metrics"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/cache"
)

// Accounts is what the IMAP service asks the directory, through package
// auth (auth.Authenticator). What a principal may do is asked of
// auth.Rights, never decided here.
type Accounts interface {
	// Authenticate checks a login (LOGIN or AUTHENTICATE PLAIN) by a
	// client at source ("ip:port"); err is a *refusal.Error of kind
	// refusal.AuthFailed on failure.
	Authenticate(ctx context.Context, username, password, source string) (*auth.Principal, error)
	// Refresh returns p with its delegations (the shared mailboxes it is
	// a member of, and its role in each) read again; p is not changed.
	Refresh(ctx context.Context, p *auth.Principal) (*auth.Principal, error)
}

// ExternalAccounts is implemented by Accounts that also log in with TLS
// client certificates and access tokens (auth.Authenticator): SASL
// EXTERNAL, OAUTHBEARER and XOAUTH2 are offered when they are.
type ExternalAccounts interface {
	External(ctx context.Context, chain []*x509.Certificate, authzid, source string) (*auth.Principal, error)
	Bearer(ctx context.Context, token, authzid, source string) (*auth.Principal, error)
	HasClientCAs() bool
	HasTokens() bool
}

// Options configure the service.
type Options struct {
	// Store is the mail store. A *cache.Store (one the server shares with
	// the portal) is read through as it is; any other store is wrapped in
	// a cache of the service's own, stopped by Close.
	Store    storage.Store
	Accounts Accounts
	// OAuthScope is the scope named in the failure status of OAUTHBEARER
	// and XOAUTH2 (RFC 7628 §3.2.2).
	OAuthScope string
	// Appender stores APPENDed messages through the message path (the
	// one way into the store: delivery.Pipeline.Append). Nil refuses
	// APPEND.
	Appender       Appender
	TLSConfig      *tls.Config
	Logger         *slog.Logger
	MaxMessageSize int64 // APPEND limit
	// LiteralTimeout bounds a whole APPEND literal (imap/limits.go).
	LiteralTimeout time.Duration
	// ResyncInterval is how often every selected mailbox pulls its
	// changes from the store whatever the store's hints said, for the
	// cache New makes (cache.Options.ResyncInterval); 0 means
	// cache.DefaultResyncInterval.
	ResyncInterval time.Duration
	// Sessions, when set, ends a session with BYE when its account is
	// suspended or its credentials change (revoke.go).
	Sessions *auth.Sessions
	// Metrics counts sessions, IDLE clients and logins for the operator
	// (the server's metrics.IMAP); nil counts nothing.
	Metrics *metrics.IMAP
	// Audit records the events that change nothing (connections,
	// logins, reads of messages: imap/audit.go); nil records none.
	Audit *audit.Recorder
}

// Appender is the message path's entry for APPEND (delivery.Pipeline).
type Appender interface {
	Append(ctx context.Context, req delivery.AppendRequest) (storage.Appended, error)
}

// Server serves IMAP on any number of listeners.
type Server struct {
	opts Options
	log  *slog.Logger
	imap *imapserver.Server

	mu     sync.Mutex
	closed bool // guarded by mu
	// cache is opts.Store: the state of every selected mailbox, the
	// header indexes and the digests are storage's (storage/cache), shared
	// by the sessions; ownCache says New made it.
	cache    *cache.Store
	ownCache bool
	// sessions counts the sessions not yet ended, for Close to wait on.
	sessions sync.WaitGroup
	// listeners are those Serve was given, and serving counts the Serve
	// calls under way: Close closes the listeners and waits for Serve to
	// return before it closes the library's server, whose own Serve adds
	// to a WaitGroup after registering the listener, a race with its Close
	// the race detector reports.
	listeners map[net.Listener]struct{} // guarded by mu
	serving   sync.WaitGroup
	// base is the parent of every command's context: Close cancels it, so
	// that storage calls under way give up instead of holding Close.
	base   context.Context
	cancel context.CancelFunc
}

// Capabilities advertised. Only what is implemented end to end; tested in
// server_test.go. IMAP4rev2 implies NAMESPACE, UIDPLUS, ESEARCH,
// LIST-EXTENDED, LIST-STATUS, MOVE, STATUS=SIZE for go-imap.
var capabilities = imap.CapSet{
	imap.CapIMAP4rev1:    {},
	imap.CapIMAP4rev2:    {},
	imap.CapIdle:         {},
	imap.CapUIDPlus:      {},
	imap.CapMove:         {},
	imap.CapNamespace:    {},
	imap.CapUnselect:     {},
	imap.CapSpecialUse:   {},
	imap.CapEnable:       {},
	imap.CapLiteralPlus:  {},
	imap.CapBinary:       {},
	imap.CapStatusSize:   {},
	imap.CapChildren:     {},
	imap.CapESearch:      {},
	imap.CapSearchRes:    {},
	imap.CapListStatus:   {},
	imap.CapListExtended: {},
}

// New returns the IMAP service.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 25 << 20
	}
	if opts.LiteralTimeout <= 0 {
		opts.LiteralTimeout = DefaultLiteralTimeout
	}
	c, shared := opts.Store.(*cache.Store)
	if !shared {
		c = cache.New(opts.Store, cache.Options{Logger: opts.Logger, ResyncInterval: opts.ResyncInterval})
		opts.Store = c
	}
	s := &Server{opts: opts, log: opts.Logger, cache: c, ownCache: !shared}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.imap = imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.closed {
				return nil, nil, &imap.Error{Type: imap.StatusResponseTypeBye, Text: "The server is shutting down"}
			}
			s.sessions.Add(1)
			s.opts.Metrics.SessionOpened()
			sess := newSession(s, c)
			sess.guardInput() // imap/syntax.go
			sess.auditConnect()
			return sess, nil, nil
		},
		Caps:         capabilities,
		Logger:       slogPrintf{s.log},
		TLSConfig:    opts.TLSConfig,
		InsecureAuth: false,
	})
	return s
}

// Serve accepts connections on ln: a tls.Listener for IMAPS, or a plain
// listener where STARTTLS is offered and required before LOGIN.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	s.serving.Add(1)
	s.mu.Unlock()
	defer s.serving.Done()
	return s.imap.Serve(ln)
}

// Close stops every listener and connection, and returns once every
// session has ended (the store may be closed right after). Storage calls
// under way are cancelled.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.serving.Wait()
	err := s.imap.Close()
	s.cancel()
	if s.ownCache {
		s.cache.Stop()
	}
	s.sessions.Wait()
	return err
}

// slogPrintf routes the library's own messages to the structured log.
type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(format string, args ...any) {
	switch {
	case closedConn(args):
		// A connection the server closed (a session ended by
		// revoke.go, or Close) while the library was reading: expected.
		l.log.Debug(fmt.Sprintf(format, args...))
	case limit.ClientGone(args):
		// The client went away in the middle of a command or the
		// greeting, or stayed silent past the library's timeout: the
		// client's doing, worth one line, not a warning.
		l.log.Info("imap: client connection ended", "detail", fmt.Sprintf(format, args...))
	default:
		l.log.Warn(fmt.Sprintf(format, args...))
	}
}
