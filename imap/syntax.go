package imap

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/metrics"
)

// Syntax errors the library answers wrongly. go-imap (v2.0.0-beta.8)
// parses every command before any session method is called, and two kinds
// of bad input come out of its parser as plain errors, which
// imapserver/conn.go answers "NO [SERVERBUG] Internal server error"
// instead of BAD:
//
//   - a mailbox name that is not valid modified UTF-7 (RFC 3501 §5.1.3):
//     imapwire.Decoder.ExpectMailbox returns utf7's error as it is;
//   - a command longer than the library's 50 KiB (a 1 MB password): the
//     decoder's "max size exceeded", after which Decoder.DiscardLine
//     cannot skip the rest of the line (it stops at the same limit), so the
//     rest is read as the next command, fails again, and the library
//     closes the connection.
//
// Nothing of ours runs between the connection (a *tls.Conn, which the
// library must see as such to offer LOGIN) and the library's reader, so
// inputGuard is put in place of the reader's source, through reflect
// (the unexported field Conn.br of imapserver/conn.go), for every
// session: it frames the client's commands (lines and literals, RFC 9051
// §4.3), and replaces a command it knows the library would mishandle with
// one the library answers BAD, then drops the rest of the bad command. After
// STARTTLS, which gives the library's reader a new source, it is put back
// (corkConn's next read deadline, set by the library before its next read).
// TestSyntaxErrorsGetBAD fails if a release changes the field or the
// answers; the upstream fix (wrapping both errors in DecoderExpectError,
// and discarding a line past the limit) would make this file unnecessary.
//
// The replacement: after login, "tag NAMESPACE", answered by Namespace
// with BAD [CLIENTBUG] and a sentence saying what was wrong; before login
// (NAMESPACE would not reach the session), "tag NOOP x", which the library
// answers "BAD [CLIENTBUG] Syntax error".

// maxCommandLine is the longest command the guard lets through, literals
// apart: under the library's own 50 KiB, so that the library never meets
// its limit.
const maxCommandLine = 32 << 10

// maxBufferedLiteral is the library's limit on a literal it holds in memory
// (every command but APPEND): imapserver/conn.go checkBufferedLiteral.
const maxBufferedLiteral = 4096

// mailboxCommands take mailbox names as their unparenthesized arguments
// (beside sequence sets and keywords, which never hold "&").
var mailboxCommands = map[string]bool{
	"SELECT": true, "EXAMINE": true, "CREATE": true, "DELETE": true, "RENAME": true,
	"SUBSCRIBE": true, "UNSUBSCRIBE": true, "STATUS": true, "APPEND": true, "LIST": true,
	"LSUB": true, "COPY": true, "MOVE": true, "UID COPY": true, "UID MOVE": true,
}

// libraryReader returns the bufio.Reader go-imap reads commands from.
func libraryReader(c *imapserver.Conn) *bufio.Reader {
	v := reflect.ValueOf(c).Elem().FieldByName("br")
	if !v.IsValid() || v.Type() != reflect.TypeFor[*bufio.Reader]() || v.IsNil() {
		return nil
	}
	return (*bufio.Reader)(v.UnsafePointer())
}

// guardInput puts an inputGuard between the connection and the library's
// reader; at the start of a session (nothing read yet) or right after
// STARTTLS (the reader drained).
func (s *session) guardInput() {
	br := libraryReader(s.conn)
	if br == nil || br.Buffered() > 0 {
		s.srv.log.Error("imap: cannot guard the input (go-imap changed), syntax errors may get NO [SERVERBUG]")
		return
	}
	conn := s.conn.NetConn()
	br.Reset(&inputGuard{src: conn, conn: conn, s: s, first: true})
}

// inputGuard frames a client's commands on their way to the library. Read
// is called only by the library's reader, from the connection's goroutine.
type inputGuard struct {
	src  io.Reader
	conn net.Conn
	s    *session

	// out, in and cmd are slices of pooled buffers (outb, inb, cmdb),
	// taken when bytes arrive and given back whenever the guard waits for
	// the client with nothing pending: a session idle between commands,
	// or in IDLE, holds none (memory per idle connection, BENCHMARKS.md).
	out     []byte // ready for the library
	in      []byte // read from the client, not yet looked at
	outb    *[]byte
	inb     *[]byte
	cmdb    *[]byte
	literal int64 // bytes of a literal still to pass as they are
	skip    int64 // bytes of a dropped literal still to drop
	drop    bool  // dropping the rest of a replaced command

	cmd     []byte // the segment being read (up to a literal or the end)
	cmdLen  int    // bytes of the command so far, literals apart
	first   bool   // cmd is the first segment of its command
	tag     string
	name    string
	inQuote bool
	escaped bool
	depth   int // parentheses
}

// guardBuffers holds the guards' buffers while no session needs them.
var guardBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuffer is the largest buffer given back to guardBuffers (a
// command line may reach maxCommandLine).
const maxPooledBuffer = 64 << 10

// take returns an empty slice of the buffer *bp, taken from the pool if
// the guard holds none.
func take(bp **[]byte) []byte {
	if *bp == nil {
		*bp = guardBuffers.Get().(*[]byte)
	}
	return (**bp)[:0]
}

// give returns *bp to the pool; used is the last slice of it the guard
// held (grown by append, it replaces the smaller one). The caller drops
// every slice of it.
func give(bp **[]byte, used []byte) {
	if *bp == nil {
		return
	}
	if c := cap(used); c > cap(**bp) && c <= maxPooledBuffer {
		**bp = used[:0]
	}
	guardBuffers.Put(*bp)
	*bp = nil
}

func (g *inputGuard) Read(p []byte) (int, error) {
	for len(g.out) == 0 {
		if len(g.in) == 0 {
			// Waiting for the client: hold no buffer meanwhile, and read
			// into the library's own.
			give(&g.inb, g.in)
			g.in = nil
			give(&g.outb, g.out)
			g.out = nil
			if len(g.cmd) == 0 {
				give(&g.cmdb, g.cmd)
				g.cmd = nil
			}
			n, err := g.src.Read(p)
			if n == 0 {
				return 0, err
			}
			if g.literal >= int64(n) {
				// Literal bytes pass as they are, already in place.
				g.literal -= int64(n)
				return n, nil
			}
			g.in = append(take(&g.inb), p[:n]...)
		}
		if g.literal > 0 {
			n := min(int64(len(g.in)), g.literal, int64(len(p)))
			copy(p, g.in[:n])
			g.in, g.literal = g.in[n:], g.literal-n
			return int(n), nil
		}
		g.scan()
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	return n, nil
}

// scan looks at the bytes read until a segment is complete or they run out.
func (g *inputGuard) scan() {
	for len(g.in) > 0 && len(g.out) == 0 && g.literal == 0 {
		if g.skip > 0 {
			n := min(int64(len(g.in)), g.skip)
			g.in, g.skip = g.in[n:], g.skip-n
			continue
		}
		b := g.in[0]
		g.in = g.in[1:]
		if g.cmdb == nil {
			g.cmd = take(&g.cmdb)
		}
		if g.drop {
			if b != '\n' {
				g.cmd = appendTail(g.cmd, b)
				continue
			}
			n, sync, ok := literalAtEnd(g.cmd)
			g.cmd = g.cmd[:0]
			switch {
			case ok && !sync:
				g.skip = n // then the command goes on
			default: // the end, or a literal the client waits to be asked for
				g.drop = false
				g.reset()
			}
			continue
		}
		g.cmd = append(g.cmd, b)
		g.cmdLen++
		g.track(b)
		if b != '\n' {
			if g.cmdLen > maxCommandLine {
				g.replace("The command is longer than this server accepts (32 KiB apart from literals).", false)
			}
			continue
		}
		g.segmentDone()
	}
}

// appendTail keeps the last few bytes of a dropped line, where a literal's
// announcement would be.
func appendTail(b []byte, c byte) []byte {
	if len(b) >= 32 {
		copy(b, b[1:])
		b = b[:len(b)-1]
	}
	return append(b, c)
}

// track follows quoted strings and parentheses.
func (g *inputGuard) track(b byte) {
	switch {
	case g.escaped:
		g.escaped = false
	case g.inQuote && b == '\\':
		g.escaped = true
	case b == '"':
		g.inQuote = !g.inQuote
	case !g.inQuote && b == '(':
		g.depth++
	case !g.inQuote && b == ')':
		g.depth--
	}
}

// segmentDone decides on a segment ending with a line end: the end of the
// command, or the announcement of a literal.
func (g *inputGuard) segmentDone() {
	if g.first {
		g.tag, g.name = commandName(g.cmd)
		switch g.name {
		case "STARTTLS":
			if cc, ok := g.conn.(*corkConn); ok {
				cc.onReadDeadline(g.s.guardAfterStartTLS)
			}
		case "LOGIN", "AUTHENTICATE":
			g.loginBeforeTLS()
		}
	}
	if g.inQuote {
		// The library would read on into the next line (imapwire
		// Decoder.Quoted); RFC 9051 §4.3 allows no line end in a quoted
		// string.
		g.replace("A quoted string is not closed before the end of the line.", true)
		return
	}
	n, sync, isLiteral := literalAtEnd(g.cmd)
	reason := g.check()
	if reason == "" && isLiteral && g.name != "APPEND" && n > maxBufferedLiteral {
		reason = "A literal in this command is longer than 4096 bytes."
	}
	if reason != "" {
		// A literal the client waits to be asked for ends the command
		// (RFC 9051 §7.5: it is not sent after BAD); one already on its
		// way is dropped, and the command's rest after it.
		g.replace(reason, !isLiteral || sync)
		if isLiteral && !sync {
			g.skip = n
		}
		return
	}
	g.out = append(g.outBuffer(), g.cmd...)
	g.cmd = g.cmd[:0]
	g.inQuote, g.escaped = false, false
	if isLiteral {
		g.literal, g.first = n, false
		return
	}
	g.reset()
}

// outBuffer returns an empty slice for out (which is empty whenever a
// segment is decided: scan stops at the first one).
func (g *inputGuard) outBuffer() []byte {
	if g.outb == nil {
		return take(&g.outb)
	}
	return (*g.outb)[:0]
}

// loginBeforeTLS logs and counts credentials sent in clear: the library
// refuses LOGIN and AUTHENTICATE before STARTTLS (LOGINDISABLED, RFC 9051
// §6.2.3) without calling the session, so this is the one place that sees
// them. The client's line holds the password: only the command is logged.
func (g *inputGuard) loginBeforeTLS() {
	if _, ok := g.conn.(*tls.Conn); ok || g.s.principal != nil {
		return
	}
	mech := metrics.MechPlain
	if g.name == "LOGIN" {
		mech = metrics.MechLogin
	}
	g.s.srv.opts.Metrics.Logins().Failed(mech, auth.CauseTLSRequired)
	g.s.srv.log.Info("login failed", "remote", g.s.remote(), "mechanism", mechName(mech), "cause", auth.CauseTLSRequired.String(),
		"reason", "credentials sent before STARTTLS; refused unread (the client is told to start TLS)")
}

func (g *inputGuard) reset() {
	g.cmd, g.cmdLen, g.first, g.tag, g.name = g.cmd[:0], 0, true, "", ""
	g.inQuote, g.escaped, g.depth = false, false, 0
}

// check returns why the library would mishandle this segment, or "".
func (g *inputGuard) check() string {
	if !mailboxCommands[g.name] {
		return ""
	}
	args := g.cmd
	if g.first {
		// Past the tag and the command name.
		for range strings.Count(g.name, " ") + 2 {
			i := bytes.IndexByte(args, ' ')
			if i < 0 {
				return ""
			}
			args = args[i+1:]
		}
	}
	for _, a := range unparenthesized(args) {
		if strings.IndexByte(a, '&') >= 0 && !strings.EqualFold(a, "INBOX") && !validUTF7(a) {
			return "The mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3): an \"&\" is written \"&-\"."
		}
	}
	return ""
}

// replace drops the command under way and gives the library one it
// answers BAD instead; unless ended, the rest of the command is dropped as
// it arrives.
func (g *inputGuard) replace(reason string, ended bool) {
	tag := g.tag
	if g.first && tag == "" {
		tag, _ = commandName(g.cmd)
	}
	if tag == "" || !isAtom(tag) {
		tag = "*" // the library ends a session whose tag it cannot read
	}
	if g.s.principal != nil {
		g.s.setPendingBad(reason)
		g.out = append(g.outBuffer(), tag+" NAMESPACE\r\n"...)
	} else {
		g.out = append(g.outBuffer(), tag+" NOOP x\r\n"...)
	}
	g.s.srv.log.Info("imap: syntax error answered BAD", "remote", g.s.remote(), "account", g.s.account, "reason", reason)
	g.reset()
	g.drop = !ended
}

// commandName reads "tag NAME" (or "tag UID NAME") at the start of a line;
// a tag not ended within the first 64 bytes is none.
func commandName(line []byte) (tag, name string) {
	head := line[:min(len(line), 64)]
	if !bytes.ContainsAny(head, " \r\n") {
		return "", ""
	}
	f := strings.Fields(string(head))
	if len(f) < 2 {
		if len(f) == 1 {
			tag = f[0]
		}
		return tag, ""
	}
	name = strings.ToUpper(f[1])
	if name == "UID" && len(f) > 2 {
		name += " " + strings.ToUpper(f[2])
	}
	return f[0], name
}

// literalAtEnd reads a literal's announcement, "{N}" or "{N+}", before the
// line end of seg.
func literalAtEnd(seg []byte) (n int64, sync, ok bool) {
	s := strings.TrimRight(string(seg), "\r\n")
	if !strings.HasSuffix(s, "}") {
		return 0, false, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false, false
	}
	num := s[i+1 : len(s)-1]
	sync = !strings.HasSuffix(num, "+")
	n, err := strconv.ParseInt(strings.TrimSuffix(num, "+"), 10, 64)
	if err != nil || n < 0 {
		return 0, false, false
	}
	return n, sync, true
}

// unparenthesized splits the arguments outside parentheses into atoms and
// quoted strings (unquoted); literals are not looked at.
func unparenthesized(args []byte) []string {
	var out []string
	var cur strings.Builder
	inQuote, escaped, depth, have := false, false, 0, false
	flush := func() {
		if have && depth == 0 {
			out = append(out, cur.String())
		}
		cur.Reset()
		have = false
	}
	for _, b := range args {
		switch {
		case escaped:
			cur.WriteByte(b)
			escaped = false
		case inQuote && b == '\\':
			escaped = true
		case b == '"':
			inQuote = !inQuote
			have = true
			if !inQuote {
				flush()
			}
		case inQuote:
			cur.WriteByte(b)
		case b == '(':
			flush()
			depth++
		case b == ')':
			flush()
			depth--
		case b == ' ' || b == '\r' || b == '\n':
			flush()
		default:
			cur.WriteByte(b)
			have = true
		}
	}
	flush()
	return out
}

func isAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c == 0x7f || strings.IndexByte("(){%*\"\\]", c) >= 0:
			return false
		}
	}
	return s != ""
}

var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// validUTF7 tells whether go-imap's decoder (internal/utf7) accepts s as a
// mailbox name in modified UTF-7 (RFC 3501 §5.1.3): printable ASCII, raw
// UTF-8, "&-", and base64 runs of UTF-16 that encode no printable ASCII,
// never two runs in a row.
func validUTF7(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || (c > 0x7e && c < utf8.RuneSelf) {
			return false
		}
		if c != '&' {
			ascii = true
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return false
		}
		run := s[i+1 : i+1+end]
		i += end + 1
		if run == "" {
			ascii = true
			continue
		}
		if !ascii || strings.ContainsAny(run, "\r\n=") {
			return false
		}
		b, err := mutf7.DecodeString(run)
		if err != nil || len(b) == 0 || len(b)%2 == 1 {
			return false
		}
		for j := 0; j < len(b); j += 2 {
			r := rune(b[j])<<8 | rune(b[j+1])
			if utf16.IsSurrogate(r) {
				if j += 2; j == len(b) {
					return false
				}
				if utf16.DecodeRune(r, rune(b[j])<<8|rune(b[j+1])) == utf8.RuneError {
					return false
				}
			} else if r >= 0x20 && r <= 0x7e {
				return false
			}
		}
		ascii = false
	}
	return true
}

// pendingBad is the sentence of a replaced command, answered by the
// NAMESPACE that replaced it (session.Namespace).
type pendingBad struct {
	mu     sync.Mutex
	reason string
}

func (s *session) setPendingBad(reason string) {
	s.bad.mu.Lock()
	s.bad.reason = reason
	s.bad.mu.Unlock()
}

// takePendingBad returns the BAD answer owed for a replaced command, if any.
func (s *session) takePendingBad() error {
	s.bad.mu.Lock()
	defer s.bad.mu.Unlock()
	if s.bad.reason == "" {
		return nil
	}
	err := &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: s.bad.reason}
	s.bad.reason = ""
	return err
}

// guardAfterStartTLS puts the guard back after STARTTLS, once the library
// reads from the TLS connection (it sets a read deadline before its next
// read, with its reader drained); it tells whether it is done. The client
// must wait for STARTTLS's answer before it starts TLS (RFC 9051 §6.2.1),
// so the guard holds nothing of it.
func (s *session) guardAfterStartTLS() bool {
	if _, ok := s.conn.NetConn().(*tls.Conn); ok {
		s.guardInput()
		return true
	}
	return false
}
