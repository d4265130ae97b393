package cache

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/carepost/carepost/storage"
)

// Pulling changes from the store (Mailbox's doc comment says when).
//
// A pull reads Store.Changes from the MODSEQ the state last applied and
// applies what it got. Applying is idempotent and does not depend on the
// order of pulls: an expunge removes a UID if it is there (UIDs are never
// given twice); a message whose UID is past the last one is new (UIDs grow
// in commit order); a message already there takes the flags of the
// change only if its MODSEQ is newer than the one the state holds. So a
// user's own Ensure and the background pull may run at once.

// pullTimeout bounds one pull.
const pullTimeout = 30 * time.Second

// needPullLocked notes that the store holds changes up to modseq that the
// state may lack, and starts the pull goroutine if none runs. It never
// blocks: the store's committer calls it through Watch.
func (mb *Mailbox) needPullLocked(modseq uint64) {
	mb.want = max(mb.want, modseq)
	if mb.pulling || mb.deleted.Load() {
		return
	}
	mb.pulling = true
	go mb.pullLoop()
}

// pullLoop pulls until the state has applied every MODSEQ announced.
func (mb *Mailbox) pullLoop() {
	for {
		ctx, cancel := context.WithTimeout(mb.c.base, pullTimeout)
		err := mb.pull(ctx)
		cancel()
		mb.mu.Lock()
		if err != nil || mb.want <= mb.applied || mb.deleted.Load() {
			// On an error the next hint, or the periodic pull, tries
			// again; the state keeps what it has.
			mb.pulling = false
			mb.mu.Unlock()
			if err != nil && !errors.Is(err, context.Canceled) {
				mb.c.log.Warn("cache: pulling the changes of a mailbox failed", "mailbox", mb.id, "err", err)
			}
			return
		}
		mb.mu.Unlock()
	}
}

// pull reads the changes since the last MODSEQ applied and applies them.
func (mb *Mailbox) pull(ctx context.Context) error {
	mb.mu.Lock()
	since := mb.applied
	mb.mu.Unlock()
	ch, err := mb.c.Store.Changes(ctx, mb.id, since)
	if errors.Is(err, storage.ErrNoMailbox) {
		mb.mu.Lock()
		mb.applyLocked(storage.Change{Kind: storage.MailboxDeleted, MailboxID: mb.id})
		mb.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	var all []storage.Message
	if ch.Truncated {
		// The store forgot some expunges after since (its tombstone
		// window): compare every UID instead (RFC 7162 §3.2.5.2).
		if _, all, _, err = mb.c.Store.Select(ctx, mb.id, false); err != nil {
			return err
		}
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.deleted.Load() || ch.UIDValidity != mb.validity {
		if !mb.deleted.Load() {
			// Cannot happen while IDs are never reused; treat it as the
			// end of the mailbox this state knew.
			mb.applyLocked(storage.Change{Kind: storage.MailboxDeleted, MailboxID: mb.id})
		}
		return nil
	}
	if ch.Truncated {
		mb.applyFullLocked(all)
	} else {
		mb.applyChangesLocked(ch.Expunged, ch.Messages)
	}
	mb.applied = max(mb.applied, ch.HighestModSeq)
	mb.snapshot = max(mb.snapshot, ch.HighestModSeq)
	return nil
}

// applyChangesLocked applies expunges and new or changed messages (both
// ascending), idempotently (see the top of this file).
func (mb *Mailbox) applyChangesLocked(expunged []uint32, msgs []storage.Message) {
	for _, uid := range expunged {
		mb.expungeLocked(uid, nil)
	}
	for _, m := range msgs {
		i, ok := mb.IndexLocked(m.UID)
		switch {
		case ok:
			if m.ModSeq <= mb.meta[i].modseq {
				continue
			}
			mb.announceLocked(m.Flags)
			mb.meta[i].set, mb.meta[i].modseq = mb.flagSetLocked(m.Flags), m.ModSeq
			mb.tellLocked(Event{Kind: FlagsChanged, Seq: uint32(i + 1), UID: m.UID, Flags: mb.flagSets[mb.meta[i].set], ModSeq: m.ModSeq})
		case m.UID > mb.LastUIDLocked():
			mb.announceLocked(m.Flags)
			mb.uids = append(mb.uids, m.UID)
			mb.meta = append(mb.meta, mb.metaLocked(m.Flags, m.InternalDate, m.Size, m.ModSeq))
			mb.tellLocked(Event{Kind: Added, Seq: uint32(len(mb.uids)), UID: m.UID})
		}
		// A UID below the last that the state lacks was expunged
		// already: nothing to do.
	}
}

// applyFullLocked brings the state to msgs, every message of the mailbox.
func (mb *Mailbox) applyFullLocked(msgs []storage.Message) {
	exists := make(map[uint32]bool, len(msgs))
	for _, m := range msgs {
		exists[m.UID] = true
	}
	var gone []uint32
	for _, uid := range mb.uids {
		if !exists[uid] {
			gone = append(gone, uid)
		}
	}
	mb.applyChangesLocked(gone, msgs)
}

// expungeLocked removes uid if the state has it, drops its digest (a UID
// is never reused, so the entry could only wait for the LRU to push it
// out: under a steady append-and-expunge load the cache would fill with
// the dead) and queues the EXPUNGE.
func (mb *Mailbox) expungeLocked(uid uint32, origin any) {
	i, ok := mb.IndexLocked(uid)
	if !ok {
		return
	}
	mb.uids = append(mb.uids[:i], mb.uids[i+1:]...)
	mb.meta = append(mb.meta[:i], mb.meta[i+1:]...)
	mb.index.noteExpunged()
	mb.c.digests.forget(digestKey{mb.id, uid})
	mb.tellLocked(Event{Kind: Expunged, Seq: uint32(i + 1), UID: uid, Origin: origin})
}

// Ensure makes sure the state holds every change up to modseq, which a
// write of the caller returned: a session reports its own write from the
// store's answer, whether or not the feed brought it.
func (mb *Mailbox) Ensure(ctx context.Context, modseq uint64) error {
	mb.mu.Lock()
	done := mb.applied >= modseq || mb.deleted.Load()
	mb.mu.Unlock()
	if done {
		return nil
	}
	return mb.pull(ctx)
}

// DefaultResyncInterval is how often every open mailbox pulls its changes
// whatever the hints say (Options.ResyncInterval).
const DefaultResyncInterval = 5 * time.Second

// resyncLoop pulls the changes of every open mailbox every interval, so
// that a hint lost by the store's feed costs at most that delay. One
// goroutine per cache; each pull is one small read when nothing changed.
func (c *Store) resyncLoop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.base.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		mbs := make([]*Mailbox, 0, len(c.mailboxes))
		for _, mb := range c.mailboxes {
			mbs = append(mbs, mb)
		}
		c.mu.Unlock()
		sort.Slice(mbs, func(i, j int) bool { return mbs[i].id < mbs[j].id })
		for _, mb := range mbs {
			select {
			case <-mb.ready:
			default:
				continue // still loading
			}
			if mb.err != nil {
				continue
			}
			mb.mu.Lock()
			if !mb.pulling && !mb.deleted.Load() {
				mb.pulling = true
				go mb.pullLoop()
			}
			mb.mu.Unlock()
		}
	}
}
