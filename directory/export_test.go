package directory

import "time"

// SetClock lets the external tests move time (trust space cache expiry,
// last login).
func SetClock(d *Directory, now func() time.Time) { d.now = now }
