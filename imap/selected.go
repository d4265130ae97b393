package imap

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/storage"
)

// Select opens a mailbox (SELECT, or EXAMINE when read-only).
func (s *session) Select(name string, options *imap.SelectOptions) (data *imap.SelectData, err error) {
	defer s.guard("select", &err)
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	mb, t, err := s.mailbox(ctx, name)
	if err != nil {
		return nil, s.mapError("select", err)
	}
	if err := s.allow("select", t.account, auth.Read, fmt.Sprintf("open %q", name)); err != nil {
		return nil, err
	}
	readOnly := options != nil && options.ReadOnly
	sm, err := s.srv.cache.Open(ctx, mb.ID)
	if err != nil {
		return nil, s.mapError("select", err)
	}
	// The UIDs are in the shared state already: the store is asked for
	// the counters only (Store.Status), not for every UID again, which on
	// a mailbox of 100,000 messages cost 160 ms and 400 KB of garbage per
	// SELECT. SELECT then claims \Recent for the messages no session saw
	// yet (RFC 3501 §2.3.2); EXAMINE shows them without claiming.
	status, err := s.srv.opts.Store.Status(ctx, mb.ID)
	if err != nil {
		sm.Release()
		return nil, s.mapError("select", err)
	}
	top := status.UIDNext - 1 // every UID of the snapshot is at most this
	v := &view{sm: sm, srv: s.srv, id: mb.ID, name: name, readOnly: readOnly, notify: make(chan struct{}, 1)}
	switch {
	case status.Recent == 0:
	case readOnly:
		// The unclaimed messages are the last status.Recent of the
		// snapshot.
		sm.Lock()
		uids := sm.UIDsLocked()
		n := sort.Search(len(uids), func(i int) bool { return uids[i] > top })
		if k := int(status.Recent); k <= n {
			v.recent.add(uids[n-k], top)
		}
		sm.Unlock()
	default:
		first, err := s.srv.opts.Store.ClaimRecent(ctx, mb.ID, top)
		if err != nil {
			sm.Release()
			return nil, s.mapError("select", err)
		}
		if first != 0 {
			v.recent.add(first, top)
		}
	}
	sm.Lock()
	sm.SubscribeLocked(v)
	v.known = uint32(len(sm.UIDsLocked()))
	v.flagsSent = len(sm.FlagsLocked())
	if !readOnly {
		v.claimedTo = top
		sm.NoteClaimedLocked(top)
	}
	// The shared state may already hold messages that came after the
	// store's snapshot: the client learns of them now, so claim them now.
	later := sm.LastUIDLocked()
	sm.Unlock()
	if !readOnly && later > top {
		v.claim(later)
	}

	sm.Lock()
	uids := sm.UIDsLocked()
	num := uint32(len(uids))
	flags := toFlags(sm.FlagsLocked()[:v.flagsSent])
	var firstUnseen uint32
	if status.FirstUnseen != 0 {
		if i, ok := sm.IndexLocked(status.FirstUnseen); ok {
			firstUnseen = uint32(i + 1)
		}
	}
	for _, uid := range uids {
		if v.recent.contains(uid) {
			v.recentKnown++
		}
	}
	recent := v.recentKnown
	uidNext := max(status.UIDNext, sm.LastUIDLocked()+1)
	sm.Unlock()
	s.sel, s.selAcct = v, t.account

	// PERMANENTFLAGS: any keyword may be created (\*), none when read-only
	// (RFC 9051 §7.1).
	var permanent []imap.Flag
	if !readOnly {
		permanent = append(append(permanent, flags...), imap.FlagWildcard)
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
// expunge). Updates not yet sent are dropped with the view (RFC 9051
// §6.4.2: CLOSE sends no EXPUNGE).
func (s *session) Unselect() (err error) {
	defer s.guard("unselect", &err)
	if s.sel != nil {
		s.sel.close()
		s.sel = nil
	}
	return nil
}

// Poll writes the pending updates of the selected mailbox; go-imap calls
// it after each command, before the tagged reply.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) (err error) {
	defer s.guard("poll", &err)
	if s.sel == nil {
		return nil
	}
	if s.overflowed() {
		return nil
	}
	return s.sel.poll(w, allowExpunge, s.rev2())
}

// overflowed ends the session with BYE when its update queue overflowed
// (maxQueued): its numbering of the messages can no longer be kept.
func (s *session) overflowed() bool {
	v := s.sel
	v.sm.Lock()
	over := v.overflowed
	v.sm.Unlock()
	if over && s.conn != nil {
		s.srv.log.Warn("imap: session ended, too many pending changes", "mailbox", v.id, "limit", maxQueued.Load())
		s.conn.Bye("Too many changes to this mailbox while this session was not reading them; please reconnect")
	}
	return over
}

// Idle pushes updates as they come until the client says DONE (RFC 2177),
// starting with those queued before the IDLE.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) (err error) {
	defer s.guard("idle", &err)
	s.srv.opts.Metrics.IdleStarted()
	defer s.srv.opts.Metrics.IdleEnded()
	v := s.sel
	if v == nil {
		<-stop
		return nil
	}
	rev2 := s.rev2()
	for {
		if s.overflowed() {
			return nil
		}
		if err := v.poll(w, true, rev2); err != nil {
			return err
		}
		select {
		case <-v.notify:
		case <-stop:
			return nil
		}
	}
}

// rev2 tells whether the client enabled IMAP4rev2 (RFC 9051 §6.3.1):
// then \Recent and the RECENT response are not sent.
func (s *session) rev2() bool {
	return s.conn != nil && s.conn.EnabledCaps().Has(imap.CapIMAP4rev2)
}

// msgRef is a message of the selected mailbox in this session's view.
type msgRef struct {
	seq uint32 // client sequence number
	uid uint32
}

// resolve turns a sequence or UID set into the messages it names, in
// ascending order. Sequence numbers are the client's (its view lags behind
// updates it has not been told of); "*" is the last message it knows
// (RFC 9051 §6.4.8: a UID set names only messages the client knows of).
func (v *view) resolve(numSet imap.NumSet) []msgRef {
	if imap.IsSearchRes(numSet) {
		numSet = v.searchRes
	}
	sm := v.sm
	sm.Lock()
	defer sm.Unlock()
	uids := sm.UIDsLocked()
	if v.overflowed {
		return nil // the session ends at the poll that follows
	}
	var out []msgRef
	switch set := numSet.(type) {
	case imap.SeqSet:
		max := v.known
		for _, r := range set {
			start, stop := staticRange(r.Start, r.Stop, max)
			stop = min(stop, max)
			for c := start; c <= stop && c != 0; c++ {
				srvSeq := v.serverSeqLocked(c)
				if srvSeq == 0 {
					continue // expunged, EXPUNGE not sent yet
				}
				out = append(out, msgRef{seq: c, uid: uids[srvSeq-1]})
			}
		}
	case imap.UIDSet:
		last := v.lastKnownUIDLocked()
		for _, r := range set {
			start, stop := staticRange(uint32(r.Start), uint32(r.Stop), last)
			i, _ := sm.IndexLocked(start)
			for ; i < len(uids) && uids[i] <= stop; i++ {
				seq := v.clientSeqLocked(uint32(i + 1))
				if seq == 0 {
					continue // not yet announced to the client (RFC 9051 §6.4.8)
				}
				out = append(out, msgRef{seq: seq, uid: uids[i]})
			}
		}
	}
	// Several ranges may overlap or come in any order ("5,1:3,2").
	if !slices.IsSortedFunc(out, func(a, b msgRef) int { return cmp.Compare(a.seq, b.seq) }) {
		slices.SortFunc(out, func(a, b msgRef) int { return cmp.Compare(a.seq, b.seq) })
	}
	return slices.CompactFunc(out, func(a, b msgRef) bool { return a.seq == b.seq })
}

// lastKnownUIDLocked is the UID of the last message the client knows that
// still exists ("*" in a UID set).
func (v *view) lastKnownUIDLocked() uint32 {
	uids := v.sm.UIDsLocked()
	for s := len(uids); s > 0; s-- {
		if v.clientSeqLocked(uint32(s)) != 0 {
			return uids[s-1]
		}
	}
	return 0
}

// staticRange resolves "*" (0) in a range to last, the highest number the
// client knows, and orders the bounds ("*:4" is "4:*", RFC 9051 §9).
func staticRange(start, stop, last uint32) (uint32, uint32) {
	if start == 0 {
		start = last
	}
	if stop == 0 {
		stop = last
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

func containsUID(set imap.UIDSet, uid, last uint32) bool {
	for _, r := range set {
		if start, stop := staticRange(uint32(r.Start), uint32(r.Stop), last); uid >= start && uid <= stop {
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
// echoed to the session of v (see view.MailboxEvent).
func storageOrigin(ctx context.Context, v *view) context.Context {
	return storage.WithOrigin(ctx, v)
}
