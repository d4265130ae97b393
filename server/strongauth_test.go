package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/directory"
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
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(to, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte("From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: lettre\r\n\r\nCompte rendu.\r\n")); err != nil {
		return err
	}
	return w.Close()
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
