package imap

import (
	"bufio"
	"context"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"carepost/storage"
)

// Fetch writes the requested items of each message (RFC 9051 §6.4.5).
// Bodies are opened only when an item needs them, and a whole BODY[] is
// streamed from the store without being held in memory.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	v := s.sel
	refs := v.resolve(numSet)
	if len(refs) == 0 {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	metas, err := s.srv.opts.Store.Messages(ctx, v.id, uidsOf(refs))
	if err != nil {
		return s.mapError("fetch", err)
	}
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
			for _, u := range ups {
				if m := byUID[u.UID]; m != nil {
					m.Flags = u.Flags
				}
			}
		}
		opts := *options
		opts.Flags = true
		options = &opts
	}

	for _, ref := range refs {
		m := byUID[ref.uid]
		if m == nil {
			continue // expunged meanwhile
		}
		if err := s.fetchOne(ctx, w, v, ref, m, options); err != nil {
			return err
		}
	}
	return nil
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

func (s *session) fetchOne(ctx context.Context, w *imapserver.FetchWriter, v *view, ref msgRef, m *storage.Message, o *imap.FetchOptions) error {
	rw := w.CreateMessage(ref.seq)
	rw.WriteUID(imap.UID(m.UID))
	if o.Flags {
		rw.WriteFlags(v.flagsOf(m))
	}
	if o.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	needBody := o.Envelope || o.BodyStructure != nil || len(o.BodySection) > 0 ||
		len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
	if needBody {
		body, err := s.srv.opts.Store.OpenBody(ctx, v.id, m.UID)
		if err != nil {
			rw.Close()
			return s.mapError("fetch", err)
		}
		defer body.Close()
		whole := func() io.Reader { return io.NewSectionReader(body, 0, body.Size()) }
		if o.Envelope {
			h, err := textproto.ReadHeader(bufio.NewReader(whole()))
			if err != nil {
				h = textproto.Header{}
			}
			rw.WriteEnvelope(extractEnvelope(h))
		}
		if o.BodyStructure != nil {
			rw.WriteBodyStructure(repairStructure(imapserver.ExtractBodyStructure(whole())))
		}
		for _, bs := range o.BodySection {
			if err := writeBodySection(rw, bs, body, whole); err != nil {
				return err
			}
		}
		for _, bs := range o.BinarySection {
			buf := imapserver.ExtractBinarySection(whole(), bs)
			if err := writeAll(rw.WriteBinarySection(bs, int64(len(buf))), buf); err != nil {
				return err
			}
		}
		for _, bss := range o.BinarySectionSize {
			rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(whole(), bss))
		}
	}
	return rw.Close()
}

// repairStructure makes a structure the library can write: a multipart
// without any part (no boundary, or none found) gets one empty text/plain
// part, since body-type-mpart needs at least one (RFC 9051 §9) and the
// library panics on none, which would drop the session.
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
	}
	return bs
}

// writeBodySection streams BODY[] and BODY[]<x.y> straight from the store;
// other sections are extracted by the library's parser.
func writeBodySection(rw *imapserver.FetchResponseWriter, bs *imap.FetchItemBodySection, body storage.Body, whole func() io.Reader) error {
	if len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierNone {
		off, n := int64(0), body.Size()
		if bs.Partial != nil {
			off = bs.Partial.Offset
			if off > n {
				off = n
			}
			n -= off
			if bs.Partial.Size < n {
				n = bs.Partial.Size
			}
		}
		wc := rw.WriteBodySection(bs, n)
		_, err := io.Copy(wc, io.NewSectionReader(body, off, n))
		if cerr := wc.Close(); err == nil {
			err = cerr
		}
		return err
	}
	buf := imapserver.ExtractBodySection(whole(), bs)
	return writeAll(rw.WriteBodySection(bs, int64(len(buf))), buf)
}

func writeAll(wc io.WriteCloser, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// flagsOf returns the flags of a message as this session sees them:
// \Recent is per session (RFC 3501 §2.3.2).
func (v *view) flagsOf(m *storage.Message) []imap.Flag {
	out := toFlags(m.Flags)
	if v.firstRecent != 0 && m.UID >= v.firstRecent {
		out = append(out, flagRecent)
	}
	return out
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
