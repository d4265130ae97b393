// Package smtp adapts go-smtp to Carepost: message submission (587 with
// STARTTLS, 465 with implicit TLS; RFC 6409, RFC 8314) for professionals and
// their software, and MX (25) for the other operators of the trust space.
//
// It holds no policy of its own. Each SMTP step is handed to the message
// pipeline (delivery.Transaction: MAIL → Sender, RCPT → AddRecipient, DATA →
// Deliver) and every refusal comes back as a typed error that one function,
// reply in errors.go, turns into the SMTP reply: code, enhanced status code
// (RFC 3463) and a sentence for the person who sent the message. go-smtp is
// never handed a plain error, since it would send err.Error() to the peer.
//
// Implementation notes:
//   - "250" after DATA means durable: Data returns only after
//     Transaction.Deliver, which returns after the store's commit.
//   - AUTH is offered only over TLS (go-smtp's AllowInsecureAuth is false,
//     so the capability is not even listed before STARTTLS; RFC 4954 §4).
//     MAIL before AUTH on submission gets 530 5.7.0 (RFC 4954 §6).
//   - MX requires STARTTLS before MAIL (RFC 3207 §4 allows it; SPEC §3 makes
//     TLS mandatory for health data), and a client certificate of an
//     operator of the trust space, checked at MAIL (directory.
//     VerifyOperator): without one no transaction starts, so every RCPT
//     of such a session gets the same 503, whether the address exists or
//     not, is suspended or not.
//   - Limits: go-smtp bounds the line length (2000 bytes, so an endless
//     header line ends the session with an error), the number of
//     recipients and the message size (SIZE, RFC 1870); the pipeline counts
//     the size again on the stream. Connection counts and rates are limited
//     by the listener wrapper below TLS (server/), not here.
//   - SMTPUTF8 is not advertised: the directory accepts only ASCII
//     addresses (international domains in their xn-- form), so offering it
//     would promise something the next step refuses.
package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/limit"
	"github.com/carepost/carepost/metrics"
)

// Mode says which service a listener provides.
type Mode int

const (
	// ModeSubmission: users' clients and software; AUTH PLAIN over TLS is
	// required before MAIL.
	ModeSubmission Mode = iota + 1
	// ModeMX: other operators of the trust space; no AUTH, STARTTLS
	// required, only our own mailboxes as recipients.
	ModeMX
)

func (m Mode) String() string {
	switch m {
	case ModeSubmission:
		return "submission"
	case ModeMX:
		return "mx"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Options configures a Server. Zero values get the defaults below.
type Options struct {
	Mode     Mode
	Hostname string // announced in the greeting
	// TLSConfig is required: STARTTLS (or the handshake of implicit TLS)
	// uses it. It should come from crypto.ServerTLSConfig.
	TLSConfig *tls.Config
	// ImplicitTLS is set when Serve's listener is already a TLS listener
	// (port 465, RFC 8314 §3.3).
	ImplicitTLS bool
	// MaxMessageSize is advertised with SIZE; zero means the pipeline's.
	MaxMessageSize int64
	Logger         *slog.Logger
	// ReadTimeout bounds the wait for a command, and for each read of the
	// message during DATA (so a slow but steady upload is not cut off).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxRecipients bounds RCPT per message (RFC 5321 §4.5.3.1.8 asks for
	// at least 100).
	MaxRecipients int
	// DataTimeout bounds a whole DATA or BDAT transfer, beside ReadTimeout
	// on each read; past it the connection is closed with 421 4.4.2.
	DataTimeout time.Duration
	// Authenticator checks AUTH PLAIN; nil makes one over the directory
	// with a limiter of its own. The server passes the one it gives IMAP,
	// so that both count the same failed logins (auth.Limiter).
	Authenticator *auth.Authenticator
	// OAuthScope is the scope named in the failure status of OAUTHBEARER
	// and XOAUTH2 (RFC 7628 §3.2.2).
	OAuthScope string
	// Sessions, when set, ends an authenticated session with 421 when its
	// account is suspended or its credentials change (revoke.go).
	Sessions *auth.Sessions
	// Metrics counts sessions, messages, refusals and logins for the
	// operator (the server's metrics.SMTP of this listener); nil counts
	// nothing.
	Metrics *metrics.SMTP
	// Audit records the session's events that change nothing
	// (connections, logins, refusals: smtp/audit.go); nil records none.
	Audit *audit.Recorder
}

// Defaults, after RFC 5321 §4.5.3.2 (the server waits 5 minutes for a
// command).
const (
	DefaultReadTimeout   = 5 * time.Minute
	DefaultWriteTimeout  = time.Minute
	DefaultMaxRecipients = 100
)

// Server is one SMTP listener's service.
type Server struct {
	gs   *gosmtp.Server
	p    *delivery.Pipeline
	dir  *directory.Directory
	auth *auth.Authenticator
	opts Options
	log  *slog.Logger

	// ctx is the parent of every session's context; Close cancels it so
	// that work in progress (a store commit) stops with the server.
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a Server handing messages to p and authenticating with dir.
func New(p *delivery.Pipeline, dir *directory.Directory, opts Options) *Server {
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = p.MaxMessageSize()
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = DefaultMaxRecipients
	}
	if opts.DataTimeout <= 0 {
		opts.DataTimeout = DefaultDataTimeout
	}
	if opts.Authenticator == nil {
		opts.Authenticator = auth.NewAuthenticator(dir)
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	lg = lg.With("service", "smtp-"+opts.Mode.String())
	s := &Server{p: p, dir: dir, auth: opts.Authenticator, opts: opts, log: lg}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	gs := gosmtp.NewServer(backend{s})
	gs.Domain = opts.Hostname
	gs.ReadTimeout = opts.ReadTimeout
	gs.WriteTimeout = opts.WriteTimeout
	gs.MaxRecipients = opts.MaxRecipients
	// go-smtp (v0.25.1 and its master, data.go) refuses a DATA stream once
	// MaxMessageBytes are read, before it looks for the end marker, so it
	// accepts at most MaxMessageBytes-1 bytes while advertising SIZE
	// MaxMessageBytes (RFC 1870 §4: the advertised size is accepted). It
	// is given one byte more than the limit: a message of exactly
	// MaxMessageSize is accepted, and EHLO advertises SIZE one over it.
	// The limit itself is enforced by the message path, which counts the
	// bytes (552 5.3.4 with a sentence), and by Mail for a declared SIZE=.
	// Advertising one byte more was chosen over a fork of the library for
	// a one-line fix (tested by TestExactSize).
	gs.MaxMessageBytes = opts.MaxMessageSize + 1
	gs.AllowInsecureAuth = false
	gs.ErrorLog = errorLog{lg}
	if opts.TLSConfig != nil {
		cfg := opts.TLSConfig.Clone()
		if cfg.MinVersion < tls.VersionTLS12 {
			cfg.MinVersion = tls.VersionTLS12 // SPEC §3: TLS 1.2 at least
		}
		if opts.Mode == ModeMX {
			// Mutual TLS with the other operators (SPEC §2 "Trust
			// space"): the certificate is requested, not required nor
			// verified in the handshake, so that a peer without one, or
			// with one outside the trust space, gets a reply that says
			// so at MAIL (session.go: verifyPeer) instead of a failed
			// handshake; and the anchors are read at each session, so
			// that `carepost trust add-ca` needs no restart.
			cfg.ClientAuth = tls.RequestClientCert
		}
		gs.TLSConfig = cfg
	}
	s.gs = gs
	return s
}

// Serve accepts connections on ln until Close. ln must already be a TLS
// listener when Options.ImplicitTLS is set.
func (s *Server) Serve(ln net.Listener) error {
	if s.opts.Mode != ModeSubmission && s.opts.Mode != ModeMX {
		return fmt.Errorf("smtp: unknown mode %v", s.opts.Mode)
	}
	if s.ctx.Err() != nil {
		ln.Close()
		return errors.New("smtp: Serve called after Close")
	}
	if s.gs.TLSConfig == nil {
		// Without TLS no one could log in (submission) and health data
		// would travel in clear (MX): refuse to start rather than run a
		// listener that refuses everything.
		return errors.New("smtp: a TLS configuration is required (Options.TLSConfig)")
	}
	s.log.Debug("listening", "addr", ln.Addr().String(), "implicit_tls", s.opts.ImplicitTLS,
		"max_message_size", s.opts.MaxMessageSize)
	err := s.gs.Serve(ln)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close stops accepting, closes every connection and cancels the work of
// their sessions. Messages not yet acknowledged are not acknowledged: their
// senders will retry.
func (s *Server) Close() error {
	s.cancel()
	err := s.gs.Close()
	if errors.Is(err, gosmtp.ErrServerClosed) {
		return nil
	}
	return err
}

// backend creates a session per connection (go-smtp calls NewSession after
// EHLO, and again after STARTTLS so the new session sees TLS).
type backend struct{ s *Server }

func (b backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	return b.s.newSession(c), nil
}

// errorLog routes go-smtp's own messages (accept errors, panics recovered
// per connection) to slog.
type errorLog struct{ lg *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	if limit.ClientGone(v) {
		// The client reset its connection or let it time out: its doing,
		// worth one line, not a warning.
		e.lg.Info("smtp: client connection ended", "detail", fmt.Sprintf(format, v...))
		return
	}
	e.lg.Warn(fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) { e.lg.Warn(fmt.Sprint(v...)) }
