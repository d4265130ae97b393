package audit

import (
	"context"
	"crypto"
	"errors"
	"time"

	"github.com/carepost/carepost/storage"
)

// Purge removes the events older than before (retention: the CNIL has
// connection logs kept six months to a year, docs/domain.md §6c). The
// last event it removes gets a checkpoint signed with key (or keeps the
// one it has), which vouches for the chain that remains: a verifier
// starts from that checkpoint's hash (Verifier, docs/audit.md). Only
// sealed events are purged, and never the newest event. It returns how
// many events it removed.
func Purge(ctx context.Context, log storage.AuditLog, key crypto.Signer, before time.Time) (int64, error) {
	if key == nil {
		return 0, errors.New("audit: purging needs the operator's key to sign the checkpoint that vouches for what remains")
	}
	// The last event to purge: the one before the first event at or
	// after before, or before the newest event when all are older.
	var through int64
	next, err := log.AuditEvents(ctx, storage.AuditQuery{Since: before, Limit: 1})
	if err != nil {
		return 0, err
	}
	if len(next) == 1 {
		through = next[0].Seq - 1
	} else {
		newest, err := log.AuditEvents(ctx, storage.AuditQuery{Newest: true, Limit: 1})
		if err != nil || len(newest) == 0 {
			return 0, err
		}
		through = newest[0].Seq - 1
	}
	if through <= 0 {
		return 0, nil
	}
	recs, err := log.AuditEvents(ctx, storage.AuditQuery{After: through - 1, Limit: 1})
	if err != nil {
		return 0, err
	}
	if len(recs) == 0 || recs[0].Seq != through || recs[0].Hash == nil {
		// Purged already up to there, or not sealed yet: the next
		// round will do it.
		return 0, nil
	}
	cps, err := log.AuditCheckpoints(ctx, through-1)
	if err != nil {
		return 0, err
	}
	if len(cps) == 0 || cps[0].Seq != through {
		cp, err := SignCheckpoint(key, through, recs[0].Hash, time.Now())
		if err != nil {
			return 0, err
		}
		if err := log.AddAuditCheckpoint(ctx, cp); err != nil {
			return 0, err
		}
	}
	return log.PurgeAudit(ctx, through)
}
