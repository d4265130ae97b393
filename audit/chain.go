// Package audit makes the store's audit trail tamper-evident and answers
// questions about it (docs/audit.md).
//
// The store writes every event of a change in the change's own
// transaction, without a hash (storage.AuditLog). The Sealer then chains
// the events in order: each event's hash is the SHA-256 of the previous
// event's hash and of the event's canonical encoding (Canonical), so that
// changing, removing, inserting or reordering an event breaks the chain
// from that event on. Every so often a Checkpointer signs the hash of the
// newest sealed event with the operator's key: someone who rewrote the
// whole chain after an edit would also have to forge those signatures,
// and a checkpoint handed to someone else (an auditor, a notary) keeps
// even the operator from rewriting what came before it unnoticed.
// Verify walks the trail and says that it is intact or names the first
// event that is not.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/carepost/carepost/storage"
)

// TimeFormat is how times are written in the canonical encoding and in
// exports: UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Canonical is the encoding an event's hash covers: a JSON array of its
// sequence number, time, actor, mechanism, source, action, object,
// outcome and details (an object whose keys are sorted), with no spaces.
// Every field is in it, so that none can change unnoticed.
func Canonical(r storage.AuditRecord) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	b.WriteString(strconv.FormatInt(r.Seq, 10))
	for _, s := range []string{r.Time.UTC().Format(TimeFormat), r.Actor, r.Mechanism, r.Source, r.Action, r.Object, r.Outcome} {
		b.WriteByte(',')
		writeString(&b, s)
	}
	b.WriteString(",{")
	keys := make([]string, 0, len(r.Details))
	for k := range r.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(&b, k)
		b.WriteByte(':')
		writeString(&b, r.Details[k])
	}
	b.WriteString("}]")
	return b.Bytes()
}

func writeString(b *bytes.Buffer, s string) {
	// Most strings need no escape: written as they are, the same bytes
	// that encoding/json writes, without its allocations (verify reads
	// 100,000 events a second).
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	if plain {
		b.WriteByte('"')
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
	enc, _ := json.Marshal(s) // a string always encodes
	b.Write(enc)
}

// Hash is an event's hash in the chain: SHA-256 of the previous event's
// hash (nothing for the first event) and of Canonical(r).
func Hash(prev []byte, r storage.AuditRecord) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(Canonical(r))
	return h.Sum(nil)
}

// truncate brings a time to what the store keeps (milliseconds, UTC).
func truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }
