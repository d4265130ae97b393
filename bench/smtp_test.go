package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
)

func opByName(t *testing.T, s *Summary, name string) OpStats {
	t.Helper()
	for _, o := range s.Operations {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("no operation %q in %+v", name, s.Operations)
	return OpStats{}
}

// Connections reused, STARTTLS against our CA, AUTH PLAIN, recipients
// round-robin: every message arrives once, whole, at the asked size.
func TestSMTPStartTLSReuse(t *testing.T) {
	s, addr, ca := startSink(t, StartTLS, "alice@bench.test", "secret")
	var progress bytes.Buffer
	sum, err := RunSMTP(context.Background(), SMTPConfig{
		Endpoint: Endpoint{Addr: addr, Security: StartTLS, CAFile: ca, ServerName: "localhost"},
		User:     "alice@bench.test", Password: "secret",
		From: "alice@bench.test", To: []string{"bob@bench.test", "carol@bench.test"},
		Clients: 3, Messages: 50, Size: 2048,
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Completed != 50 || sum.Failed != 0 || sum.Errors.Total != 0 {
		t.Fatalf("completed %d, failed %d, errors %+v", sum.Completed, sum.Failed, sum.Errors)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.messages != 50 || len(s.ids) != 50 || len(s.problems) > 0 {
		t.Fatalf("server got %d messages, %d Message-IDs, problems %v", s.messages, len(s.ids), s.problems)
	}
	if s.rcpts["bob@bench.test"] != 25 || s.rcpts["carol@bench.test"] != 25 {
		t.Fatalf("round-robin: %v", s.rcpts)
	}
	for _, n := range s.sizes {
		if n != 2048 {
			t.Fatalf("a message of %d bytes, want 2048", n)
		}
	}
	if c := opByName(t, sum, "connect"); c.Count != 3 || c.Errors != 0 {
		t.Fatalf("connect: %+v, want 3 (one per client)", c)
	}
	if o := opByName(t, sum, "send"); o.Count != 50 || o.P50 <= 0 || o.P50 > o.P99 || o.P99 > o.Max {
		t.Fatalf("send: %+v", o)
	}
	if sum.SMTP.BytesSent != 50*2048 || sum.Rate <= 0 {
		t.Fatalf("bytes %d, rate %v", sum.SMTP.BytesSent, sum.Rate)
	}
	var text bytes.Buffer
	sum.WriteText(&text)
	for _, want := range []string{"50 sent, 0 failed", "send", "errors: none"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
	if strings.Contains(text.String()+progress.String(), "secret") {
		t.Error("the password appears in the output")
	}
	t.Logf("\n%s%s", progress.String(), text.String())
}

// Implicit TLS, a connection per message, every message to every
// recipient.
func TestSMTPImplicitTLSNewConnToAll(t *testing.T) {
	s, addr, ca := startSink(t, ImplicitTLS, "", "")
	sum, err := RunSMTP(context.Background(), SMTPConfig{
		Endpoint: Endpoint{Addr: addr, Security: ImplicitTLS, CAFile: ca},
		From:     "alice@bench.test", To: []string{"bob@bench.test", "carol@bench.test", "dan@bench.test"},
		ToAll: true, NewConn: true, Clients: 4, Messages: 20, Size: 100,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Completed != 20 || opByName(t, sum, "connect").Count != 20 {
		t.Fatalf("completed %d, ops %+v", sum.Completed, sum.Operations)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range []string{"bob@bench.test", "carol@bench.test", "dan@bench.test"} {
		if s.rcpts[r] != 20 {
			t.Fatalf("deliveries: %v", s.rcpts)
		}
	}
	// Smaller than the header: the message is just the header and its
	// first line, still well-formed.
	if len(s.problems) > 0 {
		t.Fatal(s.problems)
	}
}

// A refused recipient fails its message only; the session goes on after
// RSET. When every message is refused, the run says so.
func TestSMTPRefusals(t *testing.T) {
	s, addr, _ := startSink(t, Plain, "", "")
	cfg := SMTPConfig{
		Endpoint: Endpoint{Addr: addr},
		From:     "alice@bench.test", To: []string{"bob@bench.test", "refused@bench.test"},
		Clients: 2, Messages: 10, Size: 500,
	}
	sum, err := RunSMTP(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Completed != 5 || sum.Failed != 5 || sum.Errors.Total != 5 || opByName(t, sum, "connect").Count != 2 {
		t.Fatalf("completed %d failed %d errors %+v ops %+v", sum.Completed, sum.Failed, sum.Errors, sum.Operations)
	}
	if len(sum.Errors.First) != 1 || sum.Errors.First[0].Count != 5 || !strings.Contains(sum.Errors.First[0].Message, "550") {
		t.Fatalf("errors: %+v", sum.Errors)
	}
	if s.rcpts["bob@bench.test"] != 5 {
		t.Fatalf("deliveries %v", s.rcpts)
	}

	cfg.To = []string{"refused@bench.test"}
	sum, err = RunSMTP(context.Background(), cfg, nil)
	if !errors.Is(err, ErrAllFailed) || sum == nil || sum.Failed != 10 {
		t.Fatalf("all refused: err %v, summary %+v", err, sum)
	}
}

// Setup failures stop the run at once with the step that failed.
func TestSMTPSetupErrors(t *testing.T) {
	_, addr, ca := startSink(t, StartTLS, "alice@bench.test", "secret")
	base := SMTPConfig{
		Endpoint: Endpoint{Addr: addr, Security: StartTLS, CAFile: ca},
		User:     "alice@bench.test", Password: "secret",
		From: "alice@bench.test", To: []string{"bob@bench.test"}, Clients: 2, Messages: 5,
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name, step string
		change     func(*SMTPConfig)
	}{
		{"wrong password", "auth", func(c *SMTPConfig) { c.Password = "wrong" }},
		{"untrusted certificate", "starttls", func(c *SMTPConfig) { c.CAFile = "" }},
		{"nothing listening", "connect", func(c *SMTPConfig) { c.Addr = closed }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.change(&cfg)
			_, err := RunSMTP(context.Background(), cfg, nil)
			var se *SetupError
			if !errors.As(err, &se) || se.Step != tc.step {
				t.Fatalf("err = %v, want a setup error at %s", err, tc.step)
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "wrong") {
				t.Fatalf("the password leaks in %q", err)
			}
		})
	}
	bad := base
	bad.To = nil
	if _, err := RunSMTP(context.Background(), bad, nil); err == nil {
		t.Fatal("no recipients accepted")
	}
}

// The JSON form has the documented shape.
func TestSMTPJSONShape(t *testing.T) {
	_, addr, _ := startSink(t, Plain, "", "")
	sum, err := RunSMTP(context.Background(), SMTPConfig{
		Endpoint: Endpoint{Addr: addr}, From: "a@bench.test", To: []string{"b@bench.test"},
		Clients: 1, Messages: 3, Size: 1000,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tool", "addr", "security", "clients", "elapsed_seconds", "completed", "failed",
		"rate", "rate_unit", "smtp", "operations", "errors"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, raw)
		}
	}
	if m["tool"] != "smtp" || m["rate_unit"] != "msg/s" || m["completed"] != float64(3) {
		t.Errorf("JSON: %s", raw)
	}
	ops := m["operations"].([]any)
	op := ops[len(ops)-1].(map[string]any)
	for _, k := range []string{"name", "count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms"} {
		if _, ok := op[k]; !ok {
			t.Errorf("operation lacks %q: %v", k, op)
		}
	}
}
