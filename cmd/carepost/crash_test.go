package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/server"
)

// TestMain lets the crash test run `carepost serve` as a child process of
// its own test binary (no build step): with CAREPOST_TEST_MAIN=1 the
// binary is the command line itself.
func TestMain(m *testing.M) {
	if os.Getenv("CAREPOST_TEST_MAIN") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveProcess starts `carepost serve --config conf` as a child process
// (TestMain) and returns once addr accepts connections.
func serveProcess(t *testing.T, conf, addr string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "serve", "--config", conf)
	cmd.Env = append(os.Environ(), "CAREPOST_TEST_MAIN=1")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // drain the log
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillDuringDeliveryToTwoRecipients sends messages for two local
// recipients from several clients and kills the server (SIGKILL) at a
// random moment, several times. Every message acknowledged with 250 must
// be in both INBOXes after the restarts, and every message must be in both
// or in neither: the copies of one message commit in one transaction.
func TestKillDuringDeliveryToTwoRecipients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a server several times")
	}
	data := newData(t)
	const alice, bob, carol = "alice@carepost.test", "bob@carepost.test", "carol@carepost.test"
	const pw = "crash: a long enough passphrase"
	for i, a := range []string{alice, bob, carol} {
		ids := []string{"810001045367", "0012600631", "810000000017"}
		if _, errs, code := carepost(t, data, "", "dir", "add-professional", "--id", ids[i], "--first", "A", "--last", "B",
			"--profession", "10", "--address", a); code != 0 {
			t.Fatalf("add-professional %s: %s", a, errs)
		}
	}
	if _, errs, code := carepost(t, data, pw+"\n", "user", "set-password", alice); code != 0 {
		t.Fatal(errs)
	}
	if _, errs, code := carepost(t, data, "", "pki", "init"); code != 0 {
		t.Fatal(errs)
	}
	caPEM, _, _ := carepost(t, data, "", "pki", "export", "ca")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("no CA certificate")
	}
	addr := freePort(t)
	conf := serveConfig(t, data, addr)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}

	var mu sync.Mutex
	acked := map[string]bool{}
	const rounds = 4
	for round := range rounds {
		cmd := serveProcess(t, conf, addr)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for client := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := gosmtp.DialTLS(addr, tlsConf)
				if err != nil {
					return
				}
				defer c.Close()
				if err := c.Auth(sasl.NewPlainClient("", alice, pw)); err != nil {
					return
				}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("r%d-c%d-m%d", round, client, i)
					body := fmt.Sprintf("From: %s\r\nTo: %s, %s\r\nSubject: %s\r\nMessage-ID: <%s@crash.test>\r\n\r\n%s\r\n",
						alice, bob, carol, id, id, strings.Repeat("line of a referral letter\r\n", 40))
					if err := c.SendMail(alice, []string{bob, carol}, strings.NewReader(body)); err != nil {
						return // the server is gone
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(200+rand.IntN(600)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		wg.Wait()
	}

	// Read both INBOXes with the server's own store.
	srv := openConfigured(t, conf)
	ids := func(account string) map[string]bool {
		ctx := context.Background()
		mb, err := srv.Store.GetMailbox(ctx, account, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		ms, err := srv.Store.Messages(ctx, mb.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, m := range ms {
			h, err := srv.Store.OpenHeader(ctx, mb.ID, m.UID)
			if err != nil {
				t.Fatal(err)
			}
			i := strings.Index(string(h), "Subject: ")
			if i < 0 {
				t.Fatalf("message without a subject: %q", h)
			}
			subj, _, _ := strings.Cut(string(h[i+len("Subject: "):]), "\r\n")
			if out[subj] {
				t.Errorf("%s stored twice in %s", subj, account)
			}
			out[subj] = true
		}
		return out
	}
	b, c := ids(bob), ids(carol)
	if len(acked) == 0 {
		t.Fatal("no message was acknowledged")
	}
	for id := range acked {
		if !b[id] || !c[id] {
			t.Errorf("%s was acknowledged but bob has it: %v, carol: %v", id, b[id], c[id])
		}
	}
	for id := range b {
		if !c[id] {
			t.Errorf("%s is in bob's INBOX only", id)
		}
	}
	for id := range c {
		if !b[id] {
			t.Errorf("%s is in carol's INBOX only", id)
		}
	}
	t.Logf("%d rounds, %d messages acknowledged, %d stored", rounds, len(acked), len(b))
}

// openConfigured opens the data directory of a configuration file as the
// server would, once the server process is gone, to read its store.
func openConfigured(t *testing.T, conf string) *server.Server {
	t.Helper()
	cfg, err := server.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}
