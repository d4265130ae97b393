package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/refusal"
)

// The BODYSTRUCTURE of a message (RFC 9051 §7.5.2), computed with bounds.
//
// go-imap's imapserver.ExtractBodyStructure recurses without limit and
// reads every single part whole into memory (io.ReadAll) to count its size
// and lines; a message/rfc822 part is then parsed again from that copy, so
// that each level of nested messages holds a copy of everything below it.
// A 192 KB message of 6,000 nested message/rfc822 parts took the server
// from 24 MB to 748 MB, and 10,000 nested multiparts cost 40 s of CPU at
// each FETCH (every byte is read through one part reader per level).
//
// extractStructure gives the same imap.BodyStructure as the library, with
// the same parsers (go-message's textproto.ReadHeader and
// NewMultipartReader, in the same order on the same bytes; FuzzStructure
// checks it), but it counts sizes and lines on the stream, so that its
// memory is a few buffers per level, and it stops at Limits: a structure
// deeper than Limits.Depth levels or with more than Limits.Parts parts is
// refused with a *StructureLimitError (delivery refuses the message). For
// a message stored before the limits, degrade gives a cut structure
// instead, where what lies below the limit is one application/octet-stream
// part: its time and memory are bounded by the message's size.
//
// Implementation notes:
//   - A level is a node of the structure: the message itself is level 1,
//     the parts of a multipart at level n are at level n+1, and so is the
//     message inside a message/rfc822 or message/global part at level n.
//     The summary decoder (summary.go) counts the same way.
//   - The library reads the body of a message/rfc822 part whole and parses
//     the attached message from that copy, where a read error is the end
//     of the input; eofReader gives the streamed parser the same end.

// Limits bound the MIME structure of a message. Zero means the default.
type Limits struct {
	// Depth is the number of levels (see above) a structure may have.
	// Default 64; at most maxSummaryDepth, the deepest a summary decodes.
	Depth int
	// Parts is the number of nodes (every multipart, part and attached
	// message) a structure may have. Default 10,000.
	Parts int
}

const (
	defaultDepth = 64
	defaultParts = 10000
)

func (l Limits) withDefaults() Limits {
	if l.Depth <= 0 {
		l.Depth = defaultDepth
	}
	l.Depth = min(l.Depth, maxSummaryDepth)
	if l.Parts <= 0 {
		l.Parts = defaultParts
	}
	return l
}

// StructureLimitError is the refusal of a message whose MIME structure is
// past one of the Limits.
type StructureLimitError struct {
	Limit string // "depth" or "parts"
	Value int    // the limit that was passed
}

func (e *StructureLimitError) Error() string {
	return fmt.Sprintf("imap: MIME structure past the %s limit (%d)", e.Limit, e.Value)
}

// Sentence is what the sender is told (SMTP 554 5.6.0, APPEND NO).
func (e *StructureLimitError) Sentence() string {
	if e.Limit == "depth" {
		return fmt.Sprintf("The message nests its parts deeper than the %d levels this server accepts.", e.Value)
	}
	return fmt.Sprintf("The message has more than the %d parts this server accepts.", e.Value)
}

// Refusal is the refusal the message path answers with (SMTP 554 5.6.0,
// APPEND NO).
func (e *StructureLimitError) Refusal() *refusal.Error {
	return &refusal.Error{Kind: refusal.MalformedMessage, Text: e.Sentence(), Reason: e}
}

// SummarizeReader computes the summary of the message read from r (the
// bytes Summarize gives), reading it once to its end (so that it can read
// from a tee of the body being stored) and holding only a few buffers per
// level of its structure. A message past lim gets a *StructureLimitError
// and no summary, as soon as the limit is passed; another error is r's.
func SummarizeReader(r io.Reader, lim Limits) ([]byte, error) {
	cr := &stickyReader{r: r}
	br := bufio.NewReader(cr)
	h, herr := textproto.ReadHeader(br)
	x := newExtractor(lim, false)
	bs := x.root(h, br)
	if x.err != nil {
		return nil, x.err
	}
	io.Copy(io.Discard, br) // an epilogue; the error is cr's
	if cr.err != nil && cr.err != io.EOF {
		return nil, cr.err
	}
	if herr != nil {
		h = textproto.Header{}
	}
	var e summaryEncoder
	e.b = append(e.b, summaryVersion)
	e.envelope(extractEnvelope(h))
	e.part(repairStructure(bs))
	return e.b, nil
}

// stickyReader remembers the first error of r, so that a failing store
// read is told apart from the end of the message.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.err = err
	return n, err
}

// extractStructure is imapserver.ExtractBodyStructure within lim: err is
// a *StructureLimitError past it.
func extractStructure(r io.Reader, lim Limits) (imap.BodyStructure, error) {
	br := bufio.NewReader(r)
	h, _ := textproto.ReadHeader(br)
	x := newExtractor(lim, false)
	bs := x.root(h, br)
	if x.err != nil {
		return nil, x.err
	}
	return bs, nil
}

// structureOf is the BODYSTRUCTURE FETCH answers for a message without a
// summary, and the one a summary keeps: the library's, or past the default
// limits the cut one, repaired (repairStructure) so that the library can
// write it. One pass: the cut structure is the library's wherever no limit
// is passed.
func structureOf(r io.Reader) imap.BodyStructure {
	br := bufio.NewReader(r)
	h, _ := textproto.ReadHeader(br)
	return repairStructure(newExtractor(Limits{}, true).root(h, br))
}

// extractor walks one message.
type extractor struct {
	lim     Limits
	degrade bool // cut the structure at the limits instead of failing
	parts   int  // nodes made so far
	err     error
	buf     *[]byte // for counting, from copyBufs: one leaf is read at a time
}

// root is the structure of the message whose header is h and whose body
// follows in r.
func (x *extractor) root(h textproto.Header, r io.Reader) imap.BodyStructure {
	bs := x.entity(h, r, 1)
	if x.buf != nil {
		copyBufs.Put(x.buf)
		x.buf = nil
	}
	return bs
}

func newExtractor(lim Limits, degrade bool) *extractor {
	return &extractor{lim: lim.withDefaults(), degrade: degrade}
}

// past says whether a node at level depth would pass a limit; in strict
// mode it records the error.
func (x *extractor) past(depth int) bool {
	switch {
	case depth > x.lim.Depth:
		if !x.degrade {
			x.err = &StructureLimitError{Limit: "depth", Value: x.lim.Depth}
		}
		return true
	case x.parts >= x.lim.Parts:
		if !x.degrade {
			x.err = &StructureLimitError{Limit: "parts", Value: x.lim.Parts}
		}
		return true
	}
	return false
}

// entity is the library's extractBodyStructure for the entity with header
// raw and body r at level depth; it returns nil once x.err is set.
func (x *extractor) entity(raw textproto.Header, r io.Reader, depth int) imap.BodyStructure {
	x.parts++
	header := gomessage.Header{Header: raw}
	mediaType, typeParams, _ := header.ContentType()
	primaryType, subType, _ := strings.Cut(mediaType, "/")

	if primaryType == "multipart" {
		bs := &imap.BodyStructureMultiPart{Subtype: subType}
		cr := &lineCounter{r: r}
		mr := textproto.NewMultipartReader(cr, typeParams["boundary"])
		for {
			part, _ := mr.NextPart()
			if part == nil {
				break
			}
			if x.past(depth + 1) {
				if x.err != nil {
					return nil
				}
				if depth+1 > x.lim.Depth {
					// The cut: this multipart is shown as one part.
					return x.opaque(header, cr)
				}
				break // out of parts: the rest is left out
			}
			c := x.entity(part.Header, part, depth+1)
			if x.err != nil {
				return nil
			}
			bs.Children = append(bs.Children, c)
		}
		bs.Extended = &imap.BodyStructureMultiPartExt{
			Params:      typeParams,
			Disposition: contentDisposition(header),
			Language:    contentLanguage(header),
			Location:    header.Get("Content-Location"),
		}
		return bs
	}

	bs := &imap.BodyStructureSinglePart{
		Type:        primaryType,
		Subtype:     subType,
		Params:      typeParams,
		ID:          header.Get("Content-Id"),
		Description: header.Get("Content-Description"),
		Encoding:    header.Get("Content-Transfer-Encoding"),
	}
	cr := &lineCounter{r: &eofReader{r: r}}
	if mediaType == "message/rfc822" || mediaType == "message/global" {
		if x.past(depth + 1) {
			if x.err != nil {
				return nil
			}
			return x.opaque(header, cr)
		}
		br := bufio.NewReader(cr)
		childHeader, _ := textproto.ReadHeader(br)
		m := &imap.BodyStructureMessageRFC822{Envelope: imapserver.ExtractEnvelope(childHeader)}
		m.BodyStructure = x.entity(childHeader, br, depth+1)
		if x.err != nil {
			return nil
		}
		x.drain(cr)
		m.NumLines = cr.lines
		bs.MessageRFC822 = m
	} else {
		x.drain(cr)
	}
	bs.Size = uint32(cr.n)
	if primaryType == "text" {
		bs.Text = &imap.BodyStructureText{NumLines: cr.lines}
	}
	bs.Extended = &imap.BodyStructureSinglePartExt{
		Disposition: contentDisposition(header),
		Language:    contentLanguage(header),
		Location:    header.Get("Content-Location"),
	}
	return bs
}

// opaque is the part past the cut: what is left of its body is counted,
// not parsed.
func (x *extractor) opaque(header gomessage.Header, cr *lineCounter) imap.BodyStructure {
	x.drain(cr)
	return &imap.BodyStructureSinglePart{
		Type:     "application",
		Subtype:  "octet-stream",
		ID:       header.Get("Content-Id"),
		Encoding: header.Get("Content-Transfer-Encoding"),
		Size:     uint32(cr.n),
		Extended: &imap.BodyStructureSinglePartExt{
			Disposition: contentDisposition(header),
			Language:    contentLanguage(header),
			Location:    header.Get("Content-Location"),
		},
	}
}

// drain reads the rest of cr, counting it (the library's io.ReadAll, which
// stops at the first error too).
func (x *extractor) drain(cr *lineCounter) {
	if x.buf == nil {
		x.buf = copyBufs.Get().(*[]byte)
	}
	for {
		if _, err := cr.Read(*x.buf); err != nil {
			return
		}
	}
}

// lineCounter counts the bytes and the line feeds read through it.
type lineCounter struct {
	r     io.Reader
	n     int64
	lines int64
}

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.lines += int64(bytes.Count(p[:n], []byte{'\n'}))
	return n, err
}

// eofReader ends at r's first error, as a copy read whole would: the
// library parses an attached message from such a copy.
type eofReader struct {
	r    io.Reader
	done bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	if e.done {
		return 0, io.EOF
	}
	n, err := e.r.Read(p)
	if err != nil {
		e.done = true
		return n, io.EOF
	}
	return n, nil
}

// contentDisposition and contentLanguage are the library's (unexported
// getContentDisposition, getContentLanguage).
func contentDisposition(header gomessage.Header) *imap.BodyStructureDisposition {
	disp, dispParams, _ := header.ContentDisposition()
	if disp == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: disp, Params: dispParams}
}

func contentLanguage(header gomessage.Header) []string {
	v := header.Get("Content-Language")
	if v == "" {
		return nil
	}
	l := strings.Split(v, ",")
	for i, lang := range l {
		l[i] = strings.TrimSpace(lang)
	}
	return l
}
