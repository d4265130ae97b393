package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

const password = "correct horse battery staple"

// submit sends one message over submission with STARTTLS, authenticated.
func submit(t *testing.T, srv *servertest.Instance, user, from string, to []string, msg string) error {
	t.Helper()
	c, err := gosmtp.DialStartTLS(srv.AddrOf("submission"), srv.ClientTLS())
	if err != nil {
		t.Fatalf("dial submission: %v", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, password)); err != nil {
		t.Fatalf("auth: %v", err)
	}
	return c.SendMail(from, to, strings.NewReader(msg))
}

func message(from, to, subject, body string) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Wed, 25 Nov 2026 10:00:00 +0100\r\nMessage-ID: <%d@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		from, to, subject, time.Now().UnixNano(), body)
}

func dialIMAP(t *testing.T, srv *servertest.Instance, user string, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	return srv.DialIMAP(t, user, password, opts)
}

func fetchAll(t *testing.T, c *imapclient.Client) []*imapclient.FetchMessageBuffer {
	t.Helper()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// A doctor sends a message to another doctor over submission; the other
// reads it over IMAPS; the server restarts and the message is still there
// with the same UIDVALIDITY and UID.
func TestSendReadRestart(t *testing.T) {
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice.martin", password)
	bob := srv.AddProfessional("bob.durand", password)

	body := "Cher confrère, je vous adresse Mme X pour avis cardiologique."
	if err := submit(t, srv, alice, alice, []string{bob}, message(alice, bob, "Adressage", body)); err != nil {
		t.Fatalf("send: %v", err)
	}

	c := dialIMAP(t, srv, bob, nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 1 {
		t.Fatalf("INBOX has %d messages, want 1", sel.NumMessages)
	}
	msgs := fetchAll(t, c)
	if len(msgs) != 1 || msgs[0].Envelope.Subject != "Adressage" {
		t.Fatalf("unexpected messages %+v", msgs)
	}
	raw := msgs[0].BodySection[0].Bytes
	if !bytes.Contains(raw, []byte(body)) || !bytes.HasPrefix(raw, []byte("Received: ")) {
		t.Fatalf("stored message lacks the body or the Received header:\n%s", raw)
	}
	uid := msgs[0].UID
	c.Close()

	srv.Restart()
	c2 := dialIMAP(t, srv, bob, nil)
	sel2, err := c2.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel2.UIDValidity != sel.UIDValidity || sel2.NumMessages != 1 || sel2.UIDNext != sel.UIDNext {
		t.Fatalf("after restart: %+v, before: %+v", sel2, sel)
	}
	msgs2 := fetchAll(t, c2)
	if len(msgs2) != 1 || msgs2[0].UID != uid || !bytes.Equal(msgs2[0].BodySection[0].Bytes, raw) {
		t.Fatal("the message changed across a restart")
	}
}

// A client in IDLE is told of a delivery without asking.
func TestIdlePushesDelivery(t *testing.T) {
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)

	exists := make(chan uint32, 8)
	c := dialIMAP(t, srv, bob, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(data *imapclient.UnilateralDataMailbox) {
			if data.NumMessages != nil {
				exists <- *data.NumMessages
			}
		},
	}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	if err := submit(t, srv, alice, alice, []string{bob}, message(alice, bob, "IDLE", "ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no EXISTS pushed during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Concurrent senders to one mailbox: every message acknowledged is stored,
// with distinct increasing UIDs.
func TestConcurrentDeliveries(t *testing.T) {
	srv := servertest.Start(t)
	bob := srv.AddProfessional("bob", password)
	const senders, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for i := 0; i < senders; i++ {
		sender := srv.AddProfessional(fmt.Sprintf("sender%d", i), password)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := gosmtp.DialTLS(srv.AddrOf("submissions"), srv.ClientTLS())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.Auth(sasl.NewPlainClient("", sender, password)); err != nil {
				errs <- err
				return
			}
			for j := 0; j < each; j++ {
				if err := c.SendMail(sender, []string{bob}, strings.NewReader(message(sender, bob, fmt.Sprintf("n%d", j), "x"))); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c := dialIMAP(t, srv, bob, nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != senders*each || uint32(sel.UIDNext) != senders*each+1 {
		t.Fatalf("got %d messages, UIDNEXT %d; want %d, %d", sel.NumMessages, sel.UIDNext, senders*each, senders*each+1)
	}
}

// The refusals a doctor meets, each with its code and a sentence.
func TestSubmissionRefusals(t *testing.T) {
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	cases := []struct {
		name, from string
		to         []string
		msgFrom    string
		code       int
		enhanced   gosmtp.EnhancedCode
		mention    string
	}{
		{"unknown recipient", alice, []string{"nobody@carepost.test"}, alice, 550, gosmtp.EnhancedCode{5, 1, 1}, "nobody@carepost.test"},
		{"outside the trust space", alice, []string{"someone@gmail.com"}, alice, 550, gosmtp.EnhancedCode{5, 7, 1}, "gmail.com"},
		{"envelope sender of someone else", bob, []string{alice}, alice, 550, gosmtp.EnhancedCode{5, 7, 1}, bob},
		{"From header of someone else", alice, []string{bob}, bob, 550, gosmtp.EnhancedCode{5, 7, 1}, bob},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := submit(t, srv, alice, tc.from, tc.to, message(tc.msgFrom, tc.to[0], "x", "y"))
			var se *gosmtp.SMTPError
			if !errors.As(err, &se) {
				t.Fatalf("want an SMTP error, got %v", err)
			}
			if se.Code != tc.code || se.EnhancedCode != tc.enhanced || !strings.Contains(se.Message, tc.mention) {
				t.Fatalf("got %d %v %q; want %d %v mentioning %q", se.Code, se.EnhancedCode, se.Message, tc.code, tc.enhanced, tc.mention)
			}
		})
	}
}

// The administrative commands open the data directory while the server
// runs; a second server on the same directory is refused.
func TestAdminWhileServingAndSingleServer(t *testing.T) {
	srv := servertest.Start(t)
	other, err := server.Open(srv.Config, nil)
	if err != nil {
		t.Fatalf("opening the data directory beside the running server: %v", err)
	}
	defer other.Close()
	if _, err := other.AddProfessional(t.Context(), directory.ProfessionalInput{NationalID: "8" + servertest.NextRPPS(),
		FirstName: "A", LastName: "B", Profession: "10", Address: "late@carepost.test"}); err != nil {
		t.Fatal(err)
	}
	if err := other.Dir.SetPassword(t.Context(), "late@carepost.test", password); err != nil {
		t.Fatal(err)
	}
	// The running server sees the new user at once.
	dialIMAP(t, srv, "late@carepost.test", nil)
	if err := other.Start(); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("a second server on the same data directory: %v", err)
	}
}
