package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/server/servertest"
)

// benchRun runs one `carepost bench ...` line in-process.
func benchRun(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"bench"}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// The two load generators from the command line against a running
// Carepost, as the README shows them: text and JSON summaries, exit status.
func TestBenchCommandLine(t *testing.T) {
	srv := servertest.Start(t)
	const pw = "bench: a long enough passphrase"
	alice := srv.AddProfessional("alice.cli", pw)
	bob := srv.AddProfessional("bob.cli", pw)
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := srv.PKI.CAPath()

	out, errs, code := benchRun("smtp", "--addr", srv.AddrOf("submission"), "--starttls", "--ca", ca,
		"--user", alice, "--pass-file", passFile, "--from", alice, "--to", bob,
		"--clients", "2", "--messages", "20", "--size", "4096")
	if code != 0 || !strings.Contains(out, "20 sent, 0 failed") || !strings.Contains(out, "errors: none") {
		t.Fatalf("bench smtp: exit %d\n%s%s", code, out, errs)
	}
	if strings.Contains(out+errs, pw) {
		t.Fatal("the password is printed")
	}

	out, errs, code = benchRun("imap", "--addr", srv.AddrOf("imaps"), "--tls", "--ca", ca,
		"--user", bob, "--pass", pw, "--clients", "2", "--duration", "1s", "--idle", "2", "--json")
	if code != 0 {
		t.Fatalf("bench imap: exit %d\n%s%s", code, out, errs)
	}
	var sum struct {
		Tool      string `json:"tool"`
		Completed int64  `json:"completed"`
		IMAP      struct {
			Messages int `json:"messages"`
			IdleHeld int `json:"idle_held"`
		} `json:"imap"`
		Errors struct {
			Total int `json:"total"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("not one JSON object (%v):\n%s", err, out)
	}
	if sum.Tool != "imap" || sum.Completed == 0 || sum.IMAP.Messages != 20 || sum.IMAP.IdleHeld != 2 || sum.Errors.Total != 0 {
		t.Fatalf("summary %+v", sum)
	}

	// A wrong password: a clear setup error, exit status 1, no password.
	_, errs, code = benchRun("imap", "--addr", srv.AddrOf("imaps"), "--tls", "--ca", ca,
		"--user", bob, "--pass", "not the password", "--duration", "1s")
	if code != 1 || !strings.Contains(errs, "connection setup failed at login") || strings.Contains(errs, "not the password") {
		t.Fatalf("wrong password: exit %d, %s", code, errs)
	}
	// Every message refused (sending as someone else): summary, then exit 1.
	out, errs, code = benchRun("smtp", "--addr", srv.AddrOf("submission"), "--starttls", "--ca", ca,
		"--user", alice, "--pass", pw, "--from", bob, "--to", bob, "--clients", "1", "--messages", "3")
	if code != 1 || !strings.Contains(out, "3 failed") || !strings.Contains(errs, "every operation failed") {
		t.Fatalf("all refused: exit %d\n%s%s", code, out, errs)
	}
	// Usage errors: exit 2.
	for _, args := range [][]string{
		{"smtp", "--addr", "127.0.0.1:1", "--from", alice},
		{"imap", "--addr", "127.0.0.1:1", "--tls", "--starttls", "--user", bob, "--pass", pw},
		{"pop3"},
	} {
		if _, _, code := benchRun(args...); code != 2 {
			t.Errorf("bench %v: exit %d, want 2", args, code)
		}
	}
	if out, _, code := benchRun(); code != 0 || !strings.Contains(out, "carepost bench smtp") {
		t.Errorf("bench alone: exit %d\n%s", code, out)
	}
}

// bench push from the command line: one IDLE session, messages submitted
// to it, the JSON summary; and its usage errors.
func TestBenchPushCommandLine(t *testing.T) {
	srv := servertest.Start(t)
	const pw = "bench: a long enough passphrase"
	alice := srv.AddProfessional("alice.push", pw)
	ca := srv.PKI.CAPath()
	out, errs, code := benchRun("push", "--smtp-addr", srv.AddrOf("submissions"), "--smtp-tls",
		"--imap-addr", srv.AddrOf("imaps"), "--imap-tls", "--ca", ca,
		"--user", alice, "--pass", pw, "--messages", "5", "--size", "2000", "--json")
	if code != 0 {
		t.Fatalf("bench push: exit %d\n%s%s", code, out, errs)
	}
	var sum struct {
		Tool      string `json:"tool"`
		Completed int64  `json:"completed"`
		Push      struct {
			Recipient string `json:"recipient"`
			Missed    int    `json:"missed"`
		} `json:"push"`
		Operations []struct {
			Name  string  `json:"name"`
			Count int     `json:"count"`
			P99   float64 `json:"p99_ms"`
		} `json:"operations"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("not JSON (%v):\n%s", err, out)
	}
	if sum.Tool != "push" || sum.Completed != 5 || sum.Push.Recipient != alice || sum.Push.Missed != 0 ||
		len(sum.Operations) == 0 || sum.Operations[0].Name != "push" || sum.Operations[0].Count != 5 {
		t.Fatalf("summary %+v", sum)
	}
	for _, args := range [][]string{
		{"push", "--addr", srv.AddrOf("submissions"), "--imap-addr", srv.AddrOf("imaps"), "--user", alice, "--pass", pw},
		{"push", "--smtp-addr", srv.AddrOf("submissions"), "--user", alice, "--pass", pw},
		{"push", "--smtp-addr", "a:1", "--smtp-tls", "--smtp-starttls", "--imap-addr", "b:1", "--user", alice, "--pass", pw},
		{"push", "--smtp-addr", "a:1", "--imap-addr", "b:1", "--user", alice},
	} {
		if _, errs, code := benchRun(args...); code != 2 {
			t.Errorf("bench %v: exit %d, want 2 (%s)", args, code, errs)
		}
	}
}
