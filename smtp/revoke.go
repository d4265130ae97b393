package smtp

import (
	"fmt"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/auth"
)

// Ending a session from outside. When the account of an authenticated
// submission session is suspended or its credentials change (a new
// password, a revoked application password), auth.Sessions calls end from
// its own goroutine, whichever process made the change, and the client
// gets "421 4.7.0 <why>" and the connection closes (RFC 5321 §3.8: a server
// may close with 421 at any time).
//
// go-smtp (v0.25) lets a backend answer only the command it is handed and
// has no way to write otherwise, so the reply is written on the connection
// itself, in one write, and the connection is closed:
//   - A session waiting for a command (most of them: a client keeps its
//     submission connection open between messages) gets it at once. So
//     does one in the middle of a command that go-smtp answers alone
//     (NOOP, RSET...): each reply is one write, so the lines never mix, and
//     the 421 comes first or right after that reply.
//   - A message being received (DATA, BDAT) is received and answered
//     first, then the 421 follows at once (Reset, which go-smtp calls after
//     the reply): a 250 is never lost, so the client never sends the
//     message twice. The end then waits for the message.
//   - A DATA that begins after the end gets the 421 as its reply.
type endState struct {
	mu         sync.Mutex
	unregister func()
	inData     bool
	reason     string // set once the session must end
	told       bool   // the 421 was written or returned
}

// endWriteTimeout bounds the write of the 421 to a client that does not
// read.
const endWriteTimeout = 10 * time.Second

// registerEnd registers the session of p, which just authenticated.
func (ss *session) registerEnd(p *auth.Principal) {
	u := ss.s.opts.Sessions.Register(p, ss.endSession)
	ss.end.mu.Lock()
	ss.end.unregister = u
	ss.end.mu.Unlock()
}

// unregisterEnd takes the session out of the register (Logout).
func (ss *session) unregisterEnd() {
	ss.end.mu.Lock()
	u := ss.end.unregister
	ss.end.unregister = nil
	ss.end.mu.Unlock()
	if u != nil {
		u()
	}
}

// endSession is called by auth.Sessions, on its own goroutine.
func (ss *session) endSession(reason string) {
	ss.end.mu.Lock()
	if ss.end.reason != "" {
		ss.end.mu.Unlock()
		return
	}
	ss.end.reason = reason
	now := !ss.end.inData
	ss.end.told = now
	ss.end.mu.Unlock()
	ss.s.log.Info("session ended by a change of the account", "remote", ss.remote, "user", ss.user(), "reason", reason,
		"after_message", !now)
	if now {
		ss.say421(reason)
	}
}

// enterData marks a message being received, or returns the 421 when the
// session has ended already.
func (ss *session) enterData() error {
	ss.end.mu.Lock()
	defer ss.end.mu.Unlock()
	if ss.end.reason != "" {
		ss.end.told = true
		return endReply(ss.end.reason)
	}
	ss.end.inData = true
	return nil
}

func (ss *session) leaveData() {
	ss.end.mu.Lock()
	ss.end.inData = false
	ss.end.mu.Unlock()
}

// closeIfEnded, from Reset (after the reply to a message), ends a session
// whose end came while the message was being received, and closes one
// that was told already.
func (ss *session) closeIfEnded() {
	ss.end.mu.Lock()
	reason, told := ss.end.reason, ss.end.told
	ss.end.told = reason != ""
	ss.end.mu.Unlock()
	switch {
	case reason == "":
	case !told:
		ss.say421(reason)
	default:
		ss.conn.Conn().Close()
	}
}

// say421 writes the 421 reply in one write and closes the connection;
// go-smtp's loop then sees the connection closed and ends the session.
func (ss *session) say421(reason string) {
	c := ss.conn.Conn()
	c.SetWriteDeadline(time.Now().Add(endWriteTimeout))
	c.Write(fmt.Appendf(nil, "421 4.7.0 %s\r\n", reason))
	c.Close()
}

func endReply(reason string) *gosmtp.SMTPError {
	return &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0}, Message: reason}
}
