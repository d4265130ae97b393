package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// imapDialer opens logged-in IMAP connections to one endpoint.
type imapDialer struct {
	ep       Endpoint
	tls      *tls.Config
	password string
	// handler, if set, receives the unilateral responses (EXISTS during
	// IDLE) of every connection this dialer opens.
	handler *imapclient.UnilateralDataHandler
}

// dial connects (TCP, TLS or STARTTLS, greeting) and logs in as user. On
// failure it names the step that failed. The whole setup is bounded by the
// endpoint's timeout, and by ctx.
func (d *imapDialer) dial(ctx context.Context, user string) (*imapclient.Client, string, error) {
	timeout := d.ep.timeout()
	nd := net.Dialer{Timeout: timeout}
	raw, err := nd.DialContext(ctx, "tcp", d.ep.Addr)
	if err != nil {
		return nil, "connect", err
	}
	// imapclient has no per-command timeout: a watchdog closes the
	// connection if the setup takes too long.
	watchdog := time.AfterFunc(timeout, func() { raw.Close() })
	defer watchdog.Stop()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	opts := &imapclient.Options{TLSConfig: d.tls, UnilateralDataHandler: d.handler}
	var c *imapclient.Client
	switch d.ep.Security {
	case ImplicitTLS:
		tc := tls.Client(raw, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, "tls", err
		}
		c = imapclient.New(tc, opts)
	case StartTLS:
		// NewStartTLS waits for the greeting and refuses PREAUTH on a
		// cleartext connection (RFC 9051 §7.1.4).
		c, err = imapclient.NewStartTLS(raw, opts)
		if err != nil {
			raw.Close()
			return nil, "starttls", err
		}
	default:
		c = imapclient.New(raw, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, "greeting", err
	}
	if err := c.Login(user, d.password).Wait(); err != nil {
		c.Close()
		return nil, "login", fmt.Errorf("as %s: %w", user, err)
	}
	return c, "", nil
}

// logout ends a session politely, bounded in time.
func logout(c *imapclient.Client, timeout time.Duration) {
	t := time.AfterFunc(timeout, func() { c.Close() })
	defer t.Stop()
	c.Logout().Wait()
	c.Close()
}

// isConnErr tells a broken connection from a refused command: after an
// IMAP NO or BAD (*imap.Error) the session goes on.
func isConnErr(err error) bool {
	var ie *imap.Error
	return !errors.As(err, &ie) && !errors.Is(err, errWrongAnswer)
}

// fill tops up the mailbox of user to n messages by APPEND, and returns
// how many it added. The mailbox is created if it does not exist.
func (d *imapDialer) fill(ctx context.Context, user, mailbox string, n int, maker *messageMaker) (int, error) {
	c, step, err := d.dial(ctx, user)
	if err != nil {
		return 0, &SetupError{Step: step, Err: err}
	}
	defer logout(c, d.ep.timeout())
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	st, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil && mailbox != "INBOX" {
		if cerr := c.Create(mailbox, nil).Wait(); cerr == nil {
			st, err = c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
		}
	}
	if err != nil {
		return 0, &SetupError{Step: "status", Err: fmt.Errorf("%s of %s: %w", mailbox, user, err)}
	}
	have := 0
	if st.NumMessages != nil {
		have = int(*st.NumMessages)
	}
	added := 0
	for i := have; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return added, err
		}
		msg := maker.whole(i, []string{user})
		cmd := c.Append(mailbox, int64(len(msg)), nil)
		_, werr := cmd.Write(msg)
		cerr := cmd.Close()
		if _, err := cmd.Wait(); err != nil || werr != nil || cerr != nil {
			return added, &SetupError{Step: "fill", Err: fmt.Errorf("APPEND to %s of %s: %w", mailbox, user, errors.Join(werr, cerr, err))}
		}
		added++
	}
	return added, nil
}

// idler is one imapclient connection held in IDLE (RFC 2177), for the
// push measurement, which reads its EXISTS.
type idler struct {
	c    *imapclient.Client
	idle *imapclient.IdleCommand
}

// close ends IDLE (DONE) and logs out.
func (i *idler) close(timeout time.Duration) {
	t := time.AfterFunc(timeout, func() { i.c.Close() })
	defer t.Stop()
	i.idle.Close()
	i.idle.Wait()
	logout(i.c, timeout)
}
