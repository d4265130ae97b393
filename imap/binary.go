package imap

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"sync"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// binaryConverter rewrites, as an APPENDed message streams through, every
// leaf part whose Content-Transfer-Encoding is "binary" into base64, and
// passes every other byte unchanged. A binary part may hold NUL and bare
// CR/LF, which cannot be sent in a BODY[] literal (RFC 9051 §4.3: a
// literal is CHAR8, no NUL; §7.5.2: binary data "MUST be transfer encoded
// into a textual form, such as base64"); BINARY[] (RFC 3516) decodes it
// back. Dovecot does the same for literal8 APPENDs (istream-binary-
// converter). Messages without binary parts, signed ones among them, are
// stored byte for byte.
//
// Parts are found by their boundaries, nested multiparts included; a
// message/rfc822 part is not descended into. A header longer than
// maxConvertHeader ends the conversion (the rest passes as is).
type binaryConverter struct {
	src   *bufio.Reader
	out   bytes.Buffer
	err   error
	state convState
	// bounds are the boundaries of the enclosing multiparts, innermost
	// last.
	bounds []string
	header []byte
	// enc is the base64 encoder of the binary part being converted; held
	// is its last line ending, which belongs to the next boundary line if
	// one follows (RFC 2046 §5.1.1).
	enc     io.WriteCloser
	wrap    *lineWrapper
	held    []byte
	midLine bool // the last line read was cut (longer than the buffer)
}

type convState uint8

const (
	stHeader convState = iota // reading an entity's header
	stBody                    // a leaf part's body (or a preamble/epilogue): passed
	stBinary                  // a binary leaf part's body: encoded
	stRaw                     // gave up: pass everything
)

const maxConvertHeader = 64 << 10

func newBinaryConverter(r io.Reader) *binaryConverter {
	src := convertBufs.Get().(*bufio.Reader)
	src.Reset(r)
	return &binaryConverter{src: src}
}

// convertBufs: the 32 KiB read buffers of converters. Allocating one for
// each APPEND was 9 % of the server's allocations under imaptest's stress
// load.
var convertBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}

// release hands the converter's read buffer back; c is not used after.
func (c *binaryConverter) release() {
	if c.src != nil {
		c.src.Reset(nil)
		convertBufs.Put(c.src)
		c.src = nil
	}
}

func (c *binaryConverter) Read(p []byte) (int, error) {
	for c.out.Len() == 0 && c.err == nil {
		if c.state == stRaw {
			// Nothing left to convert: straight through, without
			// copying into out.
			return c.src.Read(p)
		}
		c.step()
	}
	if c.out.Len() > 0 {
		return c.out.Read(p)
	}
	return 0, c.err
}

// step consumes one line (or one piece of a long line); Read passes the
// rest through itself once the state is stRaw.
func (c *binaryConverter) step() {
	line, err := c.src.ReadSlice('\n')
	startOfLine := !c.midLine
	c.midLine = err == bufio.ErrBufferFull
	if err != nil && err != bufio.ErrBufferFull {
		if len(line) > 0 {
			c.consume(line, startOfLine)
		}
		c.finish()
		c.err = err
		return
	}
	c.consume(line, startOfLine)
}

func (c *binaryConverter) consume(line []byte, startOfLine bool) {
	switch c.state {
	case stHeader:
		if startOfLine && c.isBoundary(line) {
			// A part without a blank line after its header: no body.
			c.out.Write(c.header)
			c.header = nil
			c.boundaryLine(line)
			return
		}
		c.header = append(c.header, line...)
		if len(c.header) > maxConvertHeader {
			c.out.Write(c.header)
			c.header = nil
			c.state = stRaw
			return
		}
		if startOfLine && !c.midLine && isBlankLine(line) {
			c.endHeader()
		}
	case stBody:
		if startOfLine && c.isBoundary(line) {
			c.boundaryLine(line)
			return
		}
		c.out.Write(line)
	case stBinary:
		if startOfLine && c.isBoundary(line) {
			c.closeBinary()
			c.out.Write(c.held)
			c.held = nil
			c.boundaryLine(line)
			return
		}
		c.enc.Write(c.held)
		c.held = nil
		if n := len(line) - 1; n >= 0 && line[n] == '\n' {
			// Hold the line ending back: it is the boundary's if the
			// next line is one.
			if n > 0 && line[n-1] == '\r' {
				n--
			}
			c.held = append(c.held, line[n:]...)
			line = line[:n]
		}
		c.enc.Write(line)
	}
}

// endHeader decides what the entity is once its header is complete.
func (c *binaryConverter) endHeader() {
	hdr := c.header
	c.header = nil
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)))
	if err != nil {
		c.out.Write(hdr)
		c.state = stBody
		return
	}
	mh := gomessage.Header{Header: h}
	mediaType, params, _ := mh.ContentType()
	if strings.HasPrefix(mediaType, "multipart/") && params["boundary"] != "" {
		c.out.Write(hdr)
		c.bounds = append(c.bounds, params["boundary"])
		c.state = stBody // the preamble, up to the first boundary
		return
	}
	if !strings.EqualFold(strings.TrimSpace(h.Get("Content-Transfer-Encoding")), "binary") {
		c.out.Write(hdr)
		c.state = stBody
		if len(c.bounds) == 0 {
			c.state = stRaw // a single-part message: nothing more to look at
		}
		return
	}
	c.out.Write(rewriteCTE(hdr))
	c.wrap = &lineWrapper{w: &c.out}
	c.enc = base64.NewEncoder(base64.StdEncoding, c.wrap)
	c.state = stBinary
}

func (c *binaryConverter) closeBinary() {
	c.enc.Close()
	c.wrap.end()
	c.enc, c.wrap = nil, nil
}

// finish flushes what is pending at the end of the input.
func (c *binaryConverter) finish() {
	switch c.state {
	case stHeader:
		c.out.Write(c.header)
		c.header = nil
	case stBinary:
		c.enc.Write(c.held)
		c.held = nil
		c.closeBinary()
	}
	c.state = stRaw
}

// isBoundary tells whether line is a delimiter of an enclosing multipart:
// "--" boundary, or the close delimiter "--" boundary "--", optionally
// followed by white space (RFC 2046 §5.1.1).
func (c *binaryConverter) isBoundary(line []byte) bool {
	return c.boundaryIndex(line) >= 0
}

func (c *binaryConverter) boundaryIndex(line []byte) int {
	if !bytes.HasPrefix(line, []byte("--")) {
		return -1
	}
	rest := line[2:]
	for i := len(c.bounds) - 1; i >= 0; i-- {
		b := c.bounds[i]
		if !bytes.HasPrefix(rest, []byte(b)) {
			continue
		}
		tail := bytes.TrimPrefix(rest[len(b):], []byte("--"))
		if len(bytes.TrimRight(tail, " \t\r\n")) == 0 {
			return i
		}
	}
	return -1
}

// boundaryLine handles a delimiter: a new part's header follows, or, for
// a close delimiter, the enclosing multipart's epilogue.
func (c *binaryConverter) boundaryLine(line []byte) {
	c.out.Write(line)
	i := c.boundaryIndex(line)
	c.bounds = c.bounds[:i+1] // inner multiparts left unclosed end here
	rest := bytes.TrimRight(line[2+len(c.bounds[i]):], " \t\r\n")
	if bytes.Equal(rest, []byte("--")) {
		c.bounds = c.bounds[:i]
		c.state = stBody
		if len(c.bounds) == 0 {
			c.state = stRaw // the outermost epilogue
		}
		return
	}
	c.state = stHeader
}

func isBlankLine(line []byte) bool {
	return bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n"))
}

// rewriteCTE replaces the Content-Transfer-Encoding field (with its folded
// lines) of a raw header by "base64"; the other bytes are kept.
func rewriteCTE(hdr []byte) []byte {
	var out []byte
	skipping := false
	for len(hdr) > 0 {
		i := bytes.IndexByte(hdr, '\n')
		line := hdr
		if i >= 0 {
			line = hdr[:i+1]
		}
		hdr = hdr[len(line):]
		folded := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
		if skipping && folded {
			continue
		}
		skipping = false
		if len(line) > 26 && strings.EqualFold(string(line[:26]), "content-transfer-encoding:") {
			out = append(out, "Content-Transfer-Encoding: base64\r\n"...)
			skipping = true
			continue
		}
		out = append(out, line...)
	}
	return out
}

// lineWrapper breaks base64 output into 76-character lines (RFC 2045
// §6.8).
type lineWrapper struct {
	w   io.Writer
	col int
}

func (l *lineWrapper) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		l.w.Write(p[:k])
		l.col += k
		p = p[k:]
		if l.col == 76 {
			l.w.Write([]byte("\r\n"))
			l.col = 0
		}
	}
	return n, nil
}

// end finishes the last line.
func (l *lineWrapper) end() {
	if l.col > 0 {
		l.w.Write([]byte("\r\n"))
		l.col = 0
	}
}
