//go:build race

package sqlite

// raceEnabled: the race detector slows every goroutine several times over,
// so tests of timing-dependent behaviour only log under it.
const raceEnabled = true
