package audit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carepost/carepost/storage"
)

// Recorder writes the events that record no change of the store (a
// connection, a login, a read of a message: storage.AuditLog.AppendAudit)
// in batches, so that the command that caused one never waits for a
// commit: Record puts the event in a buffer and returns, and the buffer is
// written in one AppendAudit every RecorderEvery, or as soon as it holds
// RecorderBatch events.
//
// Memory is bounded, and nothing is dropped to keep it so: an access to
// health data must never go unrecorded. When RecorderMax events wait
// (the store is slower than the events come, or failing), Record writes
// the buffer itself before it returns, so the protocol command that
// records then waits for that commit: back-pressure instead of loss. A
// write that fails is kept and tried again with the next one; only when
// the store keeps failing with RecorderMax events waiting does an event
// go to the error log instead (its actor, action, object and outcome),
// where an operator still finds it, and the failed count grows.
//
// Times are taken by Record (the moment of the access), not at the
// write. Events of one Recorder reach the store in the order they were
// recorded. A nil *Recorder records nothing (audit off, tests). Safe for
// concurrent use.
type Recorder struct {
	log    storage.AuditLog
	logger *slog.Logger

	mu      sync.Mutex
	buf     []storage.AuditRecord // guarded by mu
	closed  bool                  // guarded by mu
	writeMu sync.Mutex            // one write at a time, in order

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	written, failed atomic.Uint64
}

// The Recorder's bounds.
const (
	// RecorderEvery is the longest an event waits in the buffer.
	RecorderEvery = time.Second
	// RecorderBatch events start a write at once.
	RecorderBatch = 256
	// RecorderMax events waiting make Record write them itself
	// (a few hundred bytes each: about a megabyte).
	RecorderMax = 4096
	// recorderTimeout bounds one write.
	recorderTimeout = 30 * time.Second
)

// NewRecorder returns a Recorder writing to log, started; Close stops it.
func NewRecorder(log storage.AuditLog, logger *slog.Logger) *Recorder {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Recorder{log: log, logger: logger, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

// Record adds an event; see Recorder for when it is written. Its Time is
// now when zero.
func (r *Recorder) Record(rec storage.AuditRecord) {
	if r == nil {
		return
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	r.mu.Lock()
	if r.closed {
		// After Close (a session that outlived the listeners): written
		// at once.
		r.mu.Unlock()
		r.write([]storage.AuditRecord{rec}, true)
		return
	}
	r.buf = append(r.buf, rec)
	n := len(r.buf)
	r.mu.Unlock()
	switch {
	case n >= RecorderMax:
		r.Flush()
	case n >= RecorderBatch:
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// Flush writes every event waiting, and returns once they are committed
// (or the write failed: they wait for the next one).
func (r *Recorder) Flush() {
	if r == nil {
		return
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.Lock()
	recs := r.buf
	r.buf = nil
	r.mu.Unlock()
	if len(recs) == 0 {
		return
	}
	if r.write(recs, false) {
		return
	}
	// Kept for the next write, before the events recorded meanwhile, so
	// that the order holds; past RecorderMax the oldest go to the log.
	r.mu.Lock()
	recs = append(recs, r.buf...)
	if over := len(recs) - RecorderMax; over > 0 {
		r.lost(recs[:over])
		recs = recs[over:]
	}
	r.buf = recs
	r.mu.Unlock()
}

// write appends recs in one AppendAudit and reports whether it
// succeeded. A failure is logged; final says the events are lost with it.
func (r *Recorder) write(recs []storage.AuditRecord, final bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), recorderTimeout)
	defer cancel()
	if err := r.log.AppendAudit(ctx, recs); err != nil {
		if final {
			r.logger.Error("audit: events could not be written", "events", len(recs), "err", err)
			r.lost(recs)
		} else {
			r.logger.Error("audit: events could not be written; they are kept for the next write", "events", len(recs), "err", err)
		}
		return false
	}
	r.written.Add(uint64(len(recs)))
	return true
}

// lost puts events that cannot be written into the error log.
func (r *Recorder) lost(recs []storage.AuditRecord) {
	r.failed.Add(uint64(len(recs)))
	for _, e := range recs {
		r.logger.Error("audit: event not written to the trail", "time", e.Time.UTC().Format(TimeFormat), "actor", e.Actor,
			"source", e.Source, "action", e.Action, "object", e.Object, "outcome", e.Outcome)
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	t := time.NewTicker(RecorderEvery)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		case <-r.kick:
		}
		r.Flush()
	}
}

// Close writes what waits and stops the Recorder; events recorded after
// it are written one by one. Call it once the listeners stopped, before
// the store closes.
func (r *Recorder) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	close(r.stop)
	<-r.done
	r.Flush()
	r.mu.Lock()
	left := r.buf
	r.buf = nil
	r.mu.Unlock()
	if len(left) > 0 {
		r.lost(left) // the last write failed: the log keeps them
	}
	return nil
}

// RecorderStats counts the events a Recorder wrote, and those it could
// not write (logged instead).
type RecorderStats struct {
	Written, Failed uint64
}

// Stats returns the counts so far.
func (r *Recorder) Stats() RecorderStats {
	if r == nil {
		return RecorderStats{}
	}
	return RecorderStats{Written: r.written.Load(), Failed: r.failed.Load()}
}
