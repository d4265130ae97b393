package cache

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/storage"
)

// The header index (issue #8) keeps, per open mailbox, what a search needs
// of the header fields clients search most: From, To, Cc, Bcc and Subject,
// and the date of the Date field for IMAP's SENTSINCE/SENTBEFORE. Reading
// the header sections of 100,000 messages takes seconds one by one and
// still hundreds of milliseconds in Store.Digests batches, while scanning
// this index takes a few milliseconds (about 7 ms for a whole SEARCH); and
// a message's header never changes once stored, so an entry, once made,
// stays right until the message is expunged.
//
// The cache keeps the index; what text a field yields is the searcher's
// (an Indexer): an entry holds, for each indexed field, every text the
// Indexer gives for its values, joined by NUL. The Indexer gives every
// string its matching compares a needle with (for IMAP's SEARCH: the raw
// value, its RFC 2047 decoding and, for address fields, each address as
// its matching formats it, lower-cased), so that a needle without NUL is
// a substring of the joined text exactly when it is a substring of one of
// those strings, and the index answers what reading the header answers.
// A string already contained in the field's text adds nothing and is left
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
// slices grown by append: imap's BenchmarkSearchHeader100k measures about
// 240 bytes of heap per message, 24 MB for 100,000 messages. The index is
// built on a mailbox's first search that asks for it (Mailbox.Index),
// filled for the messages it lacks by batches of IndexBatch, freed when
// the mailbox's last user releases it, and not built at all for a mailbox
// over maxIndexMessages messages (or whose texts outgrow maxIndexBytes):
// such a mailbox is searched by reading headers in batches, as fields the
// index lacks are.

// IndexedFields are the header fields the index holds; a field is named
// by its position here (IndexedField).
var IndexedFields = [...]string{"From", "To", "Cc", "Bcc", "Subject"}

var indexedField = map[string]int{"from": 0, "to": 1, "cc": 2, "bcc": 3, "subject": 4}

// IndexedField maps a header field name, in any case, to its position in
// IndexedFields. Only ASCII names qualify: textproto canonicalizes ASCII
// names only, and strings.EqualFold would let "ſubject" stand for Subject.
func IndexedField(key string) (int, bool) {
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

// An Indexer says what the index keeps of each value of an indexed field:
// IndexTexts calls put with every text a search compares its needles
// with (the index joins them; a text holding NUL is kept whole). The
// index of a mailbox is built by one Indexer: Mailbox.Index with another
// answers that there is no index. Its dynamic type must be comparable
// (a struct{} type is the usual choice).
type Indexer interface {
	IndexTexts(field, value string, put func(text string))
}

const (
	// IndexBatch is the number of headers read per Store.Digests call
	// while filling the index: large enough that the per-call cost
	// vanishes, small enough to hold little memory.
	IndexBatch = 1000
	// maxIndexMessages and maxIndexBytes bound one mailbox's index (about
	// 60 MB for 250,000 typical messages).
	maxIndexMessages = 250_000
	maxIndexBytes    = 64 << 20
	// headerCut is the size from which Store.OpenHeader (and the header
	// of a digest) may have cut a header section.
	headerCut = 64 << 10
)

// hasDate marks an entry whose Date field parsed; its calendar date is in
// IndexEntry.sent.
const hasDate = 1 << 7

// IndexEntry locates one message's field texts in the index.
type IndexEntry struct {
	start uint32
	// end[i] is where the text of IndexedFields[i] ends; it starts where
	// the previous one ends (at start for the first).
	end [len(IndexedFields)]uint32
	// sent is the Date field's calendar date, in its own zone, as DayKey
	// packs it; valid when has&hasDate.
	sent int32
	// has has bit i set when the message has field IndexedFields[i] at
	// all (IMAP's HEADER Cc "" matches a message with an empty Cc field).
	has uint8
}

// Has tells whether the message has the field at all.
func (e *IndexEntry) Has(field int) bool { return e.has&(1<<field) != 0 }

// Sent is the calendar date of the message's Date field, in its own zone,
// packed by DayKey; ok is false when the field is missing or unreadable.
func (e *IndexEntry) Sent() (day int32, ok bool) { return e.sent, e.has&hasDate != 0 }

// DayKey packs a calendar date so that comparing keys compares dates.
func DayKey(y int, m, d int) int32 { return int32(y)<<9 | int32(m)<<5 | int32(d) }

// headerIndex is a Mailbox's index. Its slices only grow in place
// (append writes past the length a snapshot saw) or are replaced by new
// ones (merge, compaction), never changed where a snapshot may read them,
// so a search scans its snapshot without holding the lock.
type headerIndex struct {
	mu      sync.Mutex
	indexer Indexer  // the one that built it; nil while empty
	uids    []uint32 // ascending
	ents    []IndexEntry
	text    []byte
	// disabled turns the index off: for a mailbox over the caps, and once
	// the mailbox is released.
	disabled bool
	// dead counts the messages expunged since the last compaction; the
	// Watch callback only adds to it, so it never waits for the lock.
	dead atomic.Int64
}

// IndexSnapshot is a consistent view of a mailbox's index, read without
// locks.
type IndexSnapshot struct {
	uids []uint32
	ents []IndexEntry
	text []byte
}

// noteExpunged is called by the Watch callback (under Mailbox.mu) for
// each expunged message. Entries of expunged messages are harmless, since
// a search looks up only the UIDs it searches, so they are dropped later,
// by compact, when they make a quarter of the index.
func (ix *headerIndex) noteExpunged() { ix.dead.Add(1) }

// free drops the index, for good: the mailbox has no user left.
func (ix *headerIndex) free() {
	ix.mu.Lock()
	ix.uids, ix.ents, ix.text = nil, nil, nil
	ix.disabled = true
	ix.mu.Unlock()
}

func (ix *headerIndex) snapshot(by Indexer) (IndexSnapshot, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return IndexSnapshot{ix.uids, ix.ents, ix.text}, !ix.disabled && (ix.indexer == nil || ix.indexer == by)
}

// IndexStats tells how many messages the mailbox's header index holds and
// the bytes of their texts (0, 0 when it has none), for monitoring and
// tests.
func (mb *Mailbox) IndexStats() (messages, textBytes int) {
	mb.index.mu.Lock()
	defer mb.index.mu.Unlock()
	return len(mb.index.uids), len(mb.index.text)
}

// needsCompaction reports whether the expunged entries are worth a
// compaction (the caller then gives compact the live UIDs).
func (ix *headerIndex) needsCompaction() bool {
	ix.mu.Lock()
	n := len(ix.uids)
	ix.mu.Unlock()
	d := ix.dead.Load()
	return d > 0 && d*4 >= int64(n)
}

// compact keeps the entries of the live UIDs (ascending) only, in new
// slices. A message expunged while it runs keeps its entry until the next
// compaction.
func (ix *headerIndex) compact(live []uint32) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.dead.Store(0)
	uids := make([]uint32, 0, len(ix.uids))
	ents := make([]IndexEntry, 0, len(ix.uids))
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
func (snap *IndexSnapshot) missing(want []uint32) []uint32 {
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

// Index makes the mailbox's header index, built by by, hold every UID of
// want (ascending) that still exists, reading the headers it lacks by
// batches, and returns a snapshot of it; ok is false when the index is
// off, built by another Indexer or would outgrow its caps, and the search
// then reads headers itself. It first drops the entries of expunged
// messages when they make a quarter of the index.
func (mb *Mailbox) Index(ctx context.Context, by Indexer, want []uint32) (snap IndexSnapshot, ok bool, err error) {
	ix := &mb.index
	if ix.needsCompaction() {
		mb.mu.Lock()
		live := append([]uint32(nil), mb.uids...)
		mb.mu.Unlock()
		ix.compact(live)
	}
	snap, ok = ix.snapshot(by)
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
	nb := (len(missing) + IndexBatch - 1) / IndexBatch
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
			batch := missing[k*IndexBatch : min(len(missing), (k+1)*IndexBatch)]
			go func() {
				defer func() { <-sem }()
				results[k] <- mb.buildBatch(ctx, by, batch)
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
		if !ix.insert(by, &out.b) {
			return snap, false, nil
		}
	}
	snap, ok = ix.snapshot(by)
	return snap, ok, nil
}

type batchOut struct {
	b   indexBuilder
	err error
}

// buildBatch reads the headers of a batch of UIDs and makes their
// entries. It runs on a goroutine of its own, so a panic on a hostile
// header becomes an error here instead of ending the process (the
// caller's guard only covers its own goroutine). The headers are read
// from the wrapped store, not through the digest cache: a scan of many
// headers would only push out what clients fetch again.
func (mb *Mailbox) buildBatch(ctx context.Context, by Indexer, uids []uint32) (out batchOut) {
	defer func() {
		if r := recover(); r != nil {
			out = batchOut{err: fmt.Errorf("header index: panic on a header of mailbox %d: %v", mb.id, r)}
		}
	}()
	digests, err := mb.c.Store.Digests(ctx, mb.id, uids, true, false)
	if err != nil {
		return batchOut{err: err}
	}
	for _, d := range digests {
		h, err := mb.digestHeader(ctx, d)
		if err != nil {
			continue // expunged meanwhile: no entry, its search skips it
		}
		out.b.add(by, d.UID, h)
	}
	return out
}

// digestHeader parses the header section of a digest; a header the store
// may have cut (Store.OpenHeader) is read from the body. A parse error
// leaves the fields read so far, which are indexed.
func (mb *Mailbox) digestHeader(ctx context.Context, d storage.Digest) (textproto.Header, error) {
	if len(d.Header) < headerCut {
		h, _ := textproto.ReadHeader(bufio.NewReaderSize(bytes.NewReader(d.Header), 4096))
		return h, nil
	}
	body, err := mb.c.Store.OpenBody(ctx, mb.id, d.UID)
	if err != nil {
		return textproto.Header{}, err
	}
	defer body.Close()
	h, _ := textproto.ReadHeader(bufio.NewReaderSize(io.NewSectionReader(body, 0, body.Size()), 4096))
	return h, nil
}

// indexBuilder makes the entries of one batch, with offsets into its own
// text; insert moves them into the index.
type indexBuilder struct {
	uids []uint32
	ents []IndexEntry
	text []byte
}

func (b *indexBuilder) add(by Indexer, uid uint32, h textproto.Header) {
	e := IndexEntry{start: uint32(len(b.text))}
	for i, key := range IndexedFields {
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
			by.IndexTexts(key, fields.Value(), put)
		}
		e.end[i] = uint32(len(b.text))
	}
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	if t, err := mh.Date(); err == nil {
		y, m, d := t.Date()
		e.sent = DayKey(y, int(m), d)
		e.has |= hasDate
	}
	b.uids = append(b.uids, uid)
	b.ents = append(b.ents, e)
}

// insert adds a batch (ascending UIDs) built by by to the index; it is
// false when the index is off, built by another Indexer, or the batch
// would outgrow maxIndexBytes (the index is then turned off and dropped).
// A UID already there, from a concurrent fill, is kept once.
func (ix *headerIndex) insert(by Indexer, b *indexBuilder) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.disabled || ix.indexer != nil && ix.indexer != by {
		return false
	}
	ix.indexer = by
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
	ents := make([]IndexEntry, 0, len(ix.uids)+len(b.uids))
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

// IndexCursor finds the entries of ascending UIDs in a snapshot in one
// pass.
type IndexCursor struct {
	snap *IndexSnapshot
	i    int
}

// Cursor returns a cursor at the start of the snapshot.
func (snap *IndexSnapshot) Cursor() IndexCursor { return IndexCursor{snap: snap} }

// Entry returns the entry of uid, nil if the snapshot lacks it. UIDs must
// be asked in ascending order.
func (c *IndexCursor) Entry(uid uint32) *IndexEntry {
	u := c.snap.uids
	for c.i < len(u) && u[c.i] < uid {
		c.i++
	}
	if c.i < len(u) && u[c.i] == uid {
		return &c.snap.ents[c.i]
	}
	return nil
}

// Contains tells whether needle is in the texts e holds for field (the
// position of an IndexedFields entry): in one of the texts the Indexer
// gave when needle holds no NUL.
func (snap *IndexSnapshot) Contains(e *IndexEntry, field int, needle []byte) bool {
	start := e.start
	if field > 0 {
		start = e.end[field-1]
	}
	return bytes.Contains(snap.text[start:e.end[field]], needle)
}
