package storage

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// The audit trail as the store keeps it (package audit chains, signs and
// verifies it; docs/audit.md).
//
// An event that records a change is written by the backend in the same
// transaction as the change (a delivery, an APPEND, a flag change, a
// copy, a move, an expunge, a mailbox created, renamed or deleted), so
// that a crash keeps both or neither. Events that record no change (a
// login, a read of a message) are appended with AppendAudit. Every event
// gets the next sequence number of the store, in commit order, and no
// hash: the sealer (audit.Sealer) reads the unsealed events in order and
// seals each with the hash of the chain (SealAudit), so that the write of
// a change never waits for the chain.

// AuditRecord is one event of the audit trail.
type AuditRecord struct {
	// Seq is the event's number in the store, from 1, in commit order.
	Seq int64
	// Time is when it happened (UTC, milliseconds).
	Time time.Time
	// Actor is who acted: a mailbox address, "peer:" and a certificate
	// subject for another operator, or "system".
	Actor string
	// Mechanism is how the actor authenticated (auth.Mechanism), "" for
	// the system.
	Mechanism string
	// Source is the remote address ("ip:port"), "" for a local actor.
	Source string
	// Action is what was done, a dotted name ("message.append").
	Action string
	// Object is what it was done to: a Message-ID, a mailbox, a message
	// ("mailbox-address/Folder;UID=n"), a directory entry.
	Object string
	// Outcome is "ok", or what went wrong ("refused", "failed").
	Outcome string
	// Details are more facts, never a password, a token, a key or a
	// message's content.
	Details map[string]string
	// Hash is the event's hash in the chain (audit.Chain), nil until it is
	// sealed.
	Hash []byte
	// Account is the mail account (a mailbox's canonical address) whose
	// data the event concerns, "" for none: the owner of a mailbox read,
	// changed or delivered to, the account a login tried. It indexes the
	// owner's access history (AuditQuery.Account) and is not part of the
	// chain (audit.Canonical): the object and details the chain covers
	// name the mailbox already. A backend resolves it when the event is
	// written; an address that is no account of the store is recorded as
	// none. AuditEvents sets it on what it returns.
	Account string
}

// AuditQuery selects events (AuditEvents). Zero fields select all.
type AuditQuery struct {
	After  int64     // events with Seq > After
	Since  time.Time // events at or after Since
	Actor  string    // exact actor
	Object string    // events whose Object contains this text
	Action string    // exact action
	// Account selects the events that concern this account (its
	// canonical address; AuditRecord.Account), through an index.
	Account string
	Limit   int  // at most Limit events (0: no limit)
	Sealed  bool // only sealed events
	Newest  bool // newest first
}

// AuditCheckpoint is a signed statement of the chain's head: the event Seq
// had hash Hash, signed by the operator (audit.Checkpoint).
type AuditCheckpoint struct {
	Seq       int64
	Hash      []byte
	Time      time.Time
	Signature []byte // over audit.CheckpointMessage(Seq, Hash, Time)
}

// AuditLog is the audit trail of a store.
type AuditLog interface {
	// AppendAudit appends events that record no change of the store. It
	// returns once they are committed (not necessarily synced: a power
	// cut may lose the last second of them).
	AppendAudit(ctx context.Context, recs []AuditRecord) error
	// UnsealedAudit returns up to limit events without a hash, in Seq
	// order, and the hash of the event just before the first of them
	// (nil when there is none).
	UnsealedAudit(ctx context.Context, limit int) (prev []byte, recs []AuditRecord, err error)
	// SealAudit records the hashes of events returned by UnsealedAudit.
	// It refuses to seal an event that is sealed already or whose
	// predecessor is not: the chain is sealed in order, once.
	SealAudit(ctx context.Context, recs []AuditRecord) error
	// AuditEvents reads events in Seq order.
	AuditEvents(ctx context.Context, q AuditQuery) ([]AuditRecord, error)
	// AddAuditCheckpoint stores a checkpoint, unless the event has one
	// already (`carepost audit checkpoint` beside the server's sealer):
	// the first stays. AuditCheckpoints returns those after Seq after, in
	// order.
	AddAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
	AuditCheckpoints(ctx context.Context, after int64) ([]AuditCheckpoint, error)
	// PurgeAudit removes the events up to and including event through,
	// and the checkpoints before it (retention), in one transaction, and
	// returns how many events it removed. It refuses unless a checkpoint
	// at through holds that event's hash (the checkpoint then vouches for
	// the chain that remains: audit.Verifier), and unless a newer event
	// remains, so that a sequence number is never given twice.
	PurgeAudit(ctx context.Context, through int64) (int64, error)
}

// FormatUIDs writes UIDs for an event's details, in the order given:
// "3,5,7".
func FormatUIDs(uids []uint32) string {
	var b strings.Builder
	for i, u := range uids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(u), 10))
	}
	return b.String()
}
