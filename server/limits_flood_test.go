//go:build linux

package server_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// floodConns is the number of idle connections of issue 21, opened from
// one address by helper processes (each process has its own limit of open
// files, so the test needs no more than the server's share in its own).
const (
	floodConns     = 20000
	floodProcesses = 2
	// Handshakes that never finish, each from its own address
	// (127.0.1.x), so that the per-address limit does not stop them and
	// only the handshake deadline does.
	stalledHandshakes = 200
)

// TestHelperFloodProcess is not a test: run by TestConnectionFlood as a
// separate process, it opens FLOOD_N connections to FLOOD_ADDR from
// 127.0.0.1, prints how many it holds, and keeps them until its standard
// input closes.
func TestHelperFloodProcess(t *testing.T) {
	addr := os.Getenv("CAREPOST_FLOOD_ADDR")
	if addr == "" {
		t.Skip("helper process of TestConnectionFlood")
	}
	n, _ := strconv.Atoi(os.Getenv("CAREPOST_FLOOD_N"))
	raiseNoFile()
	var conns []net.Conn
	var firstErr error
	// No LocalAddr: 127.0.0.1 is the source of a connection to
	// 127.0.0.1 anyway, and binding before connecting makes the kernel
	// search its ports at each of the 10,000 binds.
	d := net.Dialer{Timeout: 10 * time.Second}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		conns = append(conns, c)
	}
	fmt.Printf("holding %d %v\n", len(conns), firstErr)
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// raiseNoFile raises the soft limit of open files to the hard one (Go
// does so at start on Linux; a parent may have lowered it).
func raiseNoFile() (soft uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur
}

// Issue 21 "Connection limits": 20,000 idle connections from one address
// and 200 TLS handshakes that never finish, all held at once against the
// IMAPS listener; through them a normal client from another address logs
// in and fetches, a session opened before the flood goes on, the refusals
// of the flooding address are logged once, and the stalled handshakes are
// closed by the server.
func TestConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 20,000 connections")
	}
	if soft := raiseNoFile(); soft < 2000 {
		t.Skipf("only %d open files allowed", soft)
	}
	lt := &captureTB{TB: t}
	srv := servertest.Start(lt, func(c *server.Config) {
		c.Limits.HandshakeTimeout = server.Duration(3 * time.Second)
	})
	alice := srv.AddProfessional("alice", password)
	if err := submit(t, srv, alice, alice, []string{alice}, message(alice, alice, "through the flood", "still here")); err != nil {
		t.Fatal(err)
	}
	addr := srv.AddrOf("imaps")
	before := dialFrom(t, srv, "127.0.0.2")
	if err := before.Login(alice, password).Wait(); err != nil {
		t.Fatal(err)
	}

	// The flood: helper processes from 127.0.0.1.
	floodStart := time.Now()
	held := 0
	for range floodProcesses {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFloodProcess$", "-test.v")
		cmd.Env = append(os.Environ(), "CAREPOST_FLOOD_ADDR="+addr, fmt.Sprintf("CAREPOST_FLOOD_N=%d", floodConns/floodProcesses))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Wait() })
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "holding "); ok {
				n, _ := strconv.Atoi(strings.Fields(rest)[0])
				held += n
				t.Logf("helper: %s", sc.Text())
				break
			}
		}
		go io.Copy(io.Discard, stdout)
	}
	if held < floodConns {
		t.Fatalf("the helpers hold %d connections, want %d", held, floodConns)
	}

	// 200 handshakes that never finish: a record header announcing a
	// ClientHello, then nothing.
	var stalled []net.Conn
	for i := range stalledHandshakes {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i))}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("stalled handshake %d: %v", i, err)
		}
		defer c.Close()
		c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01})
		stalled = append(stalled, c)
	}

	// Through them, a normal client logs in and fetches.
	c := dialFrom(t, srv, "127.0.0.2")
	if err := c.Login(alice, password).Wait(); err != nil {
		t.Fatalf("login through the flood: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(msgs) != 1 || !strings.Contains(string(msgs[0].BodySection[0].Bytes), "still here") {
		t.Fatalf("fetch through the flood: %v %v", msgs, err)
	}
	// The session opened before the flood goes on.
	if err := before.Noop().Wait(); err != nil {
		t.Fatalf("session opened before the flood: %v", err)
	}

	// The stalled handshakes are closed by the server (the guard is far
	// above the 3 s deadline).
	for i, c := range stalled {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := io.Copy(io.Discard, c); err != nil && !isClosedByPeer(err) {
			t.Fatalf("stalled handshake %d: not closed by the server: %v", i, err)
		}
	}
	// The refusals of the flooding address: one log line a minute.
	minutes := 1 + int(time.Since(floodStart)/time.Minute)
	if n := strings.Count(lt.logged(), "source=127.0.0.1 limit=limits.connections_per_address"); n < 1 || n > minutes {
		t.Errorf("the refusals of 127.0.0.1 were logged %d times in less than %d minute(s):\n%s", n, minutes, lt.logged())
	}
}

func isClosedByPeer(err error) bool {
	return strings.Contains(err.Error(), "reset by peer")
}

// dialFrom connects to IMAPS from a local address of the loopback network.
func dialFrom(t *testing.T, srv *servertest.Instance, ip string) *imapclient.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 30 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", srv.AddrOf("imaps"), srv.ClientTLS())
	if err != nil {
		t.Fatalf("dial imaps from %s: %v", ip, err)
	}
	c := imapclient.New(conn, nil)
	t.Cleanup(func() { c.Close() })
	return c
}
