package limit

import (
	"testing"
	"time"
)

// The pacer lets a burst through, then spaces commands at its rate; a
// quiet moment refills it.
func TestPacer(t *testing.T) {
	p := NewPacer(10) // burst 20
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		if d := p.Delay(t0); d != 0 {
			t.Fatalf("command %d of the burst waits %v", i, d)
		}
	}
	for i := 1; i <= 5; i++ {
		if d, want := p.Delay(t0), time.Duration(i)*100*time.Millisecond; d != want {
			t.Errorf("command %d past the burst waits %v, want %v", i, d, want)
		}
	}
	// Ten seconds later the bucket is full again.
	if d := p.Delay(t0.Add(10 * time.Second)); d != 0 {
		t.Errorf("after a quiet moment: %v", d)
	}
	var none *Pacer
	if d := none.Delay(t0); d != 0 {
		t.Errorf("nil pacer waits %v", d)
	}
}

func TestSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7:1234":               "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:993":   "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:25":        "192.0.2.7",
		"pipe":                         "pipe",
		"[2001:db8:1:2:ffff::1]:65535": "2001:db8:1:2::/64",
	} {
		if got := Source(in); got != want {
			t.Errorf("Source(%q) = %q, want %q", in, got, want)
		}
	}
}
