package ldap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// Searcher finds listings: *directory.Directory.
type Searcher interface {
	SearchListings(ctx context.Context, q directory.ListingQuery) ([]directory.Listing, error)
}

// Authenticator checks a simple bind's password: *auth.Authenticator,
// the one of IMAP and SMTP AUTH, so that its limiter of guesses and the
// directory's rules (application passwords, mailboxes that must log in
// with a certificate) apply here too.
type Authenticator interface {
	Plain(ctx context.Context, username, password, source string) (*auth.Principal, error)
}

// Recorder records audit events (*audit.Recorder).
type Recorder interface {
	Record(storage.AuditRecord)
}

// Anonymous access policies.
const (
	AnonymousLoopback = "loopback" // anonymous searches from 127.0.0.0/8 and ::1 only
	AnonymousNever    = "never"
	AnonymousAlways   = "always"
)

// DefaultMaxResults is the server's size limit when Options.MaxResults
// is 0.
const DefaultMaxResults = 200

// Options configure a Server.
type Options struct {
	Dir  Searcher
	Auth Authenticator
	// BaseDN is the suffix of the entries: ou=people,dc=…; every
	// listing is mail=ADDRESS,BaseDN.
	BaseDN string
	// Anonymous: AnonymousLoopback (the default), AnonymousNever or
	// AnonymousAlways.
	Anonymous string
	// MaxResults bounds the entries of one search (and of the pages of
	// a paged search all together); past it the search ends with
	// sizeLimitExceeded. At most directory.MaxSearchLimit.
	MaxResults int
	// StartTLS, when set, lets clients of a plain listener upgrade to
	// TLS (RFC 4511 §4.14, RFC 4513 §3).
	StartTLS *tls.Config
	// IdleTimeout closes a connection that sends nothing for that long
	// (default 5 minutes); WriteTimeout bounds each response's write.
	IdleTimeout, WriteTimeout time.Duration
	Logger                    *slog.Logger
	Audit                     Recorder // optional: ldap.bind events
}

// Server serves the LDAP view on listeners.
type Server struct {
	opts   Options
	base   []rdn
	baseN  string
	logger *slog.Logger

	mu     sync.Mutex
	lns    map[net.Listener]bool
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// New returns a server; the options are checked by the caller (the
// configuration's validation).
func New(opts Options) (*Server, error) {
	base, ok := parseDN(opts.BaseDN)
	if !ok || len(base) == 0 {
		return nil, fmt.Errorf("ldap: base DN %q is not a DN such as ou=people,dc=example,dc=org", opts.BaseDN)
	}
	switch opts.Anonymous {
	case "":
		opts.Anonymous = AnonymousLoopback
	case AnonymousLoopback, AnonymousNever, AnonymousAlways:
	default:
		return nil, fmt.Errorf("ldap: anonymous %q is not loopback, never or always", opts.Anonymous)
	}
	if opts.MaxResults <= 0 {
		opts.MaxResults = DefaultMaxResults
	}
	opts.MaxResults = min(opts.MaxResults, directory.MaxSearchLimit-1)
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, base: base, baseN: normDN(base), logger: logger,
		lns: map[net.Listener]bool{}, conns: map[net.Conn]bool{}}, nil
}

// BaseDN derives the default base DN from a mail domain:
// carepost.test gives ou=people,dc=carepost,dc=test.
func BaseDN(domain string) string {
	parts := strings.Split(strings.Trim(strings.ToLower(domain), "."), ".")
	for i, p := range parts {
		parts[i] = "dc=" + escapeDNValue(p)
	}
	return "ou=people," + strings.Join(parts, ",")
}

// Serve accepts connections on ln until it is closed. Over an
// implicit-TLS listener, the connections it returns are *tls.Conn
// (already handshaken or not).
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.lns[ln] = true
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return net.ErrClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return net.ErrClosed
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			newConn(s, c).serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// Close stops the listeners and the connections and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// conn is one client's session.
type conn struct {
	s        *Server
	nc       net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	remote   string
	loopback bool
	tls      bool
	bound    *auth.Principal // nil: anonymous
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
	if host, _, err := net.SplitHostPort(c.remote); err == nil {
		ip := net.ParseIP(host)
		c.loopback = ip != nil && ip.IsLoopback()
	}
	_, c.tls = nc.(interface{ ConnectionState() tls.ConnectionState })
	c.r, c.w = bufio.NewReader(nc), bufio.NewWriter(nc)
	return c
}

func (c *conn) serve() {
	defer c.nc.Close()
	defer func() {
		if r := recover(); r != nil {
			c.s.logger.Error("ldap: session ended on an internal error", "remote", c.remote, "panic", fmt.Sprint(r))
		}
	}()
	for {
		c.nc.SetReadDeadline(time.Now().Add(c.s.opts.IdleTimeout))
		p, err := readMessage(c.r)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && err.Error() != "EOF" {
				c.s.logger.Debug("ldap: connection closed", "remote", c.remote, "reason", err.Error())
				if errors.Is(err, errTooLarge) || !isNetErr(err) {
					c.disconnect(resultProtocolError, "The request is not a valid LDAPv3 message ("+err.Error()+"); closing the connection.")
				}
			}
			return
		}
		req, err := parseRequest(p)
		if err != nil {
			c.disconnect(resultProtocolError, "The request is not a valid LDAPv3 message (RFC 4511 §4.1.1); closing the connection.")
			return
		}
		if !c.handle(req) {
			return
		}
	}
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || err.Error() == "unexpected EOF"
}

// Refusal is a Notice of Disconnection (RFC 4511 §4.4.1) saying busy
// with sentence: what a listener past its connection limits writes
// before it closes a connection.
func Refusal(sentence string) []byte {
	return message(0, extendedResponse(resultBusy, sentence, oidNoticeOfDiscon, nil)).Bytes()
}

// disconnect sends the Notice of Disconnection (RFC 4511 §4.4.1).
func (c *conn) disconnect(code int, text string) {
	if c.send(message(0, extendedResponse(code, text, oidNoticeOfDiscon, nil))) == nil {
		c.flush()
	}
}

func (c *conn) send(p *ber.Packet) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	if _, err := c.w.Write(p.Bytes()); err != nil {
		return err
	}
	return nil
}

func (c *conn) flush() error {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	return c.w.Flush()
}

// handle answers one request; false ends the session.
func (c *conn) handle(req *request) bool {
	defer c.flush()
	// A critical control this view does not know fails the operation
	// (RFC 4511 §4.1.11); only paging is known, on searches.
	for _, ctl := range req.controls {
		if ctl.critical && !(ctl.oid == oidPaging && req.op.Tag == opSearchRequest) {
			if resp, ok := responseTag[req.op.Tag]; ok {
				c.send(message(req.id, result(resp, resultUnavailableCriticalExtension, "",
					"The control "+ctl.oid+" is not supported by this directory.")))
				return true
			}
		}
	}
	switch req.op.Tag {
	case opBindRequest:
		return c.bind(req)
	case opUnbindRequest:
		return false
	case opSearchRequest:
		return c.search(req)
	case opAbandonRequest:
		return true // every operation is answered before the next is read
	case opExtendedRequest:
		return c.extended(req)
	case opModifyRequest, opAddRequest, opDelRequest, opModDNRequest, opCompareRequest:
		what := map[ber.Tag]string{opModifyRequest: "modify", opAddRequest: "add", opDelRequest: "delete",
			opModDNRequest: "rename", opCompareRequest: "compare"}[req.op.Tag]
		c.send(message(req.id, result(req.op.Tag+1, resultUnwillingToPerform, "",
			"This directory is read-only: it cannot "+what+" entries. Mailboxes are managed by the operator (carepost dir)."+
				map[bool]string{true: " Search with a filter instead of comparing.", false: ""}[req.op.Tag == opCompareRequest])))
		return true
	}
	c.disconnect(resultProtocolError, fmt.Sprintf("Unknown LDAP operation (application tag %d); closing the connection.", req.op.Tag))
	return false
}

var responseTag = map[ber.Tag]ber.Tag{opBindRequest: opBindResponse, opSearchRequest: opSearchDone,
	opModifyRequest: opModifyRequest + 1, opAddRequest: opAddRequest + 1, opDelRequest: opDelRequest + 1,
	opModDNRequest: opModDNRequest + 1, opCompareRequest: opCompareRequest + 1, opExtendedRequest: opExtendedResponse}

// bind answers a BindRequest (RFC 4511 §4.2, RFC 4513 §5): anonymous,
// or simple with the mailbox's address (bare, or as the RDN mail= or
// uid= of a DN) and its IMAP password.
func (c *conn) bind(req *request) bool {
	reply := func(code int, text string) bool {
		c.send(message(req.id, result(opBindResponse, code, "", text)))
		return true
	}
	op := req.op
	if op.TagType != ber.TypeConstructed || len(op.Children) != 3 {
		return reply(resultProtocolError, "The bind request is malformed (RFC 4511 §4.2).")
	}
	version, ok := intValue(op.Children[0], ber.TagInteger)
	name, err := octets(op.Children[1])
	if !ok || err != nil {
		return reply(resultProtocolError, "The bind request is malformed (RFC 4511 §4.2).")
	}
	if version != 3 {
		return reply(resultProtocolError, "Only LDAP version 3 is supported: use ldapsearch -x (version 3 is its default) or set your client to LDAPv3.")
	}
	authn := op.Children[2]
	if authn.ClassType != ber.ClassContext || authn.Tag != 0 || authn.TagType != ber.TypePrimitive {
		return reply(resultAuthMethodNotSupported, "Only simple binds are supported: bind with your mailbox address and password, over TLS (ldaps or StartTLS).")
	}
	password := authn.Data.String()
	c.bound = nil // a bind that fails leaves the session anonymous (RFC 4511 §4.2.1)
	if name == "" && password == "" {
		if !c.anonymousAllowed() {
			return reply(resultInappropriateAuthentication, c.anonymousRefusal())
		}
		return reply(resultSuccess, "")
	}
	if password == "" {
		// An unauthenticated bind (RFC 4513 §5.1.2): a name without a
		// password, which careless clients send for a forgotten password.
		return reply(resultUnwillingToPerform, "A bind name without a password is refused: give the password of the mailbox (the one of IMAP).")
	}
	user, ok := bindUser(name)
	if !ok {
		c.auditBind(name, audit.OutcomeRefused, "bad bind name")
		return reply(resultInvalidCredentials, "Bind with your mailbox address as the name (jean.dupont@example.org, or mail=jean.dupont@example.org,"+c.s.opts.BaseDN+") and its IMAP password.")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := c.s.opts.Auth.Plain(ctx, user, password, c.remote)
	if err != nil {
		if refusal.Is(err, refusal.AuthFailed) {
			c.s.logger.Info("ldap: bind refused", "remote", c.remote, "user", user, "reason", auth.CauseOf(err).String())
			c.auditBind(user, audit.OutcomeRefused, auth.CauseOf(err).String())
			return reply(resultInvalidCredentials, "Authentication failed: the address or the password is wrong, or the account cannot log in with a password. The password is the mailbox's IMAP password (or an application password).")
		}
		c.s.logger.Error("ldap: bind failed", "remote", c.remote, "user", user, "err", err)
		return reply(resultUnavailable, "The directory cannot check passwords right now; please try again in a few minutes.")
	}
	c.bound = p
	c.auditBind(p.Address, audit.OutcomeOK, "")
	c.s.logger.Debug("ldap: bind", "remote", c.remote, "user", p.Address)
	return reply(resultSuccess, "")
}

// bindUser extracts the address from a bind name: "x@y", "mail=x@y,…"
// or "uid=x@y,…".
func bindUser(name string) (string, bool) {
	name = strings.TrimSpace(name)
	if !strings.Contains(name, "=") {
		return name, strings.Contains(name, "@")
	}
	rdns, ok := parseDN(name)
	if !ok || len(rdns) == 0 {
		return "", false
	}
	switch canonicalLower(rdns[0].attr) {
	case "mail", "uid":
		return rdns[0].value, strings.Contains(rdns[0].value, "@")
	}
	return "", false
}

// auditBind records a password bind (ldap.bind), as imap.login does: the
// user name tried, the cause of a refusal, never the password.
func (c *conn) auditBind(user, outcome, cause string) {
	if c.s.opts.Audit == nil {
		return
	}
	if len(user) > 200 {
		user = user[:200]
	}
	d := map[string]string{"mechanism": "simple", "user": user}
	if c.tls {
		d["tls"] = "yes"
	}
	if cause != "" {
		d["cause"] = cause
	}
	actor, account := audit.Anonymous, strings.ToLower(user)
	if outcome == audit.OutcomeOK && c.bound != nil {
		actor, account = c.bound.Address, c.bound.Address
	}
	c.s.opts.Audit.Record(storage.AuditRecord{Actor: actor, Mechanism: string(auth.MechPlain), Source: c.remote,
		Action: "ldap.bind", Object: account, Outcome: outcome, Details: d, Account: account})
}

func (c *conn) anonymousAllowed() bool {
	switch c.s.opts.Anonymous {
	case AnonymousAlways:
		return true
	case AnonymousLoopback:
		return c.loopback
	}
	return false
}

func (c *conn) anonymousRefusal() string {
	return "Anonymous access is not allowed from your address: bind with your mailbox address and its IMAP password (in Thunderbird: the LDAP server's \"Bind DN\")."
}

// extended answers StartTLS and "Who am I?"; other operations are
// unknown (RFC 4511 §4.12).
func (c *conn) extended(req *request) bool {
	reply := func(code int, text string, value []byte) {
		c.send(message(req.id, extendedResponse(code, text, "", value)))
	}
	if len(req.op.Children) == 0 {
		reply(resultProtocolError, "The extended request is malformed (RFC 4511 §4.12).", nil)
		return true
	}
	name := req.op.Children[0]
	if name.ClassType != ber.ClassContext || name.Tag != 0 || name.TagType != ber.TypePrimitive {
		reply(resultProtocolError, "The extended request is malformed (RFC 4511 §4.12).", nil)
		return true
	}
	switch oid := name.Data.String(); oid {
	case oidWhoAmI:
		id := ""
		if c.bound != nil {
			id = "dn:" + attrMail + "=" + escapeDNValue(c.bound.Address) + "," + c.s.opts.BaseDN
		}
		reply(resultSuccess, "", []byte(id))
	case oidStartTLS:
		switch {
		case c.tls:
			reply(resultOperationsError, "TLS is already established on this connection.", nil)
		case c.s.opts.StartTLS == nil:
			reply(resultProtocolError, "StartTLS is not offered here: use the LDAPS port.", nil)
		case c.r.Buffered() > 0:
			reply(resultOperationsError, "Requests were sent after StartTLS before its response (RFC 4511 §4.14.1).", nil)
		default:
			reply(resultSuccess, "", nil)
			if c.flush() != nil {
				return false
			}
			tc := tls.Server(c.nc, c.s.opts.StartTLS)
			tc.SetDeadline(time.Now().Add(30 * time.Second))
			if err := tc.Handshake(); err != nil {
				c.s.logger.Debug("ldap: StartTLS handshake failed", "remote", c.remote, "err", err)
				return false
			}
			tc.SetDeadline(time.Time{})
			// The bind state before TLS is kept (RFC 4513 §3.1.3 leaves
			// it to the server): anonymous or none.
			c.nc, c.tls = tc, true
			c.r, c.w = bufio.NewReader(tc), bufio.NewWriter(tc)
		}
	default:
		reply(resultProtocolError, "The extended operation "+oid+" is not supported by this directory.", nil)
	}
	return true
}
