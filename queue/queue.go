// Package queue delivers the outbound queue (storage.Queue) to the other
// operators of the trust space (SPEC §4 "Queue"): it claims the entries
// that are due, finds each recipient domain's servers (a static route of
// the configuration, else DNS MX, RFC 5321 §5.1), delivers over SMTP with
// STARTTLS (TLS 1.2 at least, the server's certificate verified against
// the trust anchors, our operator certificate presented as the client
// certificate), records per recipient what the remote server answered,
// retries with exponential backoff, and gives up after the lifetime with a
// delivery status notification (RFC 3464, dsn.go) to the sender.
//
// What it guarantees:
//   - A recipient accepted by the remote server (250 after DATA) is
//     recorded as delivered and never sent again; a transient failure of
//     another recipient of the same message retries that one alone.
//   - Delivery is at least once: should the connection break after the
//     final dot and before the reply, or the process stop between the reply
//     and the record, the recipient is tried again (RFC 5321 §6.1 accepts
//     the duplicate, which the receiver can drop by Message-ID).
//   - Claims are the store's (storage.Queue): two runners, in one process
//     or in two processes on the same store, never hold the same entry at
//     once. A runner that stops holding claims (a crash, SIGKILL) leaves
//     them to end with their lease (Options.Lease); the entries are tried
//     again then.
//
// Several entries are in flight at once (Options.Concurrency), and a
// connection to a destination stays open for a while after a message
// (Options.IdleTimeout), so that the next message to the same destination
// reuses it (RFC 5321 §3.3: several transactions on one session).
package queue

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// Options configures a Runner.
type Options struct {
	Store storage.Queue
	// Hostname is this server's name (EHLO, DSN Reporting-MTA), and the
	// prefix of this runner's name in the claims it takes.
	Hostname string
	// ReleaseAtStart makes Start give back every claim whose owner is of
	// this node (storage.Queue ReleaseQueued): true only when no other
	// runner of this node can be alive on the store (serve holds the data
	// directory's lock: one serve per data directory). Without it, the
	// entries that a runner killed during an attempt held wait for the
	// end of their leases.
	ReleaseAtStart bool
	// Routes maps a domain to "host:port", instead of its MX records
	// (configuration [routes]; tests on loopback need them).
	Routes map[string]string
	// Resolver looks up MX records; nil is net.DefaultResolver.
	Resolver *net.Resolver
	// Port is the SMTP port of servers found by MX; "" is "25".
	Port string
	// TrustAnchors returns the CA certificates that a remote server's
	// certificate must chain to (the operators' CAs of the trust space).
	// It is called for each new connection, so that a change of the trust
	// list applies without a restart.
	TrustAnchors func() (*x509.CertPool, error)
	// ClientCertificate returns our operator certificate, presented to
	// the remote server.
	ClientCertificate func() (*tls.Certificate, error)
	// Notify delivers a message of ours (a DSN) to a local mailbox
	// (delivery.Pipeline.Notify).
	Notify func(ctx context.Context, rcpt string, msg []byte) error
	// RetryInitial is the wait after the first failed attempt, doubled at
	// each attempt up to RetryMax; Lifetime is how long an entry is tried
	// before its remaining recipients fail.
	RetryInitial, RetryMax, Lifetime time.Duration
	// Concurrency bounds the entries in flight; 0 is 8.
	Concurrency int
	// Lease is how long a claim holds (an attempt must end within it);
	// 0 is 10 minutes.
	Lease time.Duration
	// IdleTimeout is how long an idle connection is kept for the next
	// message to the same destination; 0 is 30 seconds.
	IdleTimeout time.Duration
	// Timeout bounds connecting and each SMTP command; 0 is one minute.
	Timeout time.Duration
	// PollInterval is the longest the runner sleeps without looking at the
	// queue (an entry added or retried by another process); 0 is 2s.
	PollInterval time.Duration
	Logger       *slog.Logger
	// Audit records each attempt per recipient with the remote server's
	// reply (relay.attempt) and each DSN sent (dsn), by the system, the
	// Message-ID as their object (queue/audit.go); nil records none.
	Audit *audit.Recorder
}

// Runner delivers the queue; see the package comment.
type Runner struct {
	opts  Options
	log   *slog.Logger
	owner string
	kick  chan struct{}
	sem   chan struct{}
	pool  *pool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	loop   sync.WaitGroup
}

// New returns a runner; Start starts it.
func New(o Options) *Runner {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Lease <= 0 {
		o.Lease = 10 * time.Minute
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.RetryInitial <= 0 {
		o.RetryInitial = time.Minute
	}
	if o.RetryMax < o.RetryInitial {
		o.RetryMax = max(o.RetryInitial, time.Hour)
	}
	if o.Lifetime <= 0 {
		o.Lifetime = 5 * 24 * time.Hour
	}
	if o.Port == "" {
		o.Port = "25"
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runner{opts: o, log: o.Logger, owner: o.Hostname + "/" + strings.ToLower(rand.Text()[:12]),
		kick: make(chan struct{}, 1), sem: make(chan struct{}, o.Concurrency), pool: newPool(),
		ctx: ctx, cancel: cancel}
}

// Start runs the runner in the background until Close. With
// Options.ReleaseAtStart, it first gives back the claims that runners of
// this node (Options.Hostname) left when they died.
func (r *Runner) Start() {
	if r.opts.ReleaseAtStart {
		if n, err := r.opts.Store.ReleaseQueued(r.ctx, r.opts.Hostname+"/"); err != nil {
			r.log.Error("outbound queue: cannot release the claims of a previous run", "err", err)
		} else if n > 0 {
			r.log.Info("outbound queue: released the claims of a previous run that stopped without giving them back", "entries", n)
		}
	}
	r.loop.Add(1)
	go r.run()
}

// Kick tells the runner that entries may be due (a commit added some).
func (r *Runner) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Close stops claiming, cancels the attempts under way (their entries
// are tried again when their claims end), waits for them, and closes the
// idle connections.
func (r *Runner) Close() error {
	r.cancel()
	r.loop.Wait()
	r.wg.Wait()
	r.pool.closeAll()
	return nil
}

func (r *Runner) run() {
	defer r.loop.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := r.opts.PollInterval
		if free := cap(r.sem) - len(r.sem); free > 0 {
			if d, err := r.claim(free); err != nil {
				if r.ctx.Err() == nil {
					r.log.Error("outbound queue: cannot read the queue", "err", err)
				}
			} else {
				wait = min(wait, d)
			}
		}
		r.pool.expire(time.Now(), r.opts.IdleTimeout)
		timer.Reset(max(wait, 10*time.Millisecond))
		select {
		case <-r.ctx.Done():
			return
		case <-r.kick:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

// claim starts the attempts of up to free due entries and returns how
// long until the next one is due.
func (r *Runner) claim(free int) (time.Duration, error) {
	at, ok, err := r.opts.Store.NextQueued(r.ctx)
	if err != nil || !ok {
		return r.opts.PollInterval, err
	}
	now := time.Now()
	if at.After(now) {
		return at.Sub(now), nil
	}
	entries, err := r.opts.Store.ClaimQueued(r.ctx, r.owner, now, r.opts.Lease, free)
	if err != nil {
		return r.opts.PollInterval, err
	}
	for _, e := range entries {
		r.sem <- struct{}{}
		r.wg.Add(1)
		go func(e storage.QueueEntry) {
			defer func() {
				<-r.sem
				r.wg.Done()
				r.Kick()
			}()
			r.attempt(e)
		}(e)
	}
	if len(entries) == free {
		return 0, nil // more may be due: look again once a slot frees
	}
	return r.opts.PollInterval, nil
}

// backoff is the wait after attempt n (1 for the first).
func (r *Runner) backoff(n int) time.Duration {
	d := r.opts.RetryInitial
	for i := 1; i < n && d < r.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, r.opts.RetryMax)
}

// attempt tries the pending recipients of an entry once and records the
// outcome.
func (r *Runner) attempt(e storage.QueueEntry) {
	ctx, cancel := context.WithTimeout(r.ctx, r.opts.Lease-r.opts.Lease/10)
	defer cancel()
	log := r.log.With("queue_id", e.ID)
	state := map[string]storage.QueueRecipient{}
	for _, rc := range e.Recipients {
		state[rc.Address] = rc
	}
	byDomain := map[string][]string{}
	for _, rc := range e.Pending() {
		d := domainOf(rc.Address)
		byDomain[d] = append(byDomain[d], rc.Address)
	}
	domains := make([]string, 0, len(byDomain))
	for d := range byDomain {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	var changed []storage.QueueRecipient
	lastErr := ""
	for _, d := range domains {
		res := r.sendDomain(ctx, &e, d, byDomain[d])
		for _, rc := range res {
			state[rc.Address] = rc
			changed = append(changed, rc)
			r.auditAttempt(&e, rc)
			switch rc.State {
			case storage.QueueDelivered:
				log.Info("outbound message delivered", "rcpt", rc.Address, "reply", rc.LastError)
			case storage.QueueFailed:
				log.Warn("outbound message refused for good", "rcpt", rc.Address, "reply", rc.LastError)
			default:
				lastErr = rc.LastError
				log.Warn("outbound delivery failed, will retry", "rcpt", rc.Address, "err", rc.LastError, "attempt", e.Attempts+1)
			}
		}
	}
	if ctx.Err() != nil && r.ctx.Err() != nil {
		// Stopping: record what was delivered, and give the claim back
		// due at once, so that the next runner (the restart) tries the
		// rest without waiting for the lease and resends to nobody who
		// accepted it.
		r.update(ctx, log, e.ID, storage.QueueUpdate{Recipients: changed,
			LastError: "interrupted: the server stopped during the attempt", NextAttempt: time.Now()})
		return
	}
	now := time.Now()
	deadline := e.Created.Add(r.opts.Lifetime)
	pending := 0
	for a, rc := range state {
		if rc.State != storage.QueuePending {
			continue
		}
		if !now.Before(deadline) {
			rc.State = storage.QueueFailed
			rc.LastError = fmt.Sprintf("expired: not delivered within %v; last error: %s", r.opts.Lifetime, orNone(rc.LastError))
			state[a] = rc
			changed = append(changed, rc)
			continue
		}
		pending++
	}
	if pending == 0 {
		if err := r.finish(ctx, &e, state); err != nil {
			log.Error("outbound queue: the delivery status notification could not be delivered; will retry", "err", err)
			r.update(ctx, log, e.ID, storage.QueueUpdate{Recipients: changed, LastError: "notification to the sender: " + err.Error(),
				NextAttempt: now.Add(r.opts.RetryInitial)})
			return
		}
		if err := r.opts.Store.RemoveQueued(ctx, e.ID, r.owner); err != nil {
			log.Error("outbound queue: cannot remove a finished entry", "err", err)
		}
		return
	}
	next := now.Add(r.backoff(e.Attempts + 1))
	if next.After(deadline) {
		next = deadline // one last attempt at the deadline
	}
	r.update(ctx, log, e.ID, storage.QueueUpdate{Recipients: changed, LastError: lastErr, NextAttempt: next})
}

func (r *Runner) update(ctx context.Context, log *slog.Logger, id int64, u storage.QueueUpdate) {
	if err := r.opts.Store.UpdateQueued(context.WithoutCancel(ctx), id, r.owner, u); err != nil {
		log.Error("outbound queue: cannot record an attempt", "err", err)
	}
}

// finish sends the sender a DSN for the recipients that failed, if any.
func (r *Runner) finish(ctx context.Context, e *storage.QueueEntry, state map[string]storage.QueueRecipient) error {
	var failed []storage.QueueRecipient
	for _, rc := range state {
		if rc.State == storage.QueueFailed {
			failed = append(failed, rc)
		}
	}
	if len(failed) == 0 || e.From == "" || r.opts.Notify == nil {
		return nil
	}
	slices.SortFunc(failed, func(a, b storage.QueueRecipient) int { return strings.Compare(a.Address, b.Address) })
	var header []byte
	if b, err := r.opts.Store.OpenQueued(ctx, e.ID); err == nil {
		header = readHeader(b)
		b.Close()
	}
	msg := buildDSN(r.opts.Hostname, e, failed, header, time.Now())
	err := r.opts.Notify(ctx, e.From, msg)
	r.auditDSN(e, failed, err)
	if re, ok := refusal.As(err); ok && !re.Temporary() {
		// The sender cannot receive it (mailbox closed since): nothing
		// more to do for this entry.
		r.log.Warn("outbound queue: the sender cannot receive the delivery status notification", "queue_id", e.ID, "err", err)
		return nil
	}
	return err
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func domainOf(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return strings.ToLower(addr[at+1:])
	}
	return ""
}

// sendDomain delivers an entry to its pending recipients of one domain
// and returns their new state.
func (r *Runner) sendDomain(ctx context.Context, e *storage.QueueEntry, domain string, rcpts []string) []storage.QueueRecipient {
	all := func(state, why string) []storage.QueueRecipient {
		out := make([]storage.QueueRecipient, len(rcpts))
		for i, a := range rcpts {
			out[i] = storage.QueueRecipient{Address: a, State: state, LastError: why}
		}
		return out
	}
	hosts, err := r.destinations(ctx, domain)
	if err != nil {
		var pe permanentError
		if errors.As(err, &pe) {
			return all(storage.QueueFailed, err.Error())
		}
		return all(storage.QueuePending, err.Error())
	}
	lastErr := errors.New("no server to try")
	for _, h := range hosts {
		for try := 0; try < 2; try++ {
			c, reused, err := r.conn(ctx, h)
			if err != nil {
				lastErr = err
				break
			}
			res, err := r.transfer(ctx, c, e, rcpts)
			if err == nil {
				r.pool.put(h.addr, c)
				return res
			}
			c.Close()
			lastErr = fmt.Errorf("%s: %w", h.addr, err)
			r.log.Debug("outbound queue: transfer failed", "addr", h.addr, "reused", reused, "err", err)
			if !reused {
				break // a fresh connection failed: the next server
			}
			// A kept connection may have been closed by the server
			// meanwhile: once more on a new one.
		}
	}
	return all(storage.QueuePending, lastErr.Error())
}

// destination is one server to try.
type destination struct {
	addr       string // host:port
	serverName string // the name its certificate must carry
}

type permanentError struct{ error }

// destinations returns the servers of a domain, in order of preference: the
// configured route, else the MX records (RFC 5321 §5.1; a domain without
// MX records is its own server; a null MX, RFC 7505, fails for good).
func (r *Runner) destinations(ctx context.Context, domain string) ([]destination, error) {
	if addr, ok := r.opts.Routes[domain]; ok {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, permanentError{fmt.Errorf("route for %s: %q is not host:port", domain, addr)}
		}
		return []destination{{addr: addr, serverName: host}}, nil
	}
	lctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	mxs, err := r.opts.Resolver.LookupMX(lctx, domain)
	var dnsErr *net.DNSError
	if err != nil && errors.As(err, &dnsErr) && dnsErr.IsNotFound && len(mxs) == 0 {
		// No MX record: the domain itself (RFC 5321 §5.1). NXDOMAIN is
		// told apart by the lookup of its address.
		if _, aerr := r.opts.Resolver.LookupHost(lctx, domain); aerr != nil {
			if errors.As(aerr, &dnsErr) && dnsErr.IsNotFound {
				return nil, permanentError{fmt.Errorf("the domain %s has no mail server (no MX, no address)", domain)}
			}
			return nil, fmt.Errorf("DNS lookup of %s: %w", domain, aerr)
		}
		return []destination{{addr: net.JoinHostPort(domain, r.opts.Port), serverName: domain}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("DNS lookup of the MX of %s: %w", domain, err)
	}
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	var out []destination
	for _, mx := range mxs {
		host := strings.TrimSuffix(mx.Host, ".")
		if host == "" {
			return nil, permanentError{fmt.Errorf("the domain %s accepts no mail (null MX, RFC 7505)", domain)}
		}
		out = append(out, destination{addr: net.JoinHostPort(host, r.opts.Port), serverName: host})
	}
	return out, nil
}

// conn returns a kept connection to h, or a new one over verified TLS.
func (r *Runner) conn(ctx context.Context, h destination) (*smtp.Client, bool, error) {
	if c := r.pool.get(h.addr); c != nil {
		return c, true, nil
	}
	c, err := r.dial(ctx, h)
	return c, false, err
}

func (r *Runner) dial(ctx context.Context, h destination) (*smtp.Client, error) {
	if r.opts.TrustAnchors == nil {
		return nil, errors.New("no trust anchors configured: the remote server cannot be verified")
	}
	roots, err := r.opts.TrustAnchors()
	if err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	cfg := &tls.Config{ServerName: h.serverName, RootCAs: roots, MinVersion: tls.VersionTLS12}
	if r.opts.ClientCertificate != nil {
		cert, err := r.opts.ClientCertificate()
		if err != nil {
			return nil, fmt.Errorf("our client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := net.Dialer{Timeout: r.opts.Timeout}
	conn, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", h.addr, err)
	}
	conn.SetDeadline(time.Now().Add(r.opts.Timeout))
	// STARTTLS is required: mail is never sent in clear (SPEC §4).
	c, err := smtp.NewClientStartTLS(conn, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("STARTTLS with %s: %w", h.addr, err)
	}
	// The EHLO that matters, over TLS, under our name (the handshake, and
	// the verification of the server's certificate, happen here).
	if err := c.Hello(r.opts.Hostname); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS with %s: %w", h.addr, err)
	}
	if st, ok := c.TLSConnectionState(); !ok || st.Version < tls.VersionTLS12 {
		c.Close()
		return nil, fmt.Errorf("TLS with %s: not established", h.addr)
	}
	conn.SetDeadline(time.Time{})
	c.CommandTimeout = r.opts.Timeout
	return c, nil
}

// transfer runs one SMTP transaction for rcpts. It returns each
// recipient's new state, or an error when the connection failed before
// the outcome was known (the caller tries another connection or server).
func (r *Runner) transfer(ctx context.Context, c *smtp.Client, e *storage.QueueEntry, rcpts []string) ([]storage.QueueRecipient, error) {
	out := make([]storage.QueueRecipient, 0, len(rcpts))
	if err := c.Mail(e.From, &smtp.MailOptions{Size: e.Size}); err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return nil, err
		}
		for _, a := range rcpts {
			out = append(out, replyState(a, se))
		}
		c.Reset()
		return out, nil
	}
	var accepted []string
	for _, a := range rcpts {
		err := c.Rcpt(a, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, a)
		case errors.As(err, &se):
			out = append(out, replyState(a, se))
		default:
			return nil, err
		}
	}
	if len(accepted) == 0 {
		if err := c.Reset(); err != nil {
			return nil, err
		}
		return out, nil
	}
	body, err := r.opts.Store.OpenQueued(ctx, e.ID)
	if err != nil {
		c.Reset()
		for _, a := range accepted {
			out = append(out, storage.QueueRecipient{Address: a, State: storage.QueuePending, LastError: "reading the queued message: " + err.Error()})
		}
		return out, nil
	}
	defer body.Close()
	w, err := c.Data()
	if err == nil {
		_, err = io.Copy(w, body)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	var se *smtp.SMTPError
	switch {
	case err == nil:
		for _, a := range accepted {
			out = append(out, storage.QueueRecipient{Address: a, State: storage.QueueDelivered, LastError: "250 accepted"})
		}
	case errors.As(err, &se):
		for _, a := range accepted {
			out = append(out, replyState(a, se))
		}
	default:
		return nil, err
	}
	return out, nil
}

// replyState is a recipient's state after an SMTP error reply: 5xx fails
// for good, anything else is tried again.
func replyState(addr string, se *smtp.SMTPError) storage.QueueRecipient {
	st := storage.QueuePending
	if se.Code >= 500 && se.Code < 600 {
		st = storage.QueueFailed
	}
	return storage.QueueRecipient{Address: addr, State: st, LastError: formatReply(se)}
}

func formatReply(se *smtp.SMTPError) string {
	msg := strings.ReplaceAll(se.Message, "\n", " ")
	if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
		return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], msg)
	}
	return fmt.Sprintf("%d %s", se.Code, msg)
}

// pool keeps idle connections by destination address.
type pool struct {
	mu   sync.Mutex
	idle map[string][]idleConn
}

type idleConn struct {
	c     *smtp.Client
	since time.Time
}

func newPool() *pool { return &pool{idle: map[string][]idleConn{}} }

func (p *pool) get(addr string) *smtp.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.idle[addr]
	if len(l) == 0 {
		return nil
	}
	c := l[len(l)-1].c
	p.idle[addr] = l[:len(l)-1]
	return c
}

func (p *pool) put(addr string, c *smtp.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle[addr] = append(p.idle[addr], idleConn{c, time.Now()})
}

// expire closes connections idle for longer than d (with a QUIT).
func (p *pool) expire(now time.Time, d time.Duration) {
	var old []*smtp.Client
	p.mu.Lock()
	for addr, l := range p.idle {
		keep := l[:0]
		for _, ic := range l {
			if now.Sub(ic.since) >= d {
				old = append(old, ic.c)
			} else {
				keep = append(keep, ic)
			}
		}
		if len(keep) == 0 {
			delete(p.idle, addr)
		} else {
			p.idle[addr] = keep
		}
	}
	p.mu.Unlock()
	for _, c := range old {
		c.CommandTimeout = 5 * time.Second // a server that does not answer QUIT holds nothing
		c.Quit()
		c.Close()
	}
}

func (p *pool) closeAll() { p.expire(time.Now().Add(1000*time.Hour), 0) }
