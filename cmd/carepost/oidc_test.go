package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/auth/oidc"
)

// runningIssuer is `carepost oidc test-issuer` run in-process.
type runningIssuer struct {
	url, caFile string
	stdout      *syncBuffer
	stop        func() int
}

func startTestIssuer(t *testing.T, args ...string) *runningIssuer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"oidc", "test-issuer", "--listen", "127.0.0.1:0"}, args...), strings.NewReader(""), &stdout, &stderr)
	}()
	r := &runningIssuer{stdout: &stdout}
	stopped := false
	r.stop = func() int {
		if stopped {
			return 0
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("the test issuer did not stop")
			return -1
		}
	}
	t.Cleanup(func() { r.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "Running until interrupted") {
		select {
		case code := <-done:
			t.Fatalf("oidc test-issuer exited %d\n%s%s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("oidc test-issuer did not start:\n%s%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := stdout.String()
	r.url = configValue(t, out, "issuer")
	r.caFile = configValue(t, out, "ca_file")
	return r
}

// configValue reads `name = "value"` from the lines printed to paste.
func configValue(t *testing.T, out, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` += "([^"]*)"$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s line in:\n%s", name, out)
	}
	return m[1]
}

func verifierFor(t *testing.T, r *runningIssuer, claim, audience string) *oidc.Verifier {
	t.Helper()
	client, err := oidc.NewHTTPClient(r.caFile)
	if err != nil {
		t.Fatal(err)
	}
	v, err := oidc.New(oidc.Config{Issuer: r.url, Audience: audience, Claim: claim, HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mint(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := runIn(append([]string{"oidc", "token"}, args...)...)
	if code != 0 || errs != "" || strings.Count(out, "\n") != 1 {
		t.Fatalf("oidc token %v: exit %d, stderr %q, stdout %q", args, code, errs, out)
	}
	return strings.TrimSpace(out)
}

// The test issuer runs on loopback, prints its configuration; tokens
// minted by `oidc token` with its key are accepted by auth/oidc.Verifier
// configured with what it printed.
func TestOIDCTestIssuerAndToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "issuer")
	r := startTestIssuer(t, "--dir", dir)
	if !strings.HasPrefix(r.url, "https://127.0.0.1:") || r.caFile != filepath.Join(dir, "tls", "ca.crt") {
		t.Fatalf("issuer %q, CA file %q", r.url, r.caFile)
	}
	for _, want := range []string{`audience = "carepost"`, `claim    = "email"`, `claim_is = "address"`, "carepost oidc token --dir " + dir + " ADDRESS"} {
		if !strings.Contains(r.stdout.String(), want) {
			t.Errorf("%q is not in the output:\n%s", want, r.stdout.String())
		}
	}
	v := verifierFor(t, r, "email", "carepost")
	ctx := context.Background()
	const addr = "dr.martin@carepost.test"
	tok := mint(t, "--dir", dir, addr)
	if got, err := v.Verify(ctx, tok); err != nil || got != addr {
		t.Fatalf("the minted token: %q %v", got, err)
	}
	// --claim, --audience.
	vn := verifierFor(t, r, "idnat", "mail-client")
	tok = mint(t, "--dir", dir, "--claim", "idnat=810012345678", "--audience", "mail-client")
	if got, err := vn.Verify(ctx, tok); err != nil || got != "810012345678" {
		t.Fatalf("--claim idnat: %q %v", got, err)
	}
	if _, err := v.Verify(ctx, tok); oidc.Reason(err) != oidc.ReasonAudience {
		t.Fatalf("another audience: %v", err)
	}
	// Refusals: expired, email not verified.
	if _, err := v.Verify(ctx, mint(t, "--dir", dir, "--ttl", "-1m", addr)); oidc.Reason(err) != oidc.ReasonExpired {
		t.Fatalf("--ttl -1m: %v", err)
	}
	if _, err := v.Verify(ctx, mint(t, "--dir", dir, "--claim", "email_verified=false", addr)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("email_verified=false: %v", err)
	}
	// The SASL responses, base64.
	b, err := base64.StdEncoding.DecodeString(mint(t, "--dir", dir, "--format", "oauthbearer", addr))
	prefix := "n,a=" + addr + ",\x01auth=Bearer "
	if err != nil || !bytes.HasPrefix(b, []byte(prefix)) || !bytes.HasSuffix(b, []byte("\x01\x01")) {
		t.Fatalf("--format oauthbearer: %q %v", b, err)
	}
	if got, err := v.Verify(ctx, string(b[len(prefix):len(b)-2])); err != nil || got != addr {
		t.Fatalf("the token of --format oauthbearer: %q %v", got, err)
	}
	b, err = base64.StdEncoding.DecodeString(mint(t, "--dir", dir, "--format", "xoauth2", addr))
	prefix = "user=" + addr + "\x01auth=Bearer "
	if err != nil || !bytes.HasPrefix(b, []byte(prefix)) || !bytes.HasSuffix(b, []byte("\x01\x01")) {
		t.Fatalf("--format xoauth2: %q %v", b, err)
	}
	if got, err := v.Verify(ctx, string(b[len(prefix):len(b)-2])); err != nil || got != addr {
		t.Fatalf("the token of --format xoauth2: %q %v", got, err)
	}

	// Wrong command lines.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"oidc", "token", "--dir", dir}, 2, "give the ADDRESS of a mailbox"},
		{[]string{"oidc", "token", "--dir", dir, "--ttl", "0s", addr}, 2, "--ttl"},
		{[]string{"oidc", "token", "--dir", dir, "--format", "json", addr}, 2, "--format"},
		{[]string{"oidc", "token", "--dir", dir, "--claim", "novalue", addr}, 2, "not NAME=VALUE"},
		{[]string{"oidc", "token", "--dir", dir, "--format", "xoauth2", "--claim", "sub=x"}, 2, "needs the user's ADDRESS"},
		{[]string{"oidc", "token", "--dir", t.TempDir(), addr}, 1, "holds no test issuer: start one with carepost oidc test-issuer"},
		{[]string{"oidc", "test-issuer", "--dir", dir, "--listen", "0.0.0.0:8444"}, 2, "loopback address only"},
		{[]string{"oidc", "test-issuer", "--dir", dir, "--listen", "192.0.2.1:8444"}, 2, "loopback address only"},
		{[]string{"oidc", "test-issuer", "--dir", dir, "--listen", ":8444"}, 2, "loopback address only"},
	} {
		out, errs, code := runIn(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) || out != "" {
			t.Errorf("carepost %s: exit %d, stdout %q, stderr %q", strings.Join(c.args, " "), code, out, errs)
		}
	}

	// Stopped and started again: the same CA and key; the token minted
	// before the restart (for the new URL, as the port changed) verifies.
	ca, err := os.ReadFile(r.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("interrupted test issuer: exit %d", code)
	}
	r2 := startTestIssuer(t, "--dir", dir)
	ca2, err := os.ReadFile(r2.caFile)
	if err != nil || !bytes.Equal(ca, ca2) {
		t.Fatalf("the CA changed across a restart (%v)", err)
	}
	if got, err := verifierFor(t, r2, "email", "carepost").Verify(ctx, mint(t, "--dir", dir, addr)); err != nil || got != addr {
		t.Fatalf("after a restart: %q %v", got, err)
	}
}

// Without --dir, the issuer lives in the data directory, which must
// exist (TestNothingCreatedByAccident checks the refusal).
func TestOIDCTestIssuerInDataDirectory(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if _, errs, code := runIn("init", "--data", data); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	r := startTestIssuer(t, "--data", data)
	want := filepath.Join(absPath(data), "oidc-test-issuer")
	if r.caFile != filepath.Join(want, "tls", "ca.crt") {
		t.Fatalf("CA file %q, want it in %s", r.caFile, want)
	}
	tok := mint(t, "--data", data, "someone@carepost.test")
	if got, err := verifierFor(t, r, "email", "carepost").Verify(context.Background(), tok); err != nil || got != "someone@carepost.test" {
		t.Fatalf("%q %v", got, err)
	}
}
