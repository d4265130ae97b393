package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// The mixed workload over implicit TLS, spread over three accounts filled
// by APPEND first, with idle connections held meanwhile: every command
// kind runs and none fails.
func TestIMAPMixedWorkload(t *testing.T) {
	addr, ca := startMemIMAP(t, ImplicitTLS, 3)
	var progress bytes.Buffer
	sum, err := RunIMAP(context.Background(), IMAPConfig{
		Endpoint:   Endpoint{Addr: addr, Security: ImplicitTLS, CAFile: ca},
		UserFormat: "user%d@bench.test", Users: 3, Password: "pass",
		Clients: 4, Duration: 2 * time.Second, Idle: 5, Fill: 30, FillSize: 3000,
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed != 0 || sum.Errors.Total != 0 {
		t.Fatalf("errors: %+v", sum.Errors)
	}
	info := sum.IMAP
	if info.Filled != 90 || info.Messages != 30 || info.Accounts != 3 || info.Mailbox != "INBOX" {
		t.Fatalf("info %+v", info)
	}
	if info.IdleHeld != 5 || info.IdleHeldAtEnd != 5 {
		t.Fatalf("idle: %+v", info)
	}
	var total int64
	for _, m := range mix {
		o := opByName(t, sum, m.op)
		if o.Count == 0 || o.Errors != 0 {
			t.Errorf("%s: %+v", m.op, o)
		}
	}
	for _, o := range sum.Operations {
		if o.Name != "idle_open" {
			total += int64(o.Count)
		}
	}
	if total != sum.Completed {
		t.Errorf("operations add up to %d, completed is %d", total, sum.Completed)
	}
	if l := opByName(t, sum, "login"); l.Count != 4 {
		t.Errorf("login: %+v, want one per client", l)
	}
	if o := opByName(t, sum, "idle_open"); o.Count != 5 {
		t.Errorf("idle_open: %+v", o)
	}
	var text bytes.Buffer
	sum.WriteText(&text)
	for _, want := range []string{"idle connections: 5 held of 5 asked, 5 still open", "fetch_body", "errors: none"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String()+progress.String(), "pass\n") {
		t.Error("password in the output")
	}
	t.Logf("\n%s%s", progress.String(), text.String())

	raw, _ := json.Marshal(sum)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	im, ok := m["imap"].(map[string]any)
	if !ok || m["tool"] != "imap" || m["rate_unit"] != "cmds/s" || im["idle_held"] != float64(5) {
		t.Fatalf("JSON: %s", raw)
	}
}

// An empty mailbox stops the run with advice; so does a wrong password.
func TestIMAPSetup(t *testing.T) {
	addr, ca := startMemIMAP(t, StartTLS, 1)
	cfg := IMAPConfig{
		Endpoint: Endpoint{Addr: addr, Security: StartTLS, CAFile: ca, ServerName: "localhost"},
		User:     "user1@bench.test", Password: "pass", Clients: 1, Duration: time.Second,
	}
	_, err := RunIMAP(context.Background(), cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "is empty") || !strings.Contains(err.Error(), "bench smtp") {
		t.Fatalf("empty mailbox: %v", err)
	}

	bad := cfg
	bad.Password = "wrong"
	_, err = RunIMAP(context.Background(), bad, nil)
	var se *SetupError
	if !errors.As(err, &se) || se.Step != "login" || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong password: %v", err)
	}

	bad = cfg
	bad.CAFile = ""
	_, err = RunIMAP(context.Background(), bad, nil)
	if !errors.As(err, &se) || se.Step != "starttls" {
		t.Fatalf("untrusted certificate: %v", err)
	}

	bad = cfg
	bad.Clients, bad.Idle = 0, 0
	if _, err := RunIMAP(context.Background(), bad, nil); err == nil {
		t.Fatal("nothing to do was accepted")
	}
}

// Only idle connections (the memory-per-connection measurement): they are
// held for the duration and counted; an empty mailbox is fine then.
func TestIMAPIdleOnly(t *testing.T) {
	addr, _ := startMemIMAP(t, Plain, 2)
	sum, err := RunIMAP(context.Background(), IMAPConfig{
		Endpoint:   Endpoint{Addr: addr},
		UserFormat: "user%d@bench.test", Users: 2, Password: "pass",
		Idle: 20, Duration: time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.IMAP.IdleHeld != 20 || sum.IMAP.IdleHeldAtEnd != 20 || sum.Errors.Total != 0 || sum.Completed != 0 {
		t.Fatalf("summary %+v %+v", sum, sum.IMAP)
	}
}

// Cancelling the run (Ctrl-C) ends it early with a summary and without
// counting the interrupted commands as failures.
func TestIMAPCancel(t *testing.T) {
	addr, _ := startMemIMAP(t, Plain, 1)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	sum, err := RunIMAP(ctx, IMAPConfig{
		Endpoint: Endpoint{Addr: addr}, User: "user1@bench.test", Password: "pass",
		Clients: 2, Duration: time.Minute, Fill: 10, FillSize: 500,
	}, nil)
	if !errors.Is(err, context.Canceled) || sum == nil {
		t.Fatalf("err %v", err)
	}
	if sum.Errors.Total != 0 || sum.Completed == 0 || sum.Elapsed > 30 {
		t.Fatalf("summary %+v", sum)
	}
}
