package imap_test

import (
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/server"
)

// Issue 21: an APPEND literal has an overall deadline beside the one on
// each read. A client sending ten bytes every 200 ms keeps every read
// within its timeout but not the literal within its deadline (2 s here):
// the server ends the session with BYE and a sentence, stores nothing,
// and other sessions go on.
func TestLiteralOverallDeadline(t *testing.T) {
	srv, users := startWith(t, func(c *server.Config) { c.Limits.TransferTimeout = server.Duration(2 * time.Second) }, "alice")
	alice := users[0]
	other := login(t, srv, alice)
	r := login(t, srv, alice)
	r.write("a1 APPEND INBOX {100000}\r\n")
	if l := r.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	msg := simple(alice, alice, "slow", strings.Repeat("x", 100000))
	answer := make(chan string, 1)
	go func() { answer <- outcome(r) }()
	var got string
drip:
	for i := 0; i < 3000; i += 10 { // a minute at most: a guard, not a measure
		select {
		case got = <-answer:
			break drip
		case <-time.After(200 * time.Millisecond):
			r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := r.c.Write([]byte(msg[i : i+10])); err != nil {
				got = <-answer
				break drip
			}
		}
	}
	if !strings.HasPrefix(got, "* BYE ") || !strings.Contains(got, "send it again") {
		t.Fatalf("answer %q, want BYE with a sentence", got)
	}
	if got := outcome(r); got != "closed" {
		t.Fatalf("after BYE: %q", got)
	}
	if u := other.ok("STATUS INBOX (MESSAGES)"); find(u, "MESSAGES 0") == "" {
		t.Fatalf("a message was stored: %q", u)
	}
}
