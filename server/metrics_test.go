package server_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// logBuffer collects a server's log for a test to read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines that contain every one of parts.
func (l *logBuffer) lines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

func startWithMetrics(t *testing.T) (*servertest.Instance, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	srv := servertest.StartLogged(t, slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLog{t}), &slog.HandlerOptions{Level: slog.LevelInfo})),
		func(c *server.Config) {
			c.Listen.Metrics = "127.0.0.1:0"
			c.Listen.HTTPS = "127.0.0.1:0" // the publication of S/MIME certificates
		})
	return srv, logs
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

func get(t *testing.T, srv *servertest.Instance, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + srv.AddrOf("metrics") + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape reads /metrics into series → value; a series is written with
// its labels sorted by name, as Prometheus's text format has them:
// `carepost_smtp_messages_total{listener="submission",result="accepted"}`.
func scrape(t *testing.T, srv *servertest.Instance) map[string]float64 {
	t.Helper()
	code, body := get(t, srv, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitFor scrapes until series has the value want, or fails.
func waitFor(t *testing.T, srv *servertest.Instance, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok := scrape(t, srv)[series]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present: %v), want %v", series, got, ok, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A server with the metrics listener: a message sent over submission, a
// login over IMAP with IDLE, and failed logins of every cause move the
// counters an operator reads; each failed login is logged with its cause
// (never the password, and the client is told none of it); a plain-text
// client on the IMAPS port is one INFO line; serve says which listeners it
// does not serve.
func TestMetricsCountWhatHappens(t *testing.T) {
	srv, logs := startWithMetrics(t)
	alice := srv.AddProfessional("alice.martin", password)
	bob := srv.AddProfessional("bob.durand", password)
	carol := srv.AddProfessional("carol.petit", password)
	if err := srv.Dir.SetStatus(context.Background(), carol, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}

	if code, body := get(t, srv, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	before := scrape(t, srv)

	// SMTP: one message accepted, one recipient refused, one failed AUTH.
	msg := message(alice, bob, "Adressage", "Cher confrère, je vous adresse Mme X.")
	if err := submit(t, srv, alice, alice, []string{bob}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	c, err := gosmtp.DialStartTLS(srv.AddrOf("submission"), srv.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", alice, "not her password")); err == nil {
		t.Fatal("AUTH with a wrong password accepted")
	}
	c.Close()
	c, err = gosmtp.DialStartTLS(srv.AddrOf("submission"), srv.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", alice, password)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(alice, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("nobody@carepost.test", nil); err == nil {
		t.Fatal("unknown recipient accepted")
	}
	c.Close()

	// IMAP: a login, SELECT, FETCH, IDLE.
	ic := dialIMAP(t, srv, bob, nil)
	msgs := fetchAll(t, ic)
	if len(msgs) != 1 {
		t.Fatalf("bob has %d messages, want 1", len(msgs))
	}
	idle, err := ic.Idle()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, srv, `carepost_imap_idle_clients`, 1)
	waitFor(t, srv, `carepost_imap_sessions`, 1)
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, srv, `carepost_imap_idle_clients`, 0)

	// IMAP failed logins: wrong password, unknown account, suspended
	// account; each gets the one answer.
	for _, try := range []struct{ user, pw string }{{bob, "not his password"}, {"nobody@carepost.test", password}, {carol, password}} {
		fc, err := imapclient.DialTLS(srv.AddrOf("imaps"), &imapclient.Options{TLSConfig: srv.ClientTLS()})
		if err != nil {
			t.Fatal(err)
		}
		err = fc.Login(try.user, try.pw).Wait()
		fc.Close()
		var ie *imap.Error
		if !errorAs(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed ||
			ie.Text != "Invalid user name or password, or account not active" {
			t.Errorf("login %s: %v, want NO [AUTHENTICATIONFAILED] with the one sentence", try.user, err)
		}
	}

	// LOGIN in clear on the STARTTLS port: refused by the library, logged.
	raw, err := net.Dial("tcp", srv.AddrOf("imap"))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(raw)
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	const clearPassword = "sent-in-clear-4711"
	raw.Write([]byte("a1 LOGIN " + bob + " " + clearPassword + "\r\n"))
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "a1 NO [PRIVACYREQUIRED]") {
		t.Errorf("LOGIN before STARTTLS: %q", line)
	}
	raw.Close()

	// A plain-text client on the IMAPS port.
	raw, err = net.Dial("tcp", srv.AddrOf("imaps"))
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("a1 CAPABILITY\r\n"))
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, raw)
	raw.Close()

	// A client that resets its connection: one INFO line, no warning.
	raw, err = net.Dial("tcp", srv.AddrOf("imap"))
	if err != nil {
		t.Fatal(err)
	}
	br = bufio.NewReader(raw)
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	raw.(*net.TCPConn).SetLinger(0) // Close sends RST
	raw.Close()
	// And an SMTP client that does the same.
	raw, err = net.Dial("tcp", srv.AddrOf("submission"))
	if err != nil {
		t.Fatal(err)
	}
	br = bufio.NewReader(raw)
	raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	raw.(*net.TCPConn).SetLinger(0)
	raw.Close()
	deadline := time.Now().Add(5 * time.Second)
	for (len(logs.lines("level=INFO", "imap: client connection ended")) < 1 || len(logs.lines("level=INFO", "smtp: client connection ended")) < 1) &&
		time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}

	ic.Logout().Wait()
	waitFor(t, srv, `carepost_smtp_sessions{listener="submission"}`, 0)
	waitFor(t, srv, `carepost_imap_sessions`, 0)
	after := scrape(t, srv)
	moved := func(series string) float64 { return after[series] - before[series] }
	for series, want := range map[string]float64{
		`carepost_smtp_messages_total{listener="submission",result="accepted"}`:                         1,
		`carepost_smtp_refusals_total{kind="unknown-recipient",listener="submission",step="recipient"}`: 1,
		`carepost_smtp_refusals_total{kind="auth-failed",listener="submission",step="auth"}`:            1,
		`carepost_delivery_messages_total{source="submission"}`:                                         1,
		`carepost_delivery_seconds_count{source="submission"}`:                                          1,
		`carepost_store_commit_seconds_count`:                                                           1,
		`carepost_auth_successes_total{mechanism="plain",service="smtp"}`:                               2,
		`carepost_auth_failures_total{cause="wrong-password",mechanism="plain",service="smtp"}`:         1,
		`carepost_auth_successes_total{mechanism="login",service="imap"}`:                               1,
		`carepost_auth_failures_total{cause="wrong-password",mechanism="login",service="imap"}`:         1,
		`carepost_auth_failures_total{cause="unknown-account",mechanism="login",service="imap"}`:        1,
		`carepost_auth_failures_total{cause="inactive",mechanism="login",service="imap"}`:               1,
		`carepost_auth_failures_total{cause="tls-required",mechanism="login",service="imap"}`:           1,
	} {
		if got := moved(series); got != want {
			t.Errorf("%s moved by %v, want %v", series, got, want)
		}
	}
	if got := moved(`carepost_smtp_received_bytes_total{listener="submission"}`); got < float64(len(msg)) {
		t.Errorf("received bytes moved by %v, want at least the message's %d", got, len(msg))
	}
	if got := moved(`carepost_delivery_bytes_total{source="submission"}`); got < float64(len(msg)) {
		t.Errorf("delivery bytes moved by %v, want at least %d", got, len(msg))
	}
	for _, series := range []string{`carepost_store_fsync_seconds_count`, `carepost_cache_mailbox_opens_total{result="miss"}`} {
		if moved(series) < 1 {
			t.Errorf("%s did not move", series)
		}
	}
	if moved(`carepost_cache_digest_lookups_total{result="hit"}`)+moved(`carepost_cache_digest_lookups_total{result="miss"}`) < 1 {
		t.Error("no digest lookup counted after a FETCH of the envelope")
	}
	for _, series := range []string{`go_goroutines`, `process_open_fds`} {
		if _, ok := after[series]; !ok {
			t.Errorf("%s is not exported", series)
		}
	}

	// The log: each failure with its cause, never a password.
	for _, want := range [][]string{
		{`msg="login failed"`, "user=" + bob, "cause=wrong-password"},
		{`msg="login failed"`, "user=nobody@carepost.test", "cause=unknown-account"},
		{`msg="login failed"`, "user=" + carol, "cause=inactive"},
		{`msg="login failed"`, "cause=tls-required", "STARTTLS"},
		{`msg="auth refused"`, "user=" + alice, "cause=wrong-password"},
		{"level=INFO", "plain-text client on a TLS port", "listener=imaps"},
		{"level=INFO", "msg=listening", "listener=https", "tls=implicit"},
	} {
		if len(logs.lines(want...)) != 1 {
			t.Errorf("want one log line with %q; log:\n%s", want, logs)
		}
	}
	for _, secret := range []string{password, "not her password", "not his password", clearPassword} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log holds a password %q", secret)
		}
	}
	for _, service := range []string{"imap", "smtp"} {
		if n := len(logs.lines("level=INFO", service+": client connection ended", "connection reset")); n != 1 {
			t.Errorf("%d INFO lines for the %s client that reset its connection, want 1", n, service)
		}
	}
	for _, c := range []string{"component=imap", "component=smtp", "listener="} {
		if bad := logs.lines("level=WARN", c); len(bad) > 0 {
			t.Errorf("warnings: %q", bad)
		}
	}
}

func errorAs(err error, target **imap.Error) bool {
	if ie, ok := err.(*imap.Error); ok {
		*target = ie
		return true
	}
	return false
}

// /readyz answers 503 with the reason when the store cannot take a write
// (its directory gone, as when its file system is unmounted; a directory
// without write permission would do for a user other than root, which
// the tests may run as), 200 again once it can, and 503 once the store is
// closed; /healthz answers throughout.
func TestReadyzChecksStorage(t *testing.T) {
	srv, _ := startWithMetrics(t)
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %q", code, body)
	}

	store := filepath.Join(srv.Config.Data, "store")
	if err := os.Rename(store, store+".away"); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, srv, "/readyz")
	if err := os.Rename(store+".away", store); err != nil {
		t.Fatal(err)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "storage: not writable") {
		t.Errorf("/readyz without the store's directory: %d %q, want 503 storage: not writable", code, body)
	}
	if code, body := get(t, srv, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the directory back: %d %q", code, body)
	}

	if err := srv.Store.Close(); err != nil {
		t.Fatal(err)
	}
	code, body = get(t, srv, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "storage: not writable") || !strings.Contains(body, "closed") {
		t.Errorf("/readyz with the store closed: %d %q, want 503 naming the closed store", code, body)
	}
	if code, _ := get(t, srv, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d, want 200 while the process answers", code)
	}
}

// The metrics listener has no authentication: a non-loopback address is
// refused unless the operator says so.
func TestMetricsListenerLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"", false, true},
		{"127.0.0.1:9465", false, true},
		{"[::1]:9465", false, true},
		{"localhost:9465", false, true},
		{"0.0.0.0:9465", false, false},
		{":9465", false, false},
		{"192.0.2.10:9465", false, false},
		{"192.0.2.10:9465", true, true},
		{":9465", true, true},
		{"9465", true, false},
	} {
		cfg := server.Defaults()
		cfg.Listen.Metrics, cfg.Listen.MetricsAllowRemote = tc.addr, tc.remote
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("listen.metrics = %q, metrics_allow_remote = %v: %v, want ok=%v", tc.addr, tc.remote, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "listen.metrics") {
			t.Errorf("the refusal does not name the key: %v", err)
		}
	}
}
