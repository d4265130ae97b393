package audit_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
	"github.com/carepost/carepost/storage/storagetest"
)

// BenchmarkVerify walks a trail of 100,000 sealed events with a checkpoint
// every 1000 in SQLite, as `carepost audit verify` does; the issue asks
// for at least 100,000 events a second (events/s reported).
func BenchmarkVerify(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	db, err := sqlite.Open(b.TempDir(), sqlite.Options{Key: testKey, Summarize: storagetest.Summarize, Audit: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	const n = 100000
	recs := make([]storage.AuditRecord, 0, 1000)
	for i := range n {
		recs = append(recs, storage.AuditRecord{Actor: "alice@a.test", Mechanism: "PLAIN", Source: "192.0.2.1:1000",
			Action: "message.read", Object: "mailbox:1", Details: map[string]string{"uid": fmt.Sprint(i + 1), "section": "BODY[]"}})
		if len(recs) == cap(recs) {
			if err := db.AppendAudit(b.Context(), recs); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	s := &audit.Sealer{Log: db, Checkpoints: &audit.Checkpointer{Log: db, Key: key, Events: 1000}}
	if _, err := s.SealOnce(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := audit.Verify(b.Context(), db, &key.PublicKey)
		if err != nil || !rep.Intact() || rep.Events != n {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
