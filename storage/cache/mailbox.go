package cache

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carepost/carepost/storage"
)

// Mailbox is the cached state of a mailbox opened by at least one user of
// the cache (an IMAP session that selected it): its UIDs in order, the
// metadata of each message, the flags seen in it, and its header index.
// Store.Open gives it, shared and counted; Release gives it back.
//
// The store is the truth; this is a cache of it that stays right when
// others write (another process on the data directory, another node):
//   - Store.Watch feeds it. Changes made through this process's store come
//     in full and in MODSEQ order, and are applied as they come while
//     their MODSEQ follows the last one applied (applied, or applied+1:
//     one write gives all its changes one MODSEQ). Anything else (a MODSEQ
//     that jumps because a change was lost, a MailboxChanged hint from
//     another writer) makes it pull Store.Changes from applied (pull.go),
//     dropping the feed's changes until the pull is done and pulling again
//     if they went past what it read.
//   - Every few seconds it pulls anyway (Options.ResyncInterval), so that
//     a lost hint costs latency, never correctness.
//   - A user that wrote confirms its write from the MODSEQ the store
//     returned (Ensure), not from the feed.
//
// Each change applied is told, under the Mailbox's lock and in order, to
// every Listener subscribed (an IMAP session queues it for its client).
// Methods named …Locked must be called with the lock held (Lock, Unlock);
// the slices they return are the Mailbox's own, read only, valid until
// Unlock.
type Mailbox struct {
	id    int64
	c     *Store
	ready chan struct{}
	err   error // set before ready is closed
	stop  func()
	// deleted: the mailbox was deleted; a deleted state is never handed to
	// a new Open, and it ignores every later change. (Store IDs are never
	// reused, storage/storage.go.)
	deleted atomic.Bool

	mu      sync.Mutex
	loaded  bool
	pending []storage.Change // changes seen while loading
	uids    []uint32         // ascending; index+1 is the server sequence number
	// meta is the metadata of each message, parallel to uids: FETCH of
	// FLAGS, INTERNALDATE and RFC822.SIZE and SEARCH on flags, dates and
	// sizes read it here instead of from the store. It is kept by the
	// same change feed as uids (Change carries the new message's date
	// and size); 32 bytes a message, the flag sets being shared
	// (flagSets).
	meta []msgMeta
	// flagSets are the distinct flag sets of the mailbox's messages
	// (most messages share a few), which msgMeta.set indexes; setIndex
	// finds a set by its flags joined with spaces. They only grow while
	// the state lives.
	flagSets [][]string
	setIndex map[string]int32
	validity uint32 // UIDVALIDITY, never changed for a mailbox ID's life
	// snapshot is the HIGHESTMODSEQ of the last snapshot the state was
	// loaded or pulled from: changes up to it are already in uids.
	snapshot uint64
	// applied is the MODSEQ the state reflects: every change up to it is
	// in, none after it is known to be missing.
	applied uint64
	// pulling: a pull goroutine runs; want is the highest MODSEQ a hint
	// or a dropped change announced (the pull goes on until applied
	// reaches it).
	pulling bool
	want    uint64
	// flagList is every flag seen in the mailbox since it was opened, in
	// order, system flags first; it only grows (IMAP's FLAGS may grow,
	// RFC 9051 §7.3.5: a keyword, once announced, stays valid). flags
	// indexes it by lower-case name.
	flags     map[string]bool
	flagList  []string
	listeners map[Listener]struct{}
	// claimedTo is the highest UID whose \Recent a user of this cache
	// claimed (or found claimed): the store's watermark is at least this,
	// so users need not ask again (RFC 3501 §2.3.2).
	claimedTo uint32
	refs      int // guarded by Store.mu
	// index holds the header fields SEARCH looks at, built by the first
	// search on them (headerindex.go).
	index headerIndex
}

// Listener is told of the changes a Mailbox applies.
type Listener interface {
	// MailboxEvent is called for each change applied, in order, with the
	// Mailbox's lock held: it must not block nor call the Mailbox's
	// methods (it may read the …Locked ones).
	MailboxEvent(Event)
}

// EventKind is what happened to a message of a Mailbox.
type EventKind uint8

const (
	// Added: a message arrived; Seq is the new number of messages.
	Added EventKind = iota + 1
	// Expunged: the message at Seq is gone.
	Expunged
	// FlagsChanged: the message at Seq has Flags.
	FlagsChanged
)

// Event is one change applied to a Mailbox. Seq is the message's number
// (index+1 in UIDsLocked) when it happened.
type Event struct {
	Kind   EventKind
	Seq    uint32
	UID    uint32
	ModSeq uint64
	// Flags are the message's flags (FlagsChanged only); shared: read
	// only.
	Flags []string
	// Origin is the storage.WithOrigin value of the write that made the
	// change, when it came through this process's feed; nil when the
	// change was pulled. An IMAP session recognises its own STORE by it.
	Origin any
}

// Open returns the state of a mailbox, loading it on first use; the
// caller gives it back with Release.
func (c *Store) Open(ctx context.Context, id int64) (*Mailbox, error) {
	c.mu.Lock()
	mb := c.mailboxes[id]
	if mb != nil && !mb.deleted.Load() {
		mb.refs++
		c.mu.Unlock()
		c.mailboxHits.Add(1)
		<-mb.ready
		if mb.err != nil {
			mb.Release()
			return nil, mb.err
		}
		return mb, nil
	}
	mb = &Mailbox{id: id, c: c, ready: make(chan struct{}), refs: 1, flags: map[string]bool{},
		listeners: map[Listener]struct{}{}}
	c.mailboxes[id] = mb
	c.mu.Unlock()
	c.mailboxMisses.Add(1)

	// Watch first, then read the snapshot: a change committed in between is
	// both in the snapshot and queued; its ModSeq tells which.
	mb.stop = c.Store.Watch(id, mb.onChange)
	status, msgs, _, err := c.Store.Select(ctx, id, false)
	if err != nil {
		mb.err = err
		close(mb.ready)
		mb.Release()
		return nil, err
	}
	uids := make([]uint32, len(msgs))
	meta := make([]msgMeta, len(msgs))
	mb.mu.Lock()
	for i, m := range msgs {
		uids[i] = m.UID
		meta[i] = mb.metaLocked(m.Flags, m.InternalDate, m.Size, m.ModSeq)
	}
	mb.uids, mb.meta = uids, meta
	mb.snapshot = status.HighestModSeq
	mb.applied = status.HighestModSeq
	mb.validity = status.UIDValidity
	mb.announceLocked(status.Flags)
	mb.loaded = true
	for _, ch := range mb.pending {
		mb.applyLocked(ch)
	}
	mb.pending = nil
	mb.mu.Unlock()
	close(mb.ready)
	return mb, nil
}

// Release drops one reference; the last one stops the watch and frees
// the state.
func (mb *Mailbox) Release() {
	c := mb.c
	c.mu.Lock()
	mb.refs--
	last := mb.refs == 0
	if last && c.mailboxes[mb.id] == mb {
		delete(c.mailboxes, mb.id)
	}
	c.mu.Unlock()
	if last && mb.stop != nil {
		mb.stop()
	}
	if last {
		mb.index.free()
	}
}

// Opened is the number of mailboxes the cache holds open, for monitoring
// and tests.
func (c *Store) Opened() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mailboxes)
}

// ID is the mailbox's ID.
func (mb *Mailbox) ID() int64 { return mb.id }

// Deleted tells whether the mailbox was deleted: its state is then empty
// for good, and the store answers ErrNoMailbox.
func (mb *Mailbox) Deleted() bool { return mb.deleted.Load() }

// Lock and Unlock guard the state: hold the lock to call the …Locked
// methods. Listeners are called with it held.
func (mb *Mailbox) Lock()   { mb.mu.Lock() }
func (mb *Mailbox) Unlock() { mb.mu.Unlock() }

// SubscribeLocked makes l hear of every change applied from now on.
func (mb *Mailbox) SubscribeLocked(l Listener) { mb.listeners[l] = struct{}{} }

// UnsubscribeLocked stops l hearing of changes.
func (mb *Mailbox) UnsubscribeLocked(l Listener) { delete(mb.listeners, l) }

// UIDsLocked returns the UIDs of the mailbox, ascending: index+1 is the
// message's number in the cache (its sequence number for a client that
// knows every change).
func (mb *Mailbox) UIDsLocked() []uint32 { return mb.uids }

// IndexLocked finds uid in UIDsLocked.
func (mb *Mailbox) IndexLocked(uid uint32) (int, bool) {
	i := sort.Search(len(mb.uids), func(i int) bool { return mb.uids[i] >= uid })
	return i, i < len(mb.uids) && mb.uids[i] == uid
}

// LastUIDLocked is the highest UID in the mailbox, 0 if empty.
func (mb *Mailbox) LastUIDLocked() uint32 {
	if n := len(mb.uids); n > 0 {
		return mb.uids[n-1]
	}
	return 0
}

// FlagsLocked is every flag seen in the mailbox since it was opened, in
// the order first seen, system flags first. It only grows, so a user may
// remember how much of it it passed on (IMAP sends FLAGS again before it
// reports a message with a new keyword, RFC 9051 §7.3.5).
func (mb *Mailbox) FlagsLocked() []string { return mb.flagList }

// ClaimedLocked is the highest UID whose \Recent a user of this cache
// claimed through Store.ClaimRecent (or found claimed): the store's
// watermark is at least this, so claims up to it need not be asked
// (\Recent is per server, storage/storage.go).
func (mb *Mailbox) ClaimedLocked() uint32 { return mb.claimedTo }

// NoteClaimedLocked records that the store's \Recent watermark reached
// uid (a ClaimRecent up to it returned).
func (mb *Mailbox) NoteClaimedLocked(uid uint32) { mb.claimedTo = max(mb.claimedTo, uid) }

// onChange is the Watch callback: it runs in the store's commit order and
// must not block, so it only queues.
func (mb *Mailbox) onChange(c storage.Change) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if !mb.loaded {
		mb.pending = append(mb.pending, c)
		return
	}
	mb.applyLocked(c)
}

func (mb *Mailbox) applyLocked(c storage.Change) {
	if mb.deleted.Load() {
		return
	}
	switch {
	case c.Kind == storage.MailboxDeleted:
	case c.Kind == storage.MailboxChanged:
		if c.ModSeq > mb.applied {
			mb.needPullLocked(c.ModSeq)
		}
		return
	case c.ModSeq != 0 && c.ModSeq <= mb.snapshot:
		// Already in the snapshot. One call may publish several changes
		// with the same ModSeq (a STORE on many messages), so this
		// compares with the snapshot only.
		return
	case mb.pulling || (c.ModSeq != 0 && c.ModSeq > mb.applied+1):
		// A change was lost before this one, or a pull is under way:
		// the pull brings this one too, or pulls again for it.
		mb.needPullLocked(c.ModSeq)
		return
	}
	mb.applied = max(mb.applied, c.ModSeq)
	switch c.Kind {
	case storage.MessageAdded:
		if n := len(mb.uids); n > 0 && mb.uids[n-1] >= c.UID {
			return
		}
		mb.announceLocked(c.Flags)
		mb.uids = append(mb.uids, c.UID)
		mb.meta = append(mb.meta, mb.metaLocked(c.Flags, c.InternalDate, c.Size, c.ModSeq))
		mb.tellLocked(Event{Kind: Added, Seq: uint32(len(mb.uids)), UID: c.UID, Origin: c.Origin})
	case storage.FlagsChanged:
		i, ok := mb.IndexLocked(c.UID)
		if !ok {
			return
		}
		mb.announceLocked(c.Flags)
		mb.meta[i].set, mb.meta[i].modseq = mb.flagSetLocked(c.Flags), c.ModSeq
		mb.tellLocked(Event{Kind: FlagsChanged, Seq: uint32(i + 1), UID: c.UID, Flags: c.Flags, ModSeq: c.ModSeq, Origin: c.Origin})
	case storage.MessageExpunged:
		mb.expungeLocked(c.UID, c.Origin)
	case storage.MailboxDeleted:
		// Users still holding it see an empty mailbox; their next call
		// on it fails with ErrNoMailbox from the store.
		for i := len(mb.uids); i > 0; i-- {
			mb.c.digests.forget(digestKey{mb.id, mb.uids[i-1]})
			mb.tellLocked(Event{Kind: Expunged, Seq: uint32(i), UID: mb.uids[i-1]})
		}
		mb.uids, mb.meta = nil, nil
		mb.deleted.Store(true)
		mb.index.free()
	}
}

// tellLocked passes e to every listener.
func (mb *Mailbox) tellLocked(e Event) {
	for l := range mb.listeners {
		l.MailboxEvent(e)
	}
}

// announceLocked adds new flags to FlagsLocked's list (system flags
// always; \Recent never, it is no stored flag).
func (mb *Mailbox) announceLocked(flags []string) {
	add := func(f string) {
		k := strings.ToLower(f)
		if f == "" || mb.flags[k] || k == `\recent` {
			return
		}
		mb.flags[k] = true
		mb.flagList = append(mb.flagList, f)
	}
	for _, f := range flags {
		add(f)
	}
	for _, f := range systemFlags {
		add(f)
	}
}

var systemFlags = []string{storage.FlagAnswered, storage.FlagFlagged, storage.FlagDeleted, storage.FlagSeen, storage.FlagDraft}

// msgMeta is the metadata of one message in the state.
type msgMeta struct {
	nanos  int64 // internal date, Unix nanoseconds
	size   int64
	modseq uint64
	set    int32 // flags: index in Mailbox.flagSets
	offset int32 // zone offset of the internal date, in seconds
}

func (mb *Mailbox) metaLocked(flags []string, date time.Time, size int64, modseq uint64) msgMeta {
	_, off := date.Zone()
	return msgMeta{nanos: date.UnixNano(), size: size, modseq: modseq, set: mb.flagSetLocked(flags), offset: int32(off)}
}

// flagSetLocked returns the index of the flag set flags, adding it if new.
func (mb *Mailbox) flagSetLocked(flags []string) int32 {
	key := strings.Join(flags, " ")
	if i, ok := mb.setIndex[key]; ok {
		return i
	}
	if mb.setIndex == nil {
		mb.setIndex = map[string]int32{}
	}
	i := int32(len(mb.flagSets))
	mb.flagSets = append(mb.flagSets, slices.Clip(flags))
	mb.setIndex[key] = i
	return i
}

// Messages returns the metadata of the given UIDs (ascending) that are in
// the mailbox, as Store.Messages would, from the state; nil uids means all
// of them. The Flags slices are shared: callers never modify them.
func (mb *Mailbox) Messages(uids []uint32) []storage.Message {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	var zones storage.ZoneCache
	if uids == nil {
		out := make([]storage.Message, len(mb.uids))
		for i := range mb.uids {
			out[i] = mb.messageLocked(i, &zones)
		}
		return out
	}
	out := make([]storage.Message, 0, len(uids))
	for _, u := range uids {
		if i, ok := mb.IndexLocked(u); ok {
			out = append(out, mb.messageLocked(i, &zones))
		}
	}
	return out
}

// messageLocked rebuilds the storage.Message of the i-th message.
func (mb *Mailbox) messageLocked(i int, zones *storage.ZoneCache) storage.Message {
	m := &mb.meta[i]
	return storage.Message{
		UID: mb.uids[i], Flags: mb.flagSets[m.set], InternalDate: zones.Date(m.nanos, int(m.offset)),
		Size: m.size, ModSeq: m.modseq,
	}
}
