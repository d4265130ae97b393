package server_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/crypto/keyring"
	"github.com/carepost/carepost/crypto/smime"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// TestSMIMEPublicationAndLookup: operator A publishes its mailboxes'
// certificates on its https listener; B, with A's endpoint in [smime],
// fetches them over TLS verified against its trust anchors, keeps them in
// its store, and asks no more until the cache time is over, also after a
// restart. A certificate from an endpoint whose TLS certificate is not
// trusted is never used.
func TestSMIMEPublicationAndLookup(t *testing.T) {
	ctx := context.Background()
	aHTTPS := freePort(t)
	a := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.a.test", []string{"a.test"}, ""
		c.Listen.HTTPS = aHTTPS
	})
	endpoint := map[string]string{"a.test": "https://" + aHTTPS}
	b := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.b.test", []string{"b.test"}, ""
		c.SMIME.Endpoints = endpoint
		copyDir(t, a.PKI.Dir(), filepath.Join(c.Data, "pki")) // one development CA
		os.Remove(filepath.Join(c.Data, "pki", "server.crt"))
	})
	alice := a.AddProfessional("alice", password)
	issued, err := a.Keyring.Issue(ctx, a.PKI, alice, false, false)
	if err != nil {
		t.Fatal(err)
	}
	var aliceEnc []byte
	for _, c := range issued {
		if c.Usage == directory.UsageEncrypt {
			aliceEnc = c.DER
		}
	}

	got, err := b.Keyring.RecipientCert(ctx, alice)
	if err != nil {
		t.Fatalf("B looks up %s at A: %v", alice, err)
	}
	if string(got.Raw) != string(aliceEnc) {
		t.Fatal("B got another certificate than A's encryption certificate of alice")
	}
	if n := b.Keyring.FetchCount(); n != 1 {
		t.Fatalf("%d requests for the first lookup, want 1", n)
	}
	if _, err := b.Keyring.RecipientCert(ctx, strings.ToUpper(alice)); err != nil {
		t.Fatal(err)
	}
	if n := b.Keyring.FetchCount(); n != 1 {
		t.Fatalf("the second lookup went to the network (%d requests)", n)
	}
	// The cache is in B's store: after a restart (a new keyring), still
	// no request.
	b.Restart()
	if got, err := b.Keyring.RecipientCert(ctx, alice); err != nil || string(got.Raw) != string(aliceEnc) {
		t.Fatalf("after B's restart: %v", err)
	}
	if n := b.Keyring.FetchCount(); n != 0 {
		t.Fatalf("after B's restart, the cached certificate was fetched again (%d requests)", n)
	}

	// An address A does not publish: no certificate, asked once.
	for range 2 {
		if _, err := b.Keyring.RecipientCert(ctx, "nobody@a.test"); !errors.Is(err, smime.ErrNoCertificate) {
			t.Fatalf("unknown address at A: %v", err)
		}
	}
	if n := b.Keyring.FetchCount(); n != 1 {
		t.Fatalf("%d requests for an unpublished address looked up twice, want 1", n)
	}

	// A mailbox on the liste rouge: B, an operator of the trust space
	// (its client certificate chains to the shared CA), gets it; an
	// anonymous client gets the same 404 as for an unknown address.
	hidden := "hidden@a.test"
	if _, err := a.Server.AddProfessional(ctx, directory.ProfessionalInput{NationalID: "8" + servertest.NextRPPS(),
		FirstName: "H", LastName: "Idden", Profession: "10", Address: hidden, ListeRouge: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Keyring.Issue(ctx, a.PKI, hidden, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Keyring.RecipientCert(ctx, hidden); err != nil {
		t.Fatalf("B looks up a liste rouge mailbox at A: %v", err)
	}
	anon := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: a.PKI.CertPool()}}}
	for addr, want := range map[string]int{alice: 200, hidden: 404, "nobody@a.test": 404} {
		resp, err := anon.Get("https://" + aHTTPS + keyring.PublicationPath + addr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous GET %s = %d %q, want %d", addr, resp.StatusCode, body, want)
		}
		if strings.Contains(string(body), "PRIVATE") {
			t.Errorf("GET %s shows a private key", addr)
		}
		if want == 404 && string(body) != "No S/MIME certificate is published for "+addr+".\n" {
			t.Errorf("GET %s: %q", addr, body)
		}
	}

	// C has a CA of its own: A's TLS certificate does not chain to its
	// anchors, so nothing is fetched, and the error is not "no
	// certificate" (the caller may try again, never sends in clear).
	c := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.c.test", []string{"c.test"}, ""
		c.SMIME.Endpoints = endpoint
	})
	_, err = c.Keyring.RecipientCert(ctx, alice)
	if err == nil || errors.Is(err, smime.ErrNoCertificate) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("lookup over an untrusted TLS certificate: %v", err)
	}
}

// TestSMIMEConfig: endpoints are https base URLs.
func TestSMIMEConfig(t *testing.T) {
	for _, tc := range []struct {
		endpoints map[string]string
		want      string
	}{
		{map[string]string{"b.test": "http://mx.b.test"}, "https only"},
		{map[string]string{"b.test": "https://mx.b.test/some/path"}, "base URL"},
		{map[string]string{"not a domain": "https://mx.b.test"}, "not a domain name"},
	} {
		cfg := server.Defaults()
		cfg.SMIME.Endpoints = tc.endpoints
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.endpoints, err, tc.want)
		}
	}
	cfg := server.Defaults()
	cfg.SMIME.Endpoints = map[string]string{"B.Test.": "https://mx.b.test:8443/"}
	if err := cfg.Validate(); err != nil || cfg.SMIME.Endpoints["b.test"] != "https://mx.b.test:8443" {
		t.Fatalf("valid endpoint: %v, %v", err, cfg.SMIME.Endpoints)
	}
}

// TestSMIMEFilesMovedIntoStore: the certificate and key that an older
// `carepost pki issue` wrote to pki/mailboxes are imported at the next
// start, and their files removed.
func TestSMIMEFilesMovedIntoStore(t *testing.T) {
	inst := servertest.Start(t)
	alice := inst.AddProfessional("alice", password)
	m, err := inst.PKI.IssueMailbox(alice, crypto.UsageEncrypt, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(inst.Config.Data, "pki", "mailboxes")
	inst.Stop()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, alice+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.Cert.Raw}), 0o600)
	os.WriteFile(filepath.Join(dir, alice+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: m.KeyDER}), 0o600)
	// A pair for an address no longer in the directory stays.
	os.WriteFile(filepath.Join(dir, "gone@carepost.test.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.Cert.Raw}), 0o600)
	inst.Resume()
	ids, e2e, err := inst.Keyring.Decrypters(context.Background(), alice)
	if err != nil || e2e || len(ids) != 1 || !ids[0].Cert.Equal(m.Cert) {
		t.Fatalf("Decrypters after the move: %d, %v, %v", len(ids), e2e, err)
	}
	if _, err := os.Stat(filepath.Join(dir, alice+".key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the key file is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone@carepost.test.crt")); err != nil {
		t.Errorf("the file of an address not in the directory was removed: %v", err)
	}
}
