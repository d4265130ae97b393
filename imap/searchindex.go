package imap

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"carepost/storage"
)

// The search index (issue #8) keeps, per shared mailbox, what SEARCH needs
// of the header fields clients search most: From, To, Cc, Bcc and Subject,
// and the date of the Date field for SENTSINCE/SENTBEFORE/SENTON. Reading
// the header sections of 100,000 messages takes seconds one by one and
// still hundreds of milliseconds in Store.Digests batches, while scanning
// this index takes a few milliseconds (about 7 ms for a whole SEARCH); and a message's header never changes
// once stored, so an entry, once made, stays right until the message is
// expunged.
//
// An entry holds, for each indexed field, every string that matchHeader
// compares the needle with, lower-cased and joined by NUL: the raw value,
// its RFC 2047 decoding and, for address fields, each address as
// matchAddresses formats it. A needle without NUL is a substring of the
// joined text exactly when it is a substring of one of those strings, so
// the index answers what matchHeader answers; a needle with a NUL (which
// IMAP strings cannot carry anyway) falls back to reading headers. A
// string already contained in the field's text adds nothing and is left
// out: the decoded form of an ASCII subject, an address the raw value
// already spells the same way.
//
// Expunged messages are not removed one by one: the Watch callback must
// not wait, and an entry nobody asks for is harmless (a search looks up
// only the UIDs it searches, and UIDs are never reused), so they are
// counted and dropped together once they make a quarter of the index.
//
// Memory: per message 4 bytes of UID and a 32-byte entry, plus the field
// texts (about 100-150 bytes for a typical message: one sender and one
// recipient with display names, a subject), and the spare capacity of
// slices grown by append: BenchmarkSearchHeader100k measures about 240
// bytes of heap per message, 24 MB for 100,000 messages. The index is
// built on a mailbox's first header SEARCH (if it has minIndexMessages
// messages or more), filled for the messages it lacks by batches of
// indexBatch, freed when the last session leaves the mailbox, and not
// built at all for a mailbox over maxIndexMessages messages (or whose
// texts outgrow maxIndexBytes): such a mailbox is searched by reading
// headers in batches, as fields the index lacks are.

// indexedFields are the header fields the index holds, in the order of
// idxEntry.end; their lower-case names map to their position.
var indexedFields = [...]string{"From", "To", "Cc", "Bcc", "Subject"}

var indexedField = map[string]int{"from": 0, "to": 1, "cc": 2, "bcc": 3, "subject": 4}

// minIndexMessages is the size from which a mailbox gets an index: a
// smaller one is searched with a single Store.Digests call, which costs
// about a millisecond, and the many small mailboxes of a server keep no
// memory for SEARCH. Tests lower it (atomic: a server of an earlier test
// may still be searching).
var minIndexMessages atomic.Int64

func init() { minIndexMessages.Store(1000) }

const (
	// indexBatch is the number of headers read per Store.Digests call
	// while filling the index or searching without it: large enough that
	// the per-call cost vanishes, small enough to hold little memory.
	indexBatch = 1000
	// maxIndexMessages and maxIndexBytes bound one mailbox's index (about
	// 60 MB for 250,000 typical messages).
	maxIndexMessages = 250_000
	maxIndexBytes    = 64 << 20
)

// hasDate marks an entry whose Date field parsed; its calendar date is in
// idxEntry.sent.
const hasDate = 1 << 7

// idxEntry locates one message's field texts in searchIndex.text.
type idxEntry struct {
	start uint32
	// end[i] is where the text of indexedFields[i] ends; it starts where
	// the previous one ends (at start for the first).
	end [len(indexedFields)]uint32
	// sent is the Date field's calendar date, in its own zone, as
	// dayKey packs it; valid when has&hasDate.
	sent int32
	// has has bit i set when the message has field indexedFields[i] at
	// all (HEADER Cc "" matches a message with an empty Cc field).
	has uint8
}

// dayKey packs a calendar date so that comparing keys compares dates.
func dayKey(y int, m, d int) int32 { return int32(y)<<9 | int32(m)<<5 | int32(d) }

// searchIndex is a sharedMailbox's index. Its slices only grow in place
// (append writes past the length a snapshot saw) or are replaced by new
// ones (merge, compaction), never changed where a snapshot may read them,
// so a search scans its snapshot without holding the lock.
type searchIndex struct {
	mu   sync.Mutex
	uids []uint32 // ascending
	ents []idxEntry
	text []byte
	// disabled turns the index off: for a mailbox over the caps, once the
	// mailbox is released, and in tests that compare both paths.
	disabled bool
	// dead counts the messages expunged since the last compaction; the
	// Watch callback only adds to it, so it never waits for the lock.
	dead atomic.Int64
}

// indexSnap is a consistent view of the index, read without locks.
type indexSnap struct {
	uids []uint32
	ents []idxEntry
	text []byte
}

// noteExpunged is called by the Watch callback (under sharedMailbox.mu)
// for each expunged message. Entries of expunged messages are harmless,
// since a search looks up only the UIDs it searches, so they are dropped
// later, by compact, when they make a quarter of the index.
func (ix *searchIndex) noteExpunged() { ix.dead.Add(1) }

// free drops the index, for good: the mailbox has no session left.
func (ix *searchIndex) free() {
	ix.mu.Lock()
	ix.uids, ix.ents, ix.text = nil, nil, nil
	ix.disabled = true
	ix.mu.Unlock()
}

func (ix *searchIndex) snapshot() (indexSnap, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return indexSnap{ix.uids, ix.ents, ix.text}, !ix.disabled
}

// needsCompaction reports whether the expunged entries are worth a
// compaction (the caller then gives compact the live UIDs).
func (ix *searchIndex) needsCompaction() bool {
	ix.mu.Lock()
	n := len(ix.uids)
	ix.mu.Unlock()
	d := ix.dead.Load()
	return d > 0 && d*4 >= int64(n)
}

// compact keeps the entries of the live UIDs (ascending) only, in new
// slices. A message expunged while it runs keeps its entry until the next
// compaction.
func (ix *searchIndex) compact(live []uint32) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.dead.Store(0)
	uids := make([]uint32, 0, len(ix.uids))
	ents := make([]idxEntry, 0, len(ix.uids))
	var text []byte
	j := 0
	for i, uid := range ix.uids {
		for j < len(live) && live[j] < uid {
			j++
		}
		if j == len(live) || live[j] != uid {
			continue
		}
		e := ix.ents[i]
		base := uint32(len(text))
		text = append(text, ix.text[e.start:e.end[len(e.end)-1]]...)
		shift := int64(base) - int64(e.start)
		e.start = base
		for k := range e.end {
			e.end[k] = uint32(int64(e.end[k]) + shift)
		}
		uids = append(uids, uid)
		ents = append(ents, e)
	}
	ix.uids, ix.ents, ix.text = uids, ents, text
}

// missing returns the UIDs of want (ascending) that snap lacks.
func (snap *indexSnap) missing(want []uint32) []uint32 {
	var out []uint32
	j := 0
	for _, uid := range want {
		for j < len(snap.uids) && snap.uids[j] < uid {
			j++
		}
		if j == len(snap.uids) || snap.uids[j] != uid {
			out = append(out, uid)
		}
	}
	return out
}

// cover makes the index hold every UID of want (ascending) that still
// exists, reading the headers it lacks by batches, and returns a
// snapshot; ok is false when the index is off or would outgrow its caps,
// and the search then reads headers itself.
func (ix *searchIndex) cover(ctx context.Context, s *session, mailboxID int64, want []uint32) (snap indexSnap, ok bool, err error) {
	snap, ok = ix.snapshot()
	if !ok {
		return snap, false, nil
	}
	missing := snap.missing(want)
	if len(missing) == 0 {
		return snap, true, nil
	}
	if len(snap.uids)+len(missing) > maxIndexMessages {
		return snap, false, nil
	}
	// Batches are read and parsed by a few goroutines at once (SQLite
	// reads and header parsing take about as long as each other, and
	// each batch is independent), and inserted in order, so that the
	// index only ever appends. A first search on 100,000 messages takes
	// half the time it takes with one goroutine.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nb := (len(missing) + indexBatch - 1) / indexBatch
	results := make([]chan batchOut, nb)
	for k := range results {
		results[k] = make(chan batchOut, 1)
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), 4))
	go func() {
		sem := make(chan struct{}, workers)
		for k := range nb {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			batch := missing[k*indexBatch : min(len(missing), (k+1)*indexBatch)]
			go func() {
				defer func() { <-sem }()
				results[k] <- s.buildBatch(ctx, mailboxID, batch)
			}()
		}
	}()
	for k := range nb {
		var out batchOut
		select {
		case out = <-results[k]:
		case <-ctx.Done():
			return snap, false, ctx.Err()
		}
		if out.err != nil {
			return snap, false, out.err
		}
		if !ix.insert(&out.b) {
			return snap, false, nil
		}
	}
	snap, ok = ix.snapshot()
	return snap, ok, nil
}

type batchOut struct {
	b   indexBuilder
	err error
}

// buildBatch reads the headers of a batch of UIDs and makes their
// entries. It runs on a goroutine of its own, so a panic on a hostile
// header becomes an error here instead of ending the process (the
// session's guard only covers its own goroutine).
func (s *session) buildBatch(ctx context.Context, mailboxID int64, uids []uint32) (out batchOut) {
	defer func() {
		if r := recover(); r != nil {
			out = batchOut{err: fmt.Errorf("search index: panic on a header of mailbox %d: %v", mailboxID, r)}
		}
	}()
	digests, err := s.srv.cache.Wrapped().Digests(ctx, mailboxID, uids, true, false)
	if err != nil {
		return batchOut{err: err}
	}
	for _, d := range digests {
		h, err := s.digestHeader(ctx, mailboxID, d)
		if err != nil {
			continue // expunged meanwhile: no entry, its search skips it
		}
		out.b.add(d.UID, h)
	}
	return out
}

// digestHeader parses the header section of a digest; a header the store
// may have cut (Store.OpenHeader) is read from the body. A parse error
// leaves the fields read so far, which are searched (as loadHeader does).
func (s *session) digestHeader(ctx context.Context, mailboxID int64, d storage.Digest) (textproto.Header, error) {
	if len(d.Header) < headerCut {
		h, _ := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(d.Header), 4096))
		return h, nil
	}
	whole, _, body, err := s.openMessage(ctx, mailboxID, d.UID, false)
	if err != nil {
		return textproto.Header{}, err
	}
	defer body.Close()
	h, _ := textproto.ReadHeader(bufio.NewReaderSize(whole(), 4096))
	return h, nil
}

// indexBuilder makes the entries of one batch, with offsets into its own
// text; insert moves them into the index.
type indexBuilder struct {
	uids []uint32
	ents []idxEntry
	text []byte
}

func (b *indexBuilder) add(uid uint32, h textproto.Header) {
	e := idxEntry{start: uint32(len(b.text))}
	for i, key := range indexedFields {
		start := len(b.text)
		put := func(p string) {
			if p == "" {
				return
			}
			if strings.IndexByte(p, 0) < 0 && bytes.Contains(b.text[start:], []byte(p)) {
				return // adds nothing: any needle it holds is there already
			}
			if len(b.text) > start {
				b.text = append(b.text, 0)
			}
			b.text = append(b.text, p...)
		}
		fields := h.FieldsByKey(key)
		for fields.Next() {
			e.has |= 1 << i
			raw := fields.Value()
			put(strings.ToLower(raw))
			if dec, err := mimeDecoder.DecodeHeader(raw); err == nil {
				put(strings.ToLower(dec))
			}
			if addressHeaders[strings.ToLower(key)] {
				forEachAddressText(raw, func(a string) bool {
					put(strings.ToLower(a))
					return false
				})
			}
		}
		e.end[i] = uint32(len(b.text))
	}
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	if t, err := mh.Date(); err == nil {
		y, m, d := t.Date()
		e.sent = dayKey(y, int(m), d)
		e.has |= hasDate
	}
	b.uids = append(b.uids, uid)
	b.ents = append(b.ents, e)
}

// insert adds a batch (ascending UIDs) to the index; it is false when the
// index is off or the batch would outgrow maxIndexBytes (the index is
// then turned off and dropped). A UID already there, from a concurrent
// fill, is kept once.
func (ix *searchIndex) insert(b *indexBuilder) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.disabled {
		return false
	}
	if len(ix.text)+len(b.text) > maxIndexBytes {
		ix.uids, ix.ents, ix.text = nil, nil, nil
		ix.disabled = true
		return false
	}
	base := uint32(len(ix.text))
	ix.text = append(ix.text, b.text...)
	for i := range b.ents {
		e := &b.ents[i]
		e.start += base
		for k := range e.end {
			e.end[k] += base
		}
	}
	if len(b.uids) == 0 {
		return true
	}
	if n := len(ix.uids); n == 0 || ix.uids[n-1] < b.uids[0] {
		// The common case, new messages after the others: append.
		ix.uids = append(ix.uids, b.uids...)
		ix.ents = append(ix.ents, b.ents...)
		return true
	}
	// Merge into new slices: snapshots keep reading the old ones.
	uids := make([]uint32, 0, len(ix.uids)+len(b.uids))
	ents := make([]idxEntry, 0, len(ix.uids)+len(b.uids))
	i, j := 0, 0
	for i < len(ix.uids) || j < len(b.uids) {
		switch {
		case j == len(b.uids) || (i < len(ix.uids) && ix.uids[i] < b.uids[j]):
			uids, ents = append(uids, ix.uids[i]), append(ents, ix.ents[i])
			i++
		case i == len(ix.uids) || b.uids[j] < ix.uids[i]:
			uids, ents = append(uids, b.uids[j]), append(ents, b.ents[j])
			j++
		default: // both: keep the one already there
			uids, ents = append(uids, ix.uids[i]), append(ents, ix.ents[i])
			i++
			j++
		}
	}
	ix.uids, ix.ents = uids, ents
	return true
}

// indexCursor finds the entries of ascending UIDs in a snapshot in one
// pass.
type indexCursor struct {
	snap *indexSnap
	i    int
}

// entry returns the entry of uid, nil if the snapshot lacks it. UIDs must
// be asked in ascending order.
func (c *indexCursor) entry(uid uint32) *idxEntry {
	u := c.snap.uids
	for c.i < len(u) && u[c.i] < uid {
		c.i++
	}
	if c.i < len(u) && u[c.i] == uid {
		return &c.snap.ents[c.i]
	}
	return nil
}

// matchIndexed answers a HEADER criterion the index holds (n.field >= 0)
// from an entry.
func (snap *indexSnap) matchIndexed(e *idxEntry, n *indexedNeedle) bool {
	f := n.field
	if e.has&(1<<f) == 0 {
		return false
	}
	if n.any {
		return true
	}
	start := e.start
	if f > 0 {
		start = e.end[f-1]
	}
	return bytes.Contains(snap.text[start:e.end[f]], n.needle)
}

// indexedFieldOf maps a SEARCH header key to its position in
// indexedFields. Only ASCII keys qualify: textproto canonicalizes ASCII
// names only, and strings.EqualFold would let "ſubject" stand for Subject.
func indexedFieldOf(key string) (int, bool) {
	if len(key) > 7 {
		return 0, false
	}
	var buf [7]byte
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 0x80 {
			return 0, false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	f, ok := indexedField[string(buf[:len(key)])]
	return f, ok
}
