package smtp_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/smtp"
)

// TestEndDuringMessage: an application password revoked while its session
// is sending a message. The message is received, stored and acknowledged
// (a 250 that never came would make the client send it twice), then the
// session gets 421 4.7.0 with the reason and is closed. Bob's session,
// open beside it, stays.
func TestEndDuringMessage(t *testing.T) {
	e := newEnv(t)
	sessions := auth.NewSessions(e.dir, 20*time.Millisecond, e.logger)
	t.Cleanup(func() { sessions.Close() })
	addr := e.start(smtp.ModeSubmission, false, func(o *smtp.Options) { o.Sessions = sessions })
	c := e.submit(addr, alice, e.alicePass)
	other := e.submit(addr, bob, e.bobPass)

	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(bob, nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	msg := message(alice, bob, "in flight", "First half of the letter.\r\n")
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dir.RevokeAppPassword(context.Background(), alice, "test"); err != nil {
		t.Fatal(err)
	}
	// Wait until the watcher has seen the change, the message still open.
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(e.logs.String(), "after_message=true") {
		if time.Now().After(deadline) {
			t.Fatalf("the session was not told to end while sending; log:\n%s", e.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := io.WriteString(w, "Second half.\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("the message being sent when the session ended: %v, want 250", err)
	}
	if n := e.inboxCount(bob); n != 1 {
		t.Fatalf("bob has %d messages, want the one acknowledged", n)
	}
	// The 421 is already on the wire: it is the reply the next command
	// reads.
	wantCode(t, c.Noop(), 421, "4.7.0", "application password", "revoked")
	if err := c.Noop(); err == nil {
		t.Fatal("the connection stayed open after 421")
	}
	if err := other.Noop(); err != nil {
		t.Fatalf("bob's session: %v", err)
	}
}
