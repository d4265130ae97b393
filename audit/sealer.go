package audit

import (
	"bytes"
	"context"
	"log/slog"
	"time"

	"github.com/carepost/carepost/storage"
)

// Sealer chains the events the store wrote (storage.AuditLog), in order,
// a batch at a time. One runs per server; on SQLite a single server holds
// a data directory, and the events that the command line writes beside it
// are sealed by it too. In a cluster one node at a time must run it (the
// sealing itself refuses to seal out of order, so two would fail, not
// fork the chain).
type Sealer struct {
	Log storage.AuditLog
	// Every is how often it looks for new events; 0 means one second.
	Every time.Duration
	// Batch is how many events one transaction seals; 0 means 1000.
	Batch int
	// Checkpoints, when set, signs checkpoints as the chain grows.
	Checkpoints *Checkpointer
	Logger      *slog.Logger
}

// SealOnce seals every event waiting, a batch at a time, and returns how
// many it sealed.
func (s *Sealer) SealOnce(ctx context.Context) (int, error) {
	batch := s.Batch
	if batch <= 0 {
		batch = 1000
	}
	total := 0
	for {
		prev, recs, err := s.Log.UnsealedAudit(ctx, batch)
		if err != nil || len(recs) == 0 {
			return total, err
		}
		for i := range recs {
			recs[i].Hash = Hash(prev, recs[i])
			prev = recs[i].Hash
		}
		if err := s.Log.SealAudit(ctx, recs); err != nil {
			return total, err
		}
		total += len(recs)
		last := recs[len(recs)-1]
		if err := s.Checkpoints.Maybe(ctx, last.Seq, last.Hash, false); err != nil {
			return total, err
		}
		if len(recs) < batch {
			return total, nil
		}
	}
}

// Run seals until ctx is done, then seals what is left once more.
func (s *Sealer) Run(ctx context.Context) {
	every := s.Every
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := s.SealOnce(final); err != nil {
				s.logger().Error("audit: sealing the last events failed", "err", err)
			}
			if err := s.checkpointHead(final); err != nil {
				s.logger().Error("audit: the last checkpoint failed", "err", err)
			}
			return
		case <-t.C:
			if _, err := s.SealOnce(ctx); err != nil && ctx.Err() == nil {
				s.logger().Error("audit: sealing failed", "err", err)
			}
		}
	}
}

func (s *Sealer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// sameHash compares two hashes.
func sameHash(a, b []byte) bool { return bytes.Equal(a, b) }

// checkpointHead signs a checkpoint of the newest sealed event, if it has
// none (at shutdown, so that the trail's end is vouched for).
func (s *Sealer) checkpointHead(ctx context.Context) error {
	if s.Checkpoints == nil {
		return nil
	}
	recs, err := s.Log.AuditEvents(ctx, storage.AuditQuery{Sealed: true, Newest: true, Limit: 1})
	if err != nil || len(recs) == 0 {
		return err
	}
	return s.Checkpoints.Maybe(ctx, recs[0].Seq, recs[0].Hash, true)
}
