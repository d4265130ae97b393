package server

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAtRestKeyWarning(t *testing.T) {
	data := t.TempDir()
	inside := filepath.Join(data, "keys", "at-rest.key")
	outside := filepath.Join(t.TempDir(), "at-rest.key")
	dev := Defaults()
	dev.Data = data
	withCert := dev
	withCert.TLS = TLSConfig{Cert: "/etc/carepost/tls.crt", Key: "/etc/carepost/tls.key"}
	public := dev
	public.Listen.IMAPS = ":993"
	publicIP := dev
	publicIP.Listen.SMTP = "192.0.2.10:25"
	local := dev
	local.Listen.IMAPS = "[::1]:993"
	local.Listen.SMTP = "localhost:25"
	for _, c := range []struct {
		name string
		cfg  Config
		key  string
		warn bool
	}{
		{"development default", dev, inside, false},
		{"loopback by name and IPv6", local, inside, false},
		{"operator's certificate", withCert, inside, true},
		{"listener on every interface", public, inside, true},
		{"listener on a public address", publicIP, inside, true},
		{"key outside, certificate", withCert, outside, false},
		{"key outside, public", public, outside, false},
		{"relative data directory", func() Config { c := public; c.Data = "."; return c }(), "keys/at-rest.key", true},
		{"sibling named like the directory", public, data + "-keys/at-rest.key", false},
	} {
		if got := atRestKeyWarning(c.cfg, c.key) != ""; got != c.warn {
			t.Errorf("%s: warning %v, want %v", c.name, got, c.warn)
		}
	}
}

// serve logs the warning once at start, as one line with the fix, when the
// key is in the data directory of a server listening beyond loopback.
func TestServeWarnsOfKeyInData(t *testing.T) {
	for _, public := range []bool{false, true} {
		cfg := Defaults()
		cfg.Data = t.TempDir()
		cfg.Listen = ListenConfig{SMTP: "127.0.0.1:0", IMAPS: "127.0.0.1:0"}
		if public {
			cfg.Listen.IMAPS = ":0"
		}
		var buf bytes.Buffer
		srv, err := Open(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			srv.Close()
			t.Fatal(err)
		}
		srv.Close()
		n := strings.Count(buf.String(), "The at-rest key is inside the data directory")
		if public && (n != 1 || !strings.Contains(buf.String(), "at_rest_key_file")) {
			t.Errorf("public listener: %d warnings in\n%s", n, buf.String())
		}
		if !public && n != 0 {
			t.Errorf("development default: %d warnings in\n%s", n, buf.String())
		}
	}
}

// Nothing in the data directory of a server that ran is readable by
// others (issue 21, `ls -l`): the store, its database and WAL, the bodies,
// the keys, the PKI, the spool and the locks.
func TestDataDirectoryPrivate(t *testing.T) {
	cfg := Defaults()
	cfg.Data = t.TempDir()
	cfg.Listen = ListenConfig{SMTP: "127.0.0.1:0"}
	srv, err := Open(cfg, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	defer srv.Close()
	var n int
	err = filepath.Walk(cfg.Data, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == cfg.Data {
			return nil // t.TempDir's own mode
		}
		n++
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, readable by others", p, fi.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Fatalf("only %d entries in the data directory", n)
	}
}
