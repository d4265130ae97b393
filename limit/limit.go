// Package limit holds the bounds every protocol session applies to its
// client, whatever the protocol: a command rate (Pacer) and a deadline on a
// whole transfer beside the one on each read (Reader). The limits on
// connections themselves (per address, in total, the TLS handshake) are
// applied below TLS by the listener wrapper of package server.
package limit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Pacer slows a session that sends commands faster than Rate per second
// (a token bucket holding Burst commands, refilled at Rate): past that,
// each command waits its turn instead of being refused, so that a client
// in a hurry is slowed and one flooding the server costs it no more than
// Rate commands a second. The zero Pacer never waits. One Pacer belongs to
// one session; it is safe for concurrent use nonetheless.
type Pacer struct {
	Rate  float64 // commands per second; 0 disables
	Burst float64 // commands allowed at once after a quiet moment

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewPacer returns a Pacer of rate commands per second with a burst of
// two seconds' worth (a mail client opening a mailbox sends a few dozen
// commands at once).
func NewPacer(rate int) *Pacer {
	return &Pacer{Rate: float64(rate), Burst: float64(2 * rate)}
}

// Delay takes a command's token and returns how long the command must
// wait for it (0 within the rate).
func (p *Pacer) Delay(now time.Time) time.Duration {
	if p == nil || p.Rate <= 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last.IsZero() {
		p.tokens = p.Burst
	} else if now.After(p.last) {
		p.tokens = min(p.Burst, p.tokens+now.Sub(p.last).Seconds()*p.Rate)
	}
	p.last = now
	p.tokens--
	if p.tokens >= 0 {
		return 0
	}
	return time.Duration(-p.tokens / p.Rate * float64(time.Second))
}

// Wait takes a command's token, waiting for it if needed, or until ctx
// ends (then its error).
func (p *Pacer) Wait(ctx context.Context) error {
	d := p.Delay(time.Now())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrTransferTimeout is what a Reader returns once its overall deadline
// has passed. It satisfies errors.Is(err, os.ErrDeadlineExceeded), as a
// read timeout of the connection does.
var ErrTransferTimeout = &transferTimeout{}

type transferTimeout struct{}

func (*transferTimeout) Error() string   { return "transfer took longer than its overall deadline" }
func (*transferTimeout) Timeout() bool   { return true }
func (*transferTimeout) Temporary() bool { return true }
func (*transferTimeout) Is(target error) bool {
	return target == os.ErrDeadlineExceeded
}

// Reader reads a transfer from a client (SMTP DATA or BDAT, an IMAP
// literal) under two deadlines: each read must progress within PerRead (a
// slow but steady upload goes on), and the whole transfer must end by
// Until (a client sending a byte a minute cannot hold a session and its
// spool file for ever). Before each read it sets Conn's read deadline to
// the earlier of the two; the protocol library sets its own again at its
// next command.
type Reader struct {
	R       io.Reader
	Conn    net.Conn // nil: only Until is checked, between reads
	PerRead time.Duration
	Until   time.Time // zero: no overall deadline
}

func (r *Reader) Read(p []byte) (int, error) {
	now := time.Now()
	if !r.Until.IsZero() && !now.Before(r.Until) {
		return 0, ErrTransferTimeout
	}
	if r.Conn != nil {
		var dl time.Time
		if r.PerRead > 0 {
			dl = now.Add(r.PerRead)
		}
		if !r.Until.IsZero() && (dl.IsZero() || r.Until.Before(dl)) {
			dl = r.Until
		}
		if !dl.IsZero() {
			r.Conn.SetReadDeadline(dl)
		}
	}
	n, err := r.R.Read(p)
	if err != nil && !r.Until.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(r.Until) {
		err = ErrTransferTimeout
	}
	return n, err
}

// Expired tells whether the overall deadline has passed.
func (r *Reader) Expired() bool {
	return !r.Until.IsZero() && !time.Now().Before(r.Until)
}

// PacerOf returns the Pacer carried by a connection of a limited listener
// (package server), looking through the layers above it (crypto/tls's
// NetConn, and any wrapper with a NetConn method); nil, which never waits,
// when there is none.
func PacerOf(c net.Conn) *Pacer {
	for c != nil {
		if p, ok := c.(interface{ Pacer() *Pacer }); ok {
			return p.Pacer()
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// Source is the key under which a client's address ("ip:port") is
// counted: the IP address without the port, and for IPv6 its /64, the
// block a single host or home usually holds (so that walking through the
// addresses of one's own /64 does not escape a limit). Anything else is
// kept as it is, bounded.
func Source(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		if len(host) > 64 {
			host = host[:64]
		}
		return host
	}
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// ClientGone tells whether one of args (a library's log arguments) is an
// error of a connection the client ended (closed, reset) or let time out,
// including a transfer past its overall deadline: the client's doing,
// worth an INFO line in the log, not a warning.
func ClientGone(args []any) bool {
	for _, a := range args {
		err, ok := a.(error)
		if !ok {
			continue
		}
		var ne net.Error
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
			errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return true
		}
	}
	return false
}

// IsLoopback says whether addr ("host:port") is on a loopback address:
// "localhost" or a loopback IP. An empty host (every interface) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && IsLoopbackHost(host)
}

// IsLoopbackHost says whether host is "localhost" or a loopback IP.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
