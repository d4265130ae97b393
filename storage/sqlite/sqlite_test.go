package sqlite

import (
	"bytes"
	"testing"

	"carepost/storage"
	"carepost/storage/storagetest"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

func openTest(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir, Options{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestMailConformance(t *testing.T) {
	storagetest.RunMail(t, func(t *testing.T, dir string) storage.Store { return openTest(t, dir) })
}
