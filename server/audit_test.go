package server_test

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
	"github.com/carepost/carepost/storage"
)

// serverPublicKey is the server certificate's public key, as an auditor
// holding the operator's certificate has it.
func serverPublicKey(t *testing.T, srv *server.Server) any {
	t.Helper()
	leaf, err := x509.ParseCertificate(srv.TLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.PublicKey
}

// The server seals what is written while it runs and, at its stop, signs
// a last checkpoint with the server certificate's key; events past the
// retention are purged at the next start and the trail still verifies.
func TestAuditSealedAndRetained(t *testing.T) {
	inst := servertest.Start(t)
	if inst.Audit == nil {
		t.Fatal("the audit trail is off by default")
	}
	ctx := t.Context()
	before, err := inst.Audit.AuditEvents(ctx, storage.AuditQuery{})
	if err != nil || len(before) != 0 {
		t.Fatalf("a fresh server's trail: %d events, %v", len(before), err)
	}
	// Events of two years ago, then a change of today.
	old := time.Now().Add(-2 * 365 * 24 * time.Hour)
	var recs []storage.AuditRecord
	for range 5 {
		recs = append(recs, storage.AuditRecord{Time: old, Action: "imap.login", Actor: "alice@carepost.test"})
	}
	if err := inst.Audit.AppendAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	inst.AddProfessional("alice", "correct horse battery")
	pub := serverPublicKey(t, inst.Server)
	cfg := inst.Config
	inst.Stop()

	// Stopped: everything sealed, the head checkpointed and signed.
	closed, err := server.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(ctx, closed.Store, pub)
	closed.Close()
	if err != nil || !rep.Intact() || rep.Unsealed != 0 || rep.LastCheckpoint == nil || rep.LastCheckpoint.Seq != rep.LastSeq {
		t.Fatalf("after the stop: %+v, %v", rep, err)
	}

	inst.Resume()
	// The retention runs in the background after the start: wait for
	// it (the first start's pass may have run after the old events were
	// written, purging all but the newest of them then: the second start
	// purges the fifth).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rep, err = audit.Verify(ctx, inst.Audit, pub)
		if err != nil {
			t.Fatal(err)
		}
		if rep.FirstSeq == 6 || time.Now().After(deadline) {
			break
		}
	}
	if !rep.Intact() || rep.Checkpoints == 0 || rep.SignedUnverified != 0 {
		t.Fatalf("report: %+v %+v", rep, rep.Broken)
	}
	// The old events were the first: the start purged them, with a
	// checkpoint at the last one.
	if rep.FirstSeq != 6 {
		t.Fatalf("first event kept: %d, want 6 (the five past the retention purged)", rep.FirstSeq)
	}
	cps, _ := inst.Audit.AuditCheckpoints(ctx, 0)
	if len(cps) == 0 || cps[0].Seq != 5 {
		t.Fatalf("checkpoints: %+v", cps)
	}
}

// [audit] enabled = false: nothing is written, nothing sealed.
func TestAuditOff(t *testing.T) {
	inst := servertest.Start(t, func(c *server.Config) { c.Audit.Enabled = false })
	if inst.Audit != nil {
		t.Fatal("Audit set with the trail off")
	}
	inst.AddProfessional("bob", "correct horse battery")
	recs, err := inst.Store.AuditEvents(t.Context(), storage.AuditQuery{})
	if err != nil || len(recs) != 0 {
		t.Fatalf("events with the trail off: %d, %v", len(recs), err)
	}
}
