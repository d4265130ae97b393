//go:build unix

package bench

import "syscall"

// raiseFileLimit makes room for need open files: it raises the soft
// RLIMIT_NOFILE up to the hard limit if need is above it (Go already does
// so at start on Linux, but not everywhere, and a parent may have lowered
// it). It returns the soft limit in force and the hard limit.
func raiseFileLimit(need uint64) (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < need && lim.Cur < lim.Max {
		want := lim
		want.Cur = min(max(need, lim.Cur), lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(lim.Cur), uint64(lim.Max), err
		}
		lim = want
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}
