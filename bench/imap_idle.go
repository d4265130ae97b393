package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// quietIdler is one connection held in IDLE (RFC 2177) by a minimal
// client of its own rather than imapclient: once IDLE has begun it keeps
// only the connection — no reader goroutine, no buffers — so that one
// process can hold 10,000 of them (issue #8) and its own memory stays far
// below the server's. Nothing is read while the connection is held; a
// notification the server sends waits in the socket buffer. Whether the
// server closed the connection is checked by peeking at the socket
// (peekClosed), and at the end by the server's answer to DONE.
type quietIdler struct {
	conn net.Conn // TLS or plain: what the protocol is spoken over
	raw  net.Conn // the TCP connection under it
}

// idleTags are the tags of the few commands a quiet idler sends.
const (
	tagStartTLS = "s1"
	tagLogin    = "l1"
	tagSelect   = "x1"
	tagIdle     = "i1"
	tagLogout   = "o1"
)

// openQuietIdle connects, logs in as user, selects mailbox and starts
// IDLE. On failure it names the step that failed. The whole setup is
// bounded by the endpoint's timeout, and by ctx.
func (d *imapDialer) openQuietIdle(ctx context.Context, user, mailbox string) (*quietIdler, string, error) {
	timeout := d.ep.timeout()
	nd := net.Dialer{Timeout: timeout}
	raw, err := nd.DialContext(ctx, "tcp", d.ep.Addr)
	if err != nil {
		return nil, "connect", err
	}
	raw.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	q := &quietIdler{conn: raw, raw: raw}
	step, err := q.setup(ctx, d, user, mailbox)
	if err != nil {
		raw.Close()
		return nil, step, err
	}
	raw.SetDeadline(time.Time{})
	return q, "", nil
}

func (q *quietIdler) setup(ctx context.Context, d *imapDialer, user, mailbox string) (string, error) {
	if d.ep.Security == ImplicitTLS {
		tc := tls.Client(q.raw, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return "tls", err
		}
		q.conn = tc
	}
	// A small reader for the setup only: the SELECT responses are the
	// longest lines, and ReadString copes with longer ones.
	br := bufio.NewReaderSize(q.conn, 512)
	greeting, err := readLine(br)
	if err != nil {
		return "greeting", err
	}
	if !strings.HasPrefix(greeting, "* OK") {
		return "greeting", fmt.Errorf("unexpected greeting %q", clip(greeting))
	}
	if d.ep.Security == StartTLS {
		if err := q.command(br, tagStartTLS, "STARTTLS"); err != nil {
			return "starttls", err
		}
		if br.Buffered() > 0 {
			// Data after the OK would have been injected before TLS
			// (RFC 9051 §11.1: the response-injection attack).
			return "starttls", errors.New("the server sent data after its STARTTLS answer")
		}
		tc := tls.Client(q.raw, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return "starttls", err
		}
		q.conn = tc
		br = bufio.NewReaderSize(q.conn, 512)
	}
	if err := q.login(br, user, d.password); err != nil {
		return "login", fmt.Errorf("as %s: %w", user, err)
	}
	if err := q.command(br, tagSelect, "SELECT "+quoteIMAP(mailbox)); err != nil {
		return "select", err
	}
	if _, err := fmt.Fprintf(q.conn, "%s IDLE\r\n", tagIdle); err != nil {
		return "idle", err
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return "idle", err
		}
		if strings.HasPrefix(line, "+") {
			return "", nil
		}
		if strings.HasPrefix(line, tagIdle+" ") {
			return "idle", fmt.Errorf("refused: %s", clip(line))
		}
	}
}

// login sends LOGIN with quoted strings, or with synchronizing literals
// when the user or the password holds characters a quoted string cannot
// carry (RFC 9051 §4.3).
func (q *quietIdler) login(br *bufio.Reader, user, password string) error {
	line := tagLogin + " LOGIN"
	for _, a := range []string{user, password} {
		if quotable(a) {
			line += " " + quoteIMAP(a)
			continue
		}
		if _, err := fmt.Fprintf(q.conn, "%s {%d}\r\n", line, len(a)); err != nil {
			return err
		}
		if err := waitContinuation(br, tagLogin); err != nil {
			return err
		}
		line = a
	}
	if _, err := io.WriteString(q.conn, line+"\r\n"); err != nil {
		return err
	}
	return waitTagged(br, tagLogin)
}

// command sends "tag cmd" and reads up to its tagged answer, which must
// be OK.
func (q *quietIdler) command(br *bufio.Reader, tag, cmd string) error {
	if _, err := fmt.Fprintf(q.conn, "%s %s\r\n", tag, cmd); err != nil {
		return err
	}
	return waitTagged(br, tag)
}

// waitTagged reads responses up to the tagged one and checks that it is
// OK. The text of a refusal is kept (it never holds the password).
func waitTagged(br *bufio.Reader, tag string) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if strings.HasPrefix(strings.ToUpper(rest), "OK") {
				return nil
			}
			return fmt.Errorf("refused: %s", clip(rest))
		}
	}
}

// waitContinuation waits for the "+" that lets a literal be sent.
func waitContinuation(br *bufio.Reader, tag string) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "+") {
			return nil
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			return fmt.Errorf("refused: %s", clip(rest))
		}
	}
}

// readLine reads one response line without its CRLF. A literal at the end
// of a line ({n}) is read and skipped with the rest of its line: the
// quiet idler needs no data from the responses, only their shape.
func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	for strings.HasSuffix(line, "}") {
		open := strings.LastIndexByte(line, '{')
		if open < 0 {
			break
		}
		n, err := strconv.Atoi(strings.TrimSuffix(line[open+1:len(line)-1], "+"))
		if err != nil || n < 0 {
			break
		}
		if _, err := br.Discard(n); err != nil {
			return "", err
		}
		more, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = line[:open] + "{…}" + strings.TrimRight(more, "\r\n")
	}
	return line, nil
}

// quotable reports whether s can be sent as a quoted string: 7-bit
// printable text (quoted strings cannot carry CR, LF or NUL; 8-bit text
// is left to literals, which every server takes).
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// quoteIMAP makes a quoted string of s (which must be quotable).
func quoteIMAP(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// peekResult is what peekSocket saw.
type peekResult int

const (
	peekUnknown peekResult = iota // cannot tell (not a socket, or no way to peek here)
	peekNothing                   // open, nothing pending
	peekData                      // something to read
	peekClosed                    // end of stream or error
)

// open reports whether the server has not closed the connection. When
// the server sent something (a notification, or BYE before closing: under
// TLS the socket alone cannot tell), it is read and dropped for up to
// 20 ms, which finds an end of stream that follows.
func (q *quietIdler) open() bool {
	switch peekSocket(q.raw) {
	case peekClosed:
		return false
	case peekData:
		q.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		defer q.conn.SetReadDeadline(time.Time{})
		var buf [512]byte
		for {
			if _, err := q.conn.Read(buf[:]); err != nil {
				var ne net.Error
				return errors.As(err, &ne) && ne.Timeout()
			}
		}
	}
	return true
}

// close ends IDLE with DONE, logs out, and reports whether the server
// answered DONE with its tagged OK: the connection was still held.
func (q *quietIdler) close(timeout time.Duration) bool {
	defer q.conn.Close()
	q.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(q.conn, "DONE\r\n%s LOGOUT\r\n", tagLogout); err != nil {
		return false
	}
	br := bufio.NewReaderSize(q.conn, 512)
	if waitTagged(br, tagIdle) != nil {
		return false
	}
	waitTagged(br, tagLogout)
	return true
}
