package imap

// PanicOn makes every command of account panic where it starts its storage
// work, to test session.guard; the returned function undoes it.
func PanicOn(account string) (undo func()) {
	f := func(a string) {
		if a == account {
			panic("test panic for " + a)
		}
	}
	panicHook.Store(&f)
	return func() { panicHook.Store(nil) }
}

// SetMaxQueued changes the bound of a session's update queue; the returned
// function restores it.
func SetMaxQueued(n int64) (undo func()) {
	old := maxQueued.Swap(n)
	return func() { maxQueued.Store(old) }
}
