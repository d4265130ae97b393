package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// PushConfig is one push-latency measurement (issue #8): an IMAP session
// holds the recipient's INBOX in IDLE (RFC 2177) while Messages messages
// are submitted to it one after another; for each, the time from the end
// of DATA to the `* n EXISTS` on the IDLE connection is measured.
type PushConfig struct {
	// SMTP is the submission endpoint, IMAP the endpoint of the IDLE
	// session.
	SMTP, IMAP Endpoint
	// User and Password authenticate the submission (AUTH PLAIN).
	User, Password string
	// From is the envelope sender and From address; User when empty.
	From string
	// To is the recipient whose INBOX is watched; User when empty.
	To string
	// IMAPUser and IMAPPassword log the IDLE session in: To and Password
	// when empty.
	IMAPUser, IMAPPassword string
	// Messages are sent one at a time, each after the previous one's
	// EXISTS arrived (or timed out), so that every push is measured on an
	// otherwise idle server. Size is their size in bytes.
	Messages int
	Size     int
}

func (cfg *PushConfig) check() error {
	if err := cfg.SMTP.check(); err != nil {
		return fmt.Errorf("submission: %w", err)
	}
	if err := cfg.IMAP.check(); err != nil {
		return fmt.Errorf("imap: %w", err)
	}
	switch {
	case cfg.User == "" || cfg.Password == "":
		return errors.New("a user and a password (--user, --pass) are needed")
	case cfg.Messages < 1:
		return errors.New("--messages must be at least 1")
	case cfg.Size < 0:
		return errors.New("--size must not be negative")
	}
	return nil
}

// PushInfo describes a push-latency run.
type PushInfo struct {
	IMAPAddr     string `json:"imap_addr"`
	IMAPSecurity string `json:"imap_security"`
	Recipient    string `json:"recipient"`
	Mailbox      string `json:"mailbox"`
	Messages     int    `json:"messages"`   // asked for
	Size         int    `json:"size_bytes"` // asked for, per message
	// BeforeReply counts the pushes that arrived before the 250 reply to
	// DATA: a server may publish the new message at commit, before it
	// answers the client.
	BeforeReply int `json:"pushed_before_reply"`
	// Missed counts accepted messages whose EXISTS did not come within the
	// timeout.
	Missed int `json:"missed"`
}

// pushMeasured says which instants the push and reply latencies are taken
// between; it is printed with the figures so that nobody has to guess.
const pushMeasured = "push: from the client's write of the end of DATA (CRLF.CRLF) to the `* n EXISTS` read on the IDLE connection;\n" +
	"reply: from the same instant to the 250 reply; send: MAIL FROM to the 250 reply\n"

// stampConn notes when the last write to the socket began. Under TLS it
// sits below the TLS layer, so that the stamp is when the encrypted
// record holding the end of DATA was handed to the kernel. go-smtp writes
// from the caller's goroutine only, so the field needs no lock.
type stampConn struct {
	net.Conn
	lastWrite time.Time
}

func (s *stampConn) Write(p []byte) (int, error) {
	s.lastWrite = time.Now()
	return s.Conn.Write(p)
}

// existsEvent is one `* n EXISTS` and when the client read it.
type existsEvent struct {
	n  uint32
	at time.Time
}

// RunPush measures the push latency of cfg and returns its summary.
// Progress lines go to progress once a second (nil for none). The error is
// a *SetupError if the IDLE session or the submission connection could not
// be set up, and wraps ErrAllFailed if not one push was measured; the
// summary is returned in the latter case.
//
// The start instant is the beginning of the client's last write of the
// DATA transaction, the one that carries "\r\n.\r\n": the server cannot
// have the message before, and it may publish it before its 250 reply, so
// the reply would be too late a start. The end instant is when the
// client's IMAP reader has parsed the EXISTS line (after TLS decryption):
// both ends err on the side of a longer latency, by microseconds.
func RunPush(ctx context.Context, cfg PushConfig, progress io.Writer) (*Summary, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.From == "" {
		cfg.From = cfg.User
	}
	if cfg.To == "" {
		cfg.To = cfg.User
	}
	if cfg.IMAPUser == "" {
		cfg.IMAPUser = cfg.To
	}
	if cfg.IMAPPassword == "" {
		cfg.IMAPPassword = cfg.Password
	}
	smtpTLS, err := cfg.SMTP.TLSConfig()
	if err != nil {
		return nil, err
	}
	imapTLS, err := cfg.IMAP.TLSConfig()
	if err != nil {
		return nil, err
	}
	col := newCollector("push")
	w := col.worker()

	// The handler runs in the IMAP reader goroutine: it must not block, so
	// the channel has room for far more pushes than one message makes.
	events := make(chan existsEvent, 1024)
	handler := &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages == nil {
				return
			}
			select {
			case events <- existsEvent{n: *d.NumMessages, at: time.Now()}:
			default:
			}
		},
	}
	d := &imapDialer{ep: cfg.IMAP, tls: imapTLS, password: cfg.IMAPPassword, handler: handler}
	start := time.Now()
	ic, step, err := d.dial(ctx, cfg.IMAPUser)
	if err != nil {
		return nil, &SetupError{Step: "imap " + step, Err: err}
	}
	defer ic.Close()
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil {
		return nil, &SetupError{Step: "imap select", Err: fmt.Errorf("INBOX of %s: %w", cfg.IMAPUser, err)}
	}
	idle, err := ic.Idle()
	if err != nil {
		return nil, &SetupError{Step: "imap idle", Err: err}
	}
	w.record("idle_open", start, nil)
	idler := &idler{c: ic, idle: idle}
	defer idler.close(cfg.IMAP.timeout())

	r := &smtpRun{
		cfg: SMTPConfig{Endpoint: cfg.SMTP, User: cfg.User, Password: cfg.Password, From: cfg.From,
			To: []string{cfg.To}, Clients: 1, Messages: cfg.Messages, Size: cfg.Size},
		tls: smtpTLS, maker: newMessageMaker(cfg.From, cfg.Size), col: col,
		wrap: func(c net.Conn) net.Conn { return &stampConn{Conn: c} },
	}
	start = time.Now()
	conn, step, err := r.dial(ctx)
	if err != nil {
		return nil, &SetupError{Step: "smtp " + step, Err: err}
	}
	w.record("connect", start, nil)
	defer func() {
		if conn.c != nil {
			r.quit(conn)
		}
	}()

	info := &PushInfo{IMAPAddr: cfg.IMAP.Addr, IMAPSecurity: cfg.IMAP.Security.String(), Recipient: cfg.To,
		Mailbox: "INBOX", Messages: cfg.Messages, Size: cfg.Size}
	count := sel.NumMessages
	timeout := cfg.IMAP.timeout()
	var buf bytes.Buffer
	var runErr error
	prog := startProgress(progress, "push", "msg", col.completed.Load, col.errTotal.Load, int64(cfg.Messages), 0, nil)
	began := time.Now()
loop:
	for i := 0; i < cfg.Messages && ctx.Err() == nil; i++ {
		// Late or stray EXISTS (another delivery, a push that came after
		// its timeout) move the base: message i is the one that brings
		// the count past what was known before it was sent.
		for drained := false; !drained; {
			select {
			case ev := <-events:
				count = max(count, ev.n)
			default:
				drained = true
			}
		}
		if conn.c == nil {
			start := time.Now()
			c, _, err := r.dial(ctx)
			if !w.record("connect", start, err) {
				w.abandon("push")
				continue
			}
			conn = c
		}
		start := time.Now()
		_, err := r.send(ctx, conn, &buf, i)
		replyAt := time.Now()
		if !w.record("send", start, err) {
			w.abandon("push")
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code == 421 || conn.c.Reset() != nil {
				conn.close()
				conn = smtpConn{}
			}
			continue
		}
		dataEnd := conn.raw.(*stampConn).lastWrite
		w.sample("reply", replyAt.Sub(dataEnd))

		wait := time.NewTimer(timeout)
	await:
		for {
			select {
			case ev := <-events:
				if ev.n <= count {
					continue // an EXISTS from before (there should be none)
				}
				count = ev.n
				w.sample("push", ev.at.Sub(dataEnd))
				if ev.at.Before(replyAt) {
					info.BeforeReply++
				}
				break await
			case <-wait.C:
				info.Missed++
				w.fail("push", fmt.Errorf("no EXISTS on the IDLE connection within %s of the end of DATA", timeout))
				break await
			case <-ic.Closed():
				wait.Stop()
				w.fail("push", errors.New("the IDLE connection was closed"))
				runErr = errors.New("the server closed the IDLE connection: the run stopped early")
				break loop
			case <-ctx.Done():
				wait.Stop()
				break loop
			}
		}
		wait.Stop()
	}
	elapsed := time.Since(began)
	prog.stop()
	w.flush()

	sum := &Summary{
		Tool: "push", Addr: cfg.SMTP.Addr, Security: cfg.SMTP.Security.String(), Clients: 1,
		Elapsed: round3(elapsed.Seconds()), Completed: col.completed.Load(), Failed: col.failed.Load(),
		RateUnit: "msg/s", Push: info,
		Operations: col.ops([]string{"push", "reply", "send", "connect", "idle_open"}, elapsed),
		Errors:     col.errors(),
	}
	sum.Rate = round(float64(sum.Completed) / elapsed.Seconds())
	for i := range sum.Operations {
		if n := sum.Operations[i].Name; n == "connect" || n == "idle_open" {
			sum.Operations[i].Rate = 0 // set up before the clock started
		}
	}
	switch {
	case runErr != nil:
		return sum, runErr
	case sum.Completed == 0 && ctx.Err() != nil:
		return sum, fmt.Errorf("interrupted before any push was measured: %w", ctx.Err())
	case sum.Completed == 0:
		return sum, fmt.Errorf("%w: no push was measured (%d failed)", ErrAllFailed, sum.Failed)
	}
	return sum, ctx.Err()
}
