package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/carepost/carepost/audit"
	"github.com/carepost/carepost/crypto/smime"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
	"github.com/carepost/carepost/storage"
)

// Two operators on loopback: A (a.test) and B (b.test), each its own data
// directory, store and server; they share a development CA (B's PKI
// directory is copied into A's before A starts), which each takes as its
// trust anchor. A reaches B's MX listener through a static route.

// freePort reserves a loopback port and releases it, so that B can be
// stopped and started again on the same address.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

type pair struct {
	a, b         *servertest.Instance
	alice, carol string // at A
	bob, dave    string // at B
}

// startPair starts B, then A routed to B's MX at bAddr (reserved with
// freePort when empty).
//
// The S/MIME gateway is on, as by default: each publishes its mailboxes'
// certificates on its https listener, and finds the other's there
// ([smime] endpoints); the development CA issues them at first use.
// gatewayOff, when given, turns it off on both.
func startPair(t *testing.T, bAddr string, queue server.QueueConfig, gatewayOff ...bool) *pair {
	t.Helper()
	if bAddr == "" {
		bAddr = freePort(t)
	}
	aAddr := freePort(t)
	aHTTPS, bHTTPS := freePort(t), freePort(t)
	gateway := len(gatewayOff) == 0 || !gatewayOff[0]
	b := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.b.test", []string{"b.test"}, ""
		c.Listen.SMTP = bAddr
		c.Listen.HTTPS = bHTTPS
		c.Routes = map[string]string{"a.test": aAddr}
		c.SMIME.Gateway = gateway
		c.SMIME.Endpoints = map[string]string{"a.test": "https://" + aHTTPS}
		c.Queue = queue
	})
	a := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.a.test", []string{"a.test"}, ""
		c.Listen.SMTP = aAddr
		c.Listen.HTTPS = aHTTPS
		c.Routes = map[string]string{"b.test": bAddr}
		c.SMIME.Gateway = gateway
		c.SMIME.Endpoints = map[string]string{"b.test": "https://" + bHTTPS}
		c.Queue = queue
		copyDir(t, b.PKI.Dir(), filepath.Join(c.Data, "pki"))
		os.Remove(filepath.Join(c.Data, "pki", "server.crt")) // A's own, for mx.a.test
	})
	ctx := context.Background()
	if err := a.Dir.AddTrustedDomain(ctx, "b.test", "operator B"); err != nil {
		t.Fatal(err)
	}
	if err := b.Dir.AddTrustedDomain(ctx, "a.test", "operator A"); err != nil {
		t.Fatal(err)
	}
	p := &pair{a: a, b: b}
	p.alice, p.carol = a.AddProfessional("alice", password), a.AddProfessional("carol", password)
	p.bob, p.dave = b.AddProfessional("bob", password), b.AddProfessional("dave", password)
	return p
}

func fastQueue() server.QueueConfig {
	return server.QueueConfig{RetryInitial: server.Duration(100 * time.Millisecond), RetryMax: server.Duration(400 * time.Millisecond),
		Lifetime: server.Duration(time.Hour), Concurrency: 4}
}

// inbox returns the messages of account's INBOX on srv, waiting up to
// 20 s for there to be at least n.
func inbox(t *testing.T, srv *servertest.Instance, account string, n int) [][]byte {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mb, err := srv.Store.GetMailbox(ctx, account, "INBOX")
		if err == nil {
			msgs, err := srv.Store.Messages(ctx, mb.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) >= n {
				var out [][]byte
				for _, m := range msgs {
					b, err := srv.Store.OpenBody(ctx, mb.ID, m.UID)
					if err != nil {
						t.Fatal(err)
					}
					raw, _ := io.ReadAll(b)
					b.Close()
					out = append(out, raw)
				}
				return out
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has fewer than %d messages after 20s", account, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func queueLen(t *testing.T, srv *servertest.Instance) int {
	t.Helper()
	l, err := srv.Store.ListQueued(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

func waitQueueEmpty(t *testing.T, srv *servertest.Instance) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for queueLen(t, srv) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the queue is not empty after 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// txtLookup answers DKIM key queries from the DNS records A prints
// (`carepost pki dkim` prints the same, crypto.DKIMKey.TXTRecord).
func txtLookup(t *testing.T, srv *servertest.Instance, domain string) func(string) ([]string, error) {
	keys, err := srv.DKIMKeys()
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]string{}
	quoted := regexp.MustCompile(`"([^"]*)"`)
	for _, k := range keys {
		rec, err := k.TXTRecord(domain)
		if err != nil {
			t.Fatal(err)
		}
		name, _, _ := strings.Cut(rec, " ")
		var v strings.Builder
		for _, m := range quoted.FindAllStringSubmatch(rec, -1) {
			v.WriteString(m[1]) // the strings of one record are joined (RFC 6376 §3.6.2.2)
		}
		records[strings.TrimSuffix(name, ".")] = v.String()
	}
	return func(name string) ([]string, error) {
		if v, ok := records[strings.TrimSuffix(name, ".")]; ok {
			return []string{v}, nil
		}
		return nil, &net.DNSError{Err: "no such record", Name: name, IsNotFound: true}
	}
}

// A message from a doctor at A to a doctor at B and a colleague at A
// crosses over mutual TLS: B's copy carries two DKIM signatures (Ed25519
// and RSA) for a.test that verify against A's published keys; the local
// copy is not signed; the queue is empty afterwards.
func TestFederationCrosses(t *testing.T) {
	p := startPair(t, "", fastQueue())
	body := "Cher confrère, voici le compte rendu de Mme X."
	msg := message(p.alice, p.bob, "Compte rendu", body)
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob, p.carol}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := inbox(t, p.b, p.bob, 1)
	if len(got) != 1 || !bytes.Contains(got[0], []byte(body)) {
		t.Fatalf("B's copy: %q", got)
	}
	// It crossed signed and encrypted (DKIM over the encrypted form, which
	// B verified on the wire); B's copy is the message as Alice's
	// mailbox signed it, with B's verdicts.
	for _, want := range []string{"multipart/signed", "application/pkcs7-signature",
		"Authentication-Results: mx.b.test; smime=pass", "body.smime-identifier=" + p.alice, "Authentication-Results: mx.b.test; dkim="} {
		if !bytes.Contains(got[0], []byte(want)) {
			t.Fatalf("B's copy has no %q:\n%s", want, got[0])
		}
	}
	if bytes.Contains(got[0], []byte("pkcs7-mime")) {
		t.Fatalf("B's copy is still encrypted:\n%s", got[0])
	}
	// Whoever has A's CA can check the signature, and a change fails.
	roots := x509.NewCertPool()
	roots.AddCert(p.a.PKI.CACert())
	if r := smime.Verify(got[0], smime.VerifyOptions{Roots: roots}); r.Status != smime.StatusPass {
		t.Fatalf("B's copy does not verify: %+v", r)
	}
	tampered := bytes.Replace(got[0], []byte("Mme X"), []byte("Mme Y"), 1)
	if r := smime.Verify(tampered, smime.VerifyOptions{Roots: roots}); r.Status != smime.StatusFail {
		t.Fatalf("a tampered copy: %+v", r)
	}
	// B's copy came over TLS from A.
	if !bytes.Contains(got[0], []byte("with ESMTPS")) {
		t.Fatalf("B's copy was not received over TLS:\n%s", got[0])
	}
	local := inbox(t, p.a, p.carol, 1)
	if bytes.Contains(local[0], []byte("DKIM-Signature")) || bytes.Contains(local[0], []byte("multipart/signed")) || !bytes.Contains(local[0], []byte(body)) {
		t.Fatalf("A's local copy:\n%s", local[0])
	}
	waitQueueEmpty(t, p.a)
}

// Without the S/MIME gateway the message crosses as written, DKIM-signed.
func TestFederationDKIM(t *testing.T) {
	p := startPair(t, "", fastQueue(), true)
	body := "Cher confrère, voici le compte rendu de Mme X."
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, message(p.alice, p.bob, "Compte rendu", body)); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := inbox(t, p.b, p.bob, 1)
	if len(got) != 1 || !bytes.Contains(got[0], []byte(body)) || bytes.Contains(got[0], []byte("multipart/signed")) {
		t.Fatalf("B's copy: %q", got)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(got[0]), &dkim.VerifyOptions{LookupTXT: txtLookup(t, p.a, "a.test")})
	if err != nil {
		t.Fatal(err)
	}
	if len(verifs) != 2 {
		t.Fatalf("%d DKIM signatures, want 2:\n%s", len(verifs), got[0])
	}
	for _, v := range verifs {
		if v.Err != nil || v.Domain != "a.test" {
			t.Fatalf("DKIM signature of %s: %v", v.Domain, v.Err)
		}
	}
	// A signature over altered content fails.
	tampered := bytes.Replace(got[0], []byte("Mme X"), []byte("Mme Y"), 1)
	verifs, err = dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: txtLookup(t, p.a, "a.test")})
	if err != nil || len(verifs) != 2 || verifs[0].Err == nil || verifs[1].Err == nil {
		t.Fatalf("a tampered message verifies: %v %+v", err, verifs)
	}
}

// B is down when the message is sent: A accepts it (250), keeps it in its
// queue with the last error, and delivers it once B is back. A had
// written to Bob before, so it has his certificate; a recipient whose
// certificate A never fetched cannot be encrypted to while B is down, and
// the client is told to try again later.
func TestFederationReceiverDown(t *testing.T) {
	p := startPair(t, "", fastQueue())
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, message(p.alice, p.bob, "Bonjour", "Premier message.")); err != nil {
		t.Fatal(err)
	}
	inbox(t, p.b, p.bob, 1)
	waitQueueEmpty(t, p.a)
	p.b.Stop()
	err := submit(t, p.a, p.alice, p.alice, []string{p.dave}, message(p.alice, p.dave, "Résultat", "Kaliémie normale."))
	if err == nil || !strings.Contains(err.Error(), "451") || !strings.Contains(err.Error(), "certificate of "+p.dave) {
		t.Fatalf("send to a recipient whose certificate cannot be fetched: %v, want a 451 naming it", err)
	}
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, message(p.alice, p.bob, "Résultat", "Kaliémie normale.")); err != nil {
		t.Fatalf("send while B is down: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := p.a.Store.ListQueued(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 1 && l[0].Attempts >= 2 && strings.Contains(l[0].Recipients[0].LastError, "connect") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue after 20s: %+v", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.b.Resume()
	got := inbox(t, p.b, p.bob, 2)
	if !bytes.Contains(got[1], []byte("Kali")) {
		t.Fatalf("B's copy: %s", got[1])
	}
	waitQueueEmpty(t, p.a)
	time.Sleep(300 * time.Millisecond)
	if n := len(inbox(t, p.b, p.bob, 2)); n != 2 {
		t.Fatalf("bob has %d messages, want 2", n)
	}
}

// B never answers: past the lifetime the entry fails and its sender finds
// a delivery status notification (RFC 3464) in her INBOX, in French and
// English.
func TestFederationExpiryDSN(t *testing.T) {
	q := fastQueue()
	q.Lifetime = server.Duration(time.Second)
	// In clear: what is checked is the queue's expiry (S/MIME needs B's
	// certificate, which B, down, cannot give; TestFederationReceiverDown).
	p := startPair(t, "", q, true)
	p.b.Stop()
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, message(p.alice, p.bob, "Adressage urgent", "Patient à revoir.")); err != nil {
		t.Fatal(err)
	}
	got := inbox(t, p.a, p.alice, 1)
	dsn := string(got[0])
	for _, want := range []string{
		"Content-Type: multipart/report; report-type=delivery-status",
		"Content-Type: message/delivery-status",
		"Reporting-MTA: dns; mx.a.test",
		"Final-Recipient: rfc822; " + p.bob,
		"Action: failed",
		"Status: 5.4.7",
		"Votre message",
		"Your message",
		"Subject: Adressage urgent", // the original header
	} {
		if !strings.Contains(dsn, want) {
			t.Fatalf("the DSN lacks %q:\n%s", want, dsn)
		}
	}
	if strings.Contains(dsn, "Patient à revoir") {
		t.Fatal("the DSN copies the body of the message")
	}
	waitQueueEmpty(t, p.a)
}

// Mail crosses both ways; an operator outside the trust space (C, its own
// CA, trusted by nobody) is refused in both directions: A refuses C's
// server at MAIL, so that C's sender gets a delivery status notification
// and nothing reaches A's mailbox; A's user cannot write to C's domain.
func TestFederationBothWaysAndOutsider(t *testing.T) {
	p := startPair(t, "", fastQueue())
	if err := submit(t, p.b, p.bob, p.bob, []string{p.alice}, message(p.bob, p.alice, "Réponse", "Reçu, merci.")); err != nil {
		t.Fatalf("B to A: %v", err)
	}
	if got := inbox(t, p.a, p.alice, 1); !bytes.Contains(got[0], []byte("Reçu, merci.")) {
		t.Fatalf("A's copy: %q", got[0])
	}
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, message(p.alice, p.bob, "Suite", "Bien noté.")); err != nil {
		t.Fatalf("A to B: %v", err)
	}
	inbox(t, p.b, p.bob, 1)

	c := servertest.Start(t, func(c *server.Config) {
		c.Hostname, c.Domains, c.PatientDomain = "mx.c.test", []string{"c.test"}, ""
		c.Routes = map[string]string{"a.test": p.a.AddrOf("smtp")}
		// C sends in clear: what is checked is that A refuses its server.
		c.SMIME.Gateway = false
		c.Queue = fastQueue()
	})
	ctx := context.Background()
	if err := c.Dir.AddTrustedDomain(ctx, "a.test", "operator A, as C sees it"); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(p.a.PKI.CAPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Dir.AddTrustAnchor(ctx, pem); err != nil {
		t.Fatal(err)
	}
	eve := c.AddProfessional("eve", password)
	if err := submit(t, c, eve, eve, []string{p.alice}, message(eve, p.alice, "Intrus", "Ceci ne doit pas arriver.")); err != nil {
		t.Fatalf("C accepts for its queue: %v", err)
	}
	dsn := inbox(t, c, eve, 1)
	if !bytes.Contains(dsn[0], []byte("report-type=delivery-status")) || !bytes.Contains(dsn[0], []byte(p.alice)) ||
		!bytes.Contains(dsn[0], []byte("5.7.1")) {
		t.Fatalf("C's sender got no notification of the refusal:\n%s", dsn[0])
	}
	for _, m := range inbox(t, p.a, p.alice, 1) {
		if bytes.Contains(m, []byte("Ceci ne doit pas arriver.")) {
			t.Fatal("A stored a message from outside the trust space")
		}
	}
	// A's trail names the certificate it refused (issue 25).
	ref := waitTrail(t, p.a, "smtp.mail", func(r storage.AuditRecord) bool { return r.Details["service"] == "mx" })
	if ref.Outcome != "refused" || ref.Actor != "anonymous" || !strings.Contains(ref.Details["peer_certificate"], "mx.c.test") ||
		!strings.HasPrefix(ref.Details["code"], "5") {
		t.Errorf("A's record of the refused operator: %+v", ref)
	}
	err = submit(t, p.a, p.alice, p.alice, []string{"eve@c.test"}, message(p.alice, "eve@c.test", "x", "x"))
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "c.test") {
		t.Fatalf("A to C: %v, want a 550 naming c.test", err)
	}
}

// The trace of a message that crossed two operators shows every step on
// each side (issue 25): at A, Alice's submission, the queue and the relay
// to B's server; at B, the delivery by A's server (its certificate) and
// Bob's read.
func TestFederationTrace(t *testing.T) {
	p := startPair(t, "", fastQueue())
	msg := message(p.alice, p.bob, "Compte rendu", "Texte du compte rendu.")
	id := regexp.MustCompile(`Message-ID: <([^>]+)>`).FindStringSubmatch(msg)[1]
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, msg); err != nil {
		t.Fatal(err)
	}
	inbox(t, p.b, p.bob, 1)
	waitQueueEmpty(t, p.a)
	ic := p.b.DialIMAP(t, p.bob, password, nil)
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	ic.Logout().Wait()
	p.a.FlushAuditEvents()
	p.b.FlushAuditEvents()
	steps := func(s *servertest.Instance) []string {
		recs, err := audit.Trace(context.Background(), s.Store, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.Action+" "+r.Actor+" "+r.Outcome)
		}
		return out
	}
	a, b := steps(p.a), steps(p.b)
	has := func(side string, got []string, prefix string) {
		t.Helper()
		for _, s := range got {
			if strings.HasPrefix(s, prefix) {
				return
			}
		}
		t.Errorf("%s's trace has no %q:\n%s", side, prefix, strings.Join(got, "\n"))
	}
	has("A", a, "queue.add "+p.alice+" ok")
	has("A", a, "relay.attempt system delivered")
	has("B", b, "message.deliver peer:CN=")
	has("B", b, "message.read "+p.bob+" ok")
}
