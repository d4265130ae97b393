package server

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A listener that stops serving (its socket closed under it) makes the
// server not ready, naming it.
func TestReadyNamesAStoppedListener(t *testing.T) {
	cfg := Defaults()
	cfg.Data = t.TempDir()
	cfg.Listen = ListenConfig{SMTP: "127.0.0.1:0", IMAP: "127.0.0.1:0"}
	srv, err := Open(cfg, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx := context.Background()
	if err := srv.Ready(ctx); err == nil {
		t.Error("ready before Start")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Ready(ctx); err != nil {
		t.Fatalf("not ready after Start: %v", err)
	}
	srv.mu.Lock()
	for _, ln := range srv.listeners {
		if ln.Addr().String() == srv.addrs["smtp"].String() {
			ln.Close()
		}
	}
	srv.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := srv.Ready(ctx)
		if err != nil && strings.Contains(err.Error(), "listener(s) stopped: smtp") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready after the smtp listener stopped: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Close()
	if err := srv.Ready(ctx); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("Ready after Close: %v", err)
	}
}
