package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// Operator A runs as a process of its own (`carepost serve`), operator B
// in this test; each has its own development CA, and each trusts the
// other's (`carepost trust add-ca`, Directory.AddTrustAnchor). Messages for
// B wait in A's queue while B is down; B comes back, and A is killed
// (SIGKILL) while it delivers them, then started again: every message
// reaches B, none is lost, and none is stored twice: a message A sends
// again because it died between B's 250 and recording it is dropped by B
// (same sender domain and Message-ID).
func TestKillWithQueuedMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a server")
	}
	const n = 100
	const pw = "federation: a long enough passphrase"
	bAddr := freePort(t)
	b := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.b.test", []string{"b.test"}, ""
		c.Listen = server.ListenConfig{SMTP: bAddr}
	})
	bob := b.AddProfessional("bob", pw)

	data := filepath.Join(t.TempDir(), "a")
	subAddr := freePort(t)
	conf := filepath.Join(t.TempDir(), "a.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `data = %q
hostname = "localhost"
domains = ["a.test"]
patient_domain = ""
[listen]
smtp = ""
submission = ""
submissions = %q
imap = ""
imaps = ""
https = ""
ldap = ""
ldaps = ""
[queue]
retry_initial = "100ms"
retry_max = "300ms"
lifetime = "1h"
concurrency = 4
[routes]
"b.test" = %q
# In clear: this test is about the queue across a crash; B is down while
# A accepts the messages, so A could not fetch Bob's S/MIME certificate
# (server/federation_test.go covers the gateway).
[smime]
gateway = false
`, data, subAddr, bAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	a := func(stdin string, args ...string) string {
		t.Helper()
		var outb, errb bytes.Buffer
		code := run(context.Background(), append(args, "--config", conf), strings.NewReader(stdin), &outb, &errb)
		out, errs := outb.String(), errb.String()
		if code != 0 {
			t.Fatalf("carepost %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		return out
	}
	a("", "init")
	a("", "dir", "add-professional", "--id", "810001045367", "--first", "A", "--last", "Lice", "--profession", "10", "--address", "alice@a.test")
	a(pw+"\n", "user", "set-password", "alice@a.test")
	a("", "trust", "add-domain", "b.test")
	a("", "trust", "add-ca", b.PKI.CAPath())
	caA := a("", "pki", "export", "ca")
	ctx := context.Background()
	if err := b.Dir.AddTrustedDomain(ctx, "a.test", "operator A"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Dir.AddTrustAnchor(ctx, []byte(caA)); err != nil {
		t.Fatal(err)
	}
	b.Stop()

	serveA := func() *exec.Cmd { return serveProcess(t, conf, subAddr) }
	cmd := serveA()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caA)) {
		t.Fatal("no CA certificate")
	}
	c, err := gosmtp.DialTLS(subAddr, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@a.test", pw)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		body := fmt.Sprintf("From: alice@a.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@a.test>\r\n\r\n%s\r\n",
			bob, id, id, strings.Repeat("line of a referral letter\r\n", 200))
		if err := c.SendMail("alice@a.test", []string{bob}, strings.NewReader(body)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	c.Close()

	// B comes back; A is killed while it delivers.
	b.Resume()
	for first := time.Now(); time.Since(first) < 20*time.Second; time.Sleep(2 * time.Millisecond) {
		if count(t, b, bob) > 0 {
			break
		}
	}
	time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	delivered := subjects(t, b, bob)
	if len(delivered) == n {
		t.Log("A delivered everything before it was killed: this run did not kill it mid-delivery")
	}
	cmd = serveA()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()

	deadline := time.Now().Add(60 * time.Second)
	var got map[string]int
	for {
		got = subjects(t, b, bob)
		if len(got) == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != n {
		t.Fatalf("B has %d of the %d messages after the restart: %v", len(got), n, got)
	}
	twice := 0
	for id, k := range got {
		if k > 1 {
			t.Errorf("%s is in bob's INBOX %d times: B should have dropped the resent copy by its Message-ID", id, k)
			twice++
		}
	}
	// A's queue is empty once everything is delivered.
	for {
		out := a("", "queue", "list")
		if !strings.Contains(out, "b.test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A's queue still holds entries:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d messages; %d delivered before the kill; %d stored twice", n, len(delivered), twice)
}

// count returns how many messages account's INBOX on srv holds.
func count(t *testing.T, srv *servertest.Instance, account string) int {
	t.Helper()
	st, err := srv.Store.GetMailbox(context.Background(), account, "INBOX")
	if err != nil {
		return 0
	}
	status, err := srv.Store.Status(context.Background(), st.ID)
	if err != nil {
		t.Fatal(err)
	}
	return int(status.Messages)
}

// subjects counts the messages of account's INBOX on srv by subject.
func subjects(t *testing.T, srv *servertest.Instance, account string) map[string]int {
	t.Helper()
	ctx := context.Background()
	out := map[string]int{}
	mb, err := srv.Store.GetMailbox(ctx, account, "INBOX")
	if err != nil {
		return out
	}
	ms, err := srv.Store.Messages(ctx, mb.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		h, err := srv.Store.OpenHeader(ctx, mb.ID, m.UID)
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(h), "Subject: ")
		if i < 0 {
			continue
		}
		subj, _, _ := strings.Cut(string(h[i+len("Subject: "):]), "\r\n")
		out[subj]++
	}
	return out
}
