package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/carepost/carepost/server/servertest"
)

// The push measurement against a whole Carepost: submission with STARTTLS
// to Bob, whose INBOX is held in IDLE over imaps; then submissions with
// implicit TLS to Alice herself over imap with STARTTLS. Every message's
// EXISTS is seen, and only correctness is asserted (`go test -run
// TestPush -v ./bench` prints the figures).
func TestPushCarepost(t *testing.T) {
	srv := servertest.Start(t)
	const pw = "bench: a long enough passphrase"
	const bobPW = "bob's own long passphrase"
	alice := srv.AddProfessional("alice.push", pw)
	bob := srv.AddProfessional("bob.push", bobPW)
	ca := srv.PKI.CAPath()
	ctx := context.Background()

	var out, progress bytes.Buffer
	sum, err := RunPush(ctx, PushConfig{
		SMTP: Endpoint{Addr: srv.AddrOf("submission"), Security: StartTLS, CAFile: ca},
		IMAP: Endpoint{Addr: srv.AddrOf("imaps"), Security: ImplicitTLS, CAFile: ca},
		User: alice, Password: pw, To: bob, IMAPPassword: bobPW, Messages: 20, Size: 4096,
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Tool != "push" || sum.Completed != 20 || sum.Failed != 0 || sum.Errors.Total != 0 ||
		sum.Push.Missed != 0 || sum.Push.Recipient != bob || sum.Push.IMAPSecurity != "tls" {
		t.Fatalf("summary %+v %+v, errors %+v", sum, sum.Push, sum.Errors)
	}
	for _, op := range []string{"push", "reply", "send"} {
		if o := opByName(t, sum, op); o.Count != 20 || o.Errors != 0 || o.P99 <= 0 {
			t.Errorf("%s: %+v", op, o)
		}
	}
	sum.WriteText(&out)
	for _, want := range []string{"20 pushes measured, 0 failed", "end of DATA (CRLF.CRLF)", "errors: none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
	raw, _ := json.Marshal(sum)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if p, ok := m["push"].(map[string]any); !ok || p["messages"] != float64(20) || p["imap_addr"] != srv.AddrOf("imaps") {
		t.Fatalf("JSON: %s", raw)
	}

	// To herself; the 20 first messages went to Bob, not to her INBOX.
	sum, err = RunPush(ctx, PushConfig{
		SMTP: Endpoint{Addr: srv.AddrOf("submissions"), Security: ImplicitTLS, CAFile: ca},
		IMAP: Endpoint{Addr: srv.AddrOf("imap"), Security: StartTLS, CAFile: ca},
		User: alice, Password: pw, Messages: 5, Size: 100,
	}, nil)
	if err != nil || sum.Completed != 5 || sum.Errors.Total != 0 {
		t.Fatalf("to herself: %v, %+v", err, sum)
	}
	sum.WriteText(&out)
	if strings.Contains(out.String()+progress.String(), pw) {
		t.Error("a password is printed")
	}
	t.Logf("\n%s", out.String())

	// Setup errors name the side that failed.
	_, err = RunPush(ctx, PushConfig{
		SMTP: Endpoint{Addr: srv.AddrOf("submission"), Security: StartTLS, CAFile: ca},
		IMAP: Endpoint{Addr: srv.AddrOf("imaps"), Security: ImplicitTLS, CAFile: ca},
		User: alice, Password: pw, To: bob, Messages: 1,
	}, nil)
	var se *SetupError
	if !errors.As(err, &se) || se.Step != "imap login" {
		t.Fatalf("IMAP with Alice's password for Bob: %v", err)
	}
	_, err = RunPush(ctx, PushConfig{
		SMTP: Endpoint{Addr: srv.AddrOf("submission"), Security: StartTLS, CAFile: ca},
		IMAP: Endpoint{Addr: srv.AddrOf("imaps"), Security: ImplicitTLS, CAFile: ca},
		User: alice, Password: pw, To: bob, IMAPPassword: bobPW, Messages: 1,
		IMAPUser: bob, From: bob,
	}, nil)
	if !errors.Is(err, ErrAllFailed) {
		t.Fatalf("sending as Bob while logged in as Alice: %v", err)
	}
}
