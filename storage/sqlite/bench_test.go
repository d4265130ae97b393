package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
)

// Benchmarks for issue #8 (not run by go test without -bench).

// fill inserts n messages into a mailbox directly, sharing one body: the
// benchmarks measure reads, not n fsyncs.
func fill(b *testing.B, n int) (*DB, storage.Mailbox) {
	b.Helper()
	db := openTest(&testing.T{}, b.TempDir())
	b.Cleanup(func() { db.Close() })
	ctx := b.Context()
	db.CreateAccount(ctx, acct)
	inbox, _ := db.GetMailbox(ctx, acct, "INBOX")
	res, err := db.Deliver(ctx, strings.NewReader("Subject: bench\r\n\r\nbody\r\n"), []storage.Target{{MailboxID: inbox.ID}})
	if err != nil {
		b.Fatal(err)
	}
	err = db.write(ctx, func(t *wtx) error {
		var blob int64
		if err := t.QueryRowContext(t.ctx, "SELECT blob_id FROM messages WHERE mailbox_id = ? AND uid = ?", inbox.ID, res[0].UID).Scan(&blob); err != nil {
			return err
		}
		first, modseq, _, _, err := reserve(t, inbox.ID, n)
		if err != nil {
			return err
		}
		stmt, err := t.PrepareContext(t.ctx, insertMessage)
		if err != nil {
			return err
		}
		defer stmt.Close()
		now := time.Now().UnixNano()
		for i := range n {
			kw := ""
			if i%10 == 0 {
				kw = "$Label1"
			}
			if _, err := stmt.ExecContext(t.ctx, inbox.ID, first+uint32(i), blob, int64(i%3)&flagSeen, kw, now, 3600, 1000+i%5000, modseq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return db, inbox
}

func BenchmarkMessagesAll100k(b *testing.B) {
	db, inbox := fill(b, 100_000)
	for b.Loop() {
		msgs, err := db.Messages(b.Context(), inbox.ID, nil)
		if err != nil || len(msgs) != 100_001 {
			b.Fatal(len(msgs), err)
		}
	}
}

func BenchmarkSelect100k(b *testing.B) {
	db, inbox := fill(b, 100_000)
	for b.Loop() {
		_, uids, _, err := db.Select(b.Context(), inbox.ID, false)
		if err != nil || len(uids) != 100_001 {
			b.Fatal(len(uids), err)
		}
	}
}

func BenchmarkStatus100k(b *testing.B) {
	db, inbox := fill(b, 100_000)
	for b.Loop() {
		if _, err := db.Status(b.Context(), inbox.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeliverParallel(b *testing.B) {
	db, inbox := fill(b, 0)
	body := strings.Repeat("x", 10<<10)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Deliver(b.Context(), strings.NewReader(body), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/float64(max(db.commits.Load(), 1)), "msgs/commit")
}

// BenchmarkDeliverFileParallel delivers bodies over the inline limit: each
// goes through the body store (a sealed file, fsynced with its directory).
func BenchmarkDeliverFileParallel(b *testing.B) {
	db, inbox := fill(b, 0)
	body := strings.Repeat("x", DefaultInlineLimit+1)
	b.SetParallelism(8)
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Deliver(b.Context(), strings.NewReader(body), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
