package server_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
	"github.com/carepost/carepost/storage"
)

// imapLogin dials IMAPS and tries a LOGIN; it returns how long the LOGIN
// took and the refusal (nil when logged in).
func imapLogin(t *testing.T, srv *servertest.Instance, user, pw string) (time.Duration, error) {
	t.Helper()
	c, err := imapclient.DialTLS(srv.AddrOf("imaps"), &imapclient.Options{TLSConfig: srv.ClientTLS()})
	if err != nil {
		t.Fatalf("dial imaps: %v", err)
	}
	defer c.Close()
	start := time.Now()
	err = c.Login(user, pw).Wait()
	return time.Since(start), err
}

// inboxText logs in and returns the text of every message of the INBOX.
func inboxText(t *testing.T, srv *servertest.Instance, user, pw string) string {
	t.Helper()
	c := srv.DialIMAP(t, user, pw, nil)
	defer c.Close()
	var b strings.Builder
	for _, m := range fetchAll(t, c) {
		for _, body := range m.BodySection {
			b.Write(body.Bytes)
		}
	}
	return b.String()
}

// Issue #26, as a new user tried it: guess a password 20 times over IMAP
// and see the lockout, then log in after it expires. The twenty guesses
// are sent in parallel on twenty connections (the burst that escaped the
// delays before: all were checked at once and the account was never
// locked); the right password is then refused at once, over IMAP and SMTP
// AUTH, with the one sentence of a wrong password and the cause
// locked-out in the log; the lockout is traced (auth.lockout), counted,
// and told to the owner by a message in the INBOX, which the owner reads
// once the lockout has expired and the right password works again.
func TestLockoutAfterTwentyGuesses(t *testing.T) {
	logs := &logBuffer{}
	srv := servertest.StartLogged(t, slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLog{t}), &slog.HandlerOptions{Level: slog.LevelInfo})),
		func(c *server.Config) {
			c.Limits.LoginDelayMax = server.Duration(time.Second)
			c.Auth.LockoutAfter = 20
			c.Auth.LockoutDuration = server.Duration(3 * time.Second)
			c.Listen.Metrics = "127.0.0.1:0"
		})
	bob := srv.AddProfessional("bob", password)
	const wrong = "Tr0ub4dor&3 guess"

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = imapLogin(t, srv, bob, wrong)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		var ie *imap.Error
		if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	t.Logf("20 parallel wrong passwords took %v", took)
	if took < time.Second {
		t.Errorf("20 parallel guesses took %v: the ones past the five free failures were not slowed", took)
	}

	// Locked: the right password is refused at once, with the sentence of
	// a wrong password.
	d, err := imapLogin(t, srv, bob, password)
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed || !strings.Contains(ie.Text, "Invalid user name or password") {
		t.Fatalf("the right password while locked: %v", err)
	}
	if d > 500*time.Millisecond {
		t.Errorf("a locked attempt took %v; it must be refused at once", d)
	}
	if len(logs.lines(`msg="login failed"`, "user="+bob, "cause=locked-out")) == 0 {
		t.Error("no log line with cause=locked-out")
	}
	c, err := gosmtp.DialStartTLS(srv.AddrOf("submission"), srv.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", bob, password)); err == nil {
		t.Error("SMTP AUTH with the right password while locked was accepted")
	}
	c.Close()

	// Traced, logged, counted.
	ev := waitTrail(t, srv, "auth.lockout", func(r storage.AuditRecord) bool { return r.Object == bob })
	if ev.Actor != "system" || ev.Account != bob || ev.Details["scope"] != "account" || ev.Details["failures"] != "20" ||
		ev.Details["sources"] != "1" || ev.Details["until"] == "" || !strings.HasPrefix(ev.Source, "127.0.0.1:") {
		t.Errorf("auth.lockout event: %+v", ev)
	}
	noSecret(t, trail(t, srv, ""), password, wrong)
	if len(logs.lines("login locked out", "account="+bob, "failures=20")) != 1 {
		t.Error("the lockout is not logged once")
	}
	waitFor(t, srv, `carepost_auth_lockouts_total{scope="account"}`, 1)

	// After the lockout: the right password works, and the owner finds
	// the notice in the INBOX.
	time.Sleep(time.Until(start.Add(3*time.Second + 500*time.Millisecond)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := imapLogin(t, srv, bob, password)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the right password after the lockout: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var text string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if text = inboxText(t, srv, bob, password); strings.Contains(text, "20 attempts") || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{"Subject: =?utf-8?q?Connexions_bloqu=C3=A9es_/_Logins_blocked:_bob@", "20 tentatives", "20 attempts",
		"127.0.0.1", "bloquées jusqu'au", "blocked until", "Auto-Submitted: auto-generated"} {
		if !strings.Contains(text, want) {
			t.Errorf("the notice lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, wrong) {
		t.Error("the notice holds the guessed password")
	}
	if strings.Index(text, "Bonjour") > strings.Index(text, "English") {
		t.Error("the notice is not French first")
	}
}

// With require_app_passwords the account's own password is refused over
// IMAP and SMTP AUTH PLAIN (cause app-password-required in the log, the
// one sentence to the client), an application password works on both, and
// twenty such refusals lock nothing.
func TestAppPasswordRequiredIMAPAndSMTP(t *testing.T) {
	logs := &logBuffer{}
	srv := servertest.StartLogged(t, slog.New(slog.NewTextHandler(io.MultiWriter(logs, testLog{t}), &slog.HandlerOptions{Level: slog.LevelInfo})),
		func(c *server.Config) { c.Auth.RequireAppPasswords = true })
	bob := srv.AddProfessional("bob", password)
	app, err := srv.Dir.NewAppPassword(context.Background(), bob, "thunderbird")
	if err != nil {
		t.Fatal(err)
	}
	_, err = imapLogin(t, srv, bob, password)
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeAuthenticationFailed {
		t.Fatalf("IMAP with the account password: %v", err)
	}
	if len(logs.lines(`msg="login failed"`, "user="+bob, "cause=app-password-required")) == 0 {
		t.Error("no IMAP log line with cause=app-password-required")
	}
	smtpAuth := func(pw string) error {
		c, err := gosmtp.DialStartTLS(srv.AddrOf("submission"), srv.ClientTLS())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Auth(sasl.NewPlainClient("", bob, pw))
	}
	var se *gosmtp.SMTPError
	if err := smtpAuth(password); !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("SMTP AUTH with the account password: %v", err)
	}
	if len(logs.lines("user="+bob, "cause=app-password-required", "smtp")) == 0 {
		t.Error("no SMTP log line with cause=app-password-required")
	}
	if _, err := imapLogin(t, srv, bob, app); err != nil {
		t.Errorf("IMAP with the application password: %v", err)
	}
	if err := smtpAuth(app); err != nil {
		t.Errorf("SMTP AUTH with the application password: %v", err)
	}
	// A device still set up with the account password does not lock its
	// owner out.
	for range 21 {
		imapLogin(t, srv, bob, password)
	}
	if _, err := imapLogin(t, srv, bob, app); err != nil {
		t.Errorf("after 21 refusals of the account password, the application password: %v", err)
	}
	if n := len(trail(t, srv, "auth.lockout")); n != 0 {
		t.Errorf("%d lockouts", n)
	}
}

// The inactivity rules: an account without a login for warn_inactive_after
// is warned once (not again after a restart), then suspended after
// suspend_inactive_after and the notice the warning gave, traced; an
// account in use, a shared mailbox and one created recently are left
// alone; the owner reads the warning once resumed.
func TestInactiveAccountsWarnedThenSuspended(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t, func(c *server.Config) {
		c.Auth.WarnInactiveAfter = server.Duration(30 * 24 * time.Hour)
		c.Auth.SuspendInactiveAfter = server.Duration(60 * 24 * time.Hour)
	})
	bob := srv.AddProfessional("bob", password)     // never logs in
	alice := srv.AddProfessional("alice", password) // logs in
	org := "cardiologie@" + srv.Config.Domains[0]
	if _, err := srv.Dir.AddMailbox(ctx, directory.KindOrganisational, org, []string{alice}, "Service"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	day := 24 * time.Hour

	check := func(at time.Time) server.InactiveReport {
		t.Helper()
		rep, err := srv.CheckInactive(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := check(now.Add(29 * day)); len(rep.Warned)+len(rep.Suspended) != 0 {
		t.Fatalf("before the period: %+v", rep)
	}
	// alice logs in on day 20 (as the directory records a login).
	if err := srv.Store.RecordLogin(ctx, alice, 0, now.Add(20*day)); err != nil {
		t.Fatal(err)
	}
	rep := check(now.Add(31 * day))
	if len(rep.Warned) != 1 || rep.Warned[0] != bob || len(rep.Suspended) != 0 {
		t.Fatalf("day 31: %+v, want bob warned", rep)
	}
	if rep := check(now.Add(32 * day)); len(rep.Warned)+len(rep.Suspended) != 0 {
		t.Fatalf("warned again the next day: %+v", rep)
	}
	srv.Restart()
	if rep := check(now.Add(33 * day)); len(rep.Warned)+len(rep.Suspended) != 0 {
		t.Fatalf("warned again after a restart: %+v", rep)
	}
	ev := waitTrail(t, srv, "account.warn-inactive", func(r storage.AuditRecord) bool { return r.Object == bob })
	if ev.Actor != "system" || ev.Account != bob || ev.Details["to"] != bob || ev.Details["suspend_after"] == "" {
		t.Errorf("account.warn-inactive: %+v", ev)
	}
	// Day 61 less an hour: bob is past the period, but the warning (day
	// 31) promised 30 days; alice is warned (41 days).
	if rep := check(now.Add(61*day - time.Hour)); len(rep.Suspended) != 0 || len(rep.Warned) != 1 || rep.Warned[0] != alice {
		t.Fatalf("day 61: %+v", rep)
	}
	rep = check(now.Add(62 * day))
	if len(rep.Suspended) != 1 || rep.Suspended[0] != bob || len(rep.Warned) != 0 {
		t.Fatalf("day 62: %+v", rep)
	}
	e, err := srv.Dir.Lookup(ctx, bob)
	if err != nil || e.Status != directory.StatusSuspended {
		t.Fatalf("bob: %+v, %v", e.Status, err)
	}
	if e, _ := srv.Dir.Lookup(ctx, org); e.Status != directory.StatusActive {
		t.Errorf("the shared mailbox: %s", e.Status)
	}
	ev = waitTrail(t, srv, "account.suspend", func(r storage.AuditRecord) bool { return r.Object == bob })
	if ev.Actor != "system" || ev.Details["reason"] != "inactive" || ev.Details["never_logged_in"] != "true" {
		t.Errorf("account.suspend: %+v", ev)
	}
	if _, err := imapLogin(t, srv, bob, password); err == nil {
		t.Error("a suspended account logged in")
	}
	// Resumed, bob reads the warning.
	if err := srv.Dir.SetStatus(ctx, bob, directory.StatusActive); err != nil {
		t.Fatal(err)
	}
	text := inboxText(t, srv, bob, password)
	for _, want := range []string{"Unused_mailbox:_bob@", "jamais servi depuis sa création le", "since it was created on", "will be suspended", "log in with your mail client"} {
		if !strings.Contains(text, want) {
			t.Errorf("the warning lacks %q:\n%s", want, text)
		}
	}
	// A new account is not judged before its period.
	srv.AddProfessional("carol", password)
	if rep := check(time.Now().Add(10 * day)); len(rep.Warned)+len(rep.Suspended) != 0 {
		t.Errorf("a new account: %+v", rep)
	}
}
