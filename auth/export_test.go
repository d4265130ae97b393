package auth

import (
	"context"
	"time"
)

// SetClock replaces the limiter's clock: now gives the time, sleep waits
// (a test's virtual clock advances instead).
func (l *MemoryLimiter) SetClock(now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) {
	l.now, l.sleep = now, sleep
}
