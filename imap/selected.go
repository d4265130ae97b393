package imap

import (
	"context"
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"carepost/storage"
)

// sharedMailbox is the server's view of a mailbox selected by at least one
// session of this process: its UIDs in order and the tracker that queues
// updates to every session. It is fed by Store.Watch, so deliveries and
// changes from other sessions (or, with a cluster store, other nodes)
// reach every session.
type sharedMailbox struct {
	id    int64
	ready chan struct{}
	err   error // set before ready is closed
	stop  func()

	mu      sync.Mutex
	loaded  bool
	pending []storage.Change // changes seen while loading
	uids    []uint32         // ascending; index+1 is the server sequence number
	// snapshot is the HIGHESTMODSEQ of the snapshot the state was loaded
	// from: changes up to it are already in uids.
	snapshot uint64
	flags    map[string]bool // flags announced in FLAGS (lower case key)
	flagList []string
	tracker  *imapserver.MailboxTracker
	views    map[*imapserver.SessionTracker]*view
	refs     int // guarded by Server.mu
}

// acquire returns the shared state of a mailbox, loading it on first use.
func (s *Server) acquire(ctx context.Context, id int64) (*sharedMailbox, error) {
	s.mu.Lock()
	sm := s.mailboxes[id]
	if sm != nil {
		sm.refs++
		s.mu.Unlock()
		<-sm.ready
		if sm.err != nil {
			s.release(sm)
			return nil, sm.err
		}
		return sm, nil
	}
	sm = &sharedMailbox{id: id, ready: make(chan struct{}), refs: 1, flags: map[string]bool{},
		views: map[*imapserver.SessionTracker]*view{}}
	s.mailboxes[id] = sm
	s.mu.Unlock()

	// Watch first, then read the snapshot: a change committed in between is
	// both in the snapshot and queued; its ModSeq tells which.
	sm.stop = s.opts.Store.Watch(id, sm.onChange)
	status, uids, _, err := s.opts.Store.Select(ctx, id, false)
	if err != nil {
		sm.err = err
		close(sm.ready)
		s.release(sm)
		return nil, err
	}
	sm.mu.Lock()
	sm.uids = uids
	sm.snapshot = status.HighestModSeq
	sm.tracker = imapserver.NewMailboxTracker(uint32(len(uids)))
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
	if last {
		delete(s.mailboxes, sm.id)
	}
	s.mu.Unlock()
	if last && sm.stop != nil {
		sm.stop()
	}
}

// onChange is the Watch callback: it runs in the store's commit order and
// must not block.
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
	// One call may publish several changes with the same ModSeq (a STORE
	// on many messages), so compare with the snapshot only.
	if c.ModSeq != 0 && c.ModSeq <= sm.snapshot && c.Kind != storage.MailboxDeleted {
		return // already in the snapshot
	}
	switch c.Kind {
	case storage.MessageAdded:
		if n := len(sm.uids); n > 0 && sm.uids[n-1] >= c.UID {
			return
		}
		sm.announceLocked(c.Flags)
		sm.uids = append(sm.uids, c.UID)
		sm.tracker.QueueNumMessages(uint32(len(sm.uids)))
	case storage.FlagsChanged:
		i, ok := sm.indexLocked(c.UID)
		if !ok {
			return
		}
		sm.announceLocked(c.Flags)
		var source *imapserver.SessionTracker
		if v, ok := c.Origin.(*view); ok && v.sm == sm {
			source = v.st // the session reports its own change itself
		}
		sm.tracker.QueueMessageFlags(uint32(i+1), imap.UID(c.UID), toFlags(c.Flags), source)
	case storage.MessageExpunged:
		i, ok := sm.indexLocked(c.UID)
		if !ok {
			return
		}
		sm.uids = append(sm.uids[:i], sm.uids[i+1:]...)
		sm.tracker.QueueExpunge(uint32(i + 1))
	case storage.MailboxDeleted:
		// Sessions still selected see an empty mailbox; their next
		// command on it fails with NONEXISTENT from the store.
		for i := len(sm.uids); i > 0; i-- {
			sm.tracker.QueueExpunge(uint32(i))
		}
		sm.uids = nil
	}
}

func (sm *sharedMailbox) indexLocked(uid uint32) (int, bool) {
	i := sort.Search(len(sm.uids), func(i int) bool { return sm.uids[i] >= uid })
	return i, i < len(sm.uids) && sm.uids[i] == uid
}

// announceLocked queues an untagged FLAGS before a keyword is first used in
// a FETCH response (RFC 9051 §7.3.5: clients learn the keywords of a
// mailbox from FLAGS).
func (sm *sharedMailbox) announceLocked(flags []string) {
	changed := false
	for _, f := range flags {
		k := strings.ToLower(f)
		if f == "" || sm.flags[k] || strings.EqualFold(f, `\Recent`) {
			continue
		}
		sm.flags[k] = true
		sm.flagList = append(sm.flagList, f)
		changed = true
	}
	for _, f := range systemFlags {
		if !sm.flags[strings.ToLower(f)] {
			sm.flags[strings.ToLower(f)] = true
			sm.flagList = append(sm.flagList, f)
		}
	}
	if changed && sm.tracker != nil {
		sm.tracker.QueueMailboxFlags(toFlags(sm.flagList))
	}
}

var systemFlags = []string{storage.FlagAnswered, storage.FlagFlagged, storage.FlagDeleted, storage.FlagSeen, storage.FlagDraft}

func toFlags(l []string) []imap.Flag {
	out := make([]imap.Flag, len(l))
	for i, f := range l {
		out[i] = imap.Flag(f)
	}
	return out
}

// view is one session's selection of a mailbox.
type view struct {
	sm       *sharedMailbox
	st       *imapserver.SessionTracker
	srv      *Server
	id       int64
	name     string
	readOnly bool
	// firstRecent: UIDs from here on are \Recent for this session (IMAP4rev1
	// only; claimed at SELECT, RFC 3501 §2.3.2).
	firstRecent uint32
	// searchRes is the saved result of SEARCH RETURN (SAVE) (RFC 5182).
	searchRes imap.UIDSet
}

func (v *view) close() {
	v.sm.mu.Lock()
	delete(v.sm.views, v.st)
	v.sm.mu.Unlock()
	v.st.Close()
	v.srv.release(v.sm)
}

// Select opens a mailbox (SELECT, or EXAMINE when read-only).
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	mb, _, err := s.mailbox(ctx, name)
	if err != nil {
		return nil, s.mapError("select", err)
	}
	readOnly := options != nil && options.ReadOnly
	sm, err := s.srv.acquire(ctx, mb.ID)
	if err != nil {
		return nil, s.mapError("select", err)
	}
	status, _, firstRecent, err := s.srv.opts.Store.Select(ctx, mb.ID, !readOnly)
	if err != nil {
		s.srv.release(sm)
		return nil, s.mapError("select", err)
	}
	v := &view{sm: sm, srv: s.srv, id: mb.ID, name: name, readOnly: readOnly, firstRecent: firstRecent}
	sm.mu.Lock()
	v.st = sm.tracker.NewSession()
	sm.views[v.st] = v
	num := uint32(len(sm.uids))
	flags := toFlags(sm.flagList)
	var firstUnseen uint32
	if status.FirstUnseen != 0 {
		if i, ok := sm.indexLocked(status.FirstUnseen); ok {
			firstUnseen = uint32(i + 1)
		}
	}
	var recent uint32
	if firstRecent != 0 {
		i := sort.Search(len(sm.uids), func(i int) bool { return sm.uids[i] >= firstRecent })
		recent = uint32(len(sm.uids) - i)
	}
	uidNext := status.UIDNext
	if n := len(sm.uids); n > 0 && sm.uids[n-1] >= uidNext {
		uidNext = sm.uids[n-1] + 1
	}
	sm.mu.Unlock()
	s.sel = v

	permanent := append([]imap.Flag{}, flags...)
	permanent = append(permanent, imap.FlagWildcard)
	if readOnly {
		permanent = nil
	}
	return &imap.SelectData{
		Flags:             flags,
		PermanentFlags:    permanent,
		NumMessages:       num,
		NumRecent:         recent,
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(uidNext),
		UIDValidity:       status.UIDValidity,
	}, nil
}

// Unselect leaves the selected mailbox (UNSELECT, and CLOSE after its
// expunge).
func (s *session) Unselect() error {
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	return nil
}

// Poll writes the pending updates of the selected mailbox.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	return s.sel.st.Poll(w, allowExpunge)
}

// Idle pushes updates as they come until the client says DONE (RFC 2177).
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if s.sel == nil {
		<-stop
		return nil
	}
	return s.sel.st.Idle(w, stop)
}

// msgRef is a message of the selected mailbox in this session's view.
type msgRef struct {
	seq uint32 // client sequence number (0 if the client does not know it yet)
	uid uint32
}

// resolve turns a sequence or UID set into the messages it names, in
// ascending order. Sequence numbers are the client's (its view lags behind
// updates it has not been told of); "*" is the last message it knows.
func (v *view) resolve(numSet imap.NumSet) []msgRef {
	if imap.IsSearchRes(numSet) {
		numSet = v.searchRes
	}
	sm := v.sm
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var out []msgRef
	switch set := numSet.(type) {
	case imap.SeqSet:
		max := v.clientMaxLocked()
		seen := map[uint32]bool{}
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = max
			}
			if stop == 0 {
				stop = max
			}
			if start > stop {
				start, stop = stop, start
			}
			if stop > max {
				stop = max
			}
			for c := start; c <= stop && c != 0; c++ {
				if seen[c] {
					continue
				}
				seen[c] = true
				srvSeq := v.st.DecodeSeqNum(c)
				if srvSeq == 0 || int(srvSeq) > len(sm.uids) {
					continue
				}
				out = append(out, msgRef{seq: c, uid: sm.uids[srvSeq-1]})
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	case imap.UIDSet:
		var last uint32
		if n := len(sm.uids); n > 0 {
			last = sm.uids[n-1]
		}
		for i, uid := range sm.uids {
			if !containsUID(set, uid, last) {
				continue
			}
			seq := v.st.EncodeSeqNum(uint32(i + 1))
			if seq == 0 {
				continue // not yet announced to the client (RFC 9051 §6.4.8)
			}
			out = append(out, msgRef{seq: seq, uid: uid})
		}
	}
	return out
}

// clientMaxLocked is the highest sequence number the client knows of that
// still exists on the server.
func (v *view) clientMaxLocked() uint32 {
	for s := len(v.sm.uids); s > 0; s-- {
		if c := v.st.EncodeSeqNum(uint32(s)); c != 0 {
			return c
		}
	}
	return 0
}

func containsUID(set imap.UIDSet, uid, last uint32) bool {
	for _, r := range set {
		start, stop := uint32(r.Start), uint32(r.Stop)
		if start == 0 {
			start = last
		}
		if stop == 0 {
			stop = last
		}
		if start > stop {
			start, stop = stop, start
		}
		if uid >= start && uid <= stop {
			return true
		}
	}
	return false
}

func uidsOf(refs []msgRef) []uint32 {
	out := make([]uint32, len(refs))
	for i, r := range refs {
		out[i] = r.uid
	}
	return out
}

// storageOrigin marks a context so that the changes it makes are not
// echoed to the session of v (see sharedMailbox.applyLocked).
func storageOrigin(ctx context.Context, v *view) context.Context {
	return storage.WithOrigin(ctx, v)
}
