package smime

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Bounds. A CMS object is parsed whole in memory by the library, so the
// message is bounded before anything is parsed; the path's own limit
// (delivery.DefaultMaxMessageSize, 25 MiB) is below it, and base64 makes
// a 25 MiB body about 34 MiB.
const (
	// MaxMessageSize is the largest message this package reads.
	MaxMessageSize = 48 << 20
	// maxSigners bounds the signatures verified in one SignedData.
	maxSigners = 4
	// maxCertificates bounds the certificates a SignedData may carry
	// (signer and chain; a real chain has two or three).
	maxCertificates = 16
)

// ErrTooLarge is returned for a message past MaxMessageSize.
var ErrTooLarge = fmt.Errorf("smime: the message is larger than %d bytes", MaxMessageSize)

// message is a message split into its header and body.
type message struct {
	header textproto.Header
	body   []byte
}

// parse splits raw into its header and body. go-message keeps each
// field's bytes as received, so a field written back is unchanged.
func parse(raw []byte) (*message, error) {
	if len(raw) > MaxMessageSize {
		return nil, ErrTooLarge
	}
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, fmt.Errorf("smime: the message header cannot be read: %w", err)
	}
	n := len(raw) - rd.Len() - br.Buffered()
	return &message{header: h, body: raw[n:]}, nil
}

// isContentField reports whether a field belongs to the MIME entity
// (RFC 2045 §9: the Content-* fields) rather than to the message: those
// go inside a signature or an envelope, the others stay outside (RFC 8551
// §3.1: only the MIME entity is secured).
func isContentField(name string) bool {
	return len(name) > 8 && strings.EqualFold(name[:8], "Content-")
}

// split returns the outer fields (routing, RFC 5322) and the entity
// fields (Content-*), each in their order. An entity without
// Content-Type gets the RFC 2045 §5.2 default written out, so that the
// secured entity says what it is.
func (m *message) split() (outer, inner textproto.Header) {
	var outs, ins []field
	fs := m.header.Fields()
	for fs.Next() {
		raw, err := fs.Raw()
		if err != nil {
			raw = []byte(fs.Key() + ": " + fs.Value() + "\r\n")
		}
		f := field{key: fs.Key(), raw: raw}
		if isContentField(f.key) {
			ins = append(ins, f)
		} else if !strings.EqualFold(f.key, "MIME-Version") {
			outs = append(outs, f)
		}
	}
	outer, inner = headerOf(outs), headerOf(ins)
	if !inner.Has("Content-Type") {
		inner.Add("Content-Type", "text/plain; charset=us-ascii")
	}
	return outer, inner
}

type field struct {
	key string
	raw []byte
}

// headerOf builds a header keeping each field's raw bytes. textproto.Header
// adds at the top, so the fields are added in reverse.
func headerOf(fs []field) textproto.Header {
	var h textproto.Header
	for i := len(fs) - 1; i >= 0; i-- {
		h.AddRaw(canonicalLines(fs[i].raw))
	}
	return h
}

// canonicalLines returns b with every line ending CRLF (RFC 5322 §2.1,
// RFC 8551 §3.1.1: the canonical form that is signed).
func canonicalLines(b []byte) []byte {
	if isCRLF(b) {
		return b // the usual case: no copy
	}
	out := make([]byte, 0, len(b)+len(b)/40)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, b...)
			break
		}
		line := b[:i]
		line = bytes.TrimSuffix(line, []byte("\r"))
		out = append(out, line...)
		out = append(out, '\r', '\n')
		b = b[i+1:]
	}
	return out
}

// isCRLF reports whether every LF of b follows a CR. It reads b eight
// bytes at a time and looks closer only at a word that holds an LF: a
// signature reads every byte of the message here, on lines of a few dozen
// bytes, where a search call per line costs more than the search (a
// profile of Sign, issue 24).
func isCRLF(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:]) ^ (ones * '\n') // a zero byte where b has an LF
		if (x-ones)&^x&highs == 0 {
			continue // no LF in these eight bytes
		}
		for j := i; j < i+8; j++ {
			if b[j] == '\n' && (j == 0 || b[j-1] != '\r') {
				return false
			}
		}
	}
	for ; i < len(b); i++ {
		if b[i] == '\n' && (i == 0 || b[i-1] != '\r') {
			return false
		}
	}
	return true
}

func entity(inner textproto.Header, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + 512)
	textproto.WriteHeader(&b, inner)
	b.Write(canonicalLines(body))
	return b.Bytes()
}

// writeHeader writes outer and then the given fields.
func writeHeader(b *bytes.Buffer, outer textproto.Header, extra ...string) {
	textproto.WriteHeader(b, outer)
	// WriteHeader ends with the empty line: take it back, add ours.
	b.Truncate(b.Len() - 2)
	for _, f := range extra {
		b.WriteString(f)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
}

// writeBase64 writes data in base64 lines of 76 characters (RFC 2045
// §6.8).
func writeBase64(b *bytes.Buffer, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n")
}

// decodeBody returns the bytes of a body in the given transfer encoding
// (base64, or an identity encoding).
func decodeBody(cte string, body []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		// The decoder skips CR and LF itself; spaces and tabs, which
		// some writers leave at the end of lines, are taken out first.
		clean := body
		if bytes.ContainsAny(body, " \t") {
			clean = make([]byte, 0, len(body))
			for _, c := range body {
				if c != ' ' && c != '\t' {
					clean = append(clean, c)
				}
			}
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		if err != nil {
			return nil, fmt.Errorf("smime: the CMS part is not valid base64: %w", err)
		}
		return out[:n], nil
	case "", "7bit", "8bit", "binary":
		return body, nil
	}
	return nil, fmt.Errorf("smime: unexpected transfer encoding %q for a CMS part", cte)
}

// mediaType returns the media type (lower case) and parameters of the
// Content-Type of h; text/plain when absent (RFC 2045 §5.2).
func mediaType(h textproto.Header) (string, map[string]string, error) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", map[string]string{}, nil
	}
	t, params, err := mime.ParseMediaType(v)
	if err != nil {
		return "", nil, fmt.Errorf("smime: Content-Type cannot be read: %w", err)
	}
	return strings.ToLower(t), params, nil
}

// newBoundary returns a boundary that does not occur in the content
// (RFC 2046 §5.1.1): random, long, and checked. The content may be given
// in parts: the boundary has no CR or LF, so it cannot straddle a header
// and its body.
func newBoundary(content ...[]byte) string {
	for {
		b := "----=_smime_" + strings.ToLower(rand.Text())
		found := false
		for _, c := range content {
			found = found || bytes.Contains(c, []byte(b))
		}
		if !found {
			return b
		}
	}
}

var errNoBoundary = errors.New("smime: multipart/signed without a boundary")
