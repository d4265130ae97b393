package storage

import (
	"context"
	"errors"
	"time"
)

// The outbound queue: messages accepted for recipients of other operators
// of the trust space, kept until each recipient is delivered or has failed
// for good (SPEC §4 "Queue"). An entry is added by DeliverAll, in the same
// transaction as the local copies of the same message (Delivery.Queue), so
// that a message for a local and a remote recipient is in both places or
// in neither, and the 250 after DATA comes only once the entry is durable.
// The runner (queue/) claims due entries, delivers them and records what
// happened to each recipient.
//
// Contracts every backend keeps:
//   - An entry's body is stored like a message body: sealed at rest and
//     bound to a name that no other entry or message shares.
//   - Entry IDs are never reused.
//   - Claiming is exclusive: an entry claimed by one runner (owner) is not
//     claimed by another until its lease ends, in this process or in
//     another one on the same store. A runner that dies holding a claim
//     loses it when the lease ends, and the entry is tried again then.
//   - UpdateQueued and RemoveQueued with an owner succeed only while that
//     owner holds the claim (ErrQueueClaim otherwise), so that a runner
//     whose lease ended cannot overwrite what the next one recorded.

// Recipient states in the queue.
const (
	QueuePending   = "pending"   // to be tried (again)
	QueueDelivered = "delivered" // the remote server accepted it (250 after DATA)
	QueueFailed    = "failed"    // refused for good, or the entry expired
)

// QueueRecipient is one recipient of a queue entry and what happened to it.
type QueueRecipient struct {
	Address string
	State   string // QueuePending, QueueDelivered or QueueFailed
	// LastError is the last reply or error for this recipient ("" if none),
	// as the remote server gave it ("550 5.1.1 …") or as the runner
	// describes a failure to connect.
	LastError string
}

// QueueEntry is one message in the outbound queue.
type QueueEntry struct {
	ID int64
	// From is the envelope sender, "" for the null reverse-path (such an
	// entry never causes a delivery status notification).
	From       string
	Recipients []QueueRecipient
	// MessageID is the message's Message-ID (Delivery.MessageID, without
	// angle brackets, "" if it had none): the object of the audit events
	// of its relay attempts and DSN.
	MessageID string
	Size      int64 // bytes of the body
	// Created is when the message was accepted; NextAttempt when it is
	// due next; Attempts how many times it was tried.
	Created     time.Time
	NextAttempt time.Time
	Attempts    int
	// LastError is the last error of the entry as a whole ("" if none).
	LastError string
	// Owner and LeaseUntil say who claimed the entry and until when
	// ("" and the zero time when nobody holds it).
	Owner      string
	LeaseUntil time.Time
}

// Pending returns the recipients still to be tried.
func (e *QueueEntry) Pending() []QueueRecipient {
	var out []QueueRecipient
	for _, r := range e.Recipients {
		if r.State == QueuePending {
			out = append(out, r)
		}
	}
	return out
}

// Enqueue puts a version of a message in the outbound queue (a Delivery
// whose Queue is set): one entry for these recipients, due at NextAttempt
// (zero: at once).
type Enqueue struct {
	From        string
	Recipients  []string
	NextAttempt time.Time
}

// QueueUpdate is what one attempt at an entry found.
type QueueUpdate struct {
	// Recipients holds the new state of the recipients that changed (by
	// address); the others keep theirs.
	Recipients []QueueRecipient
	// LastError of the entry; NextAttempt when to try again; the attempts
	// counter grows by one.
	LastError   string
	NextAttempt time.Time
}

// Queue is the outbound queue of a store (see above). Entries are added by
// Store.DeliverAll (Delivery.Queue).
type Queue interface {
	// NextQueued returns when the earliest entry not claimed by anyone is
	// due (ok false when the queue holds none): a runner sleeps until
	// then. It only reads.
	NextQueued(ctx context.Context) (at time.Time, ok bool, err error)
	// ClaimQueued claims for owner up to limit entries due at now and not
	// claimed (or whose lease ended), until now+lease, oldest due first.
	ClaimQueued(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]QueueEntry, error)
	// OpenQueued opens the body of an entry (ErrNoQueued when gone).
	OpenQueued(ctx context.Context, id int64) (Body, error)
	// UpdateQueued records an attempt and releases owner's claim.
	UpdateQueued(ctx context.Context, id int64, owner string, u QueueUpdate) error
	// RemoveQueued deletes an entry and its body: owner's claim when
	// owner is not "" (the runner, once every recipient is done), any
	// entry when owner is "" (the operator's queue drop).
	RemoveQueued(ctx context.Context, id int64, owner string) error
	// ListQueued returns every entry, oldest first; GetQueued one.
	ListQueued(ctx context.Context) ([]QueueEntry, error)
	GetQueued(ctx context.Context, id int64) (QueueEntry, error)
	// RetryQueued makes an entry due at now (the operator's queue retry).
	// A claim under way is left alone: the runner that holds it records
	// its own next attempt.
	RetryQueued(ctx context.Context, id int64, now time.Time) error
	// ReleaseQueued gives back, without waiting for their leases, the
	// claims of every owner whose name starts with ownerPrefix, and
	// returns how many it released. A runner calls it at start for the
	// claims of a runner of the same node that died (kill -9, power
	// loss); only a caller that knows no such runner is alive may (serve
	// holds the data directory's lock).
	ReleaseQueued(ctx context.Context, ownerPrefix string) (int, error)
}

var (
	// ErrNoQueued: no queue entry of that ID.
	ErrNoQueued = errors.New("storage: no such queue entry")
	// ErrQueueClaim: the caller does not (or no longer) hold the entry's
	// claim.
	ErrQueueClaim = errors.New("storage: the queue entry is not claimed by this runner")
)
