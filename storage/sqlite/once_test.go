package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
)

// A delivery's Once key is recorded by each of its mailboxes in the same
// commit, seen by another handle (process) on the store, and forgotten by
// PruneChanges with the tombstones.
func TestReceivedOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var boxes []int64
	for _, a := range []string{"alice@b.test", "bob@b.test", "carol@b.test"} {
		if err := db.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		mb, err := db.GetMailbox(ctx, a, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		boxes = append(boxes, mb.ID)
	}
	if _, err := db.DeliverAll(ctx, []storage.Delivery{{Body: strings.NewReader("Subject: x\r\n\r\nx\r\n"),
		Targets: []storage.Target{{MailboxID: boxes[0]}, {MailboxID: boxes[1]}}, Once: "k1"}}); err != nil {
		t.Fatal(err)
	}
	other, err := Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	got, err := other.Received(ctx, "k1", boxes)
	if err != nil {
		t.Fatal(err)
	}
	if !got[boxes[0]] || !got[boxes[1]] || got[boxes[2]] || len(got) != 2 {
		t.Errorf("Received(k1) = %v, want the first two of %v", got, boxes)
	}
	if got, _ := db.Received(ctx, "k2", boxes); len(got) != 0 {
		t.Errorf("Received(k2) = %v", got)
	}
	// A second delivery with the same key into a mailbox that has it is
	// the caller's to drop; the store records the key once, and stores
	// what it is given.
	if _, err := db.DeliverAll(ctx, []storage.Delivery{{Body: strings.NewReader("Subject: x\r\n\r\nx\r\n"),
		Targets: []storage.Target{{MailboxID: boxes[1]}, {MailboxID: boxes[2]}}, Once: "k1"}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Received(ctx, "k1", boxes); len(got) != 3 {
		t.Errorf("after the second delivery: %v", got)
	}
	if err := db.PruneChanges(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Received(ctx, "k1", boxes); len(got) != 0 {
		t.Errorf("after the prune: %v", got)
	}
}
