package imap

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"carepost/storage"
)

// sharedMailbox is the server's view of a mailbox selected by at least one
// session of this process: its UIDs in order, the keywords announced in
// FLAGS, and the sessions (views) to which each change is queued.
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
//   - Every few seconds it pulls anyway (Server.resyncLoop), so that a
//     lost hint costs latency, never correctness.
//   - A session that wrote confirms its write from the MODSEQ the store
//     returned (ensure), not from the feed.
type sharedMailbox struct {
	id    int64
	srv   *Server
	ready chan struct{}
	err   error // set before ready is closed
	stop  func()
	// deleted: the mailbox was deleted; a deleted state is never handed to
	// a new SELECT, and it ignores every later change. (Store IDs are
	// never reused, storage/storage.go.)
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
	// flagList is every flag announced in FLAGS so far, in order; it only
	// grows (RFC 9051 §7.3.5 lets FLAGS grow; a keyword, once announced,
	// stays valid). flags indexes it by lower-case name.
	flags    map[string]bool
	flagList []string
	views    map[*view]struct{}
	// claimedTo is the highest UID whose \Recent a session of this process
	// claimed (or found claimed): the store's watermark is at least this,
	// so sessions need not ask again (RFC 3501 §2.3.2).
	claimedTo uint32
	refs      int // guarded by Server.mu
	// index holds the header fields SEARCH looks at, built by the first
	// SEARCH on them (searchindex.go).
	index searchIndex
}

// acquire returns the shared state of a mailbox, loading it on first use.
func (s *Server) acquire(ctx context.Context, id int64) (*sharedMailbox, error) {
	s.mu.Lock()
	sm := s.mailboxes[id]
	if sm != nil && !sm.deleted.Load() {
		sm.refs++
		s.mu.Unlock()
		<-sm.ready
		if sm.err != nil {
			s.release(sm)
			return nil, sm.err
		}
		return sm, nil
	}
	sm = &sharedMailbox{id: id, srv: s, ready: make(chan struct{}), refs: 1, flags: map[string]bool{},
		views: map[*view]struct{}{}}
	s.mailboxes[id] = sm
	s.mu.Unlock()

	// Watch first, then read the snapshot: a change committed in between is
	// both in the snapshot and queued; its ModSeq tells which.
	sm.stop = s.opts.Store.Watch(id, sm.onChange)
	status, msgs, _, err := s.opts.Store.Select(ctx, id, false)
	if err != nil {
		sm.err = err
		close(sm.ready)
		s.release(sm)
		return nil, err
	}
	uids := make([]uint32, len(msgs))
	meta := make([]msgMeta, len(msgs))
	sm.mu.Lock()
	for i, m := range msgs {
		uids[i] = m.UID
		meta[i] = sm.metaLocked(m.Flags, m.InternalDate, m.Size, m.ModSeq)
	}
	sm.uids, sm.meta = uids, meta
	sm.snapshot = status.HighestModSeq
	sm.applied = status.HighestModSeq
	sm.validity = status.UIDValidity
	sm.announceLocked(status.Flags)
	sm.loaded = true
	for _, c := range sm.pending {
		sm.applyLocked(c)
	}
	sm.pending = nil
	sm.mu.Unlock()
	close(sm.ready)
	return sm, nil
}

// release drops one reference; the last one stops the watch.
func (s *Server) release(sm *sharedMailbox) {
	s.mu.Lock()
	sm.refs--
	last := sm.refs == 0
	if last && s.mailboxes[sm.id] == sm {
		delete(s.mailboxes, sm.id)
	}
	s.mu.Unlock()
	if last && sm.stop != nil {
		sm.stop()
	}
	if last {
		sm.index.free()
	}
}

// onChange is the Watch callback: it runs in the store's commit order and
// must not block, so it only queues.
func (sm *sharedMailbox) onChange(c storage.Change) {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if !sm.loaded {
		sm.pending = append(sm.pending, c)
		return
	}
	sm.applyLocked(c)
}

func (sm *sharedMailbox) applyLocked(c storage.Change) {
	if sm.deleted.Load() {
		return
	}
	switch {
	case c.Kind == storage.MailboxDeleted:
	case c.Kind == storage.MailboxChanged:
		if c.ModSeq > sm.applied {
			sm.needPullLocked(c.ModSeq)
		}
		return
	case c.ModSeq != 0 && c.ModSeq <= sm.snapshot:
		// Already in the snapshot. One call may publish several changes
		// with the same ModSeq (a STORE on many messages), so this
		// compares with the snapshot only.
		return
	case sm.pulling || (c.ModSeq != 0 && c.ModSeq > sm.applied+1):
		// A change was lost before this one, or a pull is under way:
		// the pull brings this one too, or pulls again for it.
		sm.needPullLocked(c.ModSeq)
		return
	}
	sm.applied = max(sm.applied, c.ModSeq)
	switch c.Kind {
	case storage.MessageAdded:
		if n := len(sm.uids); n > 0 && sm.uids[n-1] >= c.UID {
			return
		}
		sm.announceLocked(c.Flags)
		sm.uids = append(sm.uids, c.UID)
		sm.meta = append(sm.meta, sm.metaLocked(c.Flags, c.InternalDate, c.Size, c.ModSeq))
		sm.pushLocked(update{kind: updExists, seq: uint32(len(sm.uids)), uid: c.UID}, nil)
	case storage.FlagsChanged:
		i, ok := sm.indexLocked(c.UID)
		if !ok {
			return
		}
		sm.announceLocked(c.Flags)
		sm.meta[i].set, sm.meta[i].modseq = sm.flagSetLocked(c.Flags), c.ModSeq
		// A session reports its own STORE itself (RFC 9051 §6.4.6: and
		// nothing with .SILENT).
		origin, _ := c.Origin.(*view)
		sm.pushLocked(update{kind: updFlags, seq: uint32(i + 1), uid: c.UID, flags: c.Flags, modseq: c.ModSeq}, origin)
	case storage.MessageExpunged:
		i, ok := sm.indexLocked(c.UID)
		if !ok {
			return
		}
		sm.uids = append(sm.uids[:i], sm.uids[i+1:]...)
		sm.meta = append(sm.meta[:i], sm.meta[i+1:]...)
		sm.index.noteExpunged()
		sm.pushLocked(update{kind: updExpunge, seq: uint32(i + 1), uid: c.UID}, nil)
	case storage.MailboxDeleted:
		// Sessions still selected see an empty mailbox; their next
		// command on it fails with NONEXISTENT from the store.
		for i := len(sm.uids); i > 0; i-- {
			sm.pushLocked(update{kind: updExpunge, seq: uint32(i), uid: sm.uids[i-1]}, nil)
		}
		sm.uids, sm.meta = nil, nil
		sm.deleted.Store(true)
		sm.index.free()
	}
}

// maxQueued bounds the updates queued to one session: a client that keeps
// a mailbox selected without ever sending a command (or reading its
// socket) while the mailbox changes a lot would otherwise hold an ever
// growing queue until its read timeout. Past the bound the queue is
// dropped and the session ends with BYE at its next command or in IDLE
// (view.overflowed); the client reconnects and reads the mailbox afresh.
// 100,000 updates is about 6 MB. (A variable for the tests.)
var maxQueued atomic.Int64

func init() { maxQueued.Store(100_000) }

// pushLocked queues u to every view but skip and wakes those in IDLE.
func (sm *sharedMailbox) pushLocked(u update, skip *view) {
	for v := range sm.views {
		if v == skip || v.overflowed {
			continue
		}
		if int64(len(v.queue)) >= maxQueued.Load() {
			v.overflowed, v.queue = true, nil
		} else {
			v.queue = append(v.queue, u)
		}
		select {
		case v.notify <- struct{}{}:
		default: // already signalled
		}
	}
}

func (sm *sharedMailbox) indexLocked(uid uint32) (int, bool) {
	i := sort.Search(len(sm.uids), func(i int) bool { return sm.uids[i] >= uid })
	return i, i < len(sm.uids) && sm.uids[i] == uid
}

// lastUIDLocked is the highest UID in the mailbox, 0 if empty.
func (sm *sharedMailbox) lastUIDLocked() uint32 {
	if n := len(sm.uids); n > 0 {
		return sm.uids[n-1]
	}
	return 0
}

// announceLocked adds new keywords to the FLAGS list. Each session sends
// the list again before it reports anything that uses them (view.drain),
// since clients learn the keywords of a mailbox from FLAGS (RFC 9051
// §7.3.5) and imaptest checks that none is used before.
func (sm *sharedMailbox) announceLocked(flags []string) {
	add := func(f string) {
		k := strings.ToLower(f)
		if f == "" || sm.flags[k] || k == `\recent` {
			return
		}
		sm.flags[k] = true
		sm.flagList = append(sm.flagList, f)
	}
	for _, f := range flags {
		add(f)
	}
	for _, f := range systemFlags {
		add(f)
	}
}

var systemFlags = []string{storage.FlagAnswered, storage.FlagFlagged, storage.FlagDeleted, storage.FlagSeen, storage.FlagDraft}

// msgMeta is the metadata of one message in the shared state.
type msgMeta struct {
	nanos  int64 // internal date, Unix nanoseconds
	size   int64
	modseq uint64
	set    int32 // flags: index in sharedMailbox.flagSets
	offset int32 // zone offset of the internal date, in seconds
}

func (sm *sharedMailbox) metaLocked(flags []string, date time.Time, size int64, modseq uint64) msgMeta {
	_, off := date.Zone()
	return msgMeta{nanos: date.UnixNano(), size: size, modseq: modseq, set: sm.flagSetLocked(flags), offset: int32(off)}
}

// flagSetLocked returns the index of the flag set flags, adding it if new.
func (sm *sharedMailbox) flagSetLocked(flags []string) int32 {
	key := strings.Join(flags, " ")
	if i, ok := sm.setIndex[key]; ok {
		return i
	}
	if sm.setIndex == nil {
		sm.setIndex = map[string]int32{}
	}
	i := int32(len(sm.flagSets))
	sm.flagSets = append(sm.flagSets, slices.Clip(flags))
	sm.setIndex[key] = i
	return i
}

// messages returns the metadata of the given UIDs (ascending) that are in
// the mailbox, as Store.Messages would, from the shared state; nil uids
// means all of them.
func (sm *sharedMailbox) messages(uids []uint32) []storage.Message {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var zones storage.ZoneCache
	if uids == nil {
		out := make([]storage.Message, len(sm.uids))
		for i := range sm.uids {
			out[i] = sm.messageLocked(i, &zones)
		}
		return out
	}
	out := make([]storage.Message, 0, len(uids))
	for _, u := range uids {
		if i, ok := sm.indexLocked(u); ok {
			out = append(out, sm.messageLocked(i, &zones))
		}
	}
	return out
}

// messageLocked rebuilds the storage.Message of the i-th message. The
// Flags slice is shared: callers never modify it.
func (sm *sharedMailbox) messageLocked(i int, zones *storage.ZoneCache) storage.Message {
	m := &sm.meta[i]
	return storage.Message{
		UID: sm.uids[i], Flags: sm.flagSets[m.set], InternalDate: zones.Date(m.nanos, int(m.offset)),
		Size: m.size, ModSeq: m.modseq,
	}
}
