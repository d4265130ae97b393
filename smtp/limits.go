package smtp

import (
	"fmt"
	"io"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/limit"
)

// Limits of a session beside go-smtp's own (line length, recipients,
// size). The connection limits (per address, in total, TLS handshake) are
// the listener's, below TLS (package server).

// DefaultDataTimeout bounds a whole DATA or BDAT transfer: 25 MB at 1 Mbit/s
// takes under 4 minutes; thirty minutes leave room for a slow link without
// letting a client hold a session and its spool file for ever.
const DefaultDataTimeout = 30 * time.Minute

// pace makes the session wait its turn when its client sends commands
// faster than the listener allows (limit.Pacer, carried by the connection;
// none when the listener sets no rate). Only the commands that reach the
// session are paced: EHLO, AUTH, MAIL, RCPT, DATA and BDAT, the ones that
// cost a lookup or a transaction; go-smtp answers the others alone.
func (ss *session) pace() {
	limit.PacerOf(ss.conn.Conn()).Wait(ss.ctx)
}

// bodyReader reads the message of DATA or BDAT under the read timeout for
// each read and the overall DataTimeout for the whole transfer.
func (ss *session) bodyReader(r io.Reader) *limit.Reader {
	return &limit.Reader{R: r, Conn: ss.conn.Conn(), PerRead: ss.s.opts.ReadTimeout,
		Until: time.Now().Add(ss.s.opts.DataTimeout)}
}

// transferTimedOut ends a session whose message took longer than
// DataTimeout: the rest of a DATA stream would otherwise be read as
// commands. The reply is written here, since go-smtp cannot write once the
// connection is closed (RFC 5321 §3.8: 421 and close).
func (ss *session) transferTimedOut(attrs []any) error {
	ss.s.log.Warn("message transfer too long, connection closed", append(attrs, "limit", ss.s.opts.DataTimeout.String())...)
	conn := ss.conn.Conn()
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "421 4.4.2 %s The message took longer than %v to arrive; the connection is closed, please send it again.\r\n",
		ss.s.opts.Hostname, ss.s.opts.DataTimeout)
	conn.Close()
	return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Transfer timeout."}
}
