package imap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/metrics"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// commandTimeout bounds the storage work of one command.
const commandTimeout = 2 * time.Minute

// sharedPrefix is the namespace of the organisational mailboxes a user is a
// member of: "Shared/cardiologie@ch-x.fr/INBOX" (RFC 2342 §5, other users'
// namespace).
const sharedPrefix = "Shared"

// session is one IMAP connection.
type session struct {
	srv  *Server
	conn *imapserver.Conn

	// principal is who logged in (auth.Rights decides from it what the
	// session may do); account is its address. Both are set by Login.
	principal *auth.Principal
	account   string
	sel       *view  // selected mailbox, nil if none
	selAcct   string // the account sel belongs to (the user's or a shared one)
	// inboxes are the IDs of the INBOXes this session wrote into, by
	// account (destinationMailbox).
	inboxes map[string]int64
	closed  bool
	bad     pendingBad // imap/syntax.go
	// unregister takes the session out of Options.Sessions (revoke.go).
	unregister func()
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionSASL        = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func newSession(s *Server, c *imapserver.Conn) *session {
	return &session{srv: s, conn: c}
}

// ctx is the context of one command's storage work: it carries the
// principal, so that the changes the store publishes name their actor.
func (s *session) ctx() (context.Context, context.CancelFunc) {
	if h := panicHook.Load(); h != nil {
		(*h)(s.account)
	}
	s.pace() // imap/limits.go
	base := s.srv.base
	if s.principal != nil {
		base = auth.WithPrincipal(base, s.principal)
	}
	return context.WithTimeout(base, commandTimeout)
}

// panicHook, when set (by tests only), is called at the start of every
// command's storage work: a test makes it panic to check guard.
var panicHook atomic.Pointer[func(account string)]

// guard turns a panic in a command into NO [SERVERBUG] for that command,
// logged with its stack, and keeps the connection and the server up (the
// library would otherwise end the connection, RFC 5530 SERVERBUG).
func (s *session) guard(op string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	s.srv.log.Error("imap: panic in a command", "op", op, "account", s.account, "remote", s.remote(),
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	*err = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug,
		Text: "Internal server error, the failure was logged"}
}

// Close ends the session (go-imap calls it once the connection is over)
// and releases the selected mailbox.
func (s *session) Close() (err error) {
	defer s.guard("close", &err)
	if s.closed {
		return nil
	}
	s.closed = true
	defer s.srv.sessions.Done()
	s.srv.opts.Metrics.SessionClosed()
	s.unregisterEnd()
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	return nil
}

// Login checks the credentials with the directory. The library refuses
// LOGIN before TLS (LOGINDISABLED, RFC 9051 §6.2.3), so a password never
// crosses the network in clear; such an attempt is logged by the input
// guard (imap/syntax.go), since it never reaches the session.
func (s *session) Login(username, password string) (err error) {
	defer s.guard("login", &err)
	return s.login(metrics.MechLogin, username, password)
}

// login checks a password given by LOGIN or AUTHENTICATE PLAIN. A failure
// is logged with its cause (auth.CauseOf: unknown account, wrong password,
// inactive account, too many attempts), which the client is never told:
// it gets one sentence whatever the cause. The user name is logged, never
// the password.
func (s *session) login(mech metrics.Mech, username, password string) error {
	ctx, cancel := s.ctx()
	defer cancel()
	p, err := s.srv.opts.Accounts.Authenticate(ctx, username, password, s.remote())
	return s.finishLogin(mech, username, p, err)
}

// finishLogin ends a login by any mechanism: the session logs in as p, or
// the failure err is logged with its cause, counted, traced and answered.
// A password's refusal is one sentence whatever the cause; a certificate's
// or a token's says what was wrong with it (the refusal's own sentence,
// which never tells whether an account exists).
func (s *session) finishLogin(mech metrics.Mech, username string, p *auth.Principal, err error) error {
	if err != nil {
		cause := auth.CauseOf(err)
		s.srv.opts.Metrics.Logins().Failed(mech, cause)
		if refusal.Is(err, refusal.AuthFailed) {
			s.srv.log.Info("login failed", "remote", s.remote(), "user", truncateForLog(username), "mechanism", mechName(mech),
				"cause", cause.String(), "reason", errorReason(err))
			s.auditLogin(mechName(mech), username, audit.OutcomeRefused, cause.String())
			text := "Invalid user name or password, or account not active"
			if r, ok := refusal.As(err); ok && mech != metrics.MechLogin && mech != metrics.MechPlain {
				text = r.Text
			}
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: text}
		}
		s.srv.log.Error("login: directory unavailable", "remote", s.remote(), "user", truncateForLog(username),
			"mechanism", mechName(mech), "cause", cause.String(), "err", err)
		s.auditLogin(mechName(mech), username, audit.OutcomeFailed, cause.String())
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable,
			Text: "Authentication is temporarily unavailable, try again later"}
	}
	s.srv.opts.Metrics.Logins().Succeeded(mech)
	s.principal, s.account = p, p.Address
	s.srv.log.Info("login", "remote", s.remote(), "account", p.Address, "mechanism", mechName(mech))
	s.auditLogin(mechName(mech), username, audit.OutcomeOK, "")
	s.registerEnd()
	return nil
}

// loginFailed logs and counts a login refused before the directory was
// asked (an authorization identity that is not the user's, credentials
// before TLS).
func (s *session) loginFailed(mech metrics.Mech, username string, cause auth.Cause) {
	s.srv.opts.Metrics.Logins().Failed(mech, cause)
	s.srv.log.Info("login failed", "remote", s.remote(), "user", truncateForLog(username), "mechanism", mechName(mech),
		"cause", cause.String())
	s.auditLogin(mechName(mech), username, audit.OutcomeRefused, cause.String())
}

func mechName(m metrics.Mech) string {
	switch m {
	case metrics.MechLogin:
		return "LOGIN"
	case metrics.MechExternal:
		return "AUTHENTICATE EXTERNAL"
	case metrics.MechOAuthBearer:
		return "AUTHENTICATE OAUTHBEARER"
	case metrics.MechXOAuth2:
		return "AUTHENTICATE XOAUTH2"
	}
	return "AUTHENTICATE PLAIN"
}

// truncateForLog bounds what a client typed before it reaches the log.
func truncateForLog(s string) string {
	if len(s) > 254 {
		return s[:254] + "..."
	}
	return s
}

// refresh reads the principal's delegations again (auth.Authenticator.
// Refresh), so that a member added, removed or given another role is seen
// by this session at its next LIST or opening of a shared folder.
func (s *session) refresh(ctx context.Context) error {
	p, err := s.srv.opts.Accounts.Refresh(ctx, s.principal)
	if err != nil {
		return err
	}
	s.principal = p
	return nil
}

// allow asks auth whether the session's principal holds right on account;
// a refusal is NO [NOPERM] with auth's sentence (what names the operation
// in the user's words).
func (s *session) allow(op, account string, right auth.Right, what string) error {
	err := auth.Check(s.principal, account, right, what)
	if err != nil {
		s.srv.log.Info("imap: refused", "op", op, "account", s.account, "remote", s.remote(), "reason", errorReason(err))
	}
	return s.mapError(op, err)
}

func (s *session) remote() string {
	if s.conn == nil {
		return ""
	}
	return s.conn.NetConn().RemoteAddr().String()
}

// AuthenticateMechanisms lists the SASL mechanisms, offered only under TLS
// by the library: PLAIN (RFC 4616); EXTERNAL (RFC 4422 Appendix A) when
// the client presented a certificate and client CAs are configured;
// OAUTHBEARER (RFC 7628) and XOAUTH2 when a token issuer is.
func (s *session) AuthenticateMechanisms() []string {
	mechs := []string{sasl.Plain}
	if ea, ok := s.srv.opts.Accounts.(ExternalAccounts); ok {
		if ea.HasClientCAs() && len(s.peerCertificates()) > 0 {
			mechs = append(mechs, sasl.External)
		}
		if ea.HasTokens() {
			mechs = append(mechs, auth.SASLOAuthBearer, auth.SASLXOAuth2)
		}
	}
	return mechs
}

// peerCertificates is the chain the client presented in the TLS
// handshake, nil if none (or no TLS).
func (s *session) peerCertificates() []*x509.Certificate {
	if s.conn == nil {
		return nil
	}
	if tc, ok := s.conn.NetConn().(*tls.Conn); ok {
		return tc.ConnectionState().PeerCertificates
	}
	return nil
}

// Authenticate runs a SASL exchange: PLAIN through login, EXTERNAL and the
// token mechanisms through the authenticator's External and Bearer.
func (s *session) Authenticate(mech string) (_ sasl.Server, err error) {
	defer s.guard("authenticate", &err)
	ea, _ := s.srv.opts.Accounts.(ExternalAccounts)
	switch {
	case strings.EqualFold(mech, sasl.Plain):
		return sasl.NewPlainServer(func(identity, username, password string) (err error) {
			defer s.guard("authenticate", &err)
			if identity != "" && !strings.EqualFold(identity, username) {
				s.loginFailed(metrics.MechPlain, username, auth.CauseAuthzIdentity)
				return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed,
					Text: "Acting as another user is not allowed"}
			}
			return s.login(metrics.MechPlain, username, password)
		}), nil
	case strings.EqualFold(mech, sasl.External) && ea != nil && ea.HasClientCAs():
		return sasl.NewExternalServer(func(identity string) (err error) {
			defer s.guard("authenticate", &err)
			ctx, cancel := s.ctx()
			defer cancel()
			p, err := ea.External(ctx, s.peerCertificates(), identity, s.remote())
			return s.finishLogin(metrics.MechExternal, identity, p, err)
		}), nil
	case strings.EqualFold(mech, auth.SASLOAuthBearer) && ea != nil && ea.HasTokens():
		return s.saslGuard(metrics.MechOAuthBearer, auth.NewOAuthBearerServer(s.srv.opts.OAuthScope, s.bearer(ea, metrics.MechOAuthBearer))), nil
	case strings.EqualFold(mech, auth.SASLXOAuth2) && ea != nil && ea.HasTokens():
		return s.saslGuard(metrics.MechXOAuth2, auth.NewXOAuth2Server(s.srv.opts.OAuthScope, s.bearer(ea, metrics.MechXOAuth2))), nil
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Unsupported authentication mechanism"}
}

// bearer checks a token and logs the session in.
func (s *session) bearer(ea ExternalAccounts, mech metrics.Mech) auth.BearerCheck {
	return func(authzid, token string) (err error) {
		defer s.guard("authenticate", &err)
		ctx, cancel := s.ctx()
		defer cancel()
		p, err := ea.Bearer(ctx, token, authzid, s.remote())
		return s.finishLogin(mech, authzid, p, err)
	}
}

// saslGuard turns a malformed exchange into a logged, counted and traced
// NO, like any other failed login.
func (s *session) saslGuard(mech metrics.Mech, srv sasl.Server) sasl.Server {
	return saslFunc(func(response []byte) ([]byte, bool, error) {
		challenge, done, err := srv.Next(response)
		if errors.Is(err, auth.ErrMalformedSASL) {
			s.loginFailed(mech, "", auth.CauseMalformed)
			err = &imap.Error{Type: imap.StatusResponseTypeBad, Text: "The authentication exchange is malformed"}
		}
		return challenge, done, err
	})
}

type saslFunc func(response []byte) ([]byte, bool, error)

func (f saslFunc) Next(response []byte) ([]byte, bool, error) { return f(response) }

// AppendLimit is advertised as APPENDLIMIT (RFC 7889). go-imap also checks
// each APPEND literal against it before Append runs, and that check
// refuses a too-large non-synchronizing literal (LITERAL+, RFC 7888 §4)
// without reading it, so the message's bytes would then be parsed as
// commands (imapserver/append.go, v2.0.0-beta.8). To that check alone the
// answer is "no limit": Append refuses the message with [TOOBIG], after
// which the library reads and discards the literal, and the session stays
// in step. The cost: a synchronizing literal over the limit is accepted
// ("+") and read before the refusal. Tested by TestAppendTooBig, which
// fails if a release moves the check.
func (s *session) AppendLimit() uint32 {
	if calledFrom("imapserver.(*Conn).handleAppend") {
		return math.MaxUint32
	}
	return s.appendLimit()
}

func (s *session) appendLimit() uint32 {
	return uint32(min(s.srv.opts.MaxMessageSize, math.MaxUint32))
}

// calledFrom tells whether the caller of the caller is fn (a suffix of the
// full function name).
func calledFrom(fn string) bool {
	var pcs [1]uintptr
	if runtime.Callers(3, pcs[:]) == 0 {
		return false
	}
	f, _ := runtime.CallersFrames(pcs[:]).Next()
	return strings.HasSuffix(f.Function, fn)
}

// Namespace: personal mailboxes at the root, organisational mailboxes under
// "Shared/" (RFC 2342).
func (s *session) Namespace() (_ *imap.NamespaceData, err error) {
	defer s.guard("namespace", &err)
	if err := s.takePendingBad(); err != nil { // imap/syntax.go
		return nil, err
	}
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: storage.Delimiter}},
		Other:    []imap.NamespaceDescriptor{{Prefix: sharedPrefix + string(storage.Delimiter), Delim: storage.Delimiter}},
	}, nil
}

// target is a mailbox name resolved to an account and a storage name.
type target struct {
	account string
	name    string // storage name inside account
	shared  string // "Shared/<address>" prefix when shared, "" otherwise
}

// display turns a storage name back into the name the client sees.
func (t target) display(name string) string {
	if t.shared == "" {
		return name
	}
	return t.shared + string(storage.Delimiter) + name
}

// resolve maps a client mailbox name to an account. Names under Shared/
// must name a mailbox on which the user has the lookup right (auth.Rights:
// an organisational mailbox it is a member of); the bare "Shared" and
// "Shared/<address>" are containers that cannot be selected.
func (s *session) resolve(ctx context.Context, name string) (target, error) {
	if strings.EqualFold(name, "INBOX") {
		return target{account: s.account, name: "INBOX"}, nil
	}
	rest, ok := strings.CutPrefix(name, sharedPrefix+string(storage.Delimiter))
	if !ok {
		if name == sharedPrefix {
			return target{}, errNoSelect(name)
		}
		if first, _, _ := strings.Cut(name, string(storage.Delimiter)); strings.EqualFold(first, sharedPrefix) {
			// "shared/cardio@…/INBOX" would be a folder of the user's own
			// that a client showing names without case would mistake for
			// the team's: the namespace's name is reserved in any case.
			return target{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
				Text: "The name " + sharedPrefix + ", in any case, is reserved for the shared mailboxes"}
		}
		return target{account: s.account, name: name}, nil
	}
	addr, folder, _ := strings.Cut(rest, string(storage.Delimiter))
	addr = strings.ToLower(addr)
	if err := s.refresh(ctx); err != nil {
		return target{}, err
	}
	// Without the lookup right the mailbox does not exist for this user
	// (RFC 4314 §4: no telling which mailboxes exist).
	if addr == s.account || !s.principal.Can(addr, auth.Lookup) {
		return target{}, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent,
			Text: "No such shared mailbox, or you are not a member of it"}
	}
	if folder == "" {
		return target{}, errNoSelect(name)
	}
	if strings.EqualFold(folder, "INBOX") {
		folder = "INBOX"
	}
	return target{account: addr, name: folder, shared: sharedPrefix + string(storage.Delimiter) + addr}, nil
}

func errNoSelect(name string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot,
		Text: "\"" + name + "\" only holds other mailboxes and cannot be selected or changed"}
}

// errorReason is the cause kept in a refusal for the log.
func errorReason(err error) error {
	if r, ok := refusal.As(err); ok && r.Reason != nil {
		return r.Reason
	}
	return err
}
