//go:build unix

package server

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockServe makes sure one `carepost serve` runs per data directory: two
// would each deliver and notify their own IMAP sessions only. The
// administrative commands do not take this lock.
func lockServe(data string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(data, "serve.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another carepost serve is already running on the data directory %s", data)
	}
	return f, nil
}
