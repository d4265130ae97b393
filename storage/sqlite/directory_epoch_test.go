package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/carepost/carepost/directory"
)

// A data directory from before the credential epochs (directorySchemaV3)
// keeps its entries: they start at epoch 0, and the next change moves it.
func TestMigrateCredentialEpochs(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const a = "jean.dupont@ch-x.mssante.fr"
	if err := db.AddEntry(ctx, directory.Entry{Address: a, Kind: directory.KindPersonal, Status: directory.StatusActive}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "carepost.db"))
	if err != nil {
		t.Fatal(err)
	}
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
		"ALTER TABLE dir_entries DROP COLUMN cred_epoch",
		"ALTER TABLE dir_entries DROP COLUMN cred_change",
		fmt.Sprintf("PRAGMA user_version = %d", slices.Index(migrations, directorySchemaV3)),
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	if db, err = Open(dir, Options{Key: testKey}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.AccountStates(ctx, []string{a})
	if err != nil || st[a] != (directory.AccountState{Status: directory.StatusActive}) {
		t.Fatalf("after the migration: %+v, %v", st, err)
	}
	if err := db.SetPassword(ctx, a, "$argon2id$x"); err != nil {
		t.Fatal(err)
	}
	if st, _ := db.AccountStates(ctx, []string{a}); st[a].Epoch != 1 || st[a].Change != directory.ChangePassword {
		t.Fatalf("after SetPassword: %+v", st[a])
	}
}
