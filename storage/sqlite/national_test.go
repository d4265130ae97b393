package sqlite_test

import (
	"bytes"
	"testing"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage/sqlite"
	"github.com/carepost/carepost/storage/storagetest"
)

// The plan of broad searches (the sort index walked, each record tested
// against the matches) answers like the plan of narrow ones.
func TestNationalBroadPlan(t *testing.T) {
	defer sqlite.SetNatBroadMatches(1)()
	storagetest.RunNational(t, func(t *testing.T) directory.Store {
		db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
