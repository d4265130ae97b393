package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
)

// oneAccount lets one account in with one password.
type oneAccount struct{ account, password string }

func (o oneAccount) Authenticate(_ context.Context, username, password, source string) (*auth.Principal, error) {
	if username == o.account && password == o.password {
		return &auth.Principal{Address: o.account, Kind: directory.KindPersonal, Mechanism: auth.MechPlain, Source: source}, nil
	}
	return nil, refusal.New(refusal.AuthFailed, username, nil, refusal.AuthFailedText)
}

func (oneAccount) Refresh(_ context.Context, p *auth.Principal) (*auth.Principal, error) {
	return p, nil
}

// Close returns once every session has ended: the sessions, one of them
// in IDLE on a selected mailbox, are closed and have released their
// mailboxes, so the store can be closed right after.
func TestCloseWaitsForSessions(t *testing.T) {
	cs := &countingStore{}
	internalSession(t, cs) // opens a store with alice's account
	pki, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Store: cs, Accounts: oneAccount{"alice@carepost.test", "pw"}, Logger: slog.New(slog.DiscardHandler),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.opts.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	dial := func(cmds ...string) *bufio.Reader {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pki.CertPool(), ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		r.ReadString('\n') // greeting
		for _, cmd := range cmds {
			c.Write([]byte(cmd + "\r\n"))
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				if !strings.HasPrefix(l, "* ") {
					break // tagged, or "+" for IDLE
				}
			}
		}
		return r
	}
	idle := dial(`a LOGIN alice@carepost.test pw`, "b SELECT INBOX", "c IDLE")
	dial(`a LOGIN alice@carepost.test pw`, "b SELECT INBOX")
	dial() // not logged in

	selected := srv.cache.Opened()
	if selected != 1 {
		t.Fatalf("%d mailboxes selected before Close", selected)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	selected = srv.cache.Opened()
	if selected != 0 {
		t.Errorf("Close returned with %d mailboxes still selected", selected)
	}
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("Serve: %v", err)
	}
	if _, err := idle.ReadString('\n'); err == nil {
		t.Error("the IDLE connection is still open")
	}
}
