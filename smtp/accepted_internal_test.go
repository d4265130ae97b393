package smtp

import "testing"

// The 250 after DATA says where the message went: a message queued for
// another operator is on disk here, not delivered yet.
func TestAcceptedText(t *testing.T) {
	for _, c := range []struct {
		local, remote int
		want          string
	}{
		{2, 0, "delivered to 2 mailbox(es)"},
		{0, 1, "queued for 1 recipient(s) of other operators"},
		{1, 2, "delivered to 1 mailbox(es) and queued for 2 recipient(s) of other operators"},
	} {
		if got := acceptedText(c.local, c.remote); got != c.want {
			t.Errorf("acceptedText(%d, %d) = %q, want %q", c.local, c.remote, got, c.want)
		}
	}
}
