package smtp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/metrics"
	"github.com/carepost/carepost/refusal"
)

// session is one SMTP connection between two EHLOs of go-smtp (a new one
// after STARTTLS). go-smtp calls its methods from the connection's
// goroutine, except Logout, which Server.Close may call from another: it
// only cancels the context.
type session struct {
	s      *Server
	conn   *gosmtp.Conn
	ctx    context.Context
	cancel context.CancelFunc

	remote string
	helo   string
	tls    bool

	principal *auth.Principal     // after AUTH (submission); also in ctx
	peer      *directory.Operator // MX: the verified client certificate
	tx        *delivery.Transaction
	from      string
	declared  int64 // the SIZE= of MAIL FROM, 0 if none (RFC 1870)

	end endState // revoke.go
	// counted: the session is in Options.Metrics' gauge, until Logout
	// (which go-smtp may call twice: STARTTLS and a concurrent Close).
	counted atomic.Bool
}

var (
	_ gosmtp.Session     = (*session)(nil)
	_ gosmtp.AuthSession = (*session)(nil)
)

func (s *Server) newSession(c *gosmtp.Conn) *session {
	_, isTLS := c.TLSConnectionState()
	ss := &session{s: s, conn: c, helo: c.Hostname(), tls: isTLS}
	if ra := c.Conn().RemoteAddr(); ra != nil {
		ss.remote = ra.String()
	}
	ss.ctx, ss.cancel = context.WithCancel(s.ctx)
	ss.counted.Store(true)
	s.opts.Metrics.SessionOpened()
	ss.pace() // EHLO, after which go-smtp makes a session
	ss.auditConnect()
	return ss
}

// AuthMechanisms lists SASL mechanisms; go-smtp asks only over TLS. MX
// offers none. Submission offers PLAIN (a password: an application
// password where they are required), EXTERNAL (RFC 4422 Appendix A) when
// the client presented a certificate and client CAs are configured, and
// OAUTHBEARER (RFC 7628) and XOAUTH2 when a token issuer is.
func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Mode != ModeSubmission {
		return nil
	}
	mechs := []string{sasl.Plain}
	if ss.s.auth.HasClientCAs() && len(ss.peerCertificates()) > 0 {
		mechs = append(mechs, sasl.External)
	}
	if ss.s.auth.HasTokens() {
		mechs = append(mechs, auth.SASLOAuthBearer, auth.SASLXOAuth2)
	}
	return mechs
}

// peerCertificates is the chain the client presented in the TLS
// handshake, nil if none.
func (ss *session) peerCertificates() []*x509.Certificate {
	if state, ok := ss.conn.TLSConnectionState(); ok {
		return state.PeerCertificates
	}
	return nil
}

// Auth starts a SASL exchange.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.s.opts.Mode != ModeSubmission {
		return nil, gosmtp.ErrAuthUnsupported
	}
	m, ok := map[string]metrics.Mech{sasl.Plain: metrics.MechPlain, sasl.External: metrics.MechExternal,
		auth.SASLOAuthBearer: metrics.MechOAuthBearer, auth.SASLXOAuth2: metrics.MechXOAuth2}[strings.ToUpper(mech)]
	if !ok || !slices.Contains(ss.AuthMechanisms(), strings.ToUpper(mech)) {
		return nil, gosmtp.ErrAuthUnknownMechanism
	}
	if !ss.tls { // go-smtp checks it already; never rely on one check only
		err := refusal.New(refusal.TLSRequired, "", nil, "Must issue a STARTTLS command first: passwords are only sent over TLS.")
		r := reply(stepAuth, err, 0)
		ss.authFailed(m, "", err, r)
		ss.auditAuth(m, "", err, r)
		return nil, r
	}
	switch m {
	case metrics.MechExternal:
		return sasl.NewExternalServer(func(identity string) error {
			ss.pace()
			p, err := ss.s.auth.External(ss.ctx, ss.peerCertificates(), identity, ss.remote)
			return ss.authDone(m, identity, p, err)
		}), nil
	case metrics.MechOAuthBearer:
		return saslServer{auth.NewOAuthBearerServer(ss.s.opts.OAuthScope, ss.bearer(m)), ss, m}, nil
	case metrics.MechXOAuth2:
		return saslServer{auth.NewXOAuth2Server(ss.s.opts.OAuthScope, ss.bearer(m)), ss, m}, nil
	}
	return saslServer{sasl.NewPlainServer(ss.authPlain), ss, m}, nil
}

// bearer checks a token of OAUTHBEARER or XOAUTH2.
func (ss *session) bearer(m metrics.Mech) auth.BearerCheck {
	return func(authzid, token string) error {
		ss.pace()
		p, err := ss.s.auth.Bearer(ss.ctx, token, authzid, ss.remote)
		return ss.authDone(m, authzid, p, err)
	}
}

// authPlain checks PLAIN credentials (RFC 4616). An authorization identity
// other than the user's own is refused: nobody logs in as someone else
// (delegated mailboxes are reached with one's own login).
//
// Failed attempts are slowed by the authenticator's limiter, shared with
// IMAP (auth.Limiter), before the password is checked.
func (ss *session) authPlain(identity, username, password string) error {
	ss.pace()
	if identity != "" && identity != username {
		return ss.authDone(metrics.MechPlain, username, nil,
			refusal.New(refusal.AuthFailed, username, auth.ErrAuthzIdentity, refusal.AuthFailedText))
	}
	p, err := ss.s.auth.Plain(ss.ctx, username, password, ss.remote)
	return ss.authDone(metrics.MechPlain, username, p, err)
}

// authDone ends a login by any mechanism: the session logs in as p, or
// the failure err is logged, counted, traced and answered (535 with the
// refusal's sentence: one sentence for every password refusal; a
// certificate's or token's says what was wrong with it, never whether an
// account exists).
func (ss *session) authDone(m metrics.Mech, username string, p *auth.Principal, err error) error {
	if err == nil {
		// In the context too: what the message path and the store do
		// for this session is done by p (Change.Actor).
		ss.principal, ss.ctx = p, auth.WithPrincipal(ss.ctx, p)
		ss.registerEnd(p)
		ss.s.opts.Metrics.Logins().Succeeded(m)
		ss.s.log.Info("auth ok", "remote", ss.remote, "user", p.Address, "mechanism", p.Mechanism)
		ss.auditAuth(m, username, nil, nil)
		return nil
	}
	r := reply(stepAuth, err, 0)
	if rf, ok := refusal.As(err); ok && rf.Kind == refusal.AuthFailed && m != metrics.MechPlain {
		r.Message = rf.Text
	}
	ss.authFailed(m, username, err, r)
	ss.auditAuth(m, username, err, r)
	return r
}

// certificateLogin logs in, on submission, a client that presented a TLS
// certificate and sends without AUTH: practice software over mutual TLS
// (SPEC §3). Nothing happens without a certificate or client CAs; a
// certificate refused is answered with the reason.
func (ss *session) certificateLogin() error {
	if ss.principal != nil || ss.s.opts.Mode != ModeSubmission || !ss.tls || !ss.s.auth.HasClientCAs() {
		return nil
	}
	chain := ss.peerCertificates()
	if len(chain) == 0 {
		return nil
	}
	p, err := ss.s.auth.External(ss.ctx, chain, "", ss.remote)
	return ss.authDone(metrics.MechExternal, "", p, err)
}

// authFailed logs a refused AUTH with its cause (auth.CauseOf: unknown
// account, wrong password, inactive account, TLS required...), which the
// client is never told, and counts it. The user name is logged
// (brute-force tracing), never the password.
func (ss *session) authFailed(m metrics.Mech, username string, err error, r *gosmtp.SMTPError) {
	cause := auth.CauseOf(err)
	ss.s.opts.Metrics.Logins().Failed(m, cause)
	ss.s.opts.Metrics.Refused(metrics.StepAuth, refusalKind(err), r.Code/100 == 4)
	lvl := ss.s.log.Info
	if r.Code/100 == 4 {
		lvl = ss.s.log.Error
	}
	lvl("auth refused", "remote", ss.remote, "user", truncateForLog(username), "mechanism", mechLabel(m), "tls", ss.tls,
		"code", r.Code, "cause", cause.String(), "reason", errText(err))
}

// saslServer makes sure that SASL's own errors (a malformed PLAIN
// message) reach the client as SMTP replies, not as err.Error().
type saslServer struct {
	sasl.Server
	ss   *session
	mech metrics.Mech
}

// mechLabel names a mechanism in logs and audit events.
func mechLabel(m metrics.Mech) string {
	switch m {
	case metrics.MechExternal:
		return string(auth.MechExternal)
	case metrics.MechOAuthBearer:
		return auth.SASLOAuthBearer
	case metrics.MechXOAuth2:
		return auth.SASLXOAuth2
	}
	return string(auth.MechPlain)
}

func (s saslServer) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := s.Server.Next(response)
	if err != nil {
		if _, ok := err.(*gosmtp.SMTPError); !ok {
			r := &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 5, 2},
				Message: "The authentication data is malformed (RFC 4616 PLAIN expected)."}
			switch s.mech {
			case metrics.MechOAuthBearer:
				r.Message = "The authentication data is malformed (RFC 7628 OAUTHBEARER expected)."
			case metrics.MechXOAuth2:
				r.Message = "The authentication data is malformed (XOAUTH2 expected)."
			}
			rerr := refusal.New(refusal.MalformedMessage, "", err, "%s", r.Message)
			s.ss.authFailed(s.mech, "", rerr, r)
			s.ss.auditAuth(s.mech, "", rerr, r)
			err = r
		}
	}
	return challenge, done, err
}

// Mail starts a transaction (MAIL FROM, RFC 5321 §4.1.1.2).
func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	ss.pace()
	if ss.s.opts.Mode == ModeSubmission && !ss.tls {
		// RFC 3207 §4, SPEC §3: submission starts TLS, then AUTH (which
		// is not offered before, RFC 4954 §4). Told to log in, a client
		// would try AUTH and be refused again; tell it the first step.
		r := reply(stepMail, refusal.New(refusal.TLSRequired, from, nil,
			"Must issue a STARTTLS command first: this port takes mail over TLS, from a client logged in."), 0)
		ss.s.log.Info("sender refused", "remote", ss.remote, "from", from,
			"code", r.Code, "enhanced", enhancedString(r.EnhancedCode), "cause", "MAIL before STARTTLS")
		ss.s.opts.Metrics.Refused(metrics.StepMail, refusal.TLSRequired, false)
		ss.auditRefused(stepMail, from, "", r)
		return r
	}
	if opts != nil && opts.Size > ss.s.opts.MaxMessageSize {
		// The sentence of the refusal during DATA (delivery's
		// readFailure), and the declared size in the log.
		r := reply(stepMail, refusal.New(refusal.MessageTooLarge, from, nil, "The message is larger than the %d bytes this server accepts.", ss.s.opts.MaxMessageSize), 0)
		ss.s.log.Info("sender refused", "remote", ss.remote, "user", ss.user(), "from", from,
			"declared_size", opts.Size, "limit", ss.s.opts.MaxMessageSize,
			"code", r.Code, "enhanced", enhancedString(r.EnhancedCode), "cause", "declared size over the limit")
		ss.s.opts.Metrics.Refused(metrics.StepMail, refusal.MessageTooLarge, false)
		ss.auditRefused(stepMail, from, "", r)
		return r
	}
	if ss.tx != nil {
		return &gosmtp.SMTPError{Code: 503, EnhancedCode: gosmtp.EnhancedCode{5, 5, 1},
			Message: "A transaction is already in progress: send RSET to start another one."}
	}
	if err := ss.certificateLogin(); err != nil {
		return err
	}
	if ss.s.opts.Mode == ModeMX && ss.tls {
		if err := ss.verifyPeer(); err != nil {
			r := reply(stepMail, err, 0)
			lvl := ss.s.log.Info
			if r.Code/100 == 4 {
				lvl = ss.s.log.Error
			}
			lvl("sender refused", "remote", ss.remote, "from", from, "peer", ss.peerSubject(),
				"code", r.Code, "enhanced", enhancedString(r.EnhancedCode), "cause", errText(err))
			ss.auditRefused(stepMail, from, "", r)
			return r
		}
	}
	tx := ss.s.p.Begin(ss.ctx, delivery.Source{
		Principal:  ss.principal,
		RemoteAddr: ss.remote,
		Helo:       ss.helo,
		TLS:        ss.tls,
		Submission: ss.s.opts.Mode == ModeSubmission,
		Peer:       ss.peer,
	})
	if err := tx.Sender(ss.ctx, from); err != nil {
		return ss.refused(stepMail, err, tx, from, "")
	}
	ss.tx, ss.from, ss.declared = tx, from, 0
	if opts != nil {
		ss.declared = opts.Size
	}
	return nil
}

// Rcpt adds a recipient (RCPT TO, RFC 5321 §4.1.1.3). A refusal concerns
// this recipient only.
func (ss *session) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	ss.pace()
	if ss.tx == nil { // go-smtp checks the order; defensive
		return reply(stepRcpt, refusal.New(refusal.BadSequence, to, nil, "The sender must be given before the recipients."), 0)
	}
	if err := ss.tx.AddRecipient(ss.ctx, to); err != nil {
		return ss.refused(stepRcpt, err, ss.tx, ss.from, to)
	}
	return nil
}

// Data receives the message and answers only once it is durable.
func (ss *session) Data(r io.Reader) error {
	tx := ss.tx
	if tx == nil {
		return reply(stepData, refusal.New(refusal.BadSequence, "", nil, "The sender and the recipients must be given before the message."), 0)
	}
	if err := ss.enterData(); err != nil {
		return err
	}
	defer ss.leaveData()
	ss.pace()
	body := ss.bodyReader(r)
	err := tx.Deliver(ss.ctx, body)
	var out *gosmtp.SMTPError
	code, enh := 250, "2.0.0"
	if err != nil {
		out = reply(stepData, err, ss.s.opts.MaxMessageSize)
		code, enh = out.Code, enhancedString(out.EnhancedCode)
	}
	if err != nil {
		ss.s.opts.Metrics.Refused(metrics.StepData, refusalKind(err), out.Code/100 == 4)
		ss.auditRefused(stepData, ss.from, "", out)
	}
	// One line per message: who, to how many, how big, what result.
	// Never the body, the subject or credentials.
	attrs := []any{"tx", tx.ID(), "remote", ss.remote, "user", ss.user(), "from", ss.from,
		"rcpts", len(tx.Recipients()), "size", tx.Size(), "code", code, "enhanced", enh}
	if ss.peer != nil {
		attrs = append(attrs, "peer", ss.peer.Subject)
	}
	if refusal.Is(err, refusal.MessageTooLarge) || errors.Is(err, gosmtp.ErrDataTooLarge) {
		// Reading stopped at the limit: size is what was read, not the
		// message's; the declared SIZE= says more when the client gave it.
		attrs = append(attrs, "limit", ss.s.opts.MaxMessageSize, "size_over_limit", true)
		if ss.declared > 0 {
			attrs = append(attrs, "declared_size", ss.declared)
		}
	}
	switch {
	case err != nil && body.Expired():
		return ss.transferTimedOut(attrs)
	case err == nil:
		ss.s.opts.Metrics.Accepted(tx.Size())
		ss.s.log.Info("message accepted", attrs...)
		// go-smtp's own success text is "OK: queued"; say what happened
		// instead (a success reply built as an SMTPError is the way the
		// library lets a backend choose the 250 text).
		return &gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 0, 0},
			Message: "OK: " + acceptedText(tx.Routed()) + ", id " + tx.ID()}
	case refusal.Is(err, refusal.BodyRead):
		// The client's connection broke or timed out during the
		// transfer: the client's trouble, not the server's.
		ss.s.log.Info("message not received completely", append(attrs, "cause", errText(err))...)
	case out.Code/100 == 4:
		ss.s.log.Error("message not accepted", append(attrs, "cause", errText(err))...)
	default:
		ss.s.log.Info("message refused", append(attrs, "cause", errText(err))...)
	}
	return out
}

// refused logs a refused MAIL or RCPT and returns the reply.
func (ss *session) refused(st step, err error, tx *delivery.Transaction, from, to string) error {
	r := reply(st, err, ss.s.opts.MaxMessageSize)
	ss.s.opts.Metrics.Refused(st.metric(), refusalKind(err), r.Code/100 == 4)
	ss.auditRefused(st, from, to, r)
	attrs := []any{"tx", tx.ID(), "remote", ss.remote, "user", ss.user(), "from", from,
		"code", r.Code, "enhanced", enhancedString(r.EnhancedCode), "cause", errText(err)}
	if ss.peer != nil {
		attrs = append(attrs, "peer", ss.peer.Subject)
	}
	if to != "" {
		attrs = append(attrs, "rcpt", to)
	}
	if r.Code/100 == 4 {
		ss.s.log.Error(st.String()+" not accepted", attrs...)
	} else {
		ss.s.log.Info(st.String()+" refused", attrs...)
	}
	return r
}

// verifyPeer checks, once per TLS session, the client certificate the
// peer presented during STARTTLS against the trust anchors
// (directory.VerifyOperator) and keeps the operator it names. A failure is
// not kept: a trust decision that could not be made (anchors unreadable)
// is tried again at the next MAIL.
func (ss *session) verifyPeer() error {
	if ss.peer != nil {
		return nil
	}
	state, ok := ss.conn.TLSConnectionState()
	if !ok {
		return refusal.New(refusal.TLSRequired, "", nil, "Must issue a STARTTLS command first: health messages are only exchanged over TLS.")
	}
	op, err := ss.s.dir.VerifyOperator(ss.ctx, state.PeerCertificates)
	if err != nil {
		return err
	}
	ss.peer = op
	ss.s.log.Info("operator verified", "remote", ss.remote, "peer", op.Subject, "anchor", op.Anchor, "fingerprint", op.Fingerprint)
	ss.auditRecord("smtp.peer", op.Subject, audit.OutcomeOK, map[string]string{"anchor": op.Anchor, "fingerprint": op.Fingerprint})
	return nil
}

// peerSubject names the presented certificate in the log, verified or not.
func (ss *session) peerSubject() string {
	if ss.peer != nil {
		return ss.peer.Subject
	}
	if state, ok := ss.conn.TLSConnectionState(); ok && len(state.PeerCertificates) > 0 {
		return truncateForLog(state.PeerCertificates[0].Subject.String())
	}
	return ""
}

func (ss *session) user() string {
	if ss.principal == nil {
		return ""
	}
	return ss.principal.Address
}

// Reset ends the transaction (RSET, after DATA, new EHLO).
func (ss *session) Reset() {
	if ss.tx != nil {
		ss.tx.Abort()
	}
	ss.tx, ss.from, ss.declared = nil, "", 0
	ss.closeIfEnded()
}

// Logout ends the session; it may run concurrently with Data (Server.Close).
func (ss *session) Logout() error {
	if ss.counted.CompareAndSwap(true, false) {
		ss.s.opts.Metrics.SessionClosed()
	}
	ss.cancel()
	ss.unregisterEnd()
	return nil
}

// acceptedText says where an accepted message went: the local mailboxes,
// and the outbound queue for the recipients of other operators (it is on
// disk there, not delivered yet).
func acceptedText(local, remote int) string {
	switch {
	case remote == 0:
		return fmt.Sprintf("delivered to %d mailbox(es)", local)
	case local == 0:
		return fmt.Sprintf("queued for %d recipient(s) of other operators", remote)
	}
	return fmt.Sprintf("delivered to %d mailbox(es) and queued for %d recipient(s) of other operators", local, remote)
}
