package imap

import (
	"context"
	"errors"
	"sort"
	"time"

	"carepost/storage"
)

// Pulling changes from the store (sharedMailbox's doc comment says when).
//
// A pull reads Store.Changes from the MODSEQ the state last applied and
// applies what it got. Applying is idempotent and does not depend on the
// order of pulls: an expunge removes a UID if it is there (UIDs are never
// given twice); a message whose UID is past the last one is new (UIDs grow
// in commit order); a message already there takes the flags of the
// change only if its MODSEQ is newer than the one the state holds. So a
// session's own ensure and the background pull may run at once.

// pullTimeout bounds one pull.
const pullTimeout = 30 * time.Second

// needPullLocked notes that the store holds changes up to modseq that the
// state may lack, and starts the pull goroutine if none runs. It never
// blocks: the store's committer calls it through Watch.
func (sm *sharedMailbox) needPullLocked(modseq uint64) {
	sm.want = max(sm.want, modseq)
	if sm.pulling || sm.deleted.Load() {
		return
	}
	sm.pulling = true
	go sm.pullLoop()
}

// pullLoop pulls until the state has applied every MODSEQ announced.
func (sm *sharedMailbox) pullLoop() {
	for {
		ctx, cancel := context.WithTimeout(sm.srv.base, pullTimeout)
		err := sm.pull(ctx)
		cancel()
		sm.mu.Lock()
		if err != nil || sm.want <= sm.applied || sm.deleted.Load() {
			// On an error the next hint, or the periodic pull, tries
			// again; the state keeps what it has.
			sm.pulling = false
			sm.mu.Unlock()
			if err != nil && !errors.Is(err, context.Canceled) {
				sm.srv.log.Warn("imap: pulling the changes of a mailbox failed", "mailbox", sm.id, "err", err)
			}
			return
		}
		sm.mu.Unlock()
	}
}

// pull reads the changes since the last MODSEQ applied and applies them.
func (sm *sharedMailbox) pull(ctx context.Context) error {
	sm.mu.Lock()
	since := sm.applied
	sm.mu.Unlock()
	ch, err := sm.srv.opts.Store.Changes(ctx, sm.id, since)
	if errors.Is(err, storage.ErrNoMailbox) {
		sm.mu.Lock()
		sm.applyLocked(storage.Change{Kind: storage.MailboxDeleted, MailboxID: sm.id})
		sm.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	var all []storage.Message
	if ch.Truncated {
		// The store forgot some expunges after since (its tombstone
		// window): compare every UID instead (RFC 7162 §3.2.5.2).
		if _, all, _, err = sm.srv.opts.Store.Select(ctx, sm.id, false); err != nil {
			return err
		}
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.deleted.Load() || ch.UIDValidity != sm.validity {
		if !sm.deleted.Load() {
			// Cannot happen while IDs are never reused; treat it as the
			// end of the mailbox this state knew.
			sm.applyLocked(storage.Change{Kind: storage.MailboxDeleted, MailboxID: sm.id})
		}
		return nil
	}
	if ch.Truncated {
		sm.applyFullLocked(all)
	} else {
		sm.applyChangesLocked(ch.Expunged, ch.Messages)
	}
	sm.applied = max(sm.applied, ch.HighestModSeq)
	sm.snapshot = max(sm.snapshot, ch.HighestModSeq)
	return nil
}

// applyChangesLocked applies expunges and new or changed messages (both
// ascending), idempotently (see the top of this file).
func (sm *sharedMailbox) applyChangesLocked(expunged []uint32, msgs []storage.Message) {
	for _, uid := range expunged {
		sm.expungeLocked(uid)
	}
	for _, m := range msgs {
		i, ok := sm.indexLocked(m.UID)
		switch {
		case ok:
			if m.ModSeq <= sm.meta[i].modseq {
				continue
			}
			sm.announceLocked(m.Flags)
			sm.meta[i].set, sm.meta[i].modseq = sm.flagSetLocked(m.Flags), m.ModSeq
			sm.pushLocked(update{kind: updFlags, seq: uint32(i + 1), uid: m.UID, flags: sm.flagSets[sm.meta[i].set], modseq: m.ModSeq}, nil)
		case m.UID > sm.lastUIDLocked():
			sm.announceLocked(m.Flags)
			sm.uids = append(sm.uids, m.UID)
			sm.meta = append(sm.meta, sm.metaLocked(m.Flags, m.InternalDate, m.Size, m.ModSeq))
			sm.pushLocked(update{kind: updExists, seq: uint32(len(sm.uids)), uid: m.UID}, nil)
		}
		// A UID below the last that the state lacks was expunged
		// already: nothing to do.
	}
}

// applyFullLocked brings the state to msgs, every message of the mailbox.
func (sm *sharedMailbox) applyFullLocked(msgs []storage.Message) {
	exists := make(map[uint32]bool, len(msgs))
	for _, m := range msgs {
		exists[m.UID] = true
	}
	var gone []uint32
	for _, uid := range sm.uids {
		if !exists[uid] {
			gone = append(gone, uid)
		}
	}
	sm.applyChangesLocked(gone, msgs)
}

// expungeLocked removes uid if the state has it and queues the EXPUNGE.
func (sm *sharedMailbox) expungeLocked(uid uint32) {
	i, ok := sm.indexLocked(uid)
	if !ok {
		return
	}
	sm.uids = append(sm.uids[:i], sm.uids[i+1:]...)
	sm.meta = append(sm.meta[:i], sm.meta[i+1:]...)
	sm.index.noteExpunged()
	sm.pushLocked(update{kind: updExpunge, seq: uint32(i + 1), uid: uid}, nil)
}

// ensure makes sure the state holds every change up to modseq, which a
// write of this session returned: the session reports its own write from
// the store's answer, whether or not the feed brought it.
func (sm *sharedMailbox) ensure(ctx context.Context, modseq uint64) error {
	sm.mu.Lock()
	done := sm.applied >= modseq || sm.deleted.Load()
	sm.mu.Unlock()
	if done {
		return nil
	}
	return sm.pull(ctx)
}

// confirm is ensure for the selected mailbox, if mailboxID is it.
func (s *session) confirm(ctx context.Context, mailboxID int64, modseq uint64) {
	v := s.sel
	if v == nil || v.id != mailboxID || modseq == 0 {
		return
	}
	if err := v.sm.ensure(ctx, modseq); err != nil {
		// The periodic pull catches up; the client learns of its change
		// a little later.
		s.srv.log.Warn("imap: confirming a write from the store failed", "mailbox", mailboxID, "err", err)
	}
}

// DefaultResyncInterval is how often every selected mailbox pulls its
// changes whatever the hints say (Options.ResyncInterval).
const DefaultResyncInterval = 5 * time.Second

// resyncLoop pulls the changes of every selected mailbox every interval,
// so that a hint lost by the store's feed costs at most that delay. One
// goroutine per server; each pull is one small read when nothing changed.
func (s *Server) resyncLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.base.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		sms := make([]*sharedMailbox, 0, len(s.mailboxes))
		for _, sm := range s.mailboxes {
			sms = append(sms, sm)
		}
		s.mu.Unlock()
		sort.Slice(sms, func(i, j int) bool { return sms[i].id < sms[j].id })
		for _, sm := range sms {
			select {
			case <-sm.ready:
			default:
				continue // still loading
			}
			if sm.err != nil {
				continue
			}
			sm.mu.Lock()
			if !sm.pulling && !sm.deleted.Load() {
				sm.pulling = true
				go sm.pullLoop()
			}
			sm.mu.Unlock()
		}
	}
}
