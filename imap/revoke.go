package imap

import (
	"errors"
	"net"
)

// Ending a session from outside. When the account of a session is
// suspended or its credentials change (a new password, a revoked
// application password), auth.Sessions calls the session's end from its
// own goroutine, whichever process made the change. The session then says
// BYE with the reason and its connection closes (RFC 9051 §7.1.5: the
// server may send BYE at any time). go-imap's Conn.Bye may be called from
// any goroutine: it takes the lock every response is written under, so the
// BYE never lands inside another response (between two FETCH responses
// at worst), then closes the connection. A session in IDLE needs nothing
// from the client: closing the connection ends the library's wait for
// DONE, which stops Idle. A command under way runs to its end against a
// closed connection, as after any disconnection, and the library then
// closes the session (Close, which unregisters it).

// closedConn tells whether one of the library's log arguments is the
// error of a read on a connection closed here: ending a session in IDLE
// makes the library's wait for DONE fail so.
func closedConn(args []any) bool {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, net.ErrClosed) {
			return true
		}
	}
	return false
}

// registerEnd registers the session of the principal that just logged in.
func (s *session) registerEnd() {
	account, remote := s.account, s.remote()
	conn, log := s.conn, s.srv.log
	s.unregister = s.srv.opts.Sessions.Register(s.principal, func(reason string) {
		log.Info("imap: session ended by a change of the account", "account", account, "remote", remote, "reason", reason)
		if conn != nil {
			conn.Bye(reason)
		}
	})
}

// unregisterEnd takes the session out of the register, once it is over.
func (s *session) unregisterEnd() {
	if s.unregister != nil {
		s.unregister()
		s.unregister = nil
	}
}
