//go:build unix

package sqlite

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir/carepost.lock for the life
// of the DB: two processes on one data directory would each sweep the
// other's freshly written bodies as orphans (see sweepBlobs).
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "carepost.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("sqlite: the data directory %s is in use by another process (%v)", dir, err)
	}
	return f, nil
}
