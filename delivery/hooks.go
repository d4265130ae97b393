package delivery

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/carepost/carepost/storage"
)

// Hook is work that follows a durable commit and must never hold the
// client: the DMP deposit, receipts, notifications. It runs after the
// client has its answer, and again after a delay when it fails.
type Hook interface {
	Name() string
	// AfterCommit does the work for one message. An error is logged and
	// the call retried later (HookRunner); it must therefore be safe to
	// run more than once for the same message.
	AfterCommit(ctx context.Context, m *Delivered) error
}

// Delivered is a message the path committed.
type Delivered struct {
	ID     string // the transaction's identifier
	Source Source
	From   string // envelope sender ("" for the null reverse-path or APPEND)
	// Append is true for a message a user stored with IMAP APPEND (or
	// later the portal's drafts): no recipient, no transfer.
	Append bool
	// Copies are the stored copies, one per recipient (or the one of an
	// APPEND), with the address each went to.
	Copies []DeliveredCopy
	Size   int64 // bytes as received
	At     time.Time
}

// DeliveredCopy is one stored copy of the message.
type DeliveredCopy struct {
	Address string // the recipient, or the account of an APPEND
	storage.Appended
}

// HookRunner runs after-commit hooks on goroutines of its own, retrying
// each failed call with a growing delay.
//
// This runner keeps its work in memory: a hook that has not succeeded
// when the process stops is not run again after a restart. The work
// becomes durable with the audit outbox (an outbox row written in the
// same transaction as the message, read by the runner), which the
// traceability work adds; until then a hook that must not be lost (the
// DMP deposit) has to keep its own record. It holds in one process only.
type HookRunner struct {
	hooks []Hook
	log   *slog.Logger
	// Attempts is how many times a failing call is tried in all; Delay
	// the wait before the first retry, doubled at each retry up to
	// MaxDelay.
	Attempts        int
	Delay, MaxDelay time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sem    chan struct{}
}

// NewHookRunner returns a runner of hooks, running at most workers calls
// at once (0: 4).
func NewHookRunner(log *slog.Logger, workers int, hooks ...Hook) *HookRunner {
	if workers <= 0 {
		workers = 4
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &HookRunner{hooks: hooks, log: log, Attempts: 8, Delay: time.Second, MaxDelay: 5 * time.Minute,
		ctx: ctx, cancel: cancel, sem: make(chan struct{}, workers)}
}

// Add registers a hook; call it before the first message.
func (h *HookRunner) Add(hook Hook) { h.hooks = append(h.hooks, hook) }

// run starts every hook for m and returns at once.
func (h *HookRunner) run(m *Delivered) {
	if h == nil {
		return
	}
	for _, hook := range h.hooks {
		h.wg.Add(1)
		go h.runOne(hook, m)
	}
}

func (h *HookRunner) runOne(hook Hook, m *Delivered) {
	defer h.wg.Done()
	delay := h.Delay
	for attempt := 1; ; attempt++ {
		select {
		case h.sem <- struct{}{}:
		case <-h.ctx.Done():
			h.log.Warn("after-commit hook not run: server stopping", "hook", hook.Name(), "tx", m.ID)
			return
		}
		err := h.call(hook, m)
		<-h.sem
		if err == nil {
			return
		}
		if attempt >= h.Attempts {
			h.log.Error("after-commit hook failed, giving up", "hook", hook.Name(), "tx", m.ID, "attempts", attempt, "err", err)
			return
		}
		h.log.Warn("after-commit hook failed, will retry", "hook", hook.Name(), "tx", m.ID, "attempt", attempt, "in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-h.ctx.Done():
			t.Stop()
			h.log.Warn("after-commit hook abandoned: server stopping", "hook", hook.Name(), "tx", m.ID)
			return
		}
		delay = min(2*delay, h.MaxDelay)
	}
}

// call runs one attempt; a panic is an error of that attempt.
func (h *HookRunner) call(hook Hook, m *Delivered) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError{r}
		}
	}()
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
	defer cancel()
	return hook.AfterCommit(ctx, m)
}

type panicError struct{ v any }

func (p panicError) Error() string { return "panic in hook" }

// Close stops retrying, lets the calls under way end (their context is
// cancelled), and waits for them.
func (h *HookRunner) Close() {
	if h == nil {
		return
	}
	h.cancel()
	h.wg.Wait()
}

// Wait waits until no hook call is running or waiting to be retried
// (tests).
func (h *HookRunner) Wait() { h.wg.Wait() }
