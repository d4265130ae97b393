package sqlite

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/storage"
)

// undoV5 puts the database open in raw back in the layout before
// mailSchemaV5 (a data directory of the previous release): mailboxes
// without AUTOINCREMENT, no change tables. raw must have its foreign
// keys off (SQLite's default).
func undoV5(t *testing.T, raw *sql.DB) {
	t.Helper()
	for _, q := range []string{
		"DROP TABLE dir_national_mailboxes_fts", // nationalSchemaV1
		"DROP TABLE dir_national_people_fts",
		"DROP TABLE dir_national_mailboxes",
		"DROP TABLE dir_national_people",
		"DROP TABLE dir_national_imports",
		"DROP TABLE dmp_controls",                  // dmpSchemaV1
		"DROP TABLE dmp_contents",                  // dmpSchemaV1
		"DROP TABLE dmp_documents",                 // dmpSchemaV1
		"DROP TABLE dir_client_certs",              // directorySchemaV8
		"DROP TABLE dir_inactive_warnings",         // directorySchemaV7
		"ALTER TABLE queue DROP COLUMN message_id", // queueSchemaV2
		"DROP TABLE audit_checkpoints",             // auditSchemaV1 (V2 with it)
		"DROP TABLE audit_events",
		"DROP TABLE audit_hashes",
		"DROP TABLE dir_mailbox_certs",                            // directorySchemaV6
		"DROP TABLE dir_trust_list",                               // directorySchemaV5
		"DROP TABLE dir_trust_anchors",                            // directorySchemaV5
		"ALTER TABLE dir_entries DROP COLUMN duplicate_id_reason", // directorySchemaV4
		"DROP TABLE store_tasks",                                  // mailSchemaV6
		// The steps after it first (directorySchemaV3).
		"ALTER TABLE dir_entries DROP COLUMN cred_epoch",
		"ALTER TABLE dir_entries DROP COLUMN cred_change",
		"DROP TABLE tombstones",
		"DROP TABLE account_changes",
		"DROP INDEX messages_modseq",
		"ALTER TABLE accounts DROP COLUMN change_seq",
		"ALTER TABLE accounts DROP COLUMN change_floor",
		`CREATE TABLE mailboxes_old (
			id             INTEGER PRIMARY KEY,
			account_id     INTEGER NOT NULL REFERENCES accounts(id),
			name           TEXT NOT NULL,
			special_use    TEXT NOT NULL DEFAULT '',
			uidvalidity    INTEGER NOT NULL,
			uidnext        INTEGER NOT NULL DEFAULT 1,
			highest_modseq INTEGER NOT NULL DEFAULT 1,
			recent_uid     INTEGER NOT NULL DEFAULT 0,
			keywords       TEXT NOT NULL DEFAULT '',
			UNIQUE (account_id, name)
		)`,
		"INSERT INTO mailboxes_old SELECT id, account_id, name, special_use, uidvalidity, uidnext, highest_modseq, recent_uid, keywords FROM mailboxes",
		"DROP TABLE mailboxes",
		"ALTER TABLE mailboxes_old RENAME TO mailboxes",
		"DELETE FROM sqlite_sequence WHERE name = 'mailboxes'",
		fmt.Sprintf("PRAGMA user_version = %d", slices.Index(migrations, mailSchemaV5)),
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// A data directory from before mailSchemaV5 keeps its mailboxes, their IDs
// and messages; from then on a deleted mailbox's ID is not given again,
// and Changes knows nothing of the expunges before the migration (it says
// Truncated for an older MODSEQ) but everything after.
func TestMigrateChanges(t *testing.T) {
	db, dir, inbox := setup(t)
	ctx := t.Context()
	deliver(t, db, "one", inbox.ID)
	deliver(t, db, "two", inbox.ID)
	if _, err := db.StoreFlags(ctx, inbox.ID, []uint32{1}, storage.FlagsAdd, []string{storage.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	mb, err := db.CreateMailbox(ctx, acct, "Projets", "")
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, db, "three", mb.ID)
	before, err := db.ListMailboxes(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	st := status(t, db, inbox.ID)
	db.Close()

	raw, err := sql.Open("sqlite", "file:"+dir+"/carepost.db")
	if err != nil {
		t.Fatal(err)
	}
	undoV5(t, raw)
	raw.Close()

	db = openTest(t, dir)
	defer db.Close()
	after, err := db.ListMailboxes(ctx, acct)
	if err != nil || !slices.Equal(before, after) {
		t.Fatalf("mailboxes after the migration:\n%+v, %v\nwant %+v", after, err, before)
	}
	if msgs, err := db.Messages(ctx, mb.ID, nil); err != nil || len(msgs) != 1 {
		t.Fatalf("messages of Projets after the migration: %+v, %v", msgs, err)
	}
	var fks int
	if err := db.r.QueryRow("SELECT count(*) FROM pragma_foreign_key_check").Scan(&fks); err != nil || fks != 0 {
		t.Fatalf("foreign key check: %d, %v", fks, err)
	}
	if c, err := db.Changes(ctx, inbox.ID, 1); err != nil || !c.Truncated {
		t.Errorf("Changes from before the migration = %+v, %v; want Truncated", c, err)
	}
	c, err := db.Changes(ctx, inbox.ID, st.HighestModSeq)
	if err != nil || c.Truncated || len(c.Messages)+len(c.Expunged) != 0 {
		t.Errorf("Changes from the migration on = %+v, %v", c, err)
	}

	// The newest mailbox, deleted: its ID does not come back.
	if err := db.DeleteMailbox(ctx, acct, "Projets"); err != nil {
		t.Fatal(err)
	}
	again, err := db.CreateMailbox(ctx, acct, "Autre", "")
	if err != nil || again.ID <= mb.ID {
		t.Fatalf("mailbox created after deleting ID %d: %+v, %v", mb.ID, again, err)
	}
	if _, err := db.Changes(ctx, mb.ID, 0); err == nil {
		t.Error("Changes of a deleted mailbox succeeded")
	}
}

func status(t *testing.T, db *DB, id int64) storage.MailboxStatus {
	t.Helper()
	st, err := db.Status(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The pruner forgets what is older than Options.ChangeWindow, and only
// that; a deleted mailbox's tombstones go with it.
func TestChangeWindow(t *testing.T) {
	db, _, inbox := setupWith(t, Options{Key: testKey, ChangeWindow: time.Hour})
	ctx := t.Context()
	if db.window != time.Hour {
		t.Fatalf("window %v", db.window)
	}
	for range 3 {
		deliver(t, db, "x", inbox.ID)
	}
	if _, err := db.StoreFlags(ctx, inbox.ID, []uint32{1, 2}, storage.FlagsAdd, []string{storage.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	since := status(t, db, inbox.ID).HighestModSeq
	if _, err := db.Expunge(ctx, inbox.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	// A prune with the window keeps what is an hour young.
	if err := db.PruneChanges(ctx, time.Now().Add(-db.window)); err != nil {
		t.Fatal(err)
	}
	if c, err := db.Changes(ctx, inbox.ID, since); err != nil || c.Truncated || !slices.Equal(c.Expunged, []uint32{1}) {
		t.Fatalf("Changes within the window = %+v, %v", c, err)
	}
	// Pretend the tombstone is two hours old.
	if _, err := db.w.Exec("UPDATE tombstones SET at = ?", time.Now().Add(-2*time.Hour).UnixNano()); err != nil {
		t.Fatal(err)
	}
	mid := status(t, db, inbox.ID).HighestModSeq
	if _, err := db.Expunge(ctx, inbox.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if err := db.PruneChanges(ctx, time.Now().Add(-db.window)); err != nil {
		t.Fatal(err)
	}
	if c, err := db.Changes(ctx, inbox.ID, since); err != nil || !c.Truncated || c.Expunged != nil {
		t.Errorf("Changes past the window = %+v, %v; want Truncated", c, err)
	}
	if c, err := db.Changes(ctx, inbox.ID, mid); err != nil || c.Truncated || !slices.Equal(c.Expunged, []uint32{2}) {
		t.Errorf("Changes after the pruned tombstone = %+v, %v", c, err)
	}

	// Deleting a mailbox drops its tombstones.
	mb, err := db.CreateMailbox(ctx, acct, "Projets", "")
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, db, "y", mb.ID)
	if _, err := db.Move(ctx, mb.ID, []uint32{1}, inbox.ID); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		t.Helper()
		if err := db.r.QueryRow("SELECT count(*) FROM tombstones WHERE mailbox_id = ?", mb.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d tombstones after a MOVE out, want 1", n)
	}
	if err := db.DeleteMailbox(ctx, acct, "Projets"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d tombstones left by a deleted mailbox", n)
	}
}

// Changes reads a range of indexes, never the whole mailbox.
func TestChangesQueryPlans(t *testing.T) {
	db, _, _ := setup(t)
	for q, want := range map[string]string{
		qChangedSince:  "messages_modseq",
		qExpungedSince: "PRIMARY KEY",
	} {
		rows, err := db.r.Query("EXPLAIN QUERY PLAN "+q, 1, 1)
		if err != nil {
			t.Fatal(err)
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
		if !strings.Contains(text, want) || strings.Contains(text, "SCAN") {
			t.Errorf("%s: plan %q, want a search of %s", q, text, want)
		}
	}
}
