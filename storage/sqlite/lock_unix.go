//go:build unix

package sqlite

import (
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an advisory lock on dir/carepost.lock for the life of the
// DB. Several processes may share a data directory (the server and the
// administrative commands run beside it), each holding a shared lock. The
// orphan sweep (sweepBlobs) deletes body files that no row references, which
// would include another process's freshly written body: it runs only when
// Open could take the lock exclusively, i.e. when no other process has the
// directory open, and the lock is then downgraded to shared.
func lockDir(dir string) (f *os.File, exclusive bool, err error) {
	f, err = os.OpenFile(filepath.Join(dir, "carepost.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		return f, true, nil
	}
	// Someone else has it open: share (waiting, if it is sweeping).
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, false, err
	}
	return f, false, nil
}

// shareLock downgrades the exclusive lock taken by lockDir once the sweep
// is done.
func shareLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_SH)
}
