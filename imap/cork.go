package imap

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// Corking: go-imap flushes its writer after every response, so a FETCH of
// 100 messages cost 100 TLS records and 100 write system calls (8 % of the
// CPU under imaptest's stress load). While a FETCH runs, the session corks
// its connection: writes gather in a buffer, sent as full records when it
// fills and when the FETCH ends, before the tagged reply. The buffer is
// borrowed from a pool for the length of the command, so idle connections
// keep none.

// corkMax is the most a corked connection holds before it writes: a
// TLS record's worth of plaintext, a few times over.
const corkMax = 64 << 10

var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, corkMax); return &b }}

// Listener wraps the plain TCP listener of the IMAP service (before any TLS
// listener) so that sessions can cork their connections.
func Listener(ln net.Listener) net.Listener { return corkListener{ln} }

type corkListener struct{ net.Listener }

func (l corkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &corkConn{Conn: c}, nil
}

type corkConn struct {
	net.Conn
	mu  sync.Mutex
	buf *[]byte // non-nil while corked
	err error   // the first write error while corked
	// onDeadline, when set, is called at each SetReadDeadline until it
	// returns true (imap/syntax.go, after STARTTLS).
	onDeadline func() bool
}

func (c *corkConn) onReadDeadline(f func() bool) {
	c.mu.Lock()
	c.onDeadline = f
	c.mu.Unlock()
}

func (c *corkConn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	c.mu.Lock()
	f := c.onDeadline
	c.mu.Unlock()
	if f != nil && f() {
		c.mu.Lock()
		c.onDeadline = nil
		c.mu.Unlock()
	}
	return err
}

// NetConn returns the connection below, where the listener's limits
// (limit.PacerOf) are found.
func (c *corkConn) NetConn() net.Conn { return c.Conn }

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return c.Conn.Write(p)
	}
	if c.err != nil {
		return 0, c.err
	}
	if len(*c.buf)+len(p) > corkMax {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) >= corkMax {
			n, err := c.Conn.Write(p)
			c.err = err
			return n, err
		}
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// Close sends what is corked first: a BYE written from another goroutine
// in the middle of a FETCH (revoke.go) is not lost with the connection.
func (c *corkConn) Close() error {
	c.uncork()
	return c.Conn.Close()
}

func (c *corkConn) flushLocked() error {
	if len(*c.buf) > 0 && c.err == nil {
		_, c.err = c.Conn.Write(*c.buf)
	}
	*c.buf = (*c.buf)[:0]
	return c.err
}

func (c *corkConn) cork() {
	c.mu.Lock()
	if c.buf == nil {
		c.buf, c.err = corkBufs.Get().(*[]byte), nil
	}
	c.mu.Unlock()
}

func (c *corkConn) uncork() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return
	}
	c.flushLocked() // a failed write shows at the library's next one
	corkBufs.Put(c.buf)
	c.buf = nil
}

// cork corks the session's connection, if it can be, until the returned
// function is called.
func (s *session) cork() (uncork func()) {
	if s.conn == nil {
		return func() {}
	}
	nc := s.conn.NetConn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	cc, ok := nc.(*corkConn)
	if !ok {
		return func() {}
	}
	cc.cork()
	return cc.uncork
}
