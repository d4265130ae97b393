package queue

import (
	"strconv"
	"strings"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// The audit events of the outbound queue (SPEC §9: relay attempt and
// result, with the remote server's reply; DSN), by the system, whose
// object is the message's Message-ID (storage.QueueEntry.MessageID), so
// that `carepost trace` finds them beside the message's other events. They
// concern the sender's account when the sender is one of ours.

// Outcomes of a relay attempt for one recipient.
const (
	outcomeDelivered = "delivered" // 250 after DATA
	outcomeDeferred  = "deferred"  // a temporary failure: tried again
)

// auditAttempt records what one attempt did for one recipient.
func (r *Runner) auditAttempt(e *storage.QueueEntry, rc storage.QueueRecipient) {
	if r.opts.Audit == nil {
		return
	}
	outcome := outcomeDeferred
	switch rc.State {
	case storage.QueueDelivered:
		outcome = outcomeDelivered
	case storage.QueueFailed:
		outcome = audit.OutcomeFailed
	}
	r.opts.Audit.Record(storage.AuditRecord{Actor: "system", Action: "relay.attempt",
		Object: e.MessageID, Outcome: outcome, Account: strings.ToLower(e.From),
		Details: map[string]string{"rcpt": rc.Address, "reply": rc.LastError, "queue_id": strconv.FormatInt(e.ID, 10),
			"attempt": strconv.Itoa(e.Attempts + 1)}})
}

// auditDSN records the delivery status notification sent to the sender
// for the recipients that failed (err: its delivery's error, nil if
// delivered).
func (r *Runner) auditDSN(e *storage.QueueEntry, failed []storage.QueueRecipient, err error) {
	if r.opts.Audit == nil {
		return
	}
	rcpts := make([]string, len(failed))
	for i, rc := range failed {
		rcpts[i] = rc.Address
	}
	outcome := audit.OutcomeOK
	d := map[string]string{"to": e.From, "failed": strings.Join(rcpts, ","), "queue_id": strconv.FormatInt(e.ID, 10)}
	if err != nil {
		outcome = audit.OutcomeFailed
		if re, ok := refusal.As(err); ok && !re.Temporary() {
			outcome = audit.OutcomeRefused
		}
		d["error"] = err.Error()
	}
	r.opts.Audit.Record(storage.AuditRecord{Actor: "system", Action: "dsn",
		Object: e.MessageID, Outcome: outcome, Account: strings.ToLower(e.From), Details: d})
}
