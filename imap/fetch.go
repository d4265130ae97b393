package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/storage"
)

// Fetch writes the requested items of each message (RFC 9051 §6.4.5).
// Bodies are opened only when an item needs them, and a whole BODY[] is
// streamed from the store without being held in memory.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	defer s.guard("fetch", &err)
	defer s.cork()()
	v := s.sel
	refs := v.resolve(numSet)
	if len(refs) == 0 {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	// Flags, dates and sizes come from the shared state (no read); those
	// missing were expunged meanwhile, and their EXPUNGE follows.
	metas := v.sm.Messages(uidsOf(refs))
	byUID := make(map[uint32]*storage.Message, len(metas))
	for i := range metas {
		byUID[metas[i].UID] = &metas[i]
	}

	// A BODY[] or BINARY[] without .PEEK sets \Seen (RFC 9051 §6.4.5), and
	// the new flags are part of the response.
	if !v.readOnly && setsSeen(options) {
		var unseen []uint32
		for _, m := range metas {
			if !hasFlag(m.Flags, storage.FlagSeen) {
				unseen = append(unseen, m.UID)
			}
		}
		if len(unseen) > 0 {
			ups, err := s.srv.opts.Store.StoreFlags(storageOrigin(ctx, v), v.id, unseen, storage.FlagsAdd, []string{storage.FlagSeen})
			if err != nil {
				return s.mapError("fetch", err)
			}
			s.confirm(ctx, v.id, maxModSeq(ups))
			v.sm.Lock()
			for _, u := range ups {
				if m := byUID[u.UID]; m != nil {
					m.Flags, m.ModSeq = u.Flags, u.ModSeq
				}
				v.dropStaleLocked(u.UID, u.ModSeq)
			}
			v.sm.Unlock()
		}
		opts := *options
		opts.Flags = true
		options = &opts
	}

	fv := fetchView{v: v, rev2: s.rev2()}
	if options.Flags {
		// Keywords the client was not yet sent in FLAGS are left out: the
		// change that brought them is queued, after a FLAGS that announces
		// them (RFC 9051 §7.3.5).
		v.sm.Lock()
		fv.announced = v.sm.FlagsLocked()[:v.flagsSent]
		v.sm.Unlock()
	}
	// Summaries (ENVELOPE, BODYSTRUCTURE) and header sections of every
	// message are read in one batch.
	var digests map[uint32]*storage.Digest
	wantSummary := options.Envelope || options.BodyStructure != nil
	wantHeader := false
	for _, bs := range options.BodySection {
		wantHeader = wantHeader || isHeaderOnly(bs)
	}
	if wantSummary || wantHeader {
		// Recently read digests come from the cache (storage/cache), the
		// others in one read.
		ds, err := s.srv.opts.Store.Digests(ctx, v.id, uidsOf(refs), wantHeader, wantSummary)
		if err != nil {
			return s.mapError("fetch", err)
		}
		digests = make(map[uint32]*storage.Digest, len(ds))
		for i := range ds {
			digests[ds[i].UID] = &ds[i]
		}
	}
	// A read of content is recorded once for the command, with the UIDs
	// whose content was (or began to be) sent: audit.Recorder, no wait.
	var read []uint32
	content := readsContent(options)
	for _, ref := range refs {
		m := byUID[ref.uid]
		if m == nil {
			continue // expunged meanwhile
		}
		if content {
			read = append(read, ref.uid)
		}
		if err := s.fetchOne(ctx, w, &fv, ref, m, digests[ref.uid], options); err != nil {
			s.auditRead(v, read, options, audit.OutcomeFailed)
			return err
		}
	}
	s.auditRead(v, read, options, audit.OutcomeOK)
	return nil
}

// fetchView is what FETCH needs of the session's view, read once.
type fetchView struct {
	v         *view
	rev2      bool
	announced []string // flags sent in FLAGS (a prefix of sm.FlagsLocked)
	set       map[string]bool
}

func (fv *fetchView) flags(m *storage.Message) []imap.Flag {
	out := make([]imap.Flag, 0, len(m.Flags)+1)
	for _, f := range m.Flags {
		// System flags are always announced.
		if strings.HasPrefix(f, `\`) || fv.isAnnounced(f) {
			out = append(out, imap.Flag(f))
		}
	}
	if !fv.rev2 && fv.v.recent.contains(m.UID) {
		out = append(out, flagRecent)
	}
	return out
}

func (fv *fetchView) isAnnounced(f string) bool {
	if fv.set == nil {
		fv.set = make(map[string]bool, len(fv.announced))
		for _, a := range fv.announced {
			fv.set[strings.ToLower(a)] = true
		}
	}
	return fv.set[strings.ToLower(f)]
}

func setsSeen(o *imap.FetchOptions) bool {
	for _, bs := range o.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range o.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// fetchOne writes one FETCH response. Everything that parses the message
// is computed before the response is opened: a panic there becomes NO
// [SERVERBUG] (session.guard) with the connection intact. Only the
// streaming of BODY[] happens with the response open; if anything panics
// then, the response is cut and the connection closed, since the client
// could not make sense of the rest.
func (s *session) fetchOne(ctx context.Context, w *imapserver.FetchWriter, fv *fetchView, ref msgRef, m *storage.Message, d *storage.Digest, o *imap.FetchOptions) error {
	var (
		body      storage.Body
		env       *imap.Envelope
		structure imap.BodyStructure
		sections  = make([][]byte, len(o.BodySection))
		textAt    = make([]int64, len(o.BodySection)) // see textOffset; -1 if not
		binaries  = make([][]byte, len(o.BinarySection))
		binSizes  = make([]uint32, len(o.BinarySectionSize))
	)
	for i := range textAt {
		textAt[i] = -1
	}
	// ENVELOPE and BODYSTRUCTURE come from the summary made at delivery
	// when there is one (summary.go).
	if (o.Envelope || o.BodyStructure != nil) && d != nil && d.Summary != nil {
		if e, bs, ok := decodeSummary(d.Summary); ok {
			if o.Envelope {
				env = e
			}
			if o.BodyStructure != nil {
				structure = bs
			}
		}
	}
	// Otherwise ENVELOPE and BODY[HEADER…] need the header only, which
	// the store reads without the body (Digests, Store.OpenHeader).
	needBody := (o.BodyStructure != nil && structure == nil) || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
	needHeader := o.Envelope && env == nil
	for _, bs := range o.BodySection {
		if isHeaderOnly(bs) {
			needHeader = true
		} else {
			needBody = true
		}
	}
	if needBody || needHeader {
		var (
			whole func() io.Reader
			hdr   []byte // the header section, when that is what whole reads
			err   error
		)
		if !needBody && d != nil && d.Header != nil && len(d.Header) < headerCut {
			hdr = d.Header
			whole = func() io.Reader { return bytes.NewReader(hdr) }
		} else {
			whole, hdr, body, err = s.openMessage(ctx, fv.v.id, m.UID, !needBody)
			if hdr == nil && d != nil && d.Header != nil && len(d.Header) < headerCut {
				hdr = d.Header // the same bytes as the start of the body
			}
		}
		if errors.Is(err, storage.ErrNoMessage) {
			// Expunged by another session since the metadata was read:
			// its EXPUNGE will follow, and the other messages are still
			// answered (RFC 9051 §7.5.1 lets the server leave it out).
			return nil
		}
		if err != nil {
			return s.mapError("fetch", err)
		}
		if body != nil {
			defer body.Close()
		}
		// The library's Extract* functions wrap their reader in a new
		// 4 KiB bufio.Reader unless it is one already: lending them one
		// from a pool spared a fifth of the server's allocations.
		br := readerPool.Get().(*bufio.Reader)
		defer func() { br.Reset(nil); readerPool.Put(br) }()
		whole0 := whole
		whole = func() io.Reader { br.Reset(whole0()); return br }
		if o.Envelope && env == nil {
			h, err := textproto.ReadHeader(bufio.NewReader(whole()))
			if err != nil {
				h = textproto.Header{}
			}
			env = extractEnvelope(h)
		}
		if o.BodyStructure != nil && structure == nil {
			// Bounded (structure.go): a message stored before the
			// limits gets its structure cut, never the library's
			// unbounded recursion.
			structure = structureOf(whole())
		}
		for i, bs := range o.BodySection {
			if isWholeBody(bs) {
				continue
			}
			if off, ok := textOffset(br, whole0(), bs); ok && body != nil {
				textAt[i] = off
				continue
			}
			if hdr != nil {
				if b, ok := headerSection(hdr, bs); ok {
					sections[i] = b
					continue
				}
			}
			if !tooDeep(bs.Part) {
				sections[i] = imapserver.ExtractBodySection(whole(), bs)
			}
		}
		for i, bs := range o.BinarySection {
			if !tooDeep(bs.Part) {
				binaries[i] = imapserver.ExtractBinarySection(whole(), bs)
			}
		}
		for i, bss := range o.BinarySectionSize {
			if !tooDeep(bss.Part) {
				binSizes[i] = imapserver.ExtractBinarySectionSize(whole(), bss)
			}
		}
	}

	rw := w.CreateMessage(ref.seq)
	defer func() {
		if r := recover(); r != nil {
			if s.conn != nil {
				s.conn.NetConn().Close()
			}
			rw.Close() // releases the connection's writer
			panic(r)
		}
	}()
	rw.WriteUID(imap.UID(m.UID))
	if o.Flags {
		rw.WriteFlags(fv.flags(m))
	}
	if o.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if env != nil {
		rw.WriteEnvelope(env)
	}
	if structure != nil {
		rw.WriteBodyStructure(structure)
	}
	for i, bs := range o.BodySection {
		var err error
		if isWholeBody(bs) {
			err = streamBody(rw, bs, body, 0)
		} else if textAt[i] >= 0 {
			err = streamBody(rw, bs, body, textAt[i])
		} else {
			err = writeAll(rw.WriteBodySection(bs, int64(len(sections[i]))), sections[i])
		}
		if err != nil {
			return err
		}
	}
	for i, bs := range o.BinarySection {
		if err := writeAll(rw.WriteBinarySection(bs, int64(len(binaries[i]))), binaries[i]); err != nil {
			return err
		}
	}
	for i, bss := range o.BinarySectionSize {
		rw.WriteBinarySectionSize(bss, binSizes[i])
	}
	return rw.Close()
}

// repairStructure makes a structure the library can write: a multipart
// without any part (no boundary, or none found) gets one empty text/plain
// part, since body-type-mpart needs at least one (RFC 9051 §9) and the
// library panics on none, which would drop the session. It also states the
// default charset of a text part that names none, missing Content-Type
// included (RFC 2045 §5.2, RFC 2046 §4.1.2: US-ASCII), as Dovecot does.
func repairStructure(bs imap.BodyStructure) imap.BodyStructure {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for i := range bs.Children {
			bs.Children[i] = repairStructure(bs.Children[i])
		}
		if len(bs.Children) == 0 {
			bs.Children = []imap.BodyStructure{&imap.BodyStructureSinglePart{
				Type: "text", Subtype: "plain", Text: &imap.BodyStructureText{},
				Extended: &imap.BodyStructureSinglePartExt{},
			}}
		}
	case *imap.BodyStructureSinglePart:
		if m := bs.MessageRFC822; m != nil {
			m.BodyStructure = repairStructure(m.BodyStructure)
		}
		if strings.EqualFold(bs.Type, "text") {
			hasCharset := false
			for k := range bs.Params {
				hasCharset = hasCharset || strings.EqualFold(k, "charset")
			}
			if !hasCharset {
				if bs.Params == nil {
					bs.Params = map[string]string{}
				}
				bs.Params["charset"] = "us-ascii"
			}
		}
	}
	return bs
}

// tooDeep says whether a section's part number names a part deeper than
// the default Limits (structure.go): there is none in a message within
// them, and the library would open a reader per level of the path, of
// one the client chose, through a message stored before the limits. Such
// a section is empty, as a part that does not exist is.
func tooDeep(part []int) bool { return len(part) > defaultDepth }

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// headerCut is the size from which Store.OpenHeader may have cut a header
// section.
const headerCut = 64 << 10

// openMessage gives readers of a message from its start: of the header
// section only when headerOnly (body is then nil), else of the whole
// message.
func (s *session) openMessage(ctx context.Context, mailboxID int64, uid uint32, headerOnly bool) (whole func() io.Reader, hdr []byte, body storage.Body, err error) {
	if headerOnly {
		hdr, err := s.srv.opts.Store.OpenHeader(ctx, mailboxID, uid)
		if err != nil {
			return nil, nil, nil, err
		}
		if len(hdr) < headerCut {
			return func() io.Reader { return bytes.NewReader(hdr) }, hdr, nil, nil
		}
	}
	body, err = s.srv.opts.Store.OpenBody(ctx, mailboxID, uid)
	if err != nil {
		return nil, nil, nil, err
	}
	return func() io.Reader { return io.NewSectionReader(body, 0, body.Size()) }, nil, body, nil
}

// isHeaderOnly: BODY[HEADER], BODY[HEADER.FIELDS (…)], RFC822.HEADER of
// the message itself.
func isHeaderOnly(bs *imap.FetchItemBodySection) bool {
	return len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader
}

func isWholeBody(bs *imap.FetchItemBodySection) bool {
	return len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone
}

// streamBody streams the body from offset base to its end (BODY[], or the
// text of textOffset), with its <x.y> partial, straight from the store.
func streamBody(rw *imapserver.FetchResponseWriter, bs *imap.FetchItemBodySection, body storage.Body, base int64) error {
	off, n := sectionRange(body.Size(), base, bs.Partial)
	wc := rw.WriteBodySection(bs, n)
	buf := copyBufs.Get().(*[]byte)
	_, err := io.CopyBuffer(wc, io.NewSectionReader(body, off, n), *buf)
	copyBufs.Put(buf)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyBufs: the buffers of streamBody. io.Copy allocated 32 KiB at each
// FETCH of a body (6 % of the allocations under imaptest's stress load).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// sectionRange is the range of a body of size bytes that a section
// starting at base, with its <x.y> partial, covers.
func sectionRange(size, base int64, p *imap.SectionPartial) (off, n int64) {
	off, n = base, max(size-base, 0)
	if p != nil {
		off = base + min(p.Offset, n)
		n = min(n-(off-base), p.Size)
	}
	return off, n
}

// textOffset says where the section bs starts when it is the text after
// the message's header: BODY[TEXT], and BODY[1] of a message that is not
// multipart (RFC 9051 §6.4.5: part 1 of a non-multipart message is its
// body). Such a section then streams from the store like BODY[], instead
// of being copied whole into memory by imapserver.ExtractBodySection,
// which gives the same bytes (FuzzTextOffset checks it). ok is false for
// any other section, and for a header the library cannot read (its
// answer stands then).
func textOffset(br *bufio.Reader, msg io.Reader, bs *imap.FetchItemBodySection) (int64, bool) {
	switch {
	case len(bs.HeaderFields) > 0 || len(bs.HeaderFieldsNot) > 0:
		return 0, false
	case len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierText:
	case len(bs.Part) == 1 && bs.Part[0] == 1 && bs.Specifier == imap.PartSpecifierNone:
	default:
		return 0, false
	}
	cr := &countingReader{r: msg}
	br.Reset(cr)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return 0, false
	}
	if len(bs.Part) == 1 {
		mh := gomessage.Header{Header: h}
		mediaType, _, _ := mh.ContentType()
		if strings.HasPrefix(mediaType, "multipart/") {
			return 0, false
		}
	}
	return cr.n - int64(br.Buffered()), true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func writeAll(wc io.WriteCloser, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

// flagRecent is IMAP4rev1's session flag (RFC 3501 §2.3.2), gone from
// IMAP4rev2 and from go-imap's constants.
const flagRecent imap.Flag = `\Recent`
