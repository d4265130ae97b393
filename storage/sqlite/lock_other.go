//go:build !unix

package sqlite

import (
	"os"
	"path/filepath"
)

// lockDir only creates the lock file where flock does not exist: running two
// processes on one data directory is not supported there either.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "carepost.lock"), os.O_RDWR|os.O_CREATE, 0o600)
}
