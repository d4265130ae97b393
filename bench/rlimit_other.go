//go:build !unix

package bench

// raiseFileLimit does nothing where there is no RLIMIT_NOFILE; a zero
// soft limit means unknown.
func raiseFileLimit(need uint64) (soft, hard uint64, err error) { return 0, 0, nil }
