//go:build unix

package bench

import (
	"errors"
	"net"
	"syscall"
)

// peekSocket looks at c without reading anything and without blocking: a
// MSG_PEEK|MSG_DONTWAIT receive of one byte returns 0 at end of stream,
// EAGAIN when the connection is open and nothing is pending, and leaves
// pending data where it is.
func peekSocket(c net.Conn) peekResult {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return peekUnknown
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekClosed
	}
	res := peekUnknown
	var b [1]byte
	cerr := rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil && n > 0:
			res = peekData
		case err == nil:
			res = peekClosed
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
			res = peekNothing
		default:
			res = peekClosed
		}
		return true // never wait for readiness
	})
	if cerr != nil {
		return peekClosed
	}
	return res
}
