package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// postmaster@ and abuse@ of every hosted domain, and <Postmaster> alone
// (RFC 5321 §4.1.1.3), reach the configured mailbox.
func TestPostmasterAndAbuse(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Postmaster = "it@" + c.Domains[0] })
	alice := srv.AddProfessional("alice", password)
	it := "it@" + srv.Config.Domains[0]
	if _, err := srv.Dir.AddMailbox(context.Background(), directory.KindOrganisational, it, []string{alice}, "IT team"); err != nil {
		t.Fatal(err)
	}
	// "<Postmaster>" without a domain (RFC 5321 §4.1.1.3) never reaches
	// us: go-smtp v0.25.1's path parser requires an "@" and answers 501
	// itself; the directory accepts it (TestPostmasterAlone).
	rcpts := []string{"postmaster@" + srv.Config.Domains[0], "ABUSE@" + srv.Config.PatientDomain}
	c, err := gosmtp.DialTLS(srv.AddrOf("submissions"), srv.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", alice, password)); err != nil {
		t.Fatal(err)
	}
	for _, r := range rcpts {
		if err := c.SendMail(alice, []string{r}, strings.NewReader("From: "+alice+"\r\nSubject: to "+r+"\r\n\r\nhello\r\n")); err != nil {
			t.Fatalf("to %s: %v", r, err)
		}
	}
	ic := srv.DialIMAP(t, alice, password, nil)
	st, err := ic.Status("Shared/"+it+"/INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || *st.NumMessages != 2 {
		t.Fatalf("the postmaster mailbox has %+v, %v", st, err)
	}
}

// Without a postmaster mailbox, the refusal says so.
func TestNoPostmaster(t *testing.T) {
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	err := sendErr(srv, alice, "postmaster@"+srv.Config.Domains[0], "From: "+alice+"\r\n\r\nx\r\n")
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || !strings.Contains(se.Message, "no postmaster mailbox") {
		t.Fatalf("got %v", err)
	}
}
