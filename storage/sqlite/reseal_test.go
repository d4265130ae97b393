package sqlite

import (
	"bytes"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/storage/storagetest"
)

// testdata/v1store is a store made by the code before sealed format version
// 2 (commit 8a2a319, with testKey, InlineLimit 1024 and
// storagetest.Summarize): two accounts, a small body delivered to both
// INBOXes (inline, with its header and summary in digests), a larger one in
// a file, and one more small body for the second account.
var v1Bodies = map[string][]string{
	"dupont@ch-test.fr": {
		"Subject: petit\r\nFrom: a@ch-test.fr\r\n\r\nCompte rendu court.\r\n",
		"Subject: grand\r\nFrom: b@ch-test.fr\r\n\r\n" + strings.Repeat("Resultats biologiques. ", 200) + "\r\n",
	},
	"martin@ch-test.fr": {
		"Subject: petit\r\nFrom: a@ch-test.fr\r\n\r\nCompte rendu court.\r\n",
		"Subject: deux\r\n\r\nsecond pour martin\r\n",
	},
}

const v1File = "b00e55bf8139bf4fe4287b201ea92ebc"

// copyV1Store copies testdata/v1store into a new directory.
func copyV1Store(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("testdata", "v1store")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkV1Content reads every message of the old store back, with its
// header and summary.
func checkV1Content(t *testing.T, db *DB) {
	t.Helper()
	ctx := t.Context()
	for acct, bodies := range v1Bodies {
		inbox, err := db.GetMailbox(ctx, acct, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		ds, err := db.Digests(ctx, inbox.ID, nil, true, true)
		if err != nil {
			t.Fatalf("%s: Digests: %v", acct, err)
		}
		if len(ds) != len(bodies) {
			t.Fatalf("%s: %d digests, want %d", acct, len(ds), len(bodies))
		}
		for i, want := range bodies {
			uid := uint32(i + 1)
			b, err := db.OpenBody(ctx, inbox.ID, uid)
			if err != nil {
				t.Fatalf("%s uid %d: %v", acct, uid, err)
			}
			got, err := io.ReadAll(b)
			b.Close()
			if err != nil || string(got) != want {
				t.Fatalf("%s uid %d: read back %q, %v", acct, uid, got, err)
			}
			header, _, _ := strings.Cut(want, "\r\n\r\n")
			if string(ds[i].Header) != header+"\r\n\r\n" {
				t.Errorf("%s uid %d: header %q", acct, uid, ds[i].Header)
			}
			if string(ds[i].Summary) != string(storagetest.Summarize([]byte(want))) {
				t.Errorf("%s uid %d: summary %q", acct, uid, ds[i].Summary)
			}
		}
	}
}

// sealedValues returns every sealed value of the database and the names of
// the body files.
func sealedValues(t *testing.T, db *DB) (values [][]byte, files []string) {
	t.Helper()
	rows, err := db.r.Query(`SELECT b.name, b.data, d.header, d.summary FROM blobs b LEFT JOIN digests d ON d.blob_id = b.id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var data, header, summary []byte
		if err := rows.Scan(&name, &data, &header, &summary); err != nil {
			t.Fatal(err)
		}
		if data == nil {
			files = append(files, name)
		}
		for _, v := range [][]byte{data, header, summary} {
			if v != nil {
				values = append(values, v)
			}
		}
	}
	return values, files
}

// A store sealed in version 1 is sealed again at Open: everything reads
// back, no value or file of version 1 is left, the file body has a new
// name and the old file is gone, and the next Open has nothing to do.
func TestResealV1Store(t *testing.T) {
	dir := copyV1Store(t)
	old := filepath.Join(dir, "blobs", v1File[:2], v1File)
	if raw, err := os.ReadFile(old); err != nil || crypto.SealedVersion(raw) != 1 {
		t.Fatalf("the old store's file: version %d, %v", crypto.SealedVersion(raw), err)
	}
	db, err := Open(dir, Options{Key: testKey, InlineLimit: 1024, Summarize: storagetest.Summarize})
	if err != nil {
		t.Fatal(err)
	}
	checkV1Content(t, db)
	values, files := sealedValues(t, db)
	if len(values) != 8 || len(files) != 1 {
		t.Fatalf("%d sealed values and %d files, want 8 (2 inline bodies, 3 headers, 3 summaries) and 1", len(values), len(files))
	}
	for _, v := range values {
		if crypto.SealedVersion(v) != 2 {
			t.Fatalf("a value of version %d is left", crypto.SealedVersion(v))
		}
	}
	if files[0] == v1File {
		t.Fatal("the file body kept its name")
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the version 1 file is still there: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "blobs", files[0][:2], files[0]))
	if err != nil || crypto.SealedVersion(raw) != 2 {
		t.Fatalf("the new file: version %d, %v", crypto.SealedVersion(raw), err)
	}
	var pending int
	db.r.QueryRow("SELECT count(*) FROM store_tasks").Scan(&pending)
	if pending != 0 {
		t.Fatalf("%d tasks still pending", pending)
	}
	db.Close()

	db, err = Open(dir, Options{Key: testKey, InlineLimit: 1024, Summarize: storagetest.Summarize})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkV1Content(t, db)
	if again, files2 := sealedValues(t, db); !bytes.Equal(bytes.Join(again, nil), bytes.Join(values, nil)) || files2[0] != files[0] {
		t.Fatal("the second Open sealed again")
	}
}

// With the wrong key, the migration fails Open, says why, and leaves the
// task pending and the data as it was: the right key migrates it later.
func TestResealWrongKey(t *testing.T) {
	dir := copyV1Store(t)
	if _, err := Open(dir, Options{Key: bytes.Repeat([]byte{1}, 32)}); err == nil || !strings.Contains(err.Error(), "at-rest key") {
		t.Fatalf("Open with another key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", v1File[:2], v1File)); err != nil {
		t.Fatalf("the version 1 file: %v", err)
	}
	db, err := Open(dir, Options{Key: testKey, InlineLimit: 1024, Summarize: storagetest.Summarize})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkV1Content(t, db)
}

// Sealed values are bound to their body and purpose: a writer to the
// database who copies one user's sealed body, header or summary into
// another's row gets an authentication failure, not the other's data;
// nor does a version 1 value put back after the migration open.
func TestSealedValuesBound(t *testing.T) {
	db, _, _ := setupWith(t, Options{Key: testKey, Summarize: storagetest.Summarize})
	ctx := t.Context()
	other := "martin@ch-test.fr"
	if err := db.CreateAccount(ctx, other); err != nil {
		t.Fatal(err)
	}
	a, _ := db.GetMailbox(ctx, acct, "INBOX")
	b, _ := db.GetMailbox(ctx, other, "INBOX")
	deliver(t, db, "Subject: pour dupont\r\n\r\nDiagnostic de Mme Dupont\r\n", a.ID)
	deliver(t, db, "Subject: pour martin\r\n\r\nRien\r\n", b.ID)
	blobOf := func(mb int64) int64 {
		var id int64
		if err := db.r.QueryRow("SELECT blob_id FROM messages WHERE mailbox_id = ? AND uid = 1", mb).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	ida, idb := blobOf(a.ID), blobOf(b.ID)
	for _, swap := range []string{
		"UPDATE blobs SET data = (SELECT data FROM blobs WHERE id = ?) WHERE id = ?",
		"UPDATE digests SET header = (SELECT header FROM digests WHERE blob_id = ?) WHERE blob_id = ?",
		"UPDATE digests SET summary = (SELECT summary FROM digests WHERE blob_id = ?) WHERE blob_id = ?",
		"UPDATE digests SET summary = (SELECT header FROM digests WHERE blob_id = ?) WHERE blob_id = ?",
	} {
		t.Run(swap, func(t *testing.T) {
			var saved []byte
			col := strings.Fields(swap)[3]
			table := strings.Fields(swap)[1]
			key := map[string]string{"blobs": "id", "digests": "blob_id"}[table]
			db.r.QueryRow("SELECT "+col+" FROM "+table+" WHERE "+key+" = ?", idb).Scan(&saved)
			src := ida
			if col == "summary" && strings.Contains(swap, "SELECT header") {
				src = idb // another purpose of the same body
			}
			if _, err := db.w.Exec(swap, src, idb); err != nil {
				t.Fatal(err)
			}
			defer db.w.Exec("UPDATE "+table+" SET "+col+" = ? WHERE "+key+" = ?", saved, idb)
			var err error
			if table == "blobs" {
				_, err = db.OpenBody(ctx, b.ID, 1)
			} else {
				_, err = db.Digests(ctx, b.ID, nil, true, true)
			}
			if !errors.Is(err, crypto.ErrSealed) {
				t.Fatalf("read after the swap: %v, want ErrSealed", err)
			}
		})
	}
	// The rows are as they were: both read.
	for _, mb := range []int64{a.ID, b.ID} {
		if _, err := db.Digests(ctx, mb, nil, true, true); err != nil {
			t.Fatal(err)
		}
	}
	// A version 1 value (from a backup before the migration) is refused.
	v1, err := os.ReadFile(filepath.Join("testdata", "v1store", "blobs", v1File[:2], v1File))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec("UPDATE blobs SET data = ? WHERE id = ?", v1, idb); err != nil {
		t.Fatal(err)
	}
	if _, err := db.OpenBody(ctx, b.ID, 1); !errors.Is(err, crypto.ErrSealedV1) {
		t.Fatalf("a version 1 body after the migration: %v, want ErrSealedV1", err)
	}
}

// Two processes opening an old store at once both seal it again: the one
// that comes second finds rows that are no longer what it read, changes
// nothing, and removes the copy it made. Played here by running the
// migration of a row read before another migration ran.
func TestResealStaleRow(t *testing.T) {
	dir := copyV1Store(t)
	raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "carepost.db"))
	if err != nil {
		t.Fatal(err)
	}
	var stale resealRow
	err = raw.QueryRow(`SELECT b.id, b.name, b.data, d.header, d.summary, d.blob_id IS NOT NULL
		FROM blobs b LEFT JOIN digests d ON d.blob_id = b.id WHERE b.name = ?`, v1File).
		Scan(&stale.id, &stale.name, &stale.data, &stale.header, &stale.summary, &stale.hasDigests)
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	oldFile, err := os.ReadFile(filepath.Join(dir, "blobs", v1File[:2], v1File))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, Options{Key: testKey, InlineLimit: 1024, Summarize: storagetest.Summarize})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The other process's view: the version 1 file is still there.
	if err := os.WriteFile(filepath.Join(dir, "blobs", v1File[:2], v1File), oldFile, 0o600); err != nil {
		t.Fatal(err)
	}
	before := blobFiles(t, dir)
	if old, err := db.resealOne(t.Context(), stale); err != nil || old != "" {
		t.Fatalf("resealOne of a stale row = %q, %v", old, err)
	}
	if after := blobFiles(t, dir); len(after) != len(before) {
		t.Fatalf("body files %v, then %v: the stale migration left its copy", before, after)
	}
	checkV1Content(t, db)
}
