package smtp_test

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/smtp"
)

const doc = "doc@" + otherDomain // a professional at another operator

func TestMXFromTrustSpaceAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeMX, false)
	c := e.mx(addr)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered on MX")
	}
	msg := "X-MSS-NIL: LPS-EXAMPLE-1\r\n" + message("Dr Doc <"+doc+">", alice, "from another operator", "compte rendu\r\n")
	must(t, send(c, doc, []string{alice, cardio}, msg))
	for _, a := range []string{alice, cardio} {
		got := e.inbox(a)
		if len(got) != 1 {
			t.Fatalf("%s has %d messages", a, len(got))
		}
		added := splitStored(t, got[0], msg)
		if !strings.Contains(added, " with ESMTPS id ") {
			t.Errorf("Received: %q", added)
		}
	}
	// Notifications from another operator use the null reverse-path.
	must(t, send(c, "", []string{alice}, message("MAILER-DAEMON@"+otherDomain, alice, "dsn", "failed\r\n")))
	if n := e.inboxCount(alice); n != 2 {
		t.Fatalf("alice has %d messages", n)
	}
}

func TestMXRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeMX, false)
	c := e.mx(addr)

	t.Run("sender outside the trust space", func(t *testing.T) {
		wantCode(t, c.Mail("someone@gmail.com", nil), 550, "5.7.1",
			"gmail.com", "is not part of the secure health messaging space")
	})
	t.Run("sender claiming our domain", func(t *testing.T) {
		wantCode(t, c.Mail(bob, nil), 550, "5.7.1", bob)
	})
	t.Run("recipients", func(t *testing.T) {
		must(t, c.Mail(doc, nil))
		wantCode(t, c.Rcpt("other@"+otherDomain, nil), 550, "5.7.1", "does not relay")
		wantCode(t, c.Rcpt("x@gmail.com", nil), 550, "5.7.1", "is not part of the secure health messaging space")
		wantCode(t, c.Rcpt("nobody@ch-test.fr", nil), 550, "5.1.1", "nobody@ch-test.fr")
		wantCode(t, c.Rcpt(carol, nil), 550, "5.2.1", carol)
		must(t, c.Reset())
	})
	t.Run("From header outside the trust space", func(t *testing.T) {
		err := send(c, doc, []string{alice}, message("x@gmail.com", alice, "forged", "x\r\n"))
		wantCode(t, err, 550, "5.7.1", "gmail.com")
	})
	t.Run("From header of our domain", func(t *testing.T) {
		err := send(c, doc, []string{alice}, message(bob, alice, "forged", "x\r\n"))
		wantCode(t, err, 550, "5.7.1", bob)
	})
	t.Run("AUTH", func(t *testing.T) {
		err := c.Auth(sasl.NewPlainClient("", alice, e.alicePass))
		var se *gosmtp.SMTPError
		if err == nil || (errAs(err, &se) && se.Code/100 != 5) {
			t.Fatalf("AUTH on MX: %v", err)
		}
	})
	if n := e.inboxCount(alice); n != 0 {
		t.Fatalf("alice has %d messages", n)
	}
}

func TestMXRequiresTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeMX, false)
	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered on MX")
	}
	wantCode(t, c.Mail(doc, nil), 530, "5.7.0", "STARTTLS")
}

// The hole of issue 23: over STARTTLS without a client certificate, a
// peer posing as a professional of the space is refused at MAIL, and
// every RCPT it tries afterwards gets the same reply, whether the address
// exists, is suspended or not: nothing to learn about who has a mailbox.
func TestMXWithoutOperatorCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	addr := e.start(smtp.ModeMX, false)
	_, untrusted := e.operatorTLS("mx.outsider.test", false)
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		code int
		enh  string
		text string
	}{
		{"no certificate", e.clientTLS, 530, "5.7.0", "must present its operator certificate during STARTTLS"},
		{"certificate of an untrusted CA", untrusted, 550, "5.7.1",
			"(CN=mx.outsider.test,O=Carepost (development PKI)) is not issued by a certification authority of the trust space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.mxWith(addr, tc.cfg)
			wantCode(t, c.Mail(doc, nil), tc.code, tc.enh, tc.text)
			wantCode(t, c.Mail("", nil), tc.code, tc.enh, tc.text)
			var replies []string
			for _, rcpt := range []string{alice, carol, dan, cardio, "nobody@" + domain, "x@gmail.com"} {
				err := c.Rcpt(rcpt, nil)
				if err == nil {
					t.Fatalf("RCPT %s accepted", rcpt)
				}
				replies = append(replies, err.Error())
			}
			for i, r := range replies {
				if r != replies[0] {
					t.Errorf("RCPT answers differ: %q and %q", replies[0], replies[i])
				}
			}
			// And DATA goes nowhere.
			if _, err := c.Data(); err == nil {
				t.Fatal("DATA accepted")
			}
		})
	}
	if n := e.inboxCount(alice); n != 0 {
		t.Fatalf("alice has %d messages", n)
	}
	if !strings.Contains(e.logs.String(), "cause=\"no client certificate\"") {
		t.Errorf("the refusal's cause is not logged:\n%s", e.logs.String())
	}
}

// With the white list naming each operator's certificate DN, a server may
// deliver the mail of its own domains only.
func TestMXOperatorDomains(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	const third = "op-third.fr"
	wl, err := directory.ParseWhiteList(strings.NewReader(`<ListeBlanche xmlns="https://listeblanche.mssante.fr/schema">
<Domaine><Nom>` + otherDomain + `</Nom><DNCertificatOperateur>CN=mx.op-other.fr,O=Carepost (development PKI)</DNCertificatOperateur></Domaine>
<Domaine><Nom>` + third + `</Nom><DNCertificatOperateur>/O=Carepost (development PKI)/CN=mx.op-third.fr</DNCertificatOperateur></Domaine>
</ListeBlanche>`))
	must(t, err)
	if _, err := e.dir.ImportTrustList(ctx, wl, "test"); err != nil {
		t.Fatal(err)
	}
	_, thirdTLS := e.operatorTLS("mx."+third, true)
	_, unnamedTLS := e.operatorTLS("mx.op-unnamed.test", true)
	addr := e.start(smtp.ModeMX, false)
	other := e.mx(addr)

	t.Run("sender domain of another operator", func(t *testing.T) {
		wantCode(t, other.Mail("x@"+third, nil), 550, "5.7.1",
			"The domain op-third.fr of the sender address belongs to another operator of the trust space: your certificate (CN=mx.op-other.fr,O=Carepost (development PKI)) is that of the operator of op-other.fr.")
	})
	t.Run("From header of another operator", func(t *testing.T) {
		err := send(other, doc, []string{alice}, message("x@"+third, alice, "forged", "x\r\n"))
		wantCode(t, err, 550, "5.7.1", "The domain op-third.fr of the From address belongs to another operator")
	})
	t.Run("certificate the white list names for no domain", func(t *testing.T) {
		c := e.mxWith(addr, unnamedTLS)
		wantCode(t, c.Mail("x@"+third, nil), 550, "5.7.1",
			"The certificate of your server (CN=mx.op-unnamed.test,O=Carepost (development PKI)) is not the one the white list of the trust space names for op-third.fr")
	})
	t.Run("each operator its own domains", func(t *testing.T) {
		must(t, send(other, doc, []string{alice}, message("Dr Doc <"+doc+">", alice, "from other", "x\r\n")))
		c := e.mxWith(addr, thirdTLS)
		must(t, send(c, "doc@"+third, []string{alice}, message("doc@"+third, alice, "from third", "x\r\n")))
		if n := e.inboxCount(alice); n != 2 {
			t.Fatalf("alice has %d messages, want 2", n)
		}
	})
	logs := e.logs.String()
	if !strings.Contains(logs, `msg="message accepted"`) || !strings.Contains(logs, `peer="CN=mx.op-third.fr,O=Carepost (development PKI)"`) {
		t.Errorf("the log does not name the peer:\n%s", logs)
	}
}

// A trust decision that cannot be made is a 4xx, never an accept: here
// the trust space is empty (the white list was never loaded).
func TestMXTrustSpaceMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	must(t, e.dir.RemoveTrustedDomain(context.Background(), otherDomain))
	addr := e.start(smtp.ModeMX, false)
	c := e.mx(addr)
	wantCode(t, c.Mail(doc, nil), 451, "4.7.0", "The list of the trust space is not loaded on this server yet")
	if n := e.inboxCount(alice); n != 0 {
		t.Fatalf("alice has %d messages", n)
	}
}
