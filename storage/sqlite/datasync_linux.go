package sqlite

import (
	"os"
	"syscall"
)

// datasync makes the data of f durable, and its size, without the
// metadata a read does not need (fdatasync(2), what SQLite itself uses):
// the WAL is mostly overwritten in place, and then the file system need
// not commit its journal for it.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
