package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/crypto"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage/sqlite"
	"github.com/carepost/carepost/storage/storagetest"
)

func TestDirectoryConformance(t *testing.T) {
	// One data directory per subtest: a second open in the same subtest
	// reopens it (the persistence test).
	var mu sync.Mutex
	dirs := map[*testing.T]string{}
	storagetest.RunDirectory(t, func(t *testing.T) directory.Store {
		mu.Lock()
		dir, ok := dirs[t]
		if !ok {
			dir = t.TempDir()
			dirs[t] = dir
		}
		mu.Unlock()
		db, err := sqlite.Open(dir, sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
		if err != nil {
			t.Fatal(err)
		}
		// Closing twice (by the suite, then here) must be harmless.
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// TestMailboxKeysSealed: a private key is not in the database in clear,
// and a sealed key moved to another certificate's row does not open.
func TestMailboxKeysSealed(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(dir, sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	key := []byte("-----BEGIN PRIVATE KEY----- a PKCS#8 key that must never be stored in clear")
	for _, c := range []directory.MailboxCert{
		{Address: "a@x.test", Usage: directory.UsageSign, Fingerprint: "01", DER: []byte("c1"), Key: key, Created: time.Now()},
		{Address: "b@x.test", Usage: directory.UsageSign, Fingerprint: "02", DER: []byte("c2"), Key: []byte("other key"), Created: time.Now()},
	} {
		if err := db.AddMailboxCert(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", filepath.Join(dir, "carepost.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var sealed []byte
	if err := raw.QueryRow(`SELECT sealed_key FROM dir_mailbox_certs WHERE address = 'a@x.test'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, key[:16]) || bytes.Contains(sealed, []byte("PKCS#8")) {
		t.Fatal("the private key is stored in clear")
	}
	// Every file of the data directory (database, WAL) is free of it.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("must never be stored")) {
				t.Errorf("%s holds the private key in clear", p)
			}
		}
		return nil
	})
	if _, err := raw.Exec(`UPDATE dir_mailbox_certs SET sealed_key = ? WHERE address = 'b@x.test'`, sealed); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MailboxCerts(ctx, "b@x.test"); !errors.Is(err, crypto.ErrSealed) {
		t.Fatalf("a sealed key moved to another row: %v, want crypto.ErrSealed", err)
	}
	if got, err := db.MailboxCerts(ctx, "a@x.test"); err != nil || !bytes.Equal(got[0].Key, key) {
		t.Fatalf("MailboxCerts = %+v, %v", got, err)
	}
}
