//go:build race

package imap

// raceEnabled: the race detector's instrumentation allocates besides the
// code under test, so allocation bounds only log under it.
const raceEnabled = true
