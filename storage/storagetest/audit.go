package storagetest

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/storage"
)

// AuditStore is a store that keeps an audit trail.
type AuditStore interface {
	storage.Store
	storage.AuditLog
}

// AuditOpenFunc opens the store kept at dir with its audit trail on, as
// OpenFunc does.
type AuditOpenFunc func(t *testing.T, dir string) AuditStore

// RunAudit runs the conformance suite of storage.AuditLog.
func RunAudit(t *testing.T, open AuditOpenFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s AuditStore, open func() AuditStore)
	}{
		{"EveryChangeHasItsEvent", testAuditChanges},
		{"FailedWriteLeavesNoEvent", testAuditRollback},
		{"SealInOrder", testAuditSeal},
		{"TwoHandles", testAuditTwoHandles},
		{"Checkpoints", testAuditCheckpoints},
		{"Purge", testAuditPurge},
		{"ByAccount", testAuditByAccount},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := open(t, dir)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s, func() AuditStore {
				o := open(t, dir)
				t.Cleanup(func() { o.Close() })
				return o
			})
		})
	}
}

func events(t *testing.T, s storage.AuditLog) []storage.AuditRecord {
	t.Helper()
	recs, err := s.AuditEvents(t.Context(), storage.AuditQuery{})
	if err != nil {
		t.Fatalf("AuditEvents: %v", err)
	}
	return recs
}

func actions(recs []storage.AuditRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Action
	}
	return out
}

// testAuditChanges: each change of the store writes its event, with the
// principal of its context as the actor, in the order of the changes.
func testAuditChanges(t *testing.T, s AuditStore, _ func() AuditStore) {
	alice := &auth.Principal{Address: "alice@a.test", Mechanism: auth.MechPlain, Source: "192.0.2.7:5000"}
	ctx := auth.WithPrincipal(t.Context(), alice)
	if err := s.CreateAccount(ctx, "alice@a.test"); err != nil {
		t.Fatal(err)
	}
	before := len(events(t, s)) // the default mailboxes
	inbox, err := s.GetMailbox(ctx, "alice@a.test", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	app, err := s.DeliverAll(ctx, []storage.Delivery{{Body: strings.NewReader("Subject: x\r\n\r\nhello\r\n"),
		Targets: []storage.Target{{MailboxID: inbox.ID}}, MessageID: "m1@a.test", Action: "message.append"}})
	if err != nil {
		t.Fatal(err)
	}
	uid := app[0].UID
	if _, err := s.StoreFlags(ctx, inbox.ID, []uint32{uid}, storage.FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	// A STORE that changes nothing is no change.
	if _, err := s.StoreFlags(ctx, inbox.ID, []uint32{uid}, storage.FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	arch, err := s.CreateMailbox(ctx, "alice@a.test", "Records", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, inbox.ID, []uint32{uid}, arch.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, inbox.ID, []uint32{uid}, arch.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, arch.ID, []uint32{1}, storage.FlagsAdd, []string{`\Deleted`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, arch.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, "alice@a.test", "Records", "Old"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, "alice@a.test", "Old"); err != nil {
		t.Fatal(err)
	}
	// The server's own work has no principal.
	if _, err := s.DeliverAll(t.Context(), []storage.Delivery{{Body: strings.NewReader("Subject: y\r\n\r\n"),
		Queue: &storage.Enqueue{From: "alice@a.test", Recipients: []string{"bob@b.test"}}, MessageID: "m2@a.test"}}); err != nil {
		t.Fatal(err)
	}

	recs := events(t, s)[before:]
	want := []string{"message.append", "message.flags", "mailbox.create", "message.copy", "message.move",
		"message.flags", "message.expunge", "mailbox.rename", "mailbox.delete", "queue.add"}
	if got := actions(recs); !slices.Equal(got, want) {
		t.Fatalf("actions:\n got %q\nwant %q", got, want)
	}
	for i, r := range recs[:len(recs)-1] {
		if r.Actor != "alice@a.test" || r.Mechanism != "PLAIN" || r.Source != "192.0.2.7:5000" {
			t.Errorf("event %d (%s): actor %q %q %q", i, r.Action, r.Actor, r.Mechanism, r.Source)
		}
		if r.Time.Before(start) || r.Time.After(time.Now().Add(time.Second)) || r.Outcome != "ok" || r.Hash != nil {
			t.Errorf("event %d (%s): time %v outcome %q hash %x", i, r.Action, r.Time, r.Outcome, r.Hash)
		}
		if i > 0 && r.Seq != recs[i-1].Seq+1 {
			t.Errorf("event %d: seq %d after %d", i, r.Seq, recs[i-1].Seq)
		}
	}
	if r := recs[0]; r.Object != "m1@a.test" || r.Details["uid"] == "" || r.Details["mailbox"] == "" {
		t.Errorf("append event: %+v", r)
	}
	if r := recs[1]; r.Details["op"] != "add" || r.Details["flags"] != `\Seen` || r.Details["uids"] == "" {
		t.Errorf("flags event: %+v", r)
	}
	if r := recs[4]; r.Details["dest_uids"] == "" || r.Details["uids"] == "" {
		t.Errorf("move event: %+v", r)
	}
	if r := recs[7]; r.Object != "alice@a.test/Old" || r.Details["old_name"] != "Records" {
		t.Errorf("rename event: %+v", r)
	}
	if r := recs[len(recs)-1]; r.Actor != "system" || r.Object != "m2@a.test" || r.Details["recipients"] != "bob@b.test" {
		t.Errorf("queue event: %+v", r)
	}
	// Queries.
	got, err := s.AuditEvents(ctx, storage.AuditQuery{Object: "m1@a.test"})
	if err != nil || len(got) != 1 || got[0].Action != "message.append" {
		t.Errorf("AuditEvents(object m1@a.test) = %v, %v", actions(got), err)
	}
	got, err = s.AuditEvents(ctx, storage.AuditQuery{Actor: "system", Action: "queue.add"})
	if err != nil || len(got) != 1 {
		t.Errorf("AuditEvents(actor system, queue.add) = %v, %v", actions(got), err)
	}
	got, err = s.AuditEvents(ctx, storage.AuditQuery{After: recs[2].Seq, Limit: 2})
	if err != nil || len(got) != 2 || got[0].Seq != recs[3].Seq {
		t.Errorf("AuditEvents(after, limit) = %v, %v", actions(got), err)
	}
}

// testAuditRollback: a write that fails leaves no event, and the event of
// a write that succeeds is there after a reopen.
func testAuditRollback(t *testing.T, s AuditStore, open func() AuditStore) {
	ctx := t.Context()
	if err := s.CreateAccount(ctx, "bob@b.test"); err != nil {
		t.Fatal(err)
	}
	n := len(events(t, s))
	if _, err := s.CreateMailbox(ctx, "bob@b.test", "INBOX", ""); err == nil {
		t.Fatal("CreateMailbox(INBOX) again: no error")
	}
	if _, err := s.Expunge(ctx, 1<<40, nil); err == nil {
		t.Fatal("Expunge of a mailbox that does not exist: no error")
	}
	if _, err := s.DeliverAll(ctx, []storage.Delivery{{Body: strings.NewReader("x"), Targets: []storage.Target{{MailboxID: 1 << 40}}, MessageID: "gone@b.test"}}); err == nil {
		t.Fatal("a delivery into a mailbox that does not exist: no error")
	}
	if got := events(t, s); len(got) != n {
		t.Fatalf("failed writes left events: %q", actions(got[n:]))
	}
	if _, err := s.CreateMailbox(ctx, "bob@b.test", "Kept", ""); err != nil {
		t.Fatal(err)
	}
	o := open()
	got := events(t, o)
	if len(got) != n+1 || got[n].Object != "bob@b.test/Kept" {
		t.Fatalf("after a reopen: %q", actions(got))
	}
}

// testAuditSeal: events are sealed in order, once.
func testAuditSeal(t *testing.T, s AuditStore, _ func() AuditStore) {
	ctx := t.Context()
	var recs []storage.AuditRecord
	for i := range 5 {
		recs = append(recs, storage.AuditRecord{Actor: "carol@c.test", Action: "message.read", Object: "mailbox:1", Details: map[string]string{"uid": string(rune('1' + i))}})
	}
	if err := s.AppendAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	prev, un, err := s.UnsealedAudit(ctx, 3)
	if err != nil || prev != nil || len(un) != 3 || un[0].Seq != 1 || un[0].Details["uid"] != "1" {
		t.Fatalf("UnsealedAudit = %x, %+v, %v", prev, un, err)
	}
	// Out of order: the second before the first.
	un[1].Hash = []byte{1}
	if err := s.SealAudit(ctx, un[1:2]); err == nil {
		t.Fatal("sealed event 2 before event 1")
	}
	for i := range un {
		un[i].Hash = bytes.Repeat([]byte{byte(i + 1)}, 32)
	}
	if err := s.SealAudit(ctx, un); err != nil {
		t.Fatal(err)
	}
	if err := s.SealAudit(ctx, un[2:]); err == nil {
		t.Fatal("sealed event 3 twice")
	}
	prev, un, err = s.UnsealedAudit(ctx, 10)
	if err != nil || !bytes.Equal(prev, bytes.Repeat([]byte{3}, 32)) || len(un) != 2 || un[0].Seq != 4 {
		t.Fatalf("UnsealedAudit after sealing 3 = %x, %d events, %v", prev, len(un), err)
	}
	all := events(t, s)
	if !bytes.Equal(all[0].Hash, bytes.Repeat([]byte{1}, 32)) || all[4].Hash != nil {
		t.Fatalf("hashes: %x … %x", all[0].Hash, all[4].Hash)
	}
}

// testAuditTwoHandles: events written through one handle (the command
// line beside the server) are in the other's trail, in commit order.
func testAuditTwoHandles(t *testing.T, s AuditStore, open func() AuditStore) {
	o := open()
	ctx := t.Context()
	if err := s.AppendAudit(ctx, []storage.AuditRecord{{Action: "a.one"}}); err != nil {
		t.Fatal(err)
	}
	if err := o.AppendAudit(ctx, []storage.AuditRecord{{Action: "a.two"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, []storage.AuditRecord{{Action: "a.three"}}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []AuditStore{s, o} {
		if got := actions(events(t, h)); !slices.Equal(got, []string{"a.one", "a.two", "a.three"}) {
			t.Errorf("trail: %q", got)
		}
	}
}

// testAuditCheckpoints: checkpoints are kept in order.
func testAuditCheckpoints(t *testing.T, s AuditStore, _ func() AuditStore) {
	ctx := context.Background()
	at := time.Date(2026, 12, 7, 10, 0, 0, 123e6, time.UTC)
	for _, seq := range []int64{10, 20} {
		if err := s.AddAuditCheckpoint(ctx, storage.AuditCheckpoint{Seq: seq, Hash: []byte{byte(seq)}, Time: at, Signature: []byte("sig")}); err != nil {
			t.Fatal(err)
		}
	}
	// A second checkpoint of event 20 (another signer beside the
	// server's) leaves the first.
	if err := s.AddAuditCheckpoint(ctx, storage.AuditCheckpoint{Seq: 20, Hash: []byte{20}, Time: at.Add(time.Second), Signature: []byte("other")}); err != nil {
		t.Fatal(err)
	}
	cps, err := s.AuditCheckpoints(ctx, 10)
	if err != nil || len(cps) != 1 || cps[0].Seq != 20 || !cps[0].Time.Equal(at) || string(cps[0].Signature) != "sig" {
		t.Fatalf("AuditCheckpoints(10) = %+v, %v", cps, err)
	}
}

// testAuditPurge: events are purged only up to a checkpoint that holds
// the hash of the last one purged, never the newest, and what remains
// starts after it.
func testAuditPurge(t *testing.T, s AuditStore, _ func() AuditStore) {
	ctx := t.Context()
	var recs []storage.AuditRecord
	for range 6 {
		recs = append(recs, storage.AuditRecord{Action: "a.b"})
	}
	if err := s.AppendAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	_, un, err := s.UnsealedAudit(ctx, 10)
	if err != nil || len(un) != 6 {
		t.Fatalf("UnsealedAudit: %d, %v", len(un), err)
	}
	for i := range un {
		un[i].Hash = bytes.Repeat([]byte{byte(i + 1)}, 32)
	}
	if err := s.SealAudit(ctx, un); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeAudit(ctx, 3); err == nil {
		t.Fatal("purged without a checkpoint")
	}
	at := time.Now()
	if err := s.AddAuditCheckpoint(ctx, storage.AuditCheckpoint{Seq: 2, Hash: []byte("wrong"), Time: at, Signature: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeAudit(ctx, 2); err == nil {
		t.Fatal("purged up to a checkpoint that does not hold the event's hash")
	}
	for _, seq := range []int64{3, 6} {
		if err := s.AddAuditCheckpoint(ctx, storage.AuditCheckpoint{Seq: seq, Hash: un[seq-1].Hash, Time: at, Signature: []byte("s")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PurgeAudit(ctx, 6); err == nil {
		t.Fatal("purged the newest event")
	}
	if len(events(t, s)) != 6 {
		t.Fatal("a refused purge removed events")
	}
	n, err := s.PurgeAudit(ctx, 3)
	if err != nil || n != 3 {
		t.Fatalf("PurgeAudit(3) = %d, %v", n, err)
	}
	left := events(t, s)
	if len(left) != 3 || left[0].Seq != 4 {
		t.Fatalf("after the purge: %+v", left)
	}
	cps, err := s.AuditCheckpoints(ctx, 0)
	if err != nil || len(cps) != 2 || cps[0].Seq != 3 {
		t.Fatalf("checkpoints after the purge: %+v, %v", cps, err)
	}
	// New events go on after the newest, never reuse a number.
	if err := s.AppendAudit(ctx, []storage.AuditRecord{{Action: "a.c"}}); err != nil {
		t.Fatal(err)
	}
	if left := events(t, s); left[len(left)-1].Seq != 7 {
		t.Fatalf("the next event is %d, want 7", left[len(left)-1].Seq)
	}
}

// testAuditByAccount: the events that concern an account (its mailboxes'
// changes, whoever made them, and the appended events that name it) are
// found by AuditQuery.Account, newest first, and no other account's.
func testAuditByAccount(t *testing.T, s AuditStore, _ func() AuditStore) {
	ctx := t.Context()
	for _, a := range []string{"carol@a.test", "dave@a.test"} {
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	carolInbox, err := s.GetMailbox(ctx, "carol@a.test", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	daveInbox, err := s.GetMailbox(ctx, "dave@a.test", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	created := events(t, s) // the default mailboxes: theirs too
	for _, r := range created {
		if r.Account == "" || !strings.HasPrefix(r.Object, r.Account+"/") {
			t.Errorf("%s %s: account %q", r.Action, r.Object, r.Account)
		}
	}
	after := created[len(created)-1].Seq
	// dave, a delegate, changes carol's mailbox; carol changes dave's.
	dave := auth.WithPrincipal(ctx, &auth.Principal{Address: "dave@a.test", Mechanism: auth.MechPlain})
	carol := auth.WithPrincipal(ctx, &auth.Principal{Address: "carol@a.test", Mechanism: auth.MechPlain})
	app, err := s.DeliverAll(ctx, []storage.Delivery{
		{Body: strings.NewReader("Subject: c\r\n\r\n"), Targets: []storage.Target{{MailboxID: carolInbox.ID}}, MessageID: "c@a.test"},
		{Body: strings.NewReader("Subject: d\r\n\r\n"), Targets: []storage.Target{{MailboxID: daveInbox.ID}}, MessageID: "d@a.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(dave, carolInbox.ID, []uint32{app[0].UID}, storage.FlagsAdd, []string{`\Seen`}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(dave, carolInbox.ID, []uint32{app[0].UID}, daveInbox.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(carol, daveInbox.ID, []uint32{app[1].UID}, storage.FlagsAdd, []string{`\Flagged`}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, []storage.AuditRecord{
		{Actor: "dave@a.test", Action: "message.read", Object: "mailbox:1", Account: "carol@a.test"},
		{Actor: "x", Action: "imap.login", Outcome: "refused", Account: "nobody@a.test"},
		{Actor: "carol@a.test", Action: "imap.login", Account: "carol@a.test"},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditEvents(ctx, storage.AuditQuery{Account: "carol@a.test", Newest: true, After: after})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"imap.login", "message.read", "message.copy", "message.flags", "message.deliver"}
	if !slices.Equal(actions(got), want) {
		t.Fatalf("carol's events: %q, want %q", actions(got), want)
	}
	for i, r := range got {
		if r.Account != "carol@a.test" {
			t.Errorf("event %d (%s): account %q", i, r.Action, r.Account)
		}
		if i > 0 && r.Seq >= got[i-1].Seq {
			t.Errorf("event %d: not newest first (%d after %d)", i, r.Seq, got[i-1].Seq)
		}
	}
	if got[2].Actor != "dave@a.test" || got[3].Actor != "dave@a.test" {
		t.Errorf("the delegate's changes name another actor: %+v, %+v", got[2], got[3])
	}
	got, err = s.AuditEvents(ctx, storage.AuditQuery{Account: "dave@a.test", After: after})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"message.deliver", "message.flags"}; !slices.Equal(actions(got), want) {
		t.Errorf("dave's events: %q, want %q", actions(got), want)
	}
	got, err = s.AuditEvents(ctx, storage.AuditQuery{Account: "carol@a.test", Limit: 2, Newest: true,
		Since: time.Now().Add(-time.Minute)})
	if err != nil || len(got) != 2 || got[0].Action != "imap.login" {
		t.Errorf("carol's newest 2: %q, %v", actions(got), err)
	}
	// An address that is no account has no events, and its appended
	// event concerns no account.
	if got, err := s.AuditEvents(ctx, storage.AuditQuery{Account: "nobody@a.test"}); err != nil || len(got) != 0 {
		t.Errorf("nobody's events: %q, %v", actions(got), err)
	}
	all, err := s.AuditEvents(ctx, storage.AuditQuery{Action: "imap.login", Actor: "x"})
	if err != nil || len(all) != 1 || all[0].Account != "" {
		t.Errorf("the refused login of no account: %+v, %v", all, err)
	}
}
