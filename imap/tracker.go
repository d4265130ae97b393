package imap

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/cache"
)

// Each session's view of its selected mailbox.
//
// The client knows the mailbox as it was after the last update it was
// sent; the server's state (the cache.Mailbox's UIDs, shared by the
// sessions of the process) may be ahead. Between the
// two lies the view's queue of updates, each numbered as the server
// numbered the messages when it happened. Sending the queue in order brings
// the client up to date; until then, sequence numbers are translated
// through it (clientSeqLocked, serverSeqLocked). This replaces go-imap's
// MailboxTracker, which cannot tell a session which messages are \Recent
// for it, announce keywords before a FETCH uses them, nor send other
// updates while an EXPUNGE must wait (RFC 9051 §7.5.1).

type updKind uint8

const (
	updExists  = updKind(cache.Added)        // a message was added; seq is the new count
	updExpunge = updKind(cache.Expunged)     // the message at seq is gone
	updFlags   = updKind(cache.FlagsChanged) // the message at seq has new flags
)

type update struct {
	kind   updKind
	seq    uint32
	uid    uint32
	modseq uint64
	flags  []string // shared between views: read only
}

// view is one session's selection of a mailbox. Fields after notify are
// guarded by the Mailbox's lock (sm.Lock).
type view struct {
	sm       *cache.Mailbox
	srv      *Server
	id       int64
	name     string
	readOnly bool
	// notify is signalled when an update is queued (IDLE waits on it).
	notify chan struct{}

	queue []update
	// overflowed: more than maxQueued updates were queued; the queue was
	// dropped and the session must end (Poll and Idle say BYE).
	overflowed bool
	// known is the number of messages the client knows of.
	known uint32
	// flagsSent is how much of sm.FlagsLocked the client was sent in FLAGS.
	flagsSent int
	// recent holds the UIDs that are \Recent for this session (RFC 3501
	// §2.3.2): claimed by its SELECT and, while it has the mailbox
	// selected read-write, by ClaimRecent as messages arrive.
	recent uidRanges
	// recentKnown counts the \Recent messages among those the client knows
	// (the figure of the RECENT response).
	recentKnown uint32
	// claimedTo is the highest UID this session asked the store for.
	claimedTo uint32
	// own are the FETCH responses of this session's last STORE, written by
	// the poll that follows it, after the FLAGS that announces a new
	// keyword (go-imap polls right after the command, before its tagged
	// reply).
	own []ownFetch

	// searchRes is the saved result of SEARCH RETURN (SAVE) (RFC 5182).
	// Only the session's goroutine uses it.
	searchRes imap.UIDSet
}

type ownFetch struct {
	seq, uid uint32
	flags    []string
}

func (v *view) close() {
	v.sm.Lock()
	v.sm.UnsubscribeLocked(v)
	v.queue = nil
	v.sm.Unlock()
	v.sm.Release()
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

// MailboxEvent queues a change of the mailbox (cache.Listener), under
// the Mailbox's lock, and wakes the session if in IDLE. A session reports
// its own STORE itself (RFC 9051 §6.4.6: and nothing with .SILENT): the
// change carries the view as its origin (storageOrigin).
func (v *view) MailboxEvent(e cache.Event) {
	if e.Kind == cache.FlagsChanged && e.Origin == any(v) || v.overflowed {
		return
	}
	if int64(len(v.queue)) >= maxQueued.Load() {
		v.overflowed, v.queue = true, nil
	} else {
		v.queue = append(v.queue, update{kind: updKind(e.Kind), seq: e.Seq, uid: e.UID, flags: e.Flags, modseq: e.ModSeq})
	}
	select {
	case v.notify <- struct{}{}:
	default: // already signalled
	}
}

// clientSeqLocked turns a server sequence number into the client's, 0 when
// the client does not know the message yet.
func (v *view) clientSeqLocked(s uint32) uint32 {
	for i := len(v.queue) - 1; i >= 0 && s != 0; i-- {
		u := &v.queue[i]
		switch u.kind {
		case updExists:
			if s == u.seq {
				return 0 // added after the client's view
			}
		case updExpunge:
			if s >= u.seq {
				s++
			}
		}
	}
	if s > v.known {
		return 0
	}
	return s
}

// serverSeqLocked turns a client sequence number into the server's, 0 when
// the message is gone (its EXPUNGE not sent yet).
func (v *view) serverSeqLocked(c uint32) uint32 {
	if c == 0 || c > v.known {
		return 0
	}
	for i := range v.queue {
		u := &v.queue[i]
		if u.kind != updExpunge {
			continue
		}
		if c == u.seq {
			return 0
		}
		if c > u.seq {
			c--
		}
	}
	if int(c) > len(v.sm.UIDsLocked()) {
		return 0
	}
	return c
}

// output is one untagged response of a poll.
type output struct {
	kind   updKind // 0: FLAGS
	n      uint32  // EXISTS count, EXPUNGE or FETCH sequence number
	recent uint32  // RECENT count after an EXISTS
	uid    uint32
	flags  []string
	uids   []uint32 // the messages an EXISTS announces (for tests and logs)
}

// poll writes the pending updates (session.Poll, Idle). Before it, the
// messages that arrived are claimed \Recent when the mailbox is selected
// read-write. allowExpunge is false after FETCH, STORE and SEARCH (RFC 9051
// §7.5.1): EXPUNGE then waits, other updates do not.
func (v *view) poll(w *imapserver.UpdateWriter, allowExpunge, rev2 bool) error {
	if !v.readOnly {
		v.claimArrivals()
	}
	v.sm.Lock()
	outs := v.drainLocked(allowExpunge)
	v.sm.Unlock()
	// Written without the lock: a slow client must not hold up the store's
	// commits, which queue to this view.
	for _, o := range outs {
		var err error
		switch o.kind {
		case 0:
			err = w.WriteMailboxFlags(toFlags(o.flags))
		case updExists:
			err = w.WriteNumMessages(o.n)
			if err == nil {
				// RFC 3501 §7.3.2; the library leaves it out for IMAP4rev2.
				err = w.WriteNumRecent(o.recent)
			}
		case updExpunge:
			err = w.WriteExpunge(o.n)
		case updFlags:
			err = w.WriteMessageFlags(o.n, imap.UID(o.uid), v.displayFlags(o.uid, o.flags, rev2))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// claimArrivals claims \Recent for the messages about to be announced
// (RFC 3501 §2.3.2: the first session notified of a message sees it
// \Recent). The store's watermark decides between sessions, also of other
// processes; a storage error only costs the flag.
func (v *view) claimArrivals() {
	sm := v.sm
	sm.Lock()
	var top uint32
	for i := range v.queue {
		if v.queue[i].kind == updExists && v.queue[i].uid > top {
			top = v.queue[i].uid
		}
	}
	need := top > v.claimedTo && top > sm.ClaimedLocked()
	if top > v.claimedTo && !need {
		v.claimedTo = top // claimed by another session of this process
	}
	sm.Unlock()
	if need {
		v.claim(top)
	}
}

// claim asks the store for the unclaimed UIDs up to top.
func (v *view) claim(top uint32) {
	if v.sm.Deleted() {
		return
	}
	ctx, cancel := context.WithTimeout(v.srv.base, commandTimeout)
	defer cancel()
	first, err := v.srv.opts.Store.ClaimRecent(ctx, v.id, top)
	if err != nil {
		if !errors.Is(err, storage.ErrNoMailbox) && !errors.Is(err, context.Canceled) {
			v.srv.log.Warn("imap: claiming \\Recent failed", "mailbox", v.id, "err", err)
		}
		return
	}
	sm := v.sm
	sm.Lock()
	if first != 0 {
		v.recent.add(first, top)
	}
	v.claimedTo = max(v.claimedTo, top)
	sm.NoteClaimedLocked(top)
	sm.Unlock()
}

// drainLocked turns the queue into responses. EXISTS is held back while
// EXPUNGEs follow, so that an added message expunged before the client
// heard of it is never announced, and the counts stay exact (a MOVE into
// the same mailbox reads "1 EXPUNGE, 1 EXISTS", as Dovecot sends it).
func (v *view) drainLocked(allowExpunge bool) []output {
	var outs []output
	if flags := v.sm.FlagsLocked(); len(flags) > v.flagsSent {
		outs = append(outs, output{flags: slices.Clone(flags)})
		v.flagsSent = len(flags)
	}
	for _, f := range v.own {
		outs = append(outs, output{kind: updFlags, n: f.seq, uid: f.uid, flags: f.flags})
	}
	v.own = nil

	announced, cur := v.known, v.known
	var pending []uint32 // UIDs added after announced, in order
	flush := func() {
		if cur <= announced {
			return
		}
		for _, uid := range pending {
			if v.recent.contains(uid) {
				v.recentKnown++
			}
		}
		outs = append(outs, output{kind: updExists, n: cur, recent: v.recentKnown, uids: slices.Clone(pending)})
		announced = cur
		pending = pending[:0]
	}
	i := 0
	for ; i < len(v.queue); i++ {
		u := &v.queue[i]
		switch u.kind {
		case updExists:
			cur = u.seq
			pending = append(pending, u.uid)
		case updExpunge:
			if u.seq > announced {
				j := int(u.seq - announced - 1)
				pending = slices.Delete(pending, j, j+1)
				cur--
				continue
			}
			if !allowExpunge {
				flush()
				v.queue = slices.Delete(v.queue, 0, i)
				v.known = announced
				return outs
			}
			outs = append(outs, output{kind: updExpunge, n: u.seq})
			if v.recent.contains(u.uid) && v.recentKnown > 0 {
				v.recentKnown--
			}
			announced--
			cur--
		case updFlags:
			if u.seq > announced {
				flush()
			}
			outs = append(outs, output{kind: updFlags, n: u.seq, uid: u.uid, flags: u.flags})
		}
	}
	flush()
	v.queue = nil
	v.known = announced
	return outs
}

// dropStaleLocked removes queued flag updates of uid that are not newer
// than modseq: the session is about to report the message's flags as of
// modseq itself, and an older update sent after would undo them.
func (v *view) dropStaleLocked(uid uint32, modseq uint64) {
	v.queue = slices.DeleteFunc(v.queue, func(u update) bool {
		return u.kind == updFlags && u.uid == uid && u.modseq <= modseq
	})
}

// displayFlags is what the client sees of a message's flags: \Recent
// added for this session's recent messages (RFC 3501 §2.3.2), and not at
// all for an IMAP4rev2 client (RFC 9051 removed it).
func (v *view) displayFlags(uid uint32, flags []string, rev2 bool) []imap.Flag {
	out := make([]imap.Flag, 0, len(flags)+1)
	for _, f := range flags {
		out = append(out, imap.Flag(f))
	}
	if !rev2 && v.recent.contains(uid) {
		out = append(out, flagRecent)
	}
	return out
}

// uidRanges is a small set of UID ranges, usually one.
type uidRanges []struct{ lo, hi uint32 }

func (r uidRanges) contains(uid uint32) bool {
	for _, x := range r {
		if uid >= x.lo && uid <= x.hi {
			return true
		}
	}
	return false
}

func (r *uidRanges) add(lo, hi uint32) {
	if n := len(*r); n > 0 && (*r)[n-1].hi+1 >= lo && (*r)[n-1].lo <= lo {
		(*r)[n-1].hi = max((*r)[n-1].hi, hi)
		return
	}
	*r = append(*r, struct{ lo, hi uint32 }{lo, hi})
}

func toFlags(l []string) []imap.Flag {
	out := make([]imap.Flag, len(l))
	for i, f := range l {
		out[i] = imap.Flag(f)
	}
	return out
}
