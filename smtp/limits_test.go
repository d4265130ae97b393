package smtp_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/smtp"
)

// Issue 21: DATA has an overall deadline beside the one on each read. A
// client sending a line every 200 ms keeps every read within its timeout
// but not the transfer within its deadline (2 s here): the server answers
// 421 4.4.2 with a sentence, closes the connection, and stores nothing.
func TestDataOverallDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeMX, false, func(o *smtp.Options) { o.DataTimeout = 2 * time.Second })
	c, err := net.Dial("tcp", addr)
	must(t, err)
	defer c.Close()
	var r *bufio.Reader
	expect := func(cmd, want string) {
		t.Helper()
		if cmd != "" {
			c.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
		}
		for {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if !strings.HasPrefix(l, want) {
				t.Fatalf("%s: %q, want %q", cmd, l, want)
			}
			if len(l) < 4 || l[3] != '-' {
				return
			}
		}
	}
	r = bufio.NewReader(c)
	expect("", "220")
	expect("EHLO op-other.fr", "250")
	expect("STARTTLS", "220")
	c = tls.Client(c, e.mxTLS)
	r = bufio.NewReader(c)
	expect("EHLO op-other.fr", "250")
	expect("MAIL FROM:<x@op-other.fr>", "250")
	expect("RCPT TO:<"+bob+">", "250")
	expect("DATA", "354")

	reply := make(chan string, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		l, _ := r.ReadString('\n')
		reply <- l
	}()
	c.Write([]byte(message("x@op-other.fr", bob, "slow", "")))
	var got string
drip:
	for range 300 { // a minute at most: a guard, not a measure
		select {
		case got = <-reply:
			break drip
		case <-time.After(200 * time.Millisecond):
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write([]byte("one more line of a very slow message\r\n")); err != nil {
				got = <-reply
				break drip
			}
		}
	}
	if !strings.HasPrefix(got, "421 4.4.2 ") || !strings.Contains(got, "send it again") {
		t.Fatalf("reply %q, want 421 4.4.2 with a sentence", got)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("the connection stays open after 421")
	}
	if n := e.inboxCount(bob); n != 0 {
		t.Fatalf("bob has %d messages", n)
	}
}
