package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// captureTB keeps what the server logs.
type captureTB struct {
	testing.TB
	mu  sync.Mutex
	log strings.Builder
}

func (c *captureTB) Logf(format string, args ...any) {
	c.mu.Lock()
	fmt.Fprintf(&c.log, format+"\n", args...)
	c.mu.Unlock()
	c.TB.Logf(format, args...)
}

func (c *captureTB) logged() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

// firstLine connects to a listener (over TLS for the implicit-TLS ones)
// and returns the server's first line; the connection stays open until
// the test ends.
func firstLine(t *testing.T, srv *servertest.Instance, listener string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	var c net.Conn
	var err error
	if listener == "imaps" || listener == "submissions" {
		c, err = tls.Dial("tcp", srv.AddrOf(listener), srv.ClientTLS())
	} else {
		c, err = net.Dial("tcp", srv.AddrOf(listener))
	}
	if err != nil {
		t.Fatalf("dial %s: %v", listener, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	l, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: first line: %v (%q)", listener, err, l)
	}
	return c, r, strings.TrimSpace(l)
}

// Past the per-address limit a new connection gets the protocol's
// refusal with a sentence, over TLS on the implicit-TLS listeners, and is
// closed; the sessions already open go on, and a place freed is taken
// again. Each listener counts on its own.
func TestConnectionLimitRefusals(t *testing.T) {
	const perAddress = 3
	srv := servertest.Start(t, func(c *server.Config) { c.Limits.ConnectionsPerAddress = perAddress })
	cases := []struct {
		listener, greeting, refusal string
	}{
		{"imap", "* OK", "* BYE Too many connections from your address (3)"},
		{"imaps", "* OK", "* BYE Too many connections from your address (3)"},
		{"smtp", "220 ", "421 4.7.0 " + srv.Config.Hostname + " Too many connections from your address (3)"},
		{"submission", "220 ", "421 4.7.0"},
		{"submissions", "220 ", "421 4.7.0"},
	}
	for _, tc := range cases {
		t.Run(tc.listener, func(t *testing.T) {
			var open []net.Conn
			var readers []*bufio.Reader
			for range perAddress {
				c, r, l := firstLine(t, srv, tc.listener)
				if !strings.HasPrefix(l, tc.greeting) {
					t.Fatalf("greeting %q", l)
				}
				open, readers = append(open, c), append(readers, r)
			}
			c, r, l := firstLine(t, srv, tc.listener)
			if !strings.HasPrefix(l, tc.refusal) {
				t.Fatalf("past the limit: %q, want %q", l, tc.refusal)
			}
			if _, err := r.ReadString('\n'); err == nil {
				t.Fatal("the refused connection was not closed")
			}
			c.Close()
			// The sessions already open go on.
			for i, c := range open {
				cmd, want := "a NOOP\r\n", "a OK"
				if strings.HasPrefix(tc.greeting, "220") {
					cmd, want = "NOOP\r\n", "250"
				}
				c.Write([]byte(cmd))
				if l, err := readers[i].ReadString('\n'); err != nil || !strings.HasPrefix(l, want) {
					t.Fatalf("open session %d: %q %v", i, l, err)
				}
			}
			// A place freed is taken again.
			open[0].Close()
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, _, l := firstLine(t, srv, tc.listener)
				if strings.HasPrefix(l, tc.greeting) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the freed place was not given back: %q", l)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// The total limit of a listener refuses every address once reached, with
// its own sentence, and the refusals are logged once a minute.
func TestConnectionTotalLimit(t *testing.T) {
	lt := &captureTB{TB: t}
	srv := servertest.Start(lt, func(c *server.Config) {
		c.Limits.Connections = 2
		c.Limits.ConnectionsPerAddress = 2
	})
	for range 2 {
		if _, _, l := firstLine(t, srv, "imap"); !strings.HasPrefix(l, "* OK") {
			t.Fatalf("greeting %q", l)
		}
	}
	for range 5 {
		if _, _, l := firstLine(t, srv, "imap"); l != "* BYE Too many connections to this server; please try again in a few minutes." {
			t.Fatalf("past the total: %q", l)
		}
	}
	if n := strings.Count(lt.logged(), "listener=listen.imap source=127.0.0.1 limit=limits.connections "); n != 1 {
		t.Errorf("5 refusals logged %d times, want once:\n%s", n, lt.logged())
	}
}

// A session sending commands faster than commands_per_second is slowed,
// not ended: every command gets its answer.
func TestCommandRateSlowsNotKills(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Limits.CommandsPerSecond = 20 })
	alice := srv.AddProfessional("alice", password)
	c, r, _ := firstLine(t, srv, "imaps")
	send := func(tag, cmd string) string {
		fmt.Fprintf(c, "%s %s\r\n", tag, cmd)
		for {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if strings.HasPrefix(l, tag+" ") {
				return strings.TrimSpace(l)
			}
		}
	}
	if l := send("l", fmt.Sprintf("LOGIN %s %q", alice, password)); !strings.HasPrefix(l, "l OK") {
		t.Fatal(l)
	}
	// 70 commands, pipelined: past the burst of 40.
	var b strings.Builder
	for i := range 70 {
		fmt.Fprintf(&b, "s%d STATUS INBOX (MESSAGES)\r\n", i)
	}
	c.Write([]byte(b.String()))
	ok := 0
	for ok < 70 {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d answers: %v", ok, err)
		}
		if strings.HasPrefix(l, "s") && strings.Contains(l, " OK ") {
			ok++
		} else if !strings.HasPrefix(l, "* STATUS") {
			t.Fatalf("unexpected %q", l)
		}
	}
	if l := send("n", "NOOP"); !strings.HasPrefix(l, "n OK") {
		t.Fatal(l)
	}
}
