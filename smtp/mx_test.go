package smtp_test

import (
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

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
