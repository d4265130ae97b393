package audit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/storage"
)

// Events older than the retention go, with a checkpoint at the last one
// purged; what remains verifies with the operator's key, and a purge
// never takes the newest event nor unsealed ones.
func TestPurge(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	db, _ := trail(t, 10, key) // checkpoints at 4 and 8
	old := time.Now().Add(-400 * 24 * time.Hour)
	// Ten events, then two more.
	recs, err := db.AuditEvents(t.Context(), storage.AuditQuery{})
	if err != nil || len(recs) != 10 {
		t.Fatal(len(recs), err)
	}
	if _, err := audit.Purge(t.Context(), db, nil, time.Now()); err == nil {
		t.Fatal("purged without a key")
	}
	if err := db.AppendAudit(t.Context(), []storage.AuditRecord{{Action: "x.new"}, {Action: "x.new"}}); err != nil {
		t.Fatal(err)
	}
	// Not sealed yet: event 11 is the one before the first recent one,
	// but it is not sealed, so nothing is purged.
	cutoff := time.Now().Add(time.Hour)
	if n, err := audit.Purge(t.Context(), db, key, cutoff); err != nil || n != 0 {
		t.Fatalf("Purge before sealing = %d, %v", n, err)
	}
	s := &audit.Sealer{Log: db}
	if _, err := s.SealOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A cutoff before every event purges nothing.
	if n, err := audit.Purge(t.Context(), db, key, old); err != nil || n != 0 {
		t.Fatalf("Purge(old) = %d, %v", n, err)
	}
	// Every event is older than the cutoff: all but the newest go.
	n, err := audit.Purge(t.Context(), db, key, cutoff)
	if err != nil || n != 11 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	rep := verify(t, db, key)
	if !rep.Intact() || rep.FirstSeq != 12 || rep.Events != 1 {
		t.Fatalf("after the purge: %+v %+v", rep, rep.Broken)
	}
	// Once more: nothing left to purge.
	if n, err := audit.Purge(t.Context(), db, key, cutoff); err != nil || n != 0 {
		t.Fatalf("second Purge = %d, %v", n, err)
	}
	// The trail still verifies after the second (empty) round.
	if rep := verify(t, db, key); !rep.Intact() {
		t.Fatal(rep.Broken)
	}
}

// A purge at an existing checkpoint reuses it.
func TestPurgeAtCheckpoint(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	db, raw := trail(t, 10, key) // checkpoints at 4 and 8
	// Events 1..8 are a year old.
	exec(t, raw, `UPDATE audit_events SET at = at - 366*86400000 WHERE seq <= 8`)
	// Rehash: the times are in the chain. Rewrite as the trail would
	// have been written then.
	recs, _ := db.AuditEvents(t.Context(), storage.AuditQuery{})
	var prev []byte
	for _, r := range recs {
		prev = audit.Hash(prev, r)
		exec(t, raw, `UPDATE audit_hashes SET hash = ? WHERE seq = ?`, prev, r.Seq)
	}
	exec(t, raw, `DELETE FROM audit_checkpoints`)
	cp, _ := audit.SignCheckpoint(key, 8, mustHash(t, db, 8), time.Now())
	if err := db.AddAuditCheckpoint(t.Context(), cp); err != nil {
		t.Fatal(err)
	}
	n, err := audit.Purge(t.Context(), db, key, time.Now().Add(-24*time.Hour))
	if err != nil || n != 8 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	cps, _ := db.AuditCheckpoints(t.Context(), 0)
	if len(cps) != 1 || cps[0].Seq != 8 || !cps[0].Time.Equal(cp.Time) {
		t.Fatalf("checkpoints: %+v", cps)
	}
	if rep := verify(t, db, key); !rep.Intact() || rep.FirstSeq != 9 {
		t.Fatalf("after the purge: %+v %+v", rep, rep.Broken)
	}
	// An edit of the first kept event is found.
	exec(t, raw, `UPDATE audit_events SET actor = 'mallory' WHERE seq = 9`)
	if rep := verify(t, db, key); rep.Intact() || rep.Broken.Seq != 9 {
		t.Fatalf("edit after the purge: %+v", rep)
	}
}

func mustHash(t *testing.T, db storage.AuditLog, seq int64) []byte {
	t.Helper()
	recs, err := db.AuditEvents(t.Context(), storage.AuditQuery{After: seq - 1, Limit: 1})
	if err != nil || len(recs) != 1 {
		t.Fatal(err)
	}
	return recs[0].Hash
}

// Canonical writes strings as encoding/json does, with or without its
// fast path.
func FuzzCanonicalString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b", "<&>", "é", "\x00\x7f", "\\", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := string(audit.Canonical(storage.AuditRecord{Actor: s, Details: map[string]string{s: s}}))
		enc, _ := json.Marshal(s)
		want := `[0,"0001-01-01T00:00:00.000Z",` + string(enc) + `,"","","","","",{` + string(enc) + ":" + string(enc) + "}]"
		if got != want {
			t.Fatalf("Canonical with %q:\n%s\nwant\n%s", s, got, want)
		}
	})
}

// sealBetweenPages is a trail whose sealer runs between the first and the
// second page that Verify reads, as a running server's may.
type sealBetweenPages struct {
	storage.AuditLog
	sealed bool
	t      *testing.T
}

func (s *sealBetweenPages) AuditEvents(ctx context.Context, q storage.AuditQuery) ([]storage.AuditRecord, error) {
	if q.After > 0 && !s.sealed {
		s.sealed = true
		if _, err := (&audit.Sealer{Log: s.AuditLog}).SealOnce(ctx); err != nil {
			s.t.Fatal(err)
		}
	}
	return s.AuditLog.AuditEvents(ctx, q)
}

// Verify beside a sealer: events sealed while it walks are no break.
func TestVerifyBesideSealer(t *testing.T) {
	db, _ := trail(t, 9995, nil)
	var recs []storage.AuditRecord
	for range 20 {
		recs = append(recs, storage.AuditRecord{Action: "imap.login"})
	}
	if err := db.AppendAudit(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(t.Context(), &sealBetweenPages{AuditLog: db, t: t}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact() || rep.LastSeq != 9995 || rep.Unsealed != 5 {
		t.Fatalf("report: %+v %+v", rep, rep.Broken)
	}
}
