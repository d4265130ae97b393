package server

import (
	"bytes"
	"context"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/carepost/carepost/directory"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// serve fetches the white list from trust.refresh_url at start (over
// https, verified with trust.refresh_ca), keeps the last good list when a
// fetch fails, and warns when the list is stale.
func TestTrustRefresh(t *testing.T) {
	var mu sync.Mutex
	body := "# the list\nch-exemple.mssante.fr\nop-b.mssante.fr\n"
	status := http.StatusOK
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	defer ts.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600)

	cfg := Defaults()
	cfg.Data = t.TempDir()
	cfg.Listen = ListenConfig{SMTP: "127.0.0.1:0"}
	cfg.Trust = TrustConfig{RefreshURL: ts.URL + "/liste.xml", RefreshCA: caFile,
		RefreshInterval: Duration(time.Minute), StaleAfter: Duration(time.Hour)}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	srv, err := Open(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ok, _ := srv.Dir.InTrustSpace(ctx, "op-b.mssante.fr"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the list was not fetched:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "white list refreshed") {
		t.Errorf("no log of the refresh:\n%s", logs.String())
	}
	// Before the first fetch the list was never imported: a warning.
	if !strings.Contains(logs.String(), "was never imported") {
		t.Errorf("no warning before the first import:\n%s", logs.String())
	}

	// A failed fetch keeps the list, and is logged.
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	if _, err := srv.ImportTrustList(ctx, cfg.Trust.RefreshURL, caFile); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("import from a failing server: %v", err)
	}
	if ok, _ := srv.Dir.InTrustSpace(ctx, "op-b.mssante.fr"); !ok {
		t.Fatal("a failed fetch emptied the trust space")
	}

	// Stale: imported longer ago than stale_after.
	if err := srv.Store.ReplaceTrustedDomains(ctx, []directory.TrustedDomain{{Domain: "op-b.mssante.fr"}},
		directory.TrustListInfo{Source: "old", ImportedAt: time.Now().Add(-2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	srv.warnIfStale(ctx)
	if !strings.Contains(logs.String(), "the white list of the trust space is stale") {
		t.Errorf("no stale warning:\n%s", logs.String())
	}
}

func TestTrustConfigValidate(t *testing.T) {
	cfg := Defaults()
	cfg.Trust.RefreshURL = "http://example.test/liste.xml"
	cfg.Trust.StaleAfter = Duration(time.Hour)
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "trust.refresh_url") || !strings.Contains(err.Error(), "trust.stale_after") {
		t.Fatalf("Validate: %v", err)
	}
}
