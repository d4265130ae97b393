package sqlite

// SetNatBroadMatches lets the tests take the plan of broad searches with
// few records.
func SetNatBroadMatches(n int) (restore func()) {
	old := natBroadMatches
	natBroadMatches = n
	return func() { natBroadMatches = old }
}
