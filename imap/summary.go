package imap

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/textproto"
)

// A message's summary is its ENVELOPE and BODYSTRUCTURE, computed once at
// delivery (Summarize is the storage.Summarizer the server opens its store
// with) and kept sealed beside the body. A mail client's message list
// (FETCH 1:* (ENVELOPE BODYSTRUCTURE …)) is then answered from the
// summaries, read in one batch (Store.Digests), without decrypting or
// parsing a single body: imaptest's stress profile spent most of its time
// there before.
//
// The encoding is ours, compact and exact: strings are kept byte for byte
// (a header that is not UTF-8 comes back as it went in), and nil stays
// distinct from empty. A summary that does not decode (another version,
// damage) is ignored and the message is parsed again, as before.

// summaryVersion is the first byte of a summary; change it with the
// format, and old summaries are simply recomputed when fetched.
const summaryVersion = 1

// Summarize is the storage.Summarizer of the IMAP service. A message past
// the default Limits gets the cut structure FETCH would answer
// (structure.go); SummarizeReader refuses it instead.
func Summarize(body []byte) []byte {
	env, bs := summarizeBody(body)
	var e summaryEncoder
	e.b = append(e.b, summaryVersion)
	e.envelope(env)
	e.part(bs)
	return e.b
}

// summarizeBody computes ENVELOPE and BODYSTRUCTURE as FETCH does without
// a summary.
func summarizeBody(body []byte) (*imap.Envelope, imap.BodyStructure) {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(body)))
	if err != nil {
		h = textproto.Header{}
	}
	return extractEnvelope(h), structureOf(bytes.NewReader(body))
}

// decodeSummary reads a summary; ok is false if it is not one of this
// version.
func decodeSummary(b []byte) (env *imap.Envelope, bs imap.BodyStructure, ok bool) {
	if len(b) == 0 || b[0] != summaryVersion {
		return nil, nil, false
	}
	d := summaryDecoder{b: b[1:]}
	env = d.envelope()
	bs = d.part(0)
	if d.err != nil || len(d.b) != 0 {
		return nil, nil, false
	}
	return env, bs, true
}

type summaryEncoder struct{ b []byte }

func (e *summaryEncoder) uint(n uint64)   { e.b = binary.AppendUvarint(e.b, n) }
func (e *summaryEncoder) int(n int64)     { e.b = binary.AppendVarint(e.b, n) }
func (e *summaryEncoder) string(s string) { e.uint(uint64(len(s))); e.b = append(e.b, s...) }

// present writes whether a nil-able value is there.
func (e *summaryEncoder) present(ok bool) bool {
	if ok {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
	return ok
}

// strings and params write n+1 for a collection of n, 0 for nil.
func (e *summaryEncoder) strings(ss []string) {
	if ss == nil {
		e.uint(0)
		return
	}
	e.uint(uint64(len(ss)) + 1)
	for _, s := range ss {
		e.string(s)
	}
}

func (e *summaryEncoder) params(m map[string]string) {
	if m == nil {
		e.uint(0)
		return
	}
	e.uint(uint64(len(m)) + 1)
	for k, v := range m {
		e.string(k)
		e.string(v)
	}
}

func (e *summaryEncoder) addresses(as []imap.Address) {
	if as == nil {
		e.uint(0)
		return
	}
	e.uint(uint64(len(as)) + 1)
	for _, a := range as {
		e.string(a.Name)
		e.string(a.Mailbox)
		e.string(a.Host)
	}
}

func (e *summaryEncoder) envelope(env *imap.Envelope) {
	if !e.present(env != nil) {
		return
	}
	if e.present(!env.Date.IsZero()) {
		_, off := env.Date.Zone()
		e.int(env.Date.Unix())
		e.uint(uint64(env.Date.Nanosecond()))
		e.int(int64(off))
	}
	e.string(env.Subject)
	for _, as := range [][]imap.Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		e.addresses(as)
	}
	e.strings(env.InReplyTo)
	e.string(env.MessageID)
}

func (e *summaryEncoder) disposition(d *imap.BodyStructureDisposition) {
	if e.present(d != nil) {
		e.string(d.Value)
		e.params(d.Params)
	}
}

const (
	partSingle = 'S'
	partMulti  = 'M'
)

func (e *summaryEncoder) part(bs imap.BodyStructure) {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		e.b = append(e.b, partMulti)
		e.string(bs.Subtype)
		e.uint(uint64(len(bs.Children)))
		for _, c := range bs.Children {
			e.part(c)
		}
		if x := bs.Extended; e.present(x != nil) {
			e.params(x.Params)
			e.disposition(x.Disposition)
			e.strings(x.Language)
			e.string(x.Location)
		}
	case *imap.BodyStructureSinglePart:
		e.b = append(e.b, partSingle)
		e.string(bs.Type)
		e.string(bs.Subtype)
		e.params(bs.Params)
		e.string(bs.ID)
		e.string(bs.Description)
		e.string(bs.Encoding)
		e.uint(uint64(bs.Size))
		if e.present(bs.Text != nil) {
			e.int(bs.Text.NumLines)
		}
		if m := bs.MessageRFC822; e.present(m != nil) {
			e.envelope(m.Envelope)
			e.part(m.BodyStructure)
			e.int(m.NumLines)
		}
		if x := bs.Extended; e.present(x != nil) {
			e.disposition(x.Disposition)
			e.strings(x.Language)
			e.string(x.Location)
		}
	default:
		e.b = append(e.b, 0) // nil: makes the summary undecodable
	}
}

var errSummary = errors.New("imap: bad summary")

// summaryDecoder reads what summaryEncoder wrote; the first error sticks
// and every later read returns zero values.
type summaryDecoder struct {
	b   []byte
	err error
}

func (d *summaryDecoder) fail() { d.err, d.b = errSummary, nil }

func (d *summaryDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *summaryDecoder) present() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

func (d *summaryDecoder) uint() uint64 {
	n, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *summaryDecoder) int() int64 {
	n, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[k:]
	return n
}

func (d *summaryDecoder) string() string {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads the n+1 of a nil-able collection: -1 for nil. Each element
// takes at least one byte, which bounds the count by what is left.
func (d *summaryDecoder) count() int {
	n := d.uint()
	if n == 0 {
		return -1
	}
	if n-1 > uint64(len(d.b)) {
		d.fail()
		return -1
	}
	return int(n - 1)
}

func (d *summaryDecoder) strings() []string {
	n := d.count()
	if n < 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.string()
	}
	return ss
}

func (d *summaryDecoder) params() map[string]string {
	n := d.count()
	if n < 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := d.string()
		m[k] = d.string()
	}
	return m
}

func (d *summaryDecoder) addresses() []imap.Address {
	n := d.count()
	if n < 0 {
		return nil
	}
	as := make([]imap.Address, n)
	for i := range as {
		as[i] = imap.Address{Name: d.string(), Mailbox: d.string(), Host: d.string()}
	}
	return as
}

func (d *summaryDecoder) envelope() *imap.Envelope {
	if !d.present() {
		return nil
	}
	env := &imap.Envelope{}
	if d.present() {
		sec, nsec, off := d.int(), d.uint(), d.int()
		if nsec >= 1e9 || off < -24*3600 || off > 24*3600 {
			d.fail()
			return nil
		}
		env.Date = time.Unix(sec, int64(nsec)).In(time.FixedZone("", int(off)))
	}
	env.Subject = d.string()
	for _, as := range []*[]imap.Address{&env.From, &env.Sender, &env.ReplyTo, &env.To, &env.Cc, &env.Bcc} {
		*as = d.addresses()
	}
	env.InReplyTo = d.strings()
	env.MessageID = d.string()
	return env
}

func (d *summaryDecoder) disposition() *imap.BodyStructureDisposition {
	if !d.present() {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: d.string(), Params: d.params()}
}

// maxSummaryDepth bounds the nesting of parts a summary may hold: the
// encoder never writes deeper, since a structure is cut or refused at
// Limits.Depth levels, which is at most this (structure.go).
const maxSummaryDepth = 100

func (d *summaryDecoder) part(depth int) imap.BodyStructure {
	if depth > maxSummaryDepth {
		d.fail()
		return nil
	}
	switch d.byte() {
	case partMulti:
		bs := &imap.BodyStructureMultiPart{Subtype: d.string()}
		n := d.uint()
		if n > uint64(len(d.b)) {
			d.fail()
			return nil
		}
		for range n {
			c := d.part(depth + 1)
			if d.err != nil {
				return nil
			}
			bs.Children = append(bs.Children, c)
		}
		if d.present() {
			bs.Extended = &imap.BodyStructureMultiPartExt{
				Params: d.params(), Disposition: d.disposition(), Language: d.strings(), Location: d.string(),
			}
		}
		return bs
	case partSingle:
		bs := &imap.BodyStructureSinglePart{
			Type: d.string(), Subtype: d.string(), Params: d.params(),
			ID: d.string(), Description: d.string(), Encoding: d.string(),
		}
		size := d.uint()
		if size > 1<<32-1 {
			d.fail()
			return nil
		}
		bs.Size = uint32(size)
		if d.present() {
			bs.Text = &imap.BodyStructureText{NumLines: d.int()}
		}
		if d.present() {
			m := &imap.BodyStructureMessageRFC822{Envelope: d.envelope()}
			m.BodyStructure = d.part(depth + 1)
			m.NumLines = d.int()
			bs.MessageRFC822 = m
		}
		if d.present() {
			bs.Extended = &imap.BodyStructureSinglePartExt{
				Disposition: d.disposition(), Language: d.strings(), Location: d.string(),
			}
		}
		return bs
	}
	// A missing part (0) is never summarized: the library cannot write it.
	d.fail()
	return nil
}
