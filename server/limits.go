package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/carepost/carepost/limit"
)

// Limits at the listener. Neither go-imap nor go-smtp limits connections or
// their rate, so every listener's raw TCP listener is wrapped, below TLS
// (the libraries still see their *tls.Conn):
//
//	TCP → limitListener (counts per address and in total, refuses past
//	them, sets the handshake deadline, gives each connection its
//	limit.Pacer) → imap.Listener (corking, IMAP only) → handshakeListener
//	(implicit TLS only: the handshake is done, under its deadline, before
//	the library sees the connection).
//
// A connection past a limit gets the protocol's refusal with a sentence
// (after a TLS handshake on the implicit-TLS listeners, since the client
// reads nothing else) and is closed; at most maxRefusing refusals are
// under way at once, past which a connection is closed without a word, so
// that a flood costs no more than that many goroutines and handshakes.

// maxRefusing bounds the refusals being written at once, per listener.
const maxRefusing = 64

// refusalWriteTimeout bounds the writing of a refusal.
const refusalWriteTimeout = 5 * time.Second

// listenerLimits is what a limitListener applies.
type listenerLimits struct {
	name      string // listen.* key, for the log
	perSource int
	total     int
	handshake time.Duration
	rate      int // commands per second per session; 0: none
	// refuse writes the protocol's refusal with sentence on c (doing the
	// TLS handshake first on an implicit-TLS listener); the caller closes
	// c afterwards.
	refuse func(c net.Conn, sentence string)
}

// limitListener counts the open connections of one listener, per source
// and in total.
type limitListener struct {
	net.Listener
	lim      listenerLimits
	log      *slog.Logger
	logs     *refusalLog
	refusing chan struct{}

	mu       sync.Mutex
	open     int
	bySource map[string]int
}

func newLimitListener(ln net.Listener, lim listenerLimits, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, lim: lim, log: log, logs: newRefusalLog(),
		refusing: make(chan struct{}, maxRefusing), bySource: map[string]int{}}
}

// Accept returns the next connection within the limits; the others are
// refused on the way.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := limit.Source(c.RemoteAddr().String())
		if sentence, what := l.admit(src); sentence != "" {
			l.logRefusal(src, what)
			l.refuseAsync(c, sentence)
			continue
		}
		// Until the library sets its own deadlines (before the greeting's
		// write and each command), this one bounds what comes first: the
		// TLS handshake of an implicit-TLS listener.
		c.SetDeadline(time.Now().Add(l.lim.handshake))
		lc := &limitConn{Conn: c, l: l, src: src}
		if l.lim.rate > 0 {
			lc.pacer = limit.NewPacer(l.lim.rate)
		}
		return lc, nil
	}
}

// admit counts a new connection from src, or says why it is refused: the
// sentence for the client and the limit for the log.
func (l *limitListener) admit(src string) (sentence, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.lim.total {
		return "Too many connections to this server; please try again in a few minutes.", "limits.connections"
	}
	if l.bySource[src] >= l.lim.perSource {
		return fmt.Sprintf("Too many connections from your address (%d); close some and try again.", l.lim.perSource),
			"limits.connections_per_address"
	}
	l.open++
	l.bySource[src]++
	return "", ""
}

func (l *limitListener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.bySource[src] - 1; n > 0 {
		l.bySource[src] = n
	} else {
		delete(l.bySource, src)
	}
}

func (l *limitListener) refuseAsync(c net.Conn, sentence string) {
	select {
	case l.refusing <- struct{}{}:
		go func() {
			defer func() { <-l.refusing }()
			defer c.Close()
			c.SetDeadline(time.Now().Add(l.lim.handshake + refusalWriteTimeout))
			l.lim.refuse(c, sentence)
		}()
	default:
		c.Close()
	}
}

func (l *limitListener) logRefusal(src, what string) {
	key := src
	if what == "limits.connections" {
		key = "" // the total limit is logged once a minute, whatever the source
	}
	if n, ok := l.logs.due(key, time.Now()); ok {
		l.log.Warn("connection refused: limit reached", "listener", l.lim.name, "source", src, "limit", what,
			"refused_since_last_log", n)
	}
}

// limitConn is an admitted connection; closing it frees its place.
type limitConn struct {
	net.Conn
	l     *limitListener
	src   string
	pacer *limit.Pacer
	once  sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}

// Pacer is the session's command rate (limit.PacerOf finds it through the
// layers above).
func (c *limitConn) Pacer() *limit.Pacer { return c.pacer }

// refusalLog says when a refusal from a source is to be logged: once a
// minute per source, with the count of those not logged in between. It
// remembers at most refusalLogMax sources; past that, sources not seen yet
// are counted together under one entry until the old ones expire.
type refusalLog struct {
	mu      sync.Mutex
	entries map[string]*refusalEntry
}

type refusalEntry struct {
	logged     time.Time
	suppressed int
}

const (
	refusalLogEvery = time.Minute
	refusalLogMax   = 10_000
	refusalLogOther = "other addresses"
)

func newRefusalLog() *refusalLog { return &refusalLog{entries: map[string]*refusalEntry{}} }

// due counts a refusal from key and tells whether to log it, with how
// many were refused and not logged since the last line for key.
func (r *refusalLog) due(key string, now time.Time) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[key]
	if e == nil {
		if len(r.entries) >= refusalLogMax {
			for k, old := range r.entries {
				if now.Sub(old.logged) >= refusalLogEvery {
					delete(r.entries, k)
				}
			}
		}
		if len(r.entries) >= refusalLogMax {
			key = refusalLogOther
			e = r.entries[key]
		}
		if e == nil {
			e = &refusalEntry{logged: now}
			r.entries[key] = e
			return 0, true
		}
	}
	if now.Sub(e.logged) < refusalLogEvery {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.logged, e.suppressed = now, 0
	return n, true
}

// handshakeListener does the TLS handshake of an implicit-TLS listener
// itself, under a deadline, in a goroutine per connection, and hands the
// library only connections whose handshake is complete (as *tls.Conn, so
// that the libraries' own checks of TLS still hold). Without it the
// handshake would start with the library's first write or read, where no
// deadline is set yet (go-imap writes its greeting with no read deadline:
// an IMAPS client that never sent its ClientHello stayed open for ever).
type handshakeListener struct {
	inner   net.Listener
	config  *tls.Config
	timeout time.Duration

	ready  chan net.Conn
	done   chan struct{}
	closed sync.Once
	err    error // set before done is closed
	log    *slog.Logger
	logs   *refusalLog // failed handshakes: one line per address and minute
	name   string
}

func newHandshakeListener(inner net.Listener, config *tls.Config, timeout time.Duration, log *slog.Logger, name string) *handshakeListener {
	h := &handshakeListener{inner: inner, config: config, timeout: timeout, log: log, name: name,
		logs: newRefusalLog(), ready: make(chan net.Conn), done: make(chan struct{})}
	go h.acceptLoop()
	return h
}

func (h *handshakeListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := h.inner.Accept()
		if err != nil {
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// Out of file descriptors, most likely: wait as net/http
				// does, then go on.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				h.log.Warn("accept failed, retrying", "listener", h.name, "err", err, "retry_in", delay.String())
				time.Sleep(delay)
				continue
			}
			h.err = err
			h.closed.Do(func() { close(h.done) })
			return
		}
		delay = 0
		go h.handshake(c)
	}
}

func (h *handshakeListener) handshake(c net.Conn) {
	tc := tls.Server(c, h.config)
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		h.logFailure(c.RemoteAddr().String(), err)
		c.Close()
		return
	}
	select {
	case h.ready <- tc:
	case <-h.done:
		tc.Close()
	}
}

// logFailure says why a handshake failed, in one INFO line per address and
// minute: most often a client configured for plain text or STARTTLS on an
// implicit-TLS port (RFC 8314 §3), which Go's TLS reports as a first
// record that is not a handshake. A connection closed before it sent a
// byte (a port probe, a load balancer's check) is only a debug line.
func (h *handshakeListener) logFailure(remote string, err error) {
	var rhe tls.RecordHeaderError
	var msg string
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		h.log.Debug("connection closed before the TLS handshake", "listener", h.name, "remote", remote, "err", err)
		return
	case errors.As(err, &rhe):
		msg = "plain-text client on a TLS port: the client must start TLS at once on this port (implicit TLS, RFC 8314), or use the STARTTLS port"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		msg = "TLS handshake timed out (limits.handshake_timeout)"
	default:
		msg = "TLS handshake failed"
	}
	if n, ok := h.logs.due(limit.Source(remote), time.Now()); ok {
		h.log.Info(msg, "listener", h.name, "remote", remote, "err", err, "failed_since_last_log", n)
	}
}

func (h *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.ready:
		return c, nil
	case <-h.done:
		return nil, h.err
	}
}

func (h *handshakeListener) Close() error {
	err := h.inner.Close()
	return err
}

func (h *handshakeListener) Addr() net.Addr { return h.inner.Addr() }

// smtpRefusal writes "421 4.7.0" (RFC 5321 §3.8, RFC 3463 "security or
// policy status") with sentence.
func smtpRefusal(hostname string, config *tls.Config, implicitTLS bool) func(net.Conn, string) {
	return func(c net.Conn, sentence string) {
		refuseWith(c, config, implicitTLS, fmt.Sprintf("421 4.7.0 %s %s\r\n", hostname, sentence))
	}
}

// imapRefusal writes "* BYE" (RFC 9051 §7.1.5: the server is closing the
// connection) with sentence.
func imapRefusal(config *tls.Config, implicitTLS bool) func(net.Conn, string) {
	return func(c net.Conn, sentence string) {
		refuseWith(c, config, implicitTLS, "* BYE "+sentence+"\r\n")
	}
}

func refuseWith(c net.Conn, config *tls.Config, implicitTLS bool, line string) {
	if implicitTLS {
		tc := tls.Server(c, config)
		if err := tc.Handshake(); err != nil {
			return
		}
		c = tc
	}
	c.Write([]byte(line))
	if tc, ok := c.(*tls.Conn); ok {
		tc.CloseWrite()
	}
}
