package audit

import (
	"context"
	"crypto"
	"fmt"
	"time"

	"github.com/carepost/carepost/storage"
)

// Report is what Verify found.
type Report struct {
	// Events is how many sealed events were checked; FirstSeq and LastSeq
	// the first and last of them, First and Last their times.
	Events           int64
	FirstSeq         int64
	LastSeq          int64
	First, Last      time.Time
	LastHash         []byte
	Unsealed         int64 // newest events not sealed yet (not checked)
	Checkpoints      int   // checkpoints checked
	SignedUnverified int   // checkpoints whose signature was not checked (no key given)
	LastCheckpoint   *storage.AuditCheckpoint
	// Broken, when not nil, is the first thing found wrong.
	Broken *Break
}

// Break is where the trail stops being what was written.
type Break struct {
	Seq    int64 // the event at which it breaks
	Reason string
}

func (b *Break) Error() string { return fmt.Sprintf("event %d: %s", b.Seq, b.Reason) }

// Intact reports whether nothing was found wrong.
func (r *Report) Intact() bool { return r.Broken == nil }

// Verifier walks a trail, one event at a time, in Seq order.
type Verifier struct {
	// Key checks the checkpoints' signatures (the operator certificate's
	// public key); nil skips that check (Report.SignedUnverified).
	Key crypto.PublicKey

	rep         Report
	checkpoints map[int64]storage.AuditCheckpoint
	prev        []byte
	next        int64 // the Seq expected next, 0 before the first event
	unsealed    bool
}

// NewVerifier starts a walk; checkpoints are those of the trail.
func NewVerifier(key crypto.PublicKey, checkpoints []storage.AuditCheckpoint) *Verifier {
	v := &Verifier{Key: key, checkpoints: make(map[int64]storage.AuditCheckpoint, len(checkpoints))}
	for _, c := range checkpoints {
		v.checkpoints[c.Seq] = c
	}
	return v
}

func (v *Verifier) fail(seq int64, format string, args ...any) error {
	v.rep.Broken = &Break{Seq: seq, Reason: fmt.Sprintf(format, args...)}
	return v.rep.Broken
}

// checkpoint checks the checkpoint at an event, if there is one: its hash
// must be the chain's there, and its signature the operator's.
func (v *Verifier) checkpoint(seq int64, hash []byte) error {
	c, ok := v.checkpoints[seq]
	if !ok {
		return nil
	}
	delete(v.checkpoints, seq)
	if !sameHash(c.Hash, hash) {
		return v.fail(seq, "the checkpoint signed at %s does not match the chain: the trail was rewritten up to here", c.Time.UTC().Format(TimeFormat))
	}
	if v.Key == nil {
		v.rep.SignedUnverified++
	} else if err := VerifyCheckpoint(v.Key, c); err != nil {
		return v.fail(seq, "the checkpoint signed at %s: %v", c.Time.UTC().Format(TimeFormat), err)
	}
	v.rep.Checkpoints++
	cc := c
	v.rep.LastCheckpoint = &cc
	return nil
}

// Add checks the next event. It returns a *Break once the trail is found
// broken (and the same one for every later call).
func (v *Verifier) Add(r storage.AuditRecord) error {
	if v.rep.Broken != nil {
		return v.rep.Broken
	}
	if v.next == 0 {
		// The first event: event 1, or the first kept after a purge,
		// which a checkpoint on the event before it must vouch for.
		if r.Seq != 1 {
			c, ok := v.checkpoints[r.Seq-1]
			if !ok {
				return v.fail(r.Seq, "the trail starts here: events 1 to %d are missing and no checkpoint vouches for their end", r.Seq-1)
			}
			if err := v.checkpoint(r.Seq-1, c.Hash); err != nil {
				return err
			}
			v.prev = c.Hash
		}
		v.rep.FirstSeq = r.Seq
		v.rep.First = r.Time
	} else if r.Seq != v.next {
		return v.fail(v.next, "missing: the trail goes on at event %d (events removed, or renumbered)", r.Seq)
	}
	v.next = r.Seq + 1
	if r.Hash == nil {
		// The newest events wait for the sealer.
		v.unsealed = true
		v.rep.Unsealed++
		return nil
	}
	if v.unsealed {
		return v.fail(r.Seq, "sealed after an event that is not: the trail was changed before it")
	}
	h := Hash(v.prev, r)
	if !sameHash(h, r.Hash) {
		return v.fail(r.Seq, "does not match its hash: it was altered, or an event before it was inserted, removed or moved")
	}
	v.prev = h
	v.rep.Events++
	v.rep.LastSeq = r.Seq
	v.rep.Last = r.Time
	v.rep.LastHash = h
	return v.checkpoint(r.Seq, h)
}

// Finish ends the walk and returns the report: a checkpoint left over names
// an event that is not in the trail.
func (v *Verifier) Finish() Report {
	if v.rep.Broken == nil {
		var first int64
		for seq := range v.checkpoints {
			if seq <= v.rep.LastSeq || v.rep.Unsealed > 0 && seq < v.next {
				continue // before the first event kept, or not sealed yet
			}
			if first == 0 || seq < first {
				first = seq
			}
		}
		if first != 0 {
			v.fail(first, "a checkpoint names it but the trail ends at event %d: events were removed from the end", v.rep.LastSeq)
		}
	}
	return v.rep
}

// dropNewer forgets the checkpoints past the walked trail whose events
// are in the store now: the server beside the walk sealed them and signed
// the checkpoint after the walk read the events. A checkpoint whose event
// is not in the store stays, and Finish names the events removed from the
// end.
func (v *Verifier) dropNewer(ctx context.Context, log storage.AuditLog) error {
	for seq := range v.checkpoints {
		if seq <= v.rep.LastSeq {
			continue
		}
		recs, err := log.AuditEvents(ctx, storage.AuditQuery{After: seq - 1, Limit: 1})
		if err != nil {
			return err
		}
		if len(recs) == 1 && recs[0].Seq == seq && recs[0].Hash != nil {
			delete(v.checkpoints, seq)
		}
	}
	return nil
}

// pageSize is how many events Verify reads at a time.
const pageSize = 10000

// Verify walks the whole trail of a store. It may run beside the server
// that seals it: it checks the events up to the newest sealed when it
// starts (read after the checkpoints, so that none names a later event),
// and counts the newer ones that are not sealed yet; an event sealed
// between two pages of the walk cannot look like a break.
func Verify(ctx context.Context, log storage.AuditLog, key crypto.PublicKey) (Report, error) {
	head, err := log.AuditEvents(ctx, storage.AuditQuery{Sealed: true, Newest: true, Limit: 1})
	if err != nil {
		return Report{}, err
	}
	var last int64
	if len(head) == 1 {
		last = head[0].Seq
	}
	var after int64
	recs, err := log.AuditEvents(ctx, storage.AuditQuery{After: after, Limit: pageSize})
	if err != nil {
		return Report{}, err
	}
	// The checkpoints after the first events: a purge beside this walk
	// signs its checkpoint before it removes the events it vouches for
	// (Purge), so a trail read after the purge finds the checkpoint its
	// start needs.
	cps, err := log.AuditCheckpoints(ctx, 0)
	if err != nil {
		return Report{}, err
	}
	v := NewVerifier(key, cps)
	for {
		for _, r := range recs {
			if r.Seq > last {
				// Past the head: only the count of those not sealed.
				if r.Hash == nil {
					v.rep.Unsealed++
				}
				continue
			}
			if v.Add(r) != nil {
				return v.Finish(), nil
			}
		}
		if len(recs) < pageSize {
			if err := v.dropNewer(ctx, log); err != nil {
				return Report{}, err
			}
			return v.Finish(), nil
		}
		after = recs[len(recs)-1].Seq
		if recs, err = log.AuditEvents(ctx, storage.AuditQuery{After: after, Limit: pageSize}); err != nil {
			return Report{}, err
		}
	}
}
