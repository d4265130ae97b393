package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPConfig is one SMTP load: Messages messages of Size bytes from From,
// sent by Clients concurrent clients.
type SMTPConfig struct {
	Endpoint
	// User and Password, when User is set, authenticate every connection
	// with AUTH PLAIN (RFC 4954, RFC 4616).
	User, Password string
	From           string
	// To are the recipients: message i goes to To[i mod len(To)], or to
	// all of them when ToAll is set.
	To       []string
	ToAll    bool
	Clients  int
	Messages int
	Size     int
	// NewConn opens a connection per message instead of one per client
	// reused for its share (RFC 5321 §3.3 allows many transactions on one
	// session; real MTAs do both).
	NewConn bool
}

func (cfg *SMTPConfig) check() error {
	if err := cfg.Endpoint.check(); err != nil {
		return err
	}
	switch {
	case cfg.From == "":
		return errors.New("a sender (--from) is needed")
	case len(cfg.To) == 0:
		return errors.New("at least one recipient (--to) is needed")
	case cfg.Clients < 1:
		return errors.New("--clients must be at least 1")
	case cfg.Messages < 1:
		return errors.New("--messages must be at least 1")
	case cfg.Size < 0:
		return errors.New("--size must not be negative")
	case cfg.Password != "" && cfg.User == "":
		return errors.New("a password without a user (--user)")
	}
	return nil
}

// smtpRun is the shared state of one SMTP load.
type smtpRun struct {
	cfg   SMTPConfig
	tls   *tls.Config
	maker *messageMaker
	col   *collector
	next  atomic.Int64 // index of the next message to send
	sent  atomic.Int64 // bytes of accepted messages
	// wrap, if set, wraps every TCP connection before TLS (the push
	// measurement stamps the writes with it).
	wrap func(net.Conn) net.Conn
}

// smtpConn is one client connection and the raw socket under it (for
// write deadlines and for closing it when the run is cancelled).
type smtpConn struct {
	c   *smtp.Client
	raw net.Conn
}

func (s smtpConn) close() { s.c.Close() }

// quit ends the session politely, bounded by the timeout.
func (r *smtpRun) quit(s smtpConn) {
	s.raw.SetDeadline(time.Now().Add(r.cfg.timeout()))
	s.c.Quit()
	s.c.Close()
}

// RunSMTP sends the load of cfg and returns its summary. Progress lines go
// to progress once a second (nil for none). The error is a *SetupError if
// the first connection could not be set up, and wraps ErrAllFailed if no
// message was accepted; the summary is returned in the latter case.
func RunSMTP(ctx context.Context, cfg SMTPConfig, progress io.Writer) (*Summary, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	cfg.Clients = min(cfg.Clients, cfg.Messages)
	tlsCfg, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	r := &smtpRun{cfg: cfg, tls: tlsCfg, maker: newMessageMaker(cfg.From, cfg.Size), col: newCollector("send")}

	// The first connection is set up alone: a wrong port, certificate or
	// password then gives one clear error instead of a flood of them.
	w0 := r.col.worker()
	start := time.Now()
	first, step, err := r.dial(ctx)
	if err != nil {
		return nil, &SetupError{Step: step, Err: err}
	}
	w0.record("connect", start, nil)

	// With reused connections, every client connects (and authenticates)
	// before the clock starts: the figure is the steady message rate, and
	// the connect operation shows the setup cost apart. With NewConn the
	// connections are part of each message's work.
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range cfg.Clients {
		w, conn := r.col.worker(), smtpConn{}
		if i == 0 {
			w, conn = w0, first
		}
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if conn.c == nil && !cfg.NewConn {
				start := time.Now()
				c, _, err := r.dial(ctx)
				if w.record("connect", start, err) {
					conn = c
				}
			}
			ready.Done()
			<-gate
			r.client(ctx, w, conn)
		}()
	}
	ready.Wait()
	prog := startProgress(progress, "smtp", "msg", r.col.completed.Load, r.col.errTotal.Load, int64(cfg.Messages), 0, nil)
	start = time.Now()
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	prog.stop()

	sum := &Summary{
		Tool: "smtp", Addr: cfg.Addr, Security: cfg.Security.String(), Clients: cfg.Clients,
		Elapsed: round3(elapsed.Seconds()), Completed: r.col.completed.Load(), Failed: r.col.failed.Load(),
		RateUnit: "msg/s",
		SMTP: &SMTPInfo{
			Messages: cfg.Messages, Size: cfg.Size, BytesSent: r.sent.Load(),
			Recipients: len(cfg.To), ToAll: cfg.ToAll, NewConn: cfg.NewConn,
		},
		Operations: r.col.ops([]string{"connect", "send"}, elapsed),
		Errors:     r.col.errors(),
	}
	sum.Rate = round(float64(sum.Completed) / elapsed.Seconds())
	for i := range sum.Operations {
		if sum.Operations[i].Name == "connect" && !cfg.NewConn {
			sum.Operations[i].Rate = 0 // connections were made before the clock started
		}
	}
	sum.SMTP.MBPerSecond = round3(float64(sum.SMTP.BytesSent) / 1e6 / elapsed.Seconds())
	if sum.Completed == 0 {
		if err := ctx.Err(); err != nil {
			return sum, fmt.Errorf("interrupted before any message was sent: %w", err)
		}
		return sum, fmt.Errorf("%w: no message was accepted (%d failed)", ErrAllFailed, sum.Failed)
	}
	return sum, ctx.Err()
}

// client sends messages until none is left, reusing conn (or not, with
// NewConn). A message whose connection cannot be set up counts as failed:
// the load stays bounded even when the server goes away.
func (r *smtpRun) client(ctx context.Context, w *worker, conn smtpConn) {
	defer w.flush()
	defer func() {
		if conn.c != nil {
			r.quit(conn)
		}
	}()
	var buf bytes.Buffer
	for ctx.Err() == nil {
		idx := int(r.next.Add(1) - 1)
		if idx >= r.cfg.Messages {
			return
		}
		if conn.c == nil {
			start := time.Now()
			c, _, err := r.dial(ctx)
			if !w.record("connect", start, err) {
				w.abandon("send")
				continue
			}
			conn = c
		}
		start := time.Now()
		n, err := r.send(ctx, conn, &buf, idx)
		if w.record("send", start, err) {
			r.sent.Add(n)
		}
		var se *smtp.SMTPError
		switch {
		case err == nil && !r.cfg.NewConn:
		case err == nil:
			r.quit(conn)
			conn = smtpConn{}
		case errors.As(err, &se) && se.Code != 421 && !r.cfg.NewConn:
			// A refusal leaves the session usable (RFC 5321 §4.1.1.5).
			if conn.c.Reset() != nil {
				conn.close()
				conn = smtpConn{}
			}
		default:
			conn.close()
			conn = smtpConn{}
		}
	}
}

// send runs one mail transaction: MAIL, RCPT for each recipient, DATA.
func (r *smtpRun) send(ctx context.Context, conn smtpConn, buf *bytes.Buffer, idx int) (int64, error) {
	stop := context.AfterFunc(ctx, conn.close)
	defer stop()
	to := r.cfg.To
	if !r.cfg.ToAll {
		to = to[idx%len(to) : idx%len(to)+1]
	}
	if err := conn.c.Mail(r.cfg.From, nil); err != nil {
		return 0, fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, rcpt := range to {
		if err := conn.c.Rcpt(rcpt, nil); err != nil {
			return 0, fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err)
		}
	}
	wc, err := conn.c.Data()
	if err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	// go-smtp bounds each reply, not the writing of the body.
	conn.raw.SetWriteDeadline(time.Now().Add(r.cfg.timeout()))
	n, err := r.maker.writeTo(wc, buf, idx, to)
	if err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	if err := wc.Close(); err != nil {
		return 0, fmt.Errorf("end of DATA: %w", err)
	}
	return n, nil
}

// dial opens and prepares one connection: TCP, TLS, EHLO, AUTH. On
// failure it names the step that failed.
func (r *smtpRun) dial(ctx context.Context) (smtpConn, string, error) {
	timeout := r.cfg.timeout()
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", r.cfg.Addr)
	if err != nil {
		return smtpConn{}, "connect", err
	}
	if r.wrap != nil {
		raw = r.wrap(raw)
	}
	// One deadline for the whole setup: go-smtp's own timeouts apply per
	// reply and not to the TLS handshake.
	watchdog := time.AfterFunc(timeout, func() { raw.Close() })
	defer watchdog.Stop()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	var c *smtp.Client
	switch r.cfg.Security {
	case ImplicitTLS:
		tc := tls.Client(raw, r.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return smtpConn{}, "tls", err
		}
		c = smtp.NewClient(tc)
	case StartTLS:
		c, err = smtp.NewClientStartTLS(raw, r.tls)
		if err != nil {
			raw.Close()
			return smtpConn{}, "starttls", err
		}
	default:
		c = smtp.NewClient(raw)
	}
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout
	// After STARTTLS the handshake happens with the next EHLO: do it now
	// so that a certificate problem is reported as such.
	if err := c.Hello("localhost"); err != nil {
		c.Close()
		if r.cfg.Security == StartTLS {
			return smtpConn{}, "starttls", err
		}
		return smtpConn{}, "ehlo", err
	}
	if r.cfg.User != "" {
		if err := c.Auth(sasl.NewPlainClient("", r.cfg.User, r.cfg.Password)); err != nil {
			c.Close()
			return smtpConn{}, "auth", err
		}
	}
	return smtpConn{c: c, raw: raw}, "", nil
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }
