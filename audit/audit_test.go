package audit_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
	"github.com/carepost/carepost/storage/storagetest"
)

var testKey = bytes.Repeat([]byte{7}, 32)

// trail opens a store in a temporary directory with n sealed events, and
// a second connection to its database file to tamper with it.
func trail(t *testing.T, n int, key *ecdsa.PrivateKey) (*sqlite.DB, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	db, err := sqlite.Open(dir, sqlite.Options{Key: testKey, Summarize: storagetest.Summarize, Audit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var recs []storage.AuditRecord
	for i := range n {
		recs = append(recs, storage.AuditRecord{Actor: "alice@a.test", Mechanism: "PLAIN", Source: "192.0.2.1:1000",
			Action: "message.read", Object: "mailbox:1", Details: map[string]string{"uid": fmt.Sprint(i + 1)}})
	}
	if err := db.AppendAudit(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	var cp *audit.Checkpointer
	if key != nil {
		cp = &audit.Checkpointer{Log: db, Key: key, Events: 4}
	}
	s := &audit.Sealer{Log: db, Batch: 3, Checkpoints: cp}
	if got, err := s.SealOnce(t.Context()); err != nil || got != n {
		t.Fatalf("SealOnce = %d, %v", got, err)
	}
	// A busy timeout: the store beside it may be writing (its sealer,
	// its pruning); tampering waits for the lock like any writer.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "carepost.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return db, raw
}

func verify(t *testing.T, db storage.AuditLog, key *ecdsa.PrivateKey) audit.Report {
	t.Helper()
	var pub any
	if key != nil {
		pub = &key.PublicKey
	}
	rep, err := audit.Verify(t.Context(), db, pub)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func exec(t *testing.T, raw *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := raw.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestIntact(t *testing.T) {
	db, _ := trail(t, 10, nil)
	rep := verify(t, db, nil)
	if !rep.Intact() || rep.Events != 10 || rep.FirstSeq != 1 || rep.LastSeq != 10 || rep.Unsealed != 0 {
		t.Fatalf("report: %+v", rep)
	}
	// New events wait for the sealer: counted, not a break.
	if err := db.AppendAudit(t.Context(), []storage.AuditRecord{{Action: "x.y"}}); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, db, nil); !rep.Intact() || rep.Unsealed != 1 {
		t.Fatalf("with an unsealed event: %+v", rep)
	}
}

// Each way of tampering is found, and the report names the event.
func TestTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, raw *sql.DB)
		seq    int64
	}{
		{"changed byte", func(t *testing.T, raw *sql.DB) {
			exec(t, raw, `UPDATE audit_events SET actor = 'mallory@a.test' WHERE seq = 5`)
		}, 5},
		{"changed detail", func(t *testing.T, raw *sql.DB) {
			exec(t, raw, `UPDATE audit_events SET details = '{"uid":"99"}' WHERE seq = 7`)
		}, 7},
		{"changed time", func(t *testing.T, raw *sql.DB) {
			exec(t, raw, `UPDATE audit_events SET at = at + 1 WHERE seq = 2`)
		}, 2},
		{"removed", func(t *testing.T, raw *sql.DB) {
			exec(t, raw, `DELETE FROM audit_events WHERE seq = 4`)
		}, 4},
		{"removed and renumbered", func(t *testing.T, raw *sql.DB) {
			exec(t, raw, `DELETE FROM audit_events WHERE seq = 4`)
			exec(t, raw, `UPDATE audit_events SET seq = seq - 1 WHERE seq > 4`)
		}, 4},
		{"inserted", func(t *testing.T, raw *sql.DB) {
			exec(t, raw, `UPDATE audit_events SET seq = seq + 100 WHERE seq > 6`)
			exec(t, raw, `UPDATE audit_events SET seq = seq - 99 WHERE seq > 100`)
			exec(t, raw, `INSERT INTO audit_events (seq, at, actor, action) SELECT 7, at, 'mallory@a.test', 'message.read' FROM audit_events WHERE seq = 6`)
		}, 7},
		{"swapped", func(t *testing.T, raw *sql.DB) {
			exec(t, raw, `UPDATE audit_events SET seq = 100 WHERE seq = 3`)
			exec(t, raw, `UPDATE audit_events SET seq = 3 WHERE seq = 8`)
			exec(t, raw, `UPDATE audit_events SET seq = 8 WHERE seq = 100`)
		}, 3},
		{"removed at the end", func(t *testing.T, raw *sql.DB) {
			exec(t, raw, `DELETE FROM audit_events WHERE seq > 8`)
		}, 0}, // no checkpoint there: a removal at the end is seen by checkpoints only
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, raw := trail(t, 10, nil)
			tc.tamper(t, raw)
			rep := verify(t, db, nil)
			if tc.seq == 0 {
				if !rep.Intact() || rep.LastSeq != 8 {
					t.Fatalf("report: %+v", rep)
				}
				return
			}
			if rep.Intact() || rep.Broken.Seq != tc.seq {
				t.Fatalf("report: %+v, broken %+v; want event %d named", rep, rep.Broken, tc.seq)
			}
		})
	}
}

// A chain rewritten whole after an edit (every hash recomputed) still
// fails at the signed checkpoints, as does a removal at the end that a
// checkpoint covered, or a forged checkpoint.
func TestCheckpoints(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	t.Run("intact", func(t *testing.T) {
		db, _ := trail(t, 10, key)
		rep := verify(t, db, key)
		if !rep.Intact() || rep.Checkpoints < 2 || rep.LastCheckpoint == nil {
			t.Fatalf("report: %+v", rep)
		}
		if rep := verify(t, db, nil); !rep.Intact() || rep.SignedUnverified == 0 {
			t.Fatalf("without the key: %+v", rep)
		}
	})
	t.Run("rewritten", func(t *testing.T) {
		db, raw := trail(t, 10, key)
		exec(t, raw, `UPDATE audit_events SET actor = 'mallory@a.test' WHERE seq = 2`)
		// Recompute every hash, as someone with the database but not
		// the operator's key would.
		recs, err := db.AuditEvents(t.Context(), storage.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var prev []byte
		for _, r := range recs {
			prev = audit.Hash(prev, r)
			exec(t, raw, `UPDATE audit_hashes SET hash = ? WHERE seq = ?`, prev, r.Seq)
		}
		rep := verify(t, db, key)
		if rep.Intact() || !strings.Contains(rep.Broken.Reason, "checkpoint") {
			t.Fatalf("report: %+v %+v", rep, rep.Broken)
		}
	})
	t.Run("removed at the end", func(t *testing.T) {
		db, raw := trail(t, 10, key)
		exec(t, raw, `DELETE FROM audit_events WHERE seq > 5`)
		rep := verify(t, db, key)
		if rep.Intact() {
			t.Fatalf("report: %+v", rep)
		}
	})
	t.Run("forged signature", func(t *testing.T) {
		db, raw := trail(t, 10, key)
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cps, _ := db.AuditCheckpoints(t.Context(), 0)
		c, err := audit.SignCheckpoint(other, cps[0].Seq, cps[0].Hash, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		exec(t, raw, `UPDATE audit_checkpoints SET signature = ?, at = ? WHERE seq = ?`, c.Signature, c.Time.UnixMilli(), c.Seq)
		rep := verify(t, db, key)
		if rep.Intact() || rep.Broken.Seq != c.Seq || !strings.Contains(rep.Broken.Reason, "signature") {
			t.Fatalf("report: %+v %+v", rep, rep.Broken)
		}
	})
}

// The events a change writes are sealed like the others.
func TestSealerRun(t *testing.T) {
	db, _ := trail(t, 0, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	s := &audit.Sealer{Log: db, Every: 10 * time.Millisecond}
	go func() { s.Run(ctx); close(done) }()
	if err := db.CreateAccount(t.Context(), "dan@d.test"); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(t.Context(), []storage.AuditRecord{{Action: "login", Actor: "dan@d.test"}}); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done // Run seals what is left before it returns
	rep := verify(t, db, nil)
	if !rep.Intact() || rep.Events == 0 || rep.Unsealed != 0 {
		t.Fatalf("report: %+v", rep)
	}
}
