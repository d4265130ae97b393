package delivery_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/carepost/carepost/delivery"
)

// Inbound DKIM: a signature of another operator verified with a key of
// the configuration gives dkim=pass in our Authentication-Results field;
// a field from outside claiming our authserv-id is removed, one of
// another server kept; a body changed on the way gives dkim=fail; a
// message without signature dkim=none; on submission only the removal.
func TestDKIMVerify(t *testing.T) {
	w := newWorld(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	v := delivery.DKIMVerifier{AuthServID: "mx.ch-test.fr",
		Keys: map[string]string{"sel._domainkey.op-other.fr": "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)},
		LookupTXT: func(context.Context, string) ([]string, error) {
			return nil, errors.New("no DNS in this test")
		}}
	p := delivery.New(w.dir, w.db, delivery.Options{Hostname: "mx.ch-test.fr", Transforms: []delivery.Transform{v}})

	sign := func(msg string) string {
		var b bytes.Buffer
		if err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{Domain: "op-other.fr", Selector: "sel", Signer: priv,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	msg := "From: Dr Doc <" + doc + ">\r\nTo: " + alice + "\r\nSubject: compte rendu\r\n" +
		"Authentication-Results: mx.ch-test.fr; dkim=pass header.d=forged.example\r\n" +
		"Authentication-Results: MX.ch-test.fr (forged, folded);\r\n\tspf=pass\r\n" +
		"Authentication-Results: relay.op-other.fr; spf=pass smtp.mailfrom=op-other.fr\r\n\r\nBonjour.\r\n"
	signed := sign(msg)
	if err := deliver(t, p, mx(), doc, []string{alice}, strings.NewReader(signed)); err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(sign(msg), "Bonjour.", "Bonjour, virement urgent.", 1)
	if err := deliver(t, p, mx(), doc, []string{alice}, strings.NewReader(tampered)); err != nil {
		t.Fatal(err)
	}
	if err := deliver(t, p, mx(), doc, []string{alice}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	sub := submission()
	if err := deliver(t, p, sub, alice, []string{bob}, strings.NewReader(strings.ReplaceAll(msg, "Dr Doc <"+doc+">", alice))); err != nil {
		t.Fatal(err)
	}
	got := w.stored(alice)
	if len(got) != 3 {
		t.Fatalf("alice has %d messages", len(got))
	}
	header := func(b []byte) string { h, _, _ := strings.Cut(string(b), "\r\n\r\n"); return h }
	for i, want := range []string{
		"Authentication-Results: mx.ch-test.fr; dkim=pass header.d=op-other.fr",
		"Authentication-Results: mx.ch-test.fr; dkim=fail",
		"Authentication-Results: mx.ch-test.fr; dkim=none",
	} {
		h := header(got[i])
		if !strings.HasPrefix(h, want) {
			t.Errorf("message %d starts with %q, want %q", i, h[:min(len(h), 120)], want)
		}
		if n := strings.Count(strings.ToLower(h), "authentication-results: mx.ch-test.fr"); n != 1 {
			t.Errorf("message %d has %d fields claiming our authserv-id:\n%s", i, n, h)
		}
		if strings.Contains(h, "forged") {
			t.Errorf("message %d keeps a forged field:\n%s", i, h)
		}
		if !strings.Contains(h, "Authentication-Results: relay.op-other.fr; spf=pass") {
			t.Errorf("message %d lost another server's field:\n%s", i, h)
		}
		if !strings.HasSuffix(string(got[i]), "\r\n\r\nBonjour.\r\n") && i != 1 {
			t.Errorf("message %d body: %q", i, got[i])
		}
	}
	// Submission: the forged fields go, none is added.
	sent := header(w.stored(bob)[0])
	if strings.Contains(sent, "mx.ch-test.fr;") || strings.Contains(sent, "forged") || !strings.Contains(sent, "relay.op-other.fr") {
		t.Errorf("submitted message header:\n%s", sent)
	}
}
