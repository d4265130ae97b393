package oidctest

import (
	"strings"
	"testing"
)

// The test issuer listens on loopback addresses only.
func TestOIDCTestIssuerLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:8444", "[::]:0", "example.com:0", "nonsense"} {
		if i, err := New(Options{Addr: addr, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			if i != nil {
				i.Close()
			}
			t.Errorf("%s: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		i, err := New(Options{Addr: addr, Dir: t.TempDir()})
		if err != nil {
			if addr == "[::1]:0" && strings.Contains(err.Error(), "cannot listen") {
				continue // no IPv6 here
			}
			t.Fatalf("%s: %v", addr, err)
		}
		if !strings.HasPrefix(i.URL(), "https://127.0.0.1:") && !strings.HasPrefix(i.URL(), "https://[::1]:") {
			t.Errorf("%s: URL %s", addr, i.URL())
		}
		i.Close()
	}
}
