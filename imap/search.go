package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/cache"
)

// Search evaluates SEARCH criteria (RFC 9051 §6.4.4). Flags, dates and
// sizes are answered from the metadata, read only when the criteria use
// them: sequence and UID sets need only the session's numbering. FROM, TO,
// CC, BCC, SUBJECT and the sent date are answered from the mailbox's
// header index (storage/cache, searchindex.go); other header fields from
// headers read in batches of headerBatch; BODY and TEXT open each
// message, once.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (_ *imap.SearchData, err error) {
	defer s.guard("search", &err)
	v := s.sel
	ctx, cancel := s.ctx()
	defer cancel()
	var need searchNeeds
	need.of(criteria)

	// This session's numbering of the messages.
	type cand struct {
		seq uint32
		uid uint32
		m   *storage.Message
	}
	v.sm.Lock()
	if v.overflowed {
		// The numbering is lost; the session ends at the poll that
		// follows (maxQueued).
		v.sm.Unlock()
		return &imap.SearchData{}, nil
	}
	uids := v.sm.UIDsLocked()
	cands := make([]cand, 0, len(uids))
	for i, uid := range uids {
		seq := v.clientSeqLocked(uint32(i + 1))
		if seq == 0 {
			continue // not yet announced to this client
		}
		cands = append(cands, cand{seq: seq, uid: uid})
	}
	clientMax := v.known
	lastUID := v.lastKnownUIDLocked()
	v.sm.Unlock()

	if need.meta {
		// The metadata comes from the shared state (no read); messages
		// missing were expunged meanwhile (their EXPUNGE follows) and
		// are left out.
		metas := v.sm.Messages(nil)
		j, kept := 0, cands[:0]
		for _, c := range cands {
			for j < len(metas) && metas[j].UID < c.uid {
				j++
			}
			if j < len(metas) && metas[j].UID == c.uid {
				c.m = &metas[j]
				kept = append(kept, c)
			}
		}
		cands = kept
	}

	var (
		snap    cache.IndexSnapshot
		indexed bool
	)
	if need.indexed && int64(len(cands)) >= minIndexMessages.Load() {
		want := make([]uint32, len(cands))
		for i, c := range cands {
			want[i] = c.uid
		}
		snap, indexed, err = v.sm.Index(ctx, searchTexts{}, want)
		if err != nil {
			return nil, s.mapError("search", err)
		}
	}
	// Without the index, or for fields it lacks, headers are read by
	// batches before their messages are matched.
	batchHeaders := need.header && (need.unindexed || !indexed)
	cursor := snap.Cursor()
	plan := compileHeaders(criteria)

	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
	)
	for len(cands) > 0 {
		chunk := cands
		if batchHeaders {
			chunk = cands[:min(len(cands), headerBatch)]
		}
		cands = cands[len(chunk):]
		var digests []storage.Digest
		if batchHeaders {
			uids := make([]uint32, len(chunk))
			for i, c := range chunk {
				uids[i] = c.uid
			}
			// From the wrapped store, not through the digest cache: a
			// scan of many headers would only push out what clients
			// fetch again.
			digests, err = s.srv.cache.Wrapped().Digests(ctx, v.id, uids, true, false)
			if err != nil {
				return nil, s.mapError("search", err)
			}
		}
		for _, c := range chunk {
			mc := &matchCtx{s: s, v: v, seq: c.seq, uid: c.uid, m: c.m, clientMax: clientMax, lastUID: lastUID}
			if indexed {
				mc.snap = &snap
				mc.ent = cursor.Entry(c.uid)
			}
			if batchHeaders {
				for len(digests) > 0 && digests[0].UID < c.uid {
					digests = digests[1:]
				}
				if len(digests) > 0 && digests[0].UID == c.uid {
					mc.digest = &digests[0]
				} else {
					mc.gone = true // expunged meanwhile
				}
			}
			ok, err := mc.match(criteria, plan)
			mc.close()
			if errors.Is(err, storage.ErrNoMessage) {
				continue // expunged meanwhile: its EXPUNGE follows
			}
			if err != nil {
				return nil, s.mapError("search", err)
			}
			if !ok {
				continue
			}
			uidSet.AddNum(imap.UID(c.uid))
			num := c.seq
			if kind == imapserver.NumKindUID {
				num = c.uid
			} else {
				seqSet.AddNum(c.seq)
			}
			if data.Min == 0 || num < data.Min {
				data.Min = num
			}
			if num > data.Max {
				data.Max = num
			}
			data.Count++
		}
	}
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	if options != nil && options.ReturnSave {
		v.searchRes = uidSet
	}
	return &data, nil
}

// searchNeeds is what a search must read besides the session's numbering.
type searchNeeds struct {
	meta      bool // flags, internal date, size or MODSEQ
	header    bool // any header field or the sent date
	indexed   bool // a field or date the search index holds
	unindexed bool // a field it does not
}

func (n *searchNeeds) of(c *imap.SearchCriteria) {
	if len(c.Flag) > 0 || len(c.NotFlag) > 0 || c.Larger > 0 || c.Smaller > 0 ||
		!c.Since.IsZero() || !c.Before.IsZero() || c.ModSeq != nil {
		n.meta = true
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		n.header, n.indexed = true, true
	}
	for _, hf := range c.Header {
		n.header = true
		if _, ok := cache.IndexedField(hf.Key); ok && strings.IndexByte(hf.Value, 0) < 0 {
			n.indexed = true
		} else {
			n.unindexed = true
		}
	}
	for i := range c.Not {
		n.of(&c.Not[i])
	}
	for i := range c.Or {
		n.of(&c.Or[i][0])
		n.of(&c.Or[i][1])
	}
}

// matchCtx evaluates criteria against one message, opening its body at
// most once: criteria on header fields use the search index entry or read
// the header only (up to the blank line), BODY and TEXT the whole message.
type matchCtx struct {
	s         *session
	v         *view
	seq       uint32
	uid       uint32
	m         *storage.Message // nil when the criteria need no metadata
	clientMax uint32
	lastUID   uint32

	snap *cache.IndexSnapshot
	ent  *cache.IndexEntry // nil when the index lacks the message
	// digest is the message's header read in a batch; gone says the batch
	// did not find the message (expunged meanwhile).
	digest *storage.Digest
	gone   bool

	body      storage.Body
	hasHeader bool
	header    textproto.Header
	raw       []byte // the whole message, read on first need
}

func (mc *matchCtx) close() {
	if mc.body != nil {
		mc.body.Close()
		mc.body = nil
	}
}

func (mc *matchCtx) open() error {
	if mc.body != nil {
		return nil
	}
	ctx, cancel := mc.s.ctx()
	defer cancel()
	body, err := mc.s.srv.opts.Store.OpenBody(ctx, mc.v.id, mc.uid)
	if err != nil {
		return err
	}
	mc.body = body
	return nil
}

// loadHeader reads the header, and nothing after it (Store.OpenHeader).
func (mc *matchCtx) loadHeader() error {
	if mc.hasHeader {
		return nil
	}
	var r io.Reader
	switch {
	case mc.raw != nil:
		r = bytes.NewReader(mc.raw)
	case mc.gone:
		return storage.ErrNoMessage
	case mc.digest != nil && len(mc.digest.Header) < headerCut:
		r = bytes.NewReader(mc.digest.Header)
	default:
		ctx, cancel := mc.s.ctx()
		defer cancel()
		whole, _, body, err := mc.s.openMessage(ctx, mc.v.id, mc.uid, true)
		if err != nil {
			return err
		}
		if body != nil {
			mc.body = body // a long header: the body is open, kept for BODY/TEXT
		}
		r = whole()
	}
	mc.hasHeader = true
	// A parse error leaves the fields read so far: they are searched.
	mc.header, _ = textproto.ReadHeader(bufio.NewReaderSize(r, 4096))
	return nil
}

// loadAll reads the whole message.
func (mc *matchCtx) loadAll() error {
	if mc.raw != nil {
		return nil
	}
	if err := mc.open(); err != nil {
		return err
	}
	raw, err := io.ReadAll(io.NewSectionReader(mc.body, 0, mc.body.Size()))
	if err != nil {
		return err
	}
	mc.raw = raw
	return nil
}

// headerPlan is what the index needs of a criteria node's header fields,
// worked out once per search rather than once per message: it mirrors
// the node's Header, Not and Or.
type headerPlan struct {
	fields []indexedNeedle
	not    []*headerPlan
	or     [][2]*headerPlan
}

// indexedNeedle is a HEADER criterion as the index matches it; field is
// -1 when the index cannot answer it.
type indexedNeedle struct {
	field  int
	any    bool   // empty value: the field's presence is enough
	needle []byte // lower-cased value
}

func compileHeaders(c *imap.SearchCriteria) *headerPlan {
	p := &headerPlan{}
	for _, hf := range c.Header {
		n := indexedNeedle{field: -1, any: hf.Value == "", needle: []byte(strings.ToLower(hf.Value))}
		if f, ok := cache.IndexedField(hf.Key); ok && bytes.IndexByte(n.needle, 0) < 0 {
			n.field = f
		}
		p.fields = append(p.fields, n)
	}
	for i := range c.Not {
		p.not = append(p.not, compileHeaders(&c.Not[i]))
	}
	for i := range c.Or {
		p.or = append(p.or, [2]*headerPlan{compileHeaders(&c.Or[i][0]), compileHeaders(&c.Or[i][1])})
	}
	return p
}

func (mc *matchCtx) match(c *imap.SearchCriteria, plan *headerPlan) (bool, error) {
	m := mc.m // nil unless searchNeeds.meta
	for _, set := range c.SeqNum {
		if !seqContains(set, mc.seq, mc.clientMax) {
			return false, nil
		}
	}
	for _, set := range c.UID {
		if imap.IsSearchRes(set) {
			set = mc.v.searchRes
		}
		if !containsUID(set, mc.uid, mc.lastUID) {
			return false, nil
		}
	}
	for _, f := range c.Flag {
		if !mc.hasFlag(f) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if mc.hasFlag(f) {
			return false, nil
		}
	}
	if c.Larger > 0 && m.Size <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && m.Size >= c.Smaller {
		return false, nil
	}
	if (!c.Since.IsZero() || !c.Before.IsZero()) && !matchDate(m.InternalDate, c.Since, c.Before) {
		return false, nil
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		if mc.ent != nil {
			if day, ok := mc.ent.Sent(); !ok || !matchDayKey(day, c.SentSince, c.SentBefore) {
				return false, nil
			}
		} else {
			if err := mc.loadHeader(); err != nil {
				return false, err
			}
			mh := mail.Header{Header: gomessage.Header{Header: mc.header}}
			t, err := mh.Date()
			if err != nil || !matchDate(t, c.SentSince, c.SentBefore) {
				return false, nil
			}
		}
	}
	for i, hf := range c.Header {
		if n := &plan.fields[i]; mc.ent != nil && n.field >= 0 {
			if !matchIndexed(mc.snap, mc.ent, n) {
				return false, nil
			}
			continue
		}
		if err := mc.loadHeader(); err != nil {
			return false, err
		}
		if !matchHeader(mc.header, hf.Key, hf.Value) {
			return false, nil
		}
	}
	for _, text := range c.Body {
		if err := mc.loadAll(); err != nil {
			return false, err
		}
		if !matchBody(mc.raw, text, false) {
			return false, nil
		}
	}
	for _, text := range c.Text {
		if err := mc.loadAll(); err != nil {
			return false, err
		}
		if !matchBody(mc.raw, text, true) {
			return false, nil
		}
	}
	for i := range c.Not {
		ok, err := mc.match(&c.Not[i], plan.not[i])
		if err != nil || ok {
			return false, err
		}
	}
	for i := range c.Or {
		a, err := mc.match(&c.Or[i][0], plan.or[i][0])
		if err != nil {
			return false, err
		}
		if !a {
			b, err := mc.match(&c.Or[i][1], plan.or[i][1])
			if err != nil || !b {
				return false, err
			}
		}
	}
	return true, nil
}

func (mc *matchCtx) hasFlag(f imap.Flag) bool {
	if strings.EqualFold(string(f), string(flagRecent)) {
		return mc.v.recent.contains(mc.uid)
	}
	return hasFlag(mc.m.Flags, string(f))
}

func seqContains(set imap.SeqSet, seq, max uint32) bool {
	for _, r := range set {
		if start, stop := staticRange(r.Start, r.Stop, max); seq >= start && seq <= stop {
			return true
		}
	}
	return false
}

// matchDate compares dates only, in the time's own zone (RFC 9051 §6.4.4:
// "disregarding time and timezone").
func matchDate(t, since, before time.Time) bool {
	if since.IsZero() && before.IsZero() {
		return true
	}
	y, mo, d := t.Date()
	day := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	if !since.IsZero() {
		sy, sm, sd := since.Date()
		if day.Before(time.Date(sy, sm, sd, 0, 0, 0, 0, time.UTC)) {
			return false
		}
	}
	if !before.IsZero() {
		by, bm, bd := before.Date()
		if !day.Before(time.Date(by, bm, bd, 0, 0, 0, 0, time.UTC)) {
			return false
		}
	}
	return true
}

// matchDayKey is matchDate for a date packed by cache.DayKey.
func matchDayKey(day int32, since, before time.Time) bool {
	if !since.IsZero() {
		y, m, d := since.Date()
		if day < cache.DayKey(y, int(m), d) {
			return false
		}
	}
	if !before.IsZero() {
		y, m, d := before.Date()
		if day >= cache.DayKey(y, int(m), d) {
			return false
		}
	}
	return true
}

// matchHeader: an empty value matches any message with the field (RFC 9051
// §6.4.4 HEADER); otherwise a case-insensitive substring of the raw or the
// decoded value.
func matchHeader(h textproto.Header, key, value string) bool {
	fields := h.FieldsByKey(key)
	needle := strings.ToLower(value)
	for fields.Next() {
		if value == "" {
			return true
		}
		raw := fields.Value()
		if strings.Contains(strings.ToLower(raw), needle) {
			return true
		}
		if dec, err := mimeDecoder.DecodeHeader(raw); err == nil && strings.Contains(strings.ToLower(dec), needle) {
			return true
		}
		if addressHeaders[strings.ToLower(key)] && matchAddresses(raw, needle) {
			return true
		}
	}
	return false
}

// addressHeaders are searched in their parsed form too: FROM
// "user@example.org" finds "<user (x)@ (y) example.org>", and a display name
// given as a comment or encoded is found (RFC 9051 §6.4.4: a substring of
// the field; the field's meaning is its addresses).
var addressHeaders = map[string]bool{"from": true, "to": true, "cc": true, "bcc": true,
	"sender": true, "reply-to": true}

func matchAddresses(raw, needle string) bool {
	return forEachAddressText(raw, func(a string) bool {
		return strings.Contains(strings.ToLower(a), needle)
	})
}

// forEachAddressText calls fn with each address of a field as SEARCH
// matches it: "Name <mailbox@host>", or a group's name; it stops and
// returns true when fn does.
func forEachAddressText(raw string, fn func(string) bool) bool {
	for _, a := range parseAddressList(raw) {
		var b strings.Builder
		b.WriteString(a.Name)
		if a.Host != "" { // not a group marker
			b.WriteString(" <")
			if a.Mailbox != missingMailbox {
				b.WriteString(a.Mailbox)
			}
			b.WriteString("@")
			if a.Host != missingDomain {
				b.WriteString(a.Host)
			}
			b.WriteString(">")
		} else {
			b.WriteString(a.Mailbox) // group name
		}
		if fn(b.String()) {
			return true
		}
	}
	return false
}

// matchBody searches the decoded text parts (and with header, every
// header field) for a case-insensitive substring.
func matchBody(raw []byte, text string, withHeader bool) bool {
	needle := strings.ToLower(text)
	e, err := gomessage.Read(bytes.NewReader(raw))
	if e == nil {
		// Unparsable: search the raw bytes.
		return bytes.Contains(bytes.ToLower(raw), []byte(needle))
	}
	_ = err // an unknown charset still gives a readable entity
	m := bodyMatcher{needle: needle, withHeader: withHeader, lim: Limits{}.withDefaults()}
	return m.entity(e, 1)
}

// bodyMatcher walks the parts of one message within the default Limits
// (structure.go): the parts of a message past them are searched down to
// the limit only, so that SEARCH BODY of a message stored before the
// limits costs time bounded by its size (10,000 nested multiparts cost
// 40 s each time before: every byte is read through one part reader per
// level).
type bodyMatcher struct {
	needle     string
	withHeader bool
	lim        Limits
	parts      int
}

func (m *bodyMatcher) entity(e *gomessage.Entity, depth int) bool {
	m.parts++
	needle, withHeader := m.needle, m.withHeader
	if withHeader {
		fields := e.Header.Fields()
		for fields.Next() {
			v := fields.Value()
			if dec, err := mimeDecoder.DecodeHeader(v); err == nil {
				v = dec
			}
			if strings.Contains(strings.ToLower(fields.Key()+": "+v), needle) {
				return true
			}
		}
	}
	if mr := e.MultipartReader(); mr != nil {
		if depth >= m.lim.Depth {
			return false
		}
		for m.parts < m.lim.Parts {
			part, err := mr.NextPart()
			if err != nil {
				return false
			}
			if m.entity(part, depth+1) {
				return true
			}
		}
		return false
	}
	t, _, _ := e.Header.ContentType()
	if t != "" && !strings.HasPrefix(t, "text/") && t != "message/rfc822" {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(e.Body, 64<<20))
	if err != nil && len(b) == 0 {
		return false
	}
	return strings.Contains(strings.ToLower(string(b)), needle)
}
