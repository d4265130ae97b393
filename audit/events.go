package audit

import (
	"slices"
	"strconv"
	"strings"
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

// UIDList writes message UIDs compactly for an event's details, as IMAP
// writes a set (RFC 9051 §9, sequence-set): "3:7,9,12:13". uids need not
// be sorted; duplicates are dropped.
func UIDList(uids []uint32) string {
	s := slices.Clone(uids)
	slices.Sort(s)
	s = slices.Compact(s)
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(s[i]), 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(s[j]), 10))
		}
		i = j + 1
	}
	return b.String()
}

// UIDListContains tells whether a list of UIDs written by UIDList (or as
// the store writes them, "3,5,7") names uid: how a message's trace finds
// the reads and changes of that message in its mailbox's events. A part
// that is not a number or a range is skipped.
func UIDListContains(list string, uid uint32) bool {
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			continue
		}
		z := a
		if isRange {
			if z, err = strconv.ParseUint(hi, 10, 32); err != nil {
				continue
			}
			if z < a {
				a, z = z, a // RFC 9051 §9: "4:2" is 2, 3 and 4
			}
		}
		if uint64(uid) >= a && uint64(uid) <= z {
			return true
		}
	}
	return false
}
