package imap

import (
	"fmt"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/carepost/carepost/limit"
)

// Limits of a session beside the library's own (command line 50 KiB,
// command read timeouts). The connection limits (per address, in total,
// TLS handshake) are the listener's, below TLS (package server).

// DefaultLiteralTimeout bounds a whole APPEND literal when
// Options.LiteralTimeout is zero.
const DefaultLiteralTimeout = 30 * time.Minute

// literalReadTimeout bounds each read of an APPEND literal: go-imap sets
// five minutes once for the whole literal (imapserver/append.go,
// v2.0.0-beta.8); here each read gets them, and the whole literal
// Options.LiteralTimeout.
const literalReadTimeout = 5 * time.Minute

// pace makes the session wait its turn when its client sends commands
// faster than the listener allows (limit.Pacer, carried by the
// connection; none when the listener sets no rate). It is called with
// every command's storage work (session.ctx): the commands the library
// answers alone (CAPABILITY, NOOP outside a mailbox, syntax errors) cost
// no storage and are not paced.
func (s *session) pace() {
	if s.conn == nil {
		return
	}
	limit.PacerOf(s.conn.NetConn()).Wait(s.srv.base)
}

// timedLiteral reads an APPEND literal under the per-read and the overall
// deadlines. Past the overall one the session ends with BYE: the rest of
// the literal would otherwise be read as commands.
type timedLiteral struct {
	imap.LiteralReader
	r    *limit.Reader
	s    *session
	once sync.Once
}

func (s *session) timedLiteral(lit imap.LiteralReader) imap.LiteralReader {
	if s.conn == nil {
		return lit
	}
	timeout := s.srv.opts.LiteralTimeout
	if timeout <= 0 {
		timeout = DefaultLiteralTimeout
	}
	return &timedLiteral{LiteralReader: lit, s: s, r: &limit.Reader{R: lit, Conn: s.conn.NetConn(),
		PerRead: literalReadTimeout, Until: time.Now().Add(timeout)}}
}

func (t *timedLiteral) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && t.r.Expired() {
		t.once.Do(func() {
			t.s.srv.log.Warn("imap: APPEND literal too long to arrive, connection closed", "account", t.s.account,
				"remote", t.s.remote(), "size", t.Size(), "limit", t.s.srv.opts.LiteralTimeout.String())
			t.s.conn.Bye(fmt.Sprintf("The message took longer than %v to arrive; please send it again.", t.s.srv.opts.LiteralTimeout))
		})
	}
	return n, err
}
