package sqlite

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
)

// A message for a local and a remote recipient: the local copy and the
// queue entry commit together; claims are exclusive, also between two
// handles on the same file (two processes); removing the entry frees its
// body file.
func TestQueue(t *testing.T) {
	for _, inline := range []int64{-1, 0} {
		t.Run(map[int64]string{-1: "files", 0: "inline"}[inline], func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			db, err := Open(dir, Options{Key: testKey, InlineLimit: inline})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.CreateAccount(ctx, "alice@a.test"); err != nil {
				t.Fatal(err)
			}
			inbox, err := db.GetMailbox(ctx, "alice@a.test", "INBOX")
			if err != nil {
				t.Fatal(err)
			}
			body := "Subject: secret lab result\r\n\r\nPatient X: potassium 6.1\r\n"
			app, err := db.DeliverAll(ctx, []storage.Delivery{
				{Body: strings.NewReader(body), Targets: []storage.Target{{MailboxID: inbox.ID}}},
				{Body: strings.NewReader("DKIM-Signature: x\r\n" + body), Queue: &storage.Enqueue{From: "alice@a.test", Recipients: []string{"bob@b.test", "carol@b.test"}}},
			})
			if err != nil || len(app) != 1 {
				t.Fatalf("DeliverAll: %v %v", app, err)
			}
			list, err := db.ListQueued(ctx)
			if err != nil || len(list) != 1 {
				t.Fatalf("ListQueued: %v %v", list, err)
			}
			e := list[0]
			if e.From != "alice@a.test" || len(e.Recipients) != 2 || e.Recipients[0].State != storage.QueuePending || e.Size != int64(len(body)+19) {
				t.Fatalf("entry %+v", e)
			}
			if raw, err := os.ReadFile(filepath.Join(dir, "carepost.db")); err == nil && bytes.Contains(raw, []byte("potassium")) {
				t.Fatal("the queued body is in clear in the database")
			}

			// A second handle on the same file stands for another process.
			db2, err := Open(dir, Options{Key: testKey, InlineLimit: inline})
			if err != nil {
				t.Fatal(err)
			}
			defer db2.Close()
			now := time.Now()
			got1, err := db.ClaimQueued(ctx, "one", now, time.Minute, 10)
			if err != nil || len(got1) != 1 {
				t.Fatalf("claim one: %v %v", got1, err)
			}
			got2, err := db2.ClaimQueued(ctx, "two", now, time.Minute, 10)
			if err != nil || len(got2) != 0 {
				t.Fatalf("claim two while one holds it: %v %v", got2, err)
			}
			b, err := db2.OpenQueued(ctx, e.ID)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(b)
			b.Close()
			if string(raw) != "DKIM-Signature: x\r\n"+body {
				t.Fatalf("body %q", raw)
			}
			if err := db2.UpdateQueued(ctx, e.ID, "two", storage.QueueUpdate{}); !errors.Is(err, storage.ErrQueueClaim) {
				t.Fatalf("update by a runner without the claim: %v", err)
			}
			next := now.Add(time.Hour)
			if err := db.UpdateQueued(ctx, e.ID, "one", storage.QueueUpdate{LastError: "451 try later", NextAttempt: next,
				Recipients: []storage.QueueRecipient{{Address: "bob@b.test", State: storage.QueueDelivered, LastError: ""}, {Address: "carol@b.test", State: storage.QueuePending, LastError: "451 4.3.0 busy"}}}); err != nil {
				t.Fatal(err)
			}
			if at, ok, err := db2.NextQueued(ctx); err != nil || !ok || !at.Equal(time.Unix(0, next.UnixNano())) {
				t.Fatalf("NextQueued %v %v %v, want %v", at, ok, err, next)
			}
			if got, _ := db2.ClaimQueued(ctx, "two", now, time.Minute, 10); len(got) != 0 {
				t.Fatal("claimed before it is due")
			}
			if err := db2.RetryQueued(ctx, e.ID, now); err != nil {
				t.Fatal(err)
			}
			got2, err = db2.ClaimQueued(ctx, "two", now, time.Minute, 10)
			if err != nil || len(got2) != 1 || got2[0].Attempts != 1 || got2[0].LastError != "451 try later" {
				t.Fatalf("claim after retry: %+v %v", got2, err)
			}
			if p := got2[0].Pending(); len(p) != 1 || p[0].Address != "carol@b.test" || p[0].LastError != "451 4.3.0 busy" {
				t.Fatalf("pending %+v", p)
			}
			var files int
			countFiles := func() int {
				n := 0
				filepath.Walk(filepath.Join(dir, "blobs"), func(p string, fi os.FileInfo, err error) error {
					if err == nil && !fi.IsDir() {
						n++
					}
					return nil
				})
				return n
			}
			files = countFiles()
			if err := db2.RemoveQueued(ctx, e.ID, "two"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.GetQueued(ctx, e.ID); !errors.Is(err, storage.ErrNoQueued) {
				t.Fatalf("after remove: %v", err)
			}
			if inline < 0 && countFiles() != files-1 {
				t.Fatalf("body files %d, want %d", countFiles(), files-1)
			}
			// The local copy is untouched.
			if msgs, err := db.Messages(ctx, inbox.ID, nil); err != nil || len(msgs) != 1 {
				t.Fatalf("local copy: %v %v", msgs, err)
			}
		})
	}
}
