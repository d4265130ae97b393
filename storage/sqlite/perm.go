package sqlite

import (
	"errors"
	"fmt"
	"os"
)

// createPrivate makes the database file 0600 and its directory 0700 before
// SQLite opens it (issue 21: carepost.db and its WAL were 0644). SQLite
// creates a new database with 0644 less the umask, and its -wal and -shm
// files with the mode of the database file (os_unix.c, findCreateFileMode):
// creating the database first, 0600, makes all three private whatever the
// umask. A store made before this change is tightened here too, files
// that exist included.
func createPrivate(dir, path string) error {
	// Best effort: an operator may have made the directory, and owning
	// the files in it is enough to keep them private.
	os.Chmod(dir, 0o700)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
