//go:build !unix

package sqlite

import (
	"os"
	"path/filepath"
)

// lockDir only creates the lock file where flock does not exist; the orphan
// sweep is then skipped, as another process may have the directory open.
func lockDir(dir string) (*os.File, bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, "carepost.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	return f, false, err
}

func shareLock(*os.File) error { return nil }
