// Package servertest boots a whole Carepost in-process for tests: a fresh
// data directory, its development PKI, every listener on a random loopback
// port. Any test can then send over SMTP and read over IMAP in a few lines.
package servertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
)

// Instance is a running server.
type Instance struct {
	*server.Server
	t      testing.TB
	config server.Config
	logger *slog.Logger
}

// Start boots a server on a fresh data directory in t.TempDir(). The
// options may change the configuration before it starts.
func Start(t testing.TB, options ...func(*server.Config)) *Instance {
	t.Helper()
	return StartLogged(t, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})), options...)
}

// StartLogged is Start with the server's log going to logger (a test that
// checks what the operator reads).
func StartLogged(t testing.TB, logger *slog.Logger, options ...func(*server.Config)) *Instance {
	t.Helper()
	cfg := server.Defaults()
	cfg.Data = t.TempDir()
	cfg.Listen = server.ListenConfig{
		SMTP:        "127.0.0.1:0",
		Submission:  "127.0.0.1:0",
		Submissions: "127.0.0.1:0",
		IMAP:        "127.0.0.1:0",
		IMAPS:       "127.0.0.1:0",
	}
	// No query to the machine's resolver: DKIM keys only from the
	// configuration (a test that wants the DNS sets it back).
	cfg.Trust.DKIMLookup = "config"
	for _, o := range options {
		o(&cfg)
	}
	i := &Instance{t: t, config: cfg, logger: logger}
	i.start()
	t.Cleanup(func() {
		if i.Server != nil {
			i.Server.Close()
		}
	})
	return i
}

func (i *Instance) start() {
	i.t.Helper()
	srv, err := server.Open(i.config, i.logger)
	if err != nil {
		i.t.Fatalf("servertest: open: %v", err)
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		i.t.Fatalf("servertest: start: %v", err)
	}
	i.Server = srv
}

// Restart stops the server and starts it again on the same data directory
// (the listeners get new ports).
func (i *Instance) Restart() {
	i.t.Helper()
	if err := i.Server.Close(); err != nil {
		i.t.Fatalf("servertest: close: %v", err)
	}
	i.Server = nil
	i.start()
}

// Stop closes the server: its listeners, its queue, its store. Resume
// starts it again on the same data directory and configuration (the
// listeners configured on fixed ports get them back).
func (i *Instance) Stop() {
	i.t.Helper()
	if err := i.Server.Close(); err != nil {
		i.t.Fatalf("servertest: close: %v", err)
	}
	i.Server = nil
}

// Resume starts a stopped server again (Stop).
func (i *Instance) Resume() {
	i.t.Helper()
	i.start()
}

// ClientTLS is a client TLS configuration trusting the development CA.
func (i *Instance) ClientTLS() *tls.Config {
	return &tls.Config{RootCAs: i.PKI.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// AddrOf returns HOST:PORT of a listener (smtp, submission, submissions,
// imap, imaps).
func (i *Instance) AddrOf(name string) string {
	a := i.Addr(name)
	if a == nil {
		i.t.Fatalf("servertest: no %s listener", name)
	}
	return a.String()
}

var rppsCounter atomic.Uint64

// AddProfessional adds a doctor with a fresh valid RPPS number at
// local@<first domain> and sets its password. It returns the address.
func (i *Instance) AddProfessional(local, password string) string {
	i.t.Helper()
	ctx := context.Background()
	address := local + "@" + i.Config.Domains[0]
	_, err := i.Server.AddProfessional(ctx, directory.ProfessionalInput{
		NationalID: "8" + NextRPPS(),
		FirstName:  "Test",
		LastName:   local,
		Profession: "10",
		Address:    address,
	})
	if err != nil {
		i.t.Fatalf("servertest: add professional %s: %v", address, err)
	}
	if password != "" {
		if err := i.Dir.SetPassword(ctx, address, password); err != nil {
			i.t.Fatalf("servertest: set password: %v", err)
		}
	}
	return address
}

// NextRPPS returns a new RPPS number (11 digits, Luhn key) each call.
func NextRPPS() string {
	n := 10000000000 + rppsCounter.Add(1)*7
	body := fmt.Sprintf("%010d", n%10000000000)
	return body + luhnKey(body)
}

// luhnKey computes the Luhn check digit of digits.
func luhnKey(digits string) string {
	sum := 0
	double := true
	for k := len(digits) - 1; k >= 0; k-- {
		d := int(digits[k] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return fmt.Sprint((10 - sum%10) % 10)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

var _ io.Writer = testWriter{}

// DialIMAP connects to the IMAPS listener with go-imap's client, trusting
// the development CA, and logs in; the connection closes with the test.
func (i *Instance) DialIMAP(t testing.TB, user, password string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	if opts == nil {
		opts = &imapclient.Options{}
	}
	opts.TLSConfig = i.ClientTLS()
	c, err := imapclient.DialTLS(i.AddrOf("imaps"), opts)
	if err != nil {
		t.Fatalf("dial imaps: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// HeapGrowth samples the heap in use (runtime.MemStats.HeapInuse) every
// interval, after a collection that sets the base, until the returned
// function is called; that function returns how far above the base the
// highest sample went. Tests of streaming use it to show that a message
// is never held whole.
func HeapGrowth(every time.Duration) (stop func() int64) {
	var peak atomic.Uint64
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(every):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	return func() int64 {
		close(done)
		wg.Wait()
		return int64(peak.Load()) - int64(base.HeapInuse)
	}
}
