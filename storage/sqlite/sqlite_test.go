package sqlite

import (
	"bytes"
	"testing"

	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/storagetest"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

// openTest opens a store keeping every body in a file, as the tests of the
// body files expect; inline_test.go covers bodies kept in the database.
func openTest(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{Key: testKey, InlineLimit: -1, Summarize: storagetest.Summarize})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestMailConformance(t *testing.T) {
	t.Run("files", func(t *testing.T) {
		storagetest.RunMail(t, func(t *testing.T, dir string) storage.Store { return openTest(t, dir) })
	})
	// The default: bodies up to 256 KiB inline, larger ones (the suite's
	// 20 MB body) in files.
	t.Run("inline", func(t *testing.T) {
		storagetest.RunMail(t, func(t *testing.T, dir string) storage.Store {
			db, err := Open(dir, Options{Key: testKey, Summarize: storagetest.Summarize})
			if err != nil {
				t.Fatal(err)
			}
			return db
		})
	})
	// What `carepost serve` runs by default (storage.flag_sync).
	t.Run("deferred", func(t *testing.T) {
		storagetest.RunMail(t, func(t *testing.T, dir string) storage.Store {
			db, err := Open(dir, Options{Key: testKey, Summarize: storagetest.Summarize, DeferFlagSync: true})
			if err != nil {
				t.Fatal(err)
			}
			return db
		})
	})
}

func TestAuditConformance(t *testing.T) {
	storagetest.RunAudit(t, func(t *testing.T, dir string) storagetest.AuditStore {
		db, err := Open(dir, Options{Key: testKey, Summarize: storagetest.Summarize, Audit: true})
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
}
