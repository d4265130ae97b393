package sqlite_test

import (
	"bytes"
	"sync"
	"testing"

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
