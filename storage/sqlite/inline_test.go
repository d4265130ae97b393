package sqlite

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/storage"
)

func openInline(t *testing.T, dir string, limit int64) *DB {
	t.Helper()
	db, err := Open(dir, Options{Key: testKey, InlineLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Bodies up to the limit live in the database, encrypted; one byte more
// goes to a file; both read back byte for byte, whole and at offsets.
func TestInlineBodies(t *testing.T) {
	dir := t.TempDir()
	const limit = 100 << 10
	db := openInline(t, dir, limit)
	ctx := t.Context()
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	inbox, err := db.GetMailbox(ctx, acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "PLAINTEXT-MARKER-Mme-X-VIH"
	atLimit := "Subject: x\r\n\r\n" + marker + strings.Repeat("a", limit-len("Subject: x\r\n\r\n")-len(marker))
	over := atLimit + "b"
	small := "Subject: small\r\n\r\n" + marker + "\r\n"
	for _, b := range []string{small, atLimit, over} {
		if _, err := db.Deliver(ctx, strings.NewReader(b), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("%d body files, want 1 (only the body over the limit)", n)
	}
	for uid, want := range map[uint32]string{1: small, 2: atLimit, 3: over} {
		b, err := db.OpenBody(ctx, inbox.ID, uid)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(b)
		if err != nil || string(got) != want {
			t.Fatalf("uid %d: read back %d bytes (%v), want %d", uid, len(got), err, len(want))
		}
		p := make([]byte, 10)
		if n, err := b.ReadAt(p, int64(len(want)-10)); n != 10 || (err != nil && err != io.EOF) || string(p) != want[len(want)-10:] {
			t.Fatalf("uid %d: ReadAt at the end: %q %v", uid, p[:n], err)
		}
		b.Close()
	}
	// Nothing in the data directory holds the plaintext, the database and
	// its write-ahead log included.
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		if bytes.Contains(data, []byte(marker)) {
			t.Errorf("%s holds the plaintext of a body", p)
		}
		return nil
	})
	// Expunging the last reference removes the inline body with its row.
	if _, err := db.StoreFlags(ctx, inbox.ID, []uint32{1, 2, 3}, storage.FlagsAdd, []string{storage.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	var n int
	db.r.QueryRow("SELECT count(*) FROM blobs").Scan(&n)
	if n != 0 || len(blobFiles(t, dir)) != 0 {
		t.Fatalf("after expunge: %d blob rows, %d files", n, len(blobFiles(t, dir)))
	}
}

// A damaged inline body is an error for that message, not a panic.
func TestInlineCorrupt(t *testing.T) {
	dir := t.TempDir()
	db := openInline(t, dir, 0)
	ctx := t.Context()
	db.CreateAccount(ctx, acct)
	inbox, _ := db.GetMailbox(ctx, acct, "INBOX")
	if _, err := db.Deliver(ctx, strings.NewReader("Subject: a\r\n\r\nbody\r\n"), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec("UPDATE blobs SET data = substr(data, 1, length(data) - 3)"); err != nil {
		t.Fatal(err)
	}
	if b, err := db.OpenBody(ctx, inbox.ID, 1); err == nil {
		_, err = io.ReadAll(b)
		b.Close()
		if err == nil {
			t.Fatal("a truncated inline body was read without error")
		}
	}
}
