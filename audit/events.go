package audit

import (
	"slices"

	"github.com/carepost/carepost/storage"
)

// Words of the events the protocol adapters record (storage.AuditRecord).
const (
	// Anonymous is the actor of what a remote party does before it is
	// authenticated (a connection, a login that fails); the event's
	// source says where from, its details what name it tried.
	Anonymous = "anonymous"

	// Outcomes: done; refused (a permanent refusal: wrong password, a
	// recipient unknown, a 5xx reply); failed (a temporary failure, ours
	// or the other side's: a 4xx reply, a store that could not answer).
	OutcomeOK      = "ok"
	OutcomeRefused = "refused"
	OutcomeFailed  = "failed"
)

// UIDList writes message UIDs for an event's details as the store writes
// them ("3,5,7": ascending, each once), so that a message's trace finds
// its UID in a read as in a change (split at the commas). uids need not
// be sorted.
func UIDList(uids []uint32) string {
	s := slices.Clone(uids)
	slices.Sort(s)
	return storage.FormatUIDs(slices.Compact(s))
}
