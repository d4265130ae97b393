package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/auth/oidc/oidctest"
	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// clientCert issues a TLS client certificate from the server's CA (or
// from pki, another CA) for address, or naming its holder's national
// identifier id.
func clientCert(t *testing.T, pki *crypto.PKI, address, id string) tls.Certificate {
	t.Helper()
	is, err := pki.IssueClient(address, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(is.KeyDER)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: key, Leaf: is.Cert}
}

// dialIMAPS connects to the IMAPS listener presenting certs.
func dialIMAPS(t *testing.T, srv *servertest.Instance, certs ...tls.Certificate) *imapclient.Client {
	t.Helper()
	tc := srv.ClientTLS()
	tc.Certificates = certs
	c, err := imapclient.DialTLS(srv.AddrOf("imaps"), &imapclient.Options{TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func imapMechs(t *testing.T, c *imapclient.Client) []string {
	t.Helper()
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	return caps.AuthMechanisms()
}

// SASL EXTERNAL on IMAP (issue #26 item 1): a certificate of the
// operator's CA naming the address, or the holder's national identifier,
// logs in; one of another CA, or none, is refused with a sentence.
func TestExternalIMAP(t *testing.T) {
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", "")
	e, err := srv.Dir.Lookup(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}

	for name, cert := range map[string]tls.Certificate{
		"address":     clientCert(t, srv.PKI, alice, ""),
		"national id": clientCert(t, srv.PKI, alice, e.NationalID),
	} {
		c := dialIMAPS(t, srv, cert)
		if m := imapMechs(t, c); !strings.Contains(strings.Join(m, " "), "EXTERNAL") {
			t.Fatalf("%s: EXTERNAL not offered to a client with a certificate: %v", name, m)
		}
		if err := c.Authenticate(sasl.NewExternalClient("")); err != nil {
			t.Fatalf("%s: AUTHENTICATE EXTERNAL: %v", name, err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatalf("%s: SELECT after EXTERNAL: %v", name, err)
		}
		// The authorization identity may name the mailbox, never another.
		c2 := dialIMAPS(t, srv, cert)
		if err := c2.Authenticate(sasl.NewExternalClient("bob@carepost.test")); err == nil {
			t.Fatalf("%s: EXTERNAL as another mailbox succeeded", name)
		}
	}

	// A certificate of another CA.
	other, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := dialIMAPS(t, srv, clientCert(t, other, alice, ""))
	err = c.Authenticate(sasl.NewExternalClient(""))
	if err == nil || !strings.Contains(err.Error(), "not accepted") {
		t.Fatalf("a certificate of another CA: %v", err)
	}

	// No certificate: not offered, and refused with a sentence.
	c = dialIMAPS(t, srv)
	if m := imapMechs(t, c); strings.Contains(strings.Join(m, " "), "EXTERNAL") {
		t.Errorf("EXTERNAL offered without a certificate: %v", m)
	}
	if err := c.Authenticate(sasl.NewExternalClient("")); err == nil {
		t.Fatal("EXTERNAL without a certificate succeeded")
	}

	// A suspended account's certificate no longer logs in.
	if err := srv.Dir.SetStatus(context.Background(), alice, directory.StatusSuspended); err != nil {
		t.Fatal(err)
	}
	c = dialIMAPS(t, srv, clientCert(t, srv.PKI, alice, ""))
	if err := c.Authenticate(sasl.NewExternalClient("")); err == nil {
		t.Fatal("EXTERNAL of a suspended account succeeded")
	}
}

// dialSubmissions connects to the submissions listener (implicit TLS)
// presenting certs.
func dialSubmissions(t *testing.T, srv *servertest.Instance, certs ...tls.Certificate) *gosmtp.Client {
	t.Helper()
	tc := srv.ClientTLS()
	tc.Certificates = certs
	c, err := gosmtp.DialTLS(srv.AddrOf("submissions"), tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(c *gosmtp.Client, from, to string) error {
	return send2(c, from, to, []byte("From: <"+from+">\r\nTo: <"+to+">\r\nSubject: lettre\r\n\r\nCompte rendu.\r\n"))
}

// Practice software over mutual TLS (issue #26 item 2): its certificate,
// registered for its APP mailbox, logs it in at MAIL without AUTH; it
// sends as the mailboxes of its organisation and the professionals that
// organisation lists, and nothing else. A professional logs in with AUTH
// EXTERNAL on submission too.
func TestSoftwareCertificateSubmission(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	listed := srv.AddProfessional("listed", "")
	other := srv.AddProfessional("other", "")
	const org = "1750000001"
	if _, err := srv.AddSharedMailbox(ctx, directory.MailboxInput{Kind: directory.KindOrganisational, Address: "cardio@carepost.test",
		Organisation: org, Members: []string{listed}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AddSharedMailbox(ctx, directory.MailboxInput{Kind: directory.KindOrganisational, Address: "elsewhere@carepost.test",
		Organisation: "1750000002"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.AddSharedMailbox(ctx, directory.MailboxInput{Kind: directory.KindApplicative, Address: "dpi@carepost.test",
		Organisation: org}); err != nil {
		t.Fatal(err)
	}
	// The software's certificate names no address: it is registered.
	is, err := srv.PKI.IssueClient("dpi@carepost.test", "DPI", 0) // CN=DPI, no rfc822Name
	if err != nil {
		t.Fatal(err)
	}
	key, _ := x509.ParsePKCS8PrivateKey(is.KeyDER)
	sw := tls.Certificate{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: key}
	if _, err := srv.Dir.RegisterClientCert(ctx, "dpi@carepost.test", is.Cert); err != nil {
		t.Fatal(err)
	}

	for from, ok := range map[string]bool{
		"dpi@carepost.test":       true,
		"cardio@carepost.test":    true,
		listed:                    true,
		"elsewhere@carepost.test": false,
		other:                     false,
	} {
		c := dialSubmissions(t, srv, sw)
		err := send(c, from, other)
		if ok && err != nil {
			t.Errorf("software sending as %s: %v", from, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), "may send only as the mailboxes of its organisation")) {
			t.Errorf("software sending as %s: %v, want a refusal naming the rule", from, err)
		}
	}

	// Without a certificate, nothing is implied.
	c := dialSubmissions(t, srv)
	if err := send(c, "dpi@carepost.test", other); err == nil {
		t.Error("a client without certificate nor AUTH sent mail")
	}

	// A professional's certificate with AUTH EXTERNAL; it may not use the
	// software's rights.
	c = dialSubmissions(t, srv, clientCert(t, srv.PKI, listed, ""))
	if err := c.Auth(sasl.NewExternalClient("")); err != nil {
		t.Fatalf("AUTH EXTERNAL: %v", err)
	}
	if err := send(c, listed, other); err != nil {
		t.Fatalf("sending as oneself after EXTERNAL: %v", err)
	}
	c = dialSubmissions(t, srv, clientCert(t, srv.PKI, listed, ""))
	if err := c.Auth(sasl.NewExternalClient("")); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "dpi@carepost.test", other); err == nil {
		t.Error("a professional sent as the software's mailbox")
	}
}

// bearerClient is a SASL client for OAUTHBEARER (RFC 7628) or XOAUTH2 that
// answers a failure status the way the RFC says (a dummy response) and
// keeps it for the test.
type bearerClient struct {
	mech, user, token string
	status            []byte
}

func (b *bearerClient) Start() (string, []byte, error) {
	if b.mech == "XOAUTH2" {
		return b.mech, []byte("user=" + b.user + "\x01auth=Bearer " + b.token + "\x01\x01"), nil
	}
	return b.mech, []byte("n,a=" + b.user + ",\x01auth=Bearer " + b.token + "\x01\x01"), nil
}

func (b *bearerClient) Next(challenge []byte) ([]byte, error) {
	b.status = challenge
	if b.mech == "XOAUTH2" {
		return []byte{}, nil
	}
	return []byte{0x01}, nil
}

// OAUTHBEARER and XOAUTH2 on IMAP and submission (issue #26 item 3),
// against an OpenID Connect issuer on loopback: a valid token logs in, an
// expired one, one for another audience or signed with an unknown key is
// refused with the RFC 7628 status; the claim may name the national
// identifier; the issuer's key rotation needs no restart.
func TestBearerTokens(t *testing.T) {
	iss := oidctest.Start(t)
	srv := servertest.Start(t, func(c *server.Config) {
		c.Auth.OIDC = server.OIDCConfig{Issuer: iss.URL(), Audience: iss.Audience(), Claim: "email", ClaimIs: "address",
			CAFile: iss.CAFile(), Scope: "openid email"}
	})
	alice := srv.AddProfessional("alice", "")

	login := func(mech, user, token string) (*bearerClient, error) {
		c := dialIMAPS(t, srv)
		if m := imapMechs(t, c); !strings.Contains(strings.Join(m, " "), mech) {
			t.Fatalf("%s not offered: %v", mech, m)
		}
		b := &bearerClient{mech: mech, user: user, token: token}
		err := c.Authenticate(b)
		if err == nil {
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("SELECT after %s: %v", mech, err)
			}
		}
		return b, err
	}
	for _, mech := range []string{"OAUTHBEARER", "XOAUTH2"} {
		if _, err := login(mech, alice, iss.TokenFor(alice, nil)); err != nil {
			t.Fatalf("%s with a valid token: %v", mech, err)
		}
		if _, err := login(mech, "", iss.TokenFor(alice, nil)); err != nil {
			t.Fatalf("%s without authorization identity: %v", mech, err)
		}
		for name, tok := range map[string]string{
			"expired":         iss.TokenFor(alice, map[string]any{"exp": time.Now().Add(-time.Hour)}),
			"other audience":  iss.TokenFor(alice, map[string]any{"aud": "another-service"}),
			"unpublished key": iss.UnpublishedToken(map[string]any{"email": alice, "email_verified": true}),
			"forged":          iss.ForgedToken(map[string]any{"email": alice, "email_verified": true}),
		} {
			b, err := login(mech, alice, tok)
			if err == nil {
				t.Fatalf("%s with an %s token logged in", mech, name)
			}
			var st map[string]string
			if json.Unmarshal(b.status, &st) != nil || st["schemes"] != "bearer" || st["status"] == "" || st["scope"] != "openid email" {
				t.Errorf("%s, %s token: failure status %q", mech, name, b.status)
			}
		}
		// A valid token for alice does not open bob's mailbox.
		if _, err := login(mech, "bob@carepost.test", iss.TokenFor(alice, nil)); err == nil {
			t.Errorf("%s: alice's token opened another mailbox", mech)
		}
	}

	// Key rotation at the issuer: the new key's tokens are taken without
	// a restart (after the verifier's refetch delay).
	if _, err := iss.Rotate("ES256"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := login("OAUTHBEARER", alice, iss.TokenFor(alice, nil))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a token of the rotated key is still refused: %v", err)
		}
		time.Sleep(time.Second)
	}

	// Submission: XOAUTH2, then a message.
	c := dialSubmissions(t, srv)
	if err := c.Auth(&bearerClient{mech: "XOAUTH2", user: alice, token: iss.TokenFor(alice, nil)}); err != nil {
		t.Fatalf("submission XOAUTH2: %v", err)
	}
	if err := send(c, alice, alice); err != nil {
		t.Fatal(err)
	}
	c = dialSubmissions(t, srv)
	b := &bearerClient{mech: "OAUTHBEARER", user: alice, token: iss.TokenFor(alice, map[string]any{"exp": time.Now().Add(-time.Hour)})}
	if err := c.Auth(b); err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("submission OAUTHBEARER with an expired token: %v", err)
	}
	if !strings.Contains(string(b.status), "invalid_token") {
		t.Errorf("submission failure status %q", b.status)
	}
}

// With claim_is = "national_id", the token's claim names the professional
// by national identifier.
func TestBearerNationalID(t *testing.T) {
	iss := oidctest.Start(t)
	srv := servertest.Start(t, func(c *server.Config) {
		c.Auth.OIDC = server.OIDCConfig{Issuer: iss.URL(), Audience: iss.Audience(), Claim: "preferred_username",
			ClaimIs: "national_id", CAFile: iss.CAFile(), Scope: "openid"}
	})
	alice := srv.AddProfessional("alice", "")
	e, err := srv.Dir.Lookup(context.Background(), alice)
	if err != nil {
		t.Fatal(err)
	}
	c := dialIMAPS(t, srv)
	tok := iss.Token(map[string]any{"preferred_username": e.NationalID})
	if err := c.Authenticate(&bearerClient{mech: "OAUTHBEARER", token: tok}); err != nil {
		t.Fatalf("OAUTHBEARER by national identifier: %v", err)
	}
}
