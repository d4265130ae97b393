package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/storagetest"
)

// Tests of what only the embedded backend has: files, encryption at rest,
// the committer, query plans.

const acct = "dupont@ch-test.fr"

func setup(t *testing.T) (*DB, string, storage.Mailbox) {
	t.Helper()
	return setupWith(t, Options{Key: testKey, InlineLimit: -1, Summarize: storagetest.Summarize})
}

// setupWith is setup with other options: a new store in a temporary
// directory with one account.
func setupWith(t *testing.T, opts Options) (*DB, string, storage.Mailbox) {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	inbox, err := db.GetMailbox(ctx, acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return db, dir, inbox
}

// blobFiles lists the files of the body store.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func deliver(t *testing.T, db *DB, body string, ids ...int64) []storage.Appended {
	t.Helper()
	var targets []storage.Target
	for _, id := range ids {
		targets = append(targets, storage.Target{MailboxID: id})
	}
	res, err := db.Deliver(t.Context(), strings.NewReader(body), targets)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestNoPlaintextAtRest(t *testing.T) {
	db, dir, inbox := setup(t)
	const marker = "PATIENT-SECRET-MARKER-8f3a"
	body := "Subject: " + marker + "\r\n\r\n" + strings.Repeat(marker+" ", 30000) // > 1 chunk
	deliver(t, db, body, inbox.ID)
	db.Close()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		files++
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(marker)) || bytes.Contains(data, []byte("PATIENT-SECRET")) {
			t.Errorf("%s holds the plaintext", p)
		}
		return nil
	})
	if err != nil || files < 2 {
		t.Fatalf("walked %d files: %v", files, err)
	}
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("%d body files, want 1", n)
	}
	if fi, _ := os.Stat(blobFiles(t, dir)[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("body file mode %v", fi.Mode().Perm())
	}
}

func TestBlobSharedAndRemoved(t *testing.T) {
	db, dir, inbox := setup(t)
	ctx := t.Context()
	archive, _ := db.GetMailbox(ctx, acct, "Archive")
	trash, _ := db.GetMailbox(ctx, acct, "Trash")
	deliver(t, db, "shared body", inbox.ID, archive.ID)
	if _, err := db.Copy(ctx, inbox.ID, []uint32{1}, trash.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Move(ctx, archive.ID, []uint32{1}, trash.ID); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("deliver to 2 + copy + move made %d files, want 1", n)
	}
	expunge := func(id int64) {
		t.Helper()
		if _, err := db.StoreFlags(ctx, id, nil, storage.FlagsAdd, nil); err != nil {
			t.Fatal(err)
		}
		msgs, _ := db.Messages(ctx, id, nil)
		for _, m := range msgs {
			db.StoreFlags(ctx, id, []uint32{m.UID}, storage.FlagsAdd, []string{storage.FlagDeleted})
		}
		if _, err := db.Expunge(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	expunge(inbox.ID)
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("body removed while Trash still references it (%d files)", n)
	}
	expunge(trash.ID)
	if n := len(blobFiles(t, dir)); n != 0 {
		t.Fatalf("%d body files left after the last reference went", n)
	}
	var rows int
	db.r.QueryRow("SELECT count(*) FROM blobs").Scan(&rows)
	if rows != 0 {
		t.Errorf("%d blob rows left", rows)
	}
	db.r.QueryRow("SELECT count(*) FROM digests").Scan(&rows)
	if rows != 0 {
		t.Errorf("%d digest rows left", rows)
	}

	// DeleteMailbox drops references too.
	box, _ := db.CreateMailbox(ctx, acct, "Temp", "")
	deliver(t, db, "in temp", box.ID)
	deliver(t, db, "in temp and inbox", box.ID, inbox.ID)
	if err := db.DeleteMailbox(ctx, acct, "Temp"); err != nil {
		t.Fatal(err)
	}
	if n := len(blobFiles(t, dir)); n != 1 {
		t.Fatalf("after DeleteMailbox: %d files, want 1 (the one INBOX keeps)", n)
	}
}

func TestCorruptBody(t *testing.T) {
	db, dir, inbox := setup(t)
	ctx := t.Context()
	deliver(t, db, "small body", inbox.ID)
	deliver(t, db, strings.Repeat("large body ", 20000), inbox.ID) // 3+ chunks
	files := map[uint32]string{}
	for _, uid := range []uint32{1, 2} {
		var name string
		db.r.QueryRow("SELECT b.name FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?", inbox.ID, uid).Scan(&name)
		files[uid] = filepath.Join(dir, "blobs", name[:2], name)
	}
	orig := map[uint32][]byte{}
	for uid, p := range files {
		orig[uid], _ = os.ReadFile(p)
	}
	readAll := func(uid uint32) error {
		b, err := db.OpenBody(ctx, inbox.ID, uid)
		if err != nil {
			return err
		}
		defer b.Close()
		_, err = io.ReadAll(b)
		return err
	}
	cases := map[string]func(b []byte) []byte{
		"flipped byte": func(b []byte) []byte { b[len(b)/3] ^= 0x20; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-20] },
		"garbage":      func(b []byte) []byte { return bytes.Repeat([]byte("garbage!"), 40) },
		"empty":        func(b []byte) []byte { return nil },
		"appended":     func(b []byte) []byte { return append(b, "more"...) },
	}
	for name, corrupt := range cases {
		for uid, p := range files {
			if err := os.WriteFile(p, corrupt(bytes.Clone(orig[uid])), 0o600); err != nil {
				t.Fatal(err)
			}
			err := readAll(uid)
			if !errors.Is(err, crypto.ErrSealed) {
				t.Errorf("%s, uid %d: err = %v, want ErrSealed", name, uid, err)
			}
		}
	}
	// Another key cannot read the bodies.
	for uid, p := range files {
		os.WriteFile(p, orig[uid], 0o600)
	}
	if err := readAll(2); err != nil {
		t.Fatalf("restored body: %v", err)
	}
	db.Close()
	other, err := Open(dir, Options{Key: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.OpenBody(ctx, inbox.ID, 1); !errors.Is(err, crypto.ErrSealed) {
		t.Errorf("wrong key: err = %v", err)
	}
}

func TestSweepOrphans(t *testing.T) {
	db, dir, inbox := setup(t)
	deliver(t, db, "kept", inbox.ID)
	db.Close()
	orphan := filepath.Join(dir, "blobs", "ab", "ab"+strings.Repeat("0", 30))
	other := filepath.Join(dir, "blobs", "ab", "README")
	os.WriteFile(orphan, []byte("left by a crash"), 0o600)
	os.WriteFile(other, []byte("not ours"), 0o600)
	db = openTest(t, dir)
	defer db.Close()
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan body not swept: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a file that is not a body was removed: %v", err)
	}
	b, err := db.OpenBody(t.Context(), inbox.ID, 1)
	if err != nil {
		t.Fatalf("referenced body swept: %v", err)
	}
	b.Close()
}

// A second process (an administrative command) may open the directory while
// the first runs; it must not sweep the first one's bodies as orphans.
func TestSecondOpenSharesAndDoesNotSweep(t *testing.T) {
	db, dir, inbox := setup(t)
	ctx := t.Context()
	if _, err := db.Deliver(ctx, strings.NewReader("Subject: a\r\n\r\nbody\r\n"), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
		t.Fatal(err)
	}
	// An orphan as a crashed delivery would leave, and a body being
	// written by the first process (not committed yet) look the same.
	orphan := filepath.Join(dir, "blobs", "00", "00112233445566778899aabbccddeeff")
	if err := os.WriteFile(orphan, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatalf("a second Open of the same directory failed: %v", err)
	}
	if _, err := os.Stat(orphan); err != nil {
		t.Fatal("the second Open swept a body file while the first process had the directory open")
	}
	if _, err := db2.Status(ctx, inbox.ID); err != nil {
		t.Fatal(err)
	}
	db2.Close()
	db.Close()
	db3, err := Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer db3.Close()
	if _, err := os.Stat(orphan); err == nil {
		t.Fatal("the orphan survived an Open with the directory to itself")
	}
}

// errReader fails after some bytes, like a client that disconnects during
// DATA or APPEND.
type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("connection reset")
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

func TestDeliverFailures(t *testing.T) {
	db, dir, inbox := setup(t)
	ctx := t.Context()
	if _, err := db.Deliver(ctx, &errReader{n: 100 << 10}, []storage.Target{{MailboxID: inbox.ID}}); err == nil {
		t.Fatal("Deliver of a failing reader succeeded")
	}
	if n := len(blobFiles(t, dir)); n != 0 {
		t.Errorf("a failed delivery left %d files", n)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Deliver(cancelled, strings.NewReader("x"), []storage.Target{{MailboxID: inbox.ID}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Deliver: %v", err)
	}
	if n := len(blobFiles(t, dir)); n != 0 {
		t.Errorf("a cancelled delivery left %d files", n)
	}
	if st, _ := db.Status(ctx, inbox.ID); st.Messages != 0 || st.UIDNext != 1 {
		t.Errorf("failed deliveries left %+v", st)
	}
	db.Close()
	if _, err := db.Deliver(ctx, strings.NewReader("x"), []storage.Target{{MailboxID: inbox.ID}}); err == nil {
		t.Error("Deliver after Close succeeded")
	}
	if n := len(blobFiles(t, dir)); n != 0 {
		t.Errorf("a delivery after Close left %d files", n)
	}
}

// TestGroupCommit holds the committer busy, queues 20 deliveries (one of
// them to a missing mailbox) and checks that they commit in one
// transaction, the failing one alone rolled back.
func TestGroupCommit(t *testing.T) {
	db, dir, inbox := setup(t)
	ctx := t.Context()
	release, started := make(chan struct{}), make(chan struct{})
	go db.write(ctx, func(*wtx) error { close(started); <-release; return nil })
	<-started
	before := db.commits.Load()
	const n = 20
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			target := inbox.ID
			if i == 7 {
				target = 1 << 40
			}
			_, results[i] = db.Deliver(ctx, strings.NewReader(fmt.Sprint("message ", i)), []storage.Target{{MailboxID: target}})
		})
	}
	for len(db.ops) < n {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if got := db.commits.Load() - before; got != 2 {
		t.Errorf("%d commits for the held op and 20 queued deliveries, want 2", got)
	}
	for i, err := range results {
		if (i == 7) != (err != nil) {
			t.Errorf("delivery %d: %v", i, err)
		}
	}
	if !errors.Is(results[7], storage.ErrNoMailbox) {
		t.Errorf("delivery to a missing mailbox: %v", results[7])
	}
	st, uids, _, _ := db.Select(ctx, inbox.ID, false)
	if st.Messages != n-1 || st.UIDNext != n || uids[n-2].UID != n-1 {
		t.Errorf("after the batch: %+v %v", st, uids)
	}
	if got := len(blobFiles(t, dir)); got != n-1 {
		t.Errorf("%d body files, want %d", got, n-1)
	}
}

// TestQueryPlans checks that the hot read paths are one search of the
// messages primary key, never a scan of the table.
func TestQueryPlans(t *testing.T) {
	db, _, _ := setup(t)
	for name, q := range map[string]string{
		"status": qStatus, "select": qSelect, "all": qMessagesAll, "some": qMessagesSome, "body": qOpenBody,
		"digests-all": qDigestsAll, "digests-some": qDigestsSome,
	} {
		n := strings.Count(q, "?")
		args := make([]any, n)
		for i := range args {
			args[i] = 1
		}
		if name == "some" || name == "digests-some" {
			args[n-1] = "[1,2]"
		}
		rows, err := db.r.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			rows.Scan(&id, &parent, &unused, &detail)
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "; ")
		t.Logf("%s: %s", name, text)
		if strings.Contains(text, "SCAN m") || strings.Contains(text, "TEMP B-TREE FOR ORDER") && !strings.HasSuffix(name, "some") ||
			!strings.Contains(text, "PRIMARY KEY") {
			t.Errorf("%s: plan %q", name, text)
		}
	}
}

// A data directory from before the digests table (schema step 5) keeps its
// header sections: the migration moves them out of the blobs rows.
func TestMigrateHeadersToDigests(t *testing.T) {
	db, dir, inbox := setup(t)
	ctx := t.Context()
	msg := "Subject: before\r\n\r\nbody\r\n"
	if _, err := db.Deliver(ctx, strings.NewReader(msg), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// Put the data back in the layout of step 4: the header in the
	// blobs row, no digests table.
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "carepost.db"))
	if err != nil {
		t.Fatal(err)
	}
	undoV5(t, raw) // the steps after it
	for _, q := range []string{
		"ALTER TABLE blobs ADD COLUMN header BLOB",
		"UPDATE blobs SET header = (SELECT header FROM digests WHERE blob_id = blobs.id)",
		"DROP TABLE digests",
		// And before the steps that followed it.
		"ALTER TABLE dir_members DROP COLUMN role",
		fmt.Sprintf("PRAGMA user_version = %d", slices.Index(migrations, mailSchemaV4)),
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	db, err = Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.r.QueryRow("SELECT count(*) FROM digests WHERE header IS NOT NULL").Scan(&n); err != nil || n != 1 {
		t.Fatalf("digests after the migration: %d, %v", n, err)
	}
	if h, err := db.OpenHeader(ctx, inbox.ID, 1); err != nil || string(h) != "Subject: before\r\n\r\n" {
		t.Fatalf("header after the migration: %q, %v", h, err)
	}
}

// A durable write returns after an fsync of the WAL that followed its
// commit; a \Recent claim returns at its commit, and its fsync follows
// within FlagSyncDelay.
func TestLazyClaims(t *testing.T) {
	db, _, inbox := setup(t)
	ctx := t.Context()
	fsyncs := db.sync.fsyncs.Load
	n := fsyncs()
	if _, err := db.Deliver(ctx, strings.NewReader("Subject: a\r\n\r\nx\r\n"), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
		t.Fatal(err)
	}
	if fsyncs() == n {
		t.Fatal("a delivery returned before an fsync")
	}
	n = fsyncs()
	start := time.Now()
	if first, err := db.ClaimRecent(ctx, inbox.ID, 1); err != nil || first != 1 {
		t.Fatalf("ClaimRecent = %d, %v", first, err)
	}
	if fsyncs() != n && time.Since(start) < FlagSyncDelay/2 {
		t.Fatal("a claim waited for an fsync")
	}
	for fsyncs() == n {
		if time.Since(start) > 10*FlagSyncDelay {
			t.Fatalf("no fsync %v after a claim", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Without DeferFlagSync, STORE is durable when it returns.
	n = fsyncs()
	if _, err := db.StoreFlags(ctx, inbox.ID, []uint32{1}, storage.FlagsAdd, []string{storage.FlagSeen}); err != nil {
		t.Fatal(err)
	}
	if fsyncs() == n {
		t.Fatal("STORE returned before an fsync")
	}
}

// With DeferFlagSync, a STORE and an EXPUNGE return before their fsync:
// every reader sees them at once, a copy of the files taken then (what a
// crash of the process leaves) has them, the WAL is fsynced within
// FlagSyncDelay, and the body file of the expunged message stays until
// that fsync, so that a power cut undoing the expunge finds it.
func TestDeferredFlagSync(t *testing.T) {
	db, dir, inbox := setupWith(t, Options{Key: testKey, InlineLimit: -1, DeferFlagSync: true})
	ctx := t.Context()
	for _, s := range []string{"a", "b"} {
		if _, err := db.Deliver(ctx, strings.NewReader("Subject: "+s+"\r\n\r\nbody\r\n"), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	files := func() int {
		names, err := filepath.Glob(filepath.Join(dir, "blobs", "*", "*"))
		if err != nil {
			t.Fatal(err)
		}
		return len(names)
	}
	if n := files(); n != 2 {
		t.Fatalf("%d body files, want 2", n)
	}
	syncs := db.sync.fsyncs.Load()
	start := time.Now()
	if _, err := db.StoreFlags(ctx, inbox.ID, []uint32{1}, storage.FlagsAdd, []string{storage.FlagDeleted, storage.FlagSeen}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Expunge(ctx, inbox.ID, nil); err != nil || len(got.UIDs) != 1 || got.UIDs[0] != 1 {
		t.Fatalf("Expunge = %v, %v", got, err)
	}
	if n := files(); n != 2 && db.sync.fsyncs.Load() == syncs {
		t.Fatalf("%d body files before the fsync, want 2", n)
	}
	// A reader sees the change.
	if ms, err := db.Messages(ctx, inbox.ID, nil); err != nil || len(ms) != 1 || ms[0].UID != 2 {
		t.Fatalf("Messages after the expunge = %+v, %v", ms, err)
	}
	// The files as a crash of the process would leave them.
	crash := t.TempDir()
	for _, name := range []string{"carepost.db", "carepost.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crash, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(crash, "carepost.db"))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := raw.QueryRow("SELECT count(*) FROM messages").Scan(&n); err != nil || n != 1 {
		t.Errorf("after a crash of the process: %d messages, %v; want 1", n, err)
	}
	raw.Close()
	for db.sync.fsyncs.Load() == syncs {
		if time.Since(start) > 10*FlagSyncDelay {
			t.Fatalf("no fsync of the WAL %v after the change", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for files() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d body files after the fsync, want 1", files())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Claims are arbitrated in memory and written in the background: they are
// in the database after Close, and a mailbox created anew under the ID of
// a deleted one does not inherit its watermark.
func TestRecentClaimsPersist(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	ctx := t.Context()
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	deliver := func(db *DB, id int64) {
		t.Helper()
		if _, err := db.Deliver(ctx, strings.NewReader("Subject: a\r\n\r\nx\r\n"), []storage.Target{{MailboxID: id}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, err := db.GetMailbox(ctx, acct, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	deliver(db, inbox.ID)
	deliver(db, inbox.ID)
	if first, err := db.ClaimRecent(ctx, inbox.ID, 2); err != nil || first != 1 {
		t.Fatalf("ClaimRecent = %d, %v", first, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	defer db.Close()
	if st, err := db.Status(ctx, inbox.ID); err != nil || st.Recent != 0 {
		t.Fatalf("after a reopen: Recent %d, %v; want 0", st.Recent, err)
	}
	if first, err := db.ClaimRecent(ctx, inbox.ID, 2); err != nil || first != 0 {
		t.Fatalf("ClaimRecent after a reopen = %d, %v; want 0", first, err)
	}

	// A mailbox made after the deletion of the newest one, whose ID
	// SQLite gave again before mailSchemaV5.
	mb, err := db.CreateMailbox(ctx, acct, "Reused", "")
	if err != nil {
		t.Fatal(err)
	}
	deliver(db, mb.ID)
	if first, err := db.ClaimRecent(ctx, mb.ID, 1); err != nil || first != 1 {
		t.Fatalf("ClaimRecent = %d, %v", first, err)
	}
	if err := db.DeleteMailbox(ctx, acct, "Reused"); err != nil {
		t.Fatal(err)
	}
	again, err := db.CreateMailbox(ctx, acct, "Again", "")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == mb.ID {
		t.Errorf("the ID %d of a deleted mailbox was given again", mb.ID)
	}
	deliver(db, again.ID)
	if st, err := db.Status(ctx, again.ID); err != nil || st.Recent != 1 {
		t.Fatalf("a new mailbox: Recent %d, %v; want 1", st.Recent, err)
	}
	if first, err := db.ClaimRecent(ctx, again.ID, 1); err != nil || first != 1 {
		t.Fatalf("ClaimRecent in a new mailbox = %d, %v; want 1", first, err)
	}
}

// The writer never checkpoints (wal_autocheckpoint=0); the checkpointer
// copies the WAL into the database file on its own connection.
func TestCheckpointer(t *testing.T) {
	db, dir, inbox := setup(t)
	ctx := t.Context()
	size := func() int64 {
		fi, err := os.Stat(filepath.Join(dir, "carepost.db"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	body := "Subject: a\r\n\r\n" + strings.Repeat("x", 20000) + "\r\n"
	for range 20 {
		if _, err := db.Deliver(ctx, strings.NewReader(body), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	// A failure guard, generous for a loaded machine under the race
	// detector: a checkpoint runs every checkpointEvery.
	deadline := time.Now().Add(30 * time.Second)
	for size() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("the database file stayed at %d bytes: no checkpoint", before)
		}
		time.Sleep(checkpointEvery / 4)
	}
}

// Under a steady load of deliveries and reads, the WAL starts over after
// the checkpoints instead of growing without end (checkpoint.go).
func TestWALStaysSmall(t *testing.T) {
	db, dir, inbox := setupWith(t, Options{Key: testKey})
	ctx := t.Context()
	body := "Subject: a\r\n\r\n" + strings.Repeat("x", 4000) + "\r\n"
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.Status(ctx, inbox.ID); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	})
	var writers sync.WaitGroup
	for range 8 {
		writers.Go(func() {
			for range 600 {
				if _, err := db.Deliver(ctx, strings.NewReader(body), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	fi, err := os.Stat(filepath.Join(dir, "carepost.db-wal"))
	if err != nil {
		t.Fatal(err)
	}
	// 4,800 deliveries write some 120 MB of WAL frames in all; the WAL
	// stays under 10 MB on a quiet machine, and a reader that a busy one
	// holds back can delay a restart or two.
	t.Logf("WAL: %d MB", fi.Size()>>20)
	if raceEnabled {
		t.Skip("sizes under the race detector do not tell")
	}
	if fi.Size() > 32<<20 {
		t.Errorf("the WAL is %d MB after 4,800 deliveries: it did not start over", fi.Size()>>20)
	}
}
