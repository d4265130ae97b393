package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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

// trail flushes srv's Recorder and returns the events of action (all
// when ""), oldest first.
func trail(t *testing.T, srv *servertest.Instance, action string) []storage.AuditRecord {
	t.Helper()
	srv.FlushAuditEvents()
	recs, err := srv.Store.AuditEvents(context.Background(), storage.AuditQuery{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// waitTrail waits up to 20 s for an event of action matching ok.
func waitTrail(t *testing.T, srv *servertest.Instance, action string, ok func(storage.AuditRecord) bool) storage.AuditRecord {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, r := range trail(t, srv, action) {
			if ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event as expected; the trail has:\n%s", action, dump(trail(t, srv, "")))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dump(recs []storage.AuditRecord) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "  %d %s %s %s %s %q %s %v account=%q\n", r.Seq, r.Actor, r.Mechanism, r.Source, r.Action, r.Object, r.Outcome, r.Details, r.Account)
	}
	return b.String()
}

// noSecret fails if a password appears anywhere in the trail.
func noSecret(t *testing.T, recs []storage.AuditRecord, secrets ...string) {
	t.Helper()
	for _, r := range recs {
		fields := []string{r.Actor, r.Mechanism, r.Source, r.Action, r.Object, r.Outcome}
		for k, v := range r.Details {
			fields = append(fields, k, v)
		}
		for _, f := range fields {
			for _, s := range secrets {
				if strings.Contains(f, s) {
					t.Errorf("event %d (%s) holds a secret: %q", r.Seq, r.Action, f)
				}
			}
		}
	}
}

func one(t *testing.T, recs []storage.AuditRecord, what string, ok func(storage.AuditRecord) bool) storage.AuditRecord {
	t.Helper()
	var found []storage.AuditRecord
	for _, r := range recs {
		if ok(r) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d events, want 1; the trail has:\n%s", what, len(found), dump(recs))
	}
	return found[0]
}

// Each SMTP and IMAP action leaves its event: connections (with TLS),
// logins that succeed and fail (mechanism, the name tried, never the
// password), a refused recipient with its code, and the reads of message
// content, one per FETCH, but none for FLAGS or ENVELOPE alone.
func TestAuditEventsSMTPAndIMAP(t *testing.T) {
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	const wrong = "not the password at all"

	// Submission: STARTTLS, AUTH, a message, a refused recipient.
	c, err := gosmtp.DialStartTLS(srv.AddrOf("submission"), srv.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", alice, password)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail(alice, []string{bob}, strings.NewReader(message(alice, bob, "Bilan", "Résultats joints."))); err != nil {
		t.Fatal(err)
	}
	nobody := "nobody@" + srv.Config.Domains[0]
	if err := c.SendMail(alice, []string{nobody}, strings.NewReader(message(alice, nobody, "x", "y"))); err == nil {
		t.Fatal("a message to an unknown mailbox was accepted")
	}
	c.Close()
	// A wrong password.
	c, err = gosmtp.DialStartTLS(srv.AddrOf("submission"), srv.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", bob, wrong)); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	c.Close()

	// IMAP: a failed login, then bob reads.
	ic, err := imapclient.DialTLS(srv.AddrOf("imaps"), &imapclient.Options{TLSConfig: srv.ClientTLS()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ic.Login(bob, wrong).Wait(); err == nil {
		t.Fatal("IMAP accepted a wrong password")
	}
	ic.Close()
	ic = dialIMAP(t, srv, bob, nil)
	sel, err := ic.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 1 {
		t.Fatalf("select: %v, %v", sel, err)
	}
	fetch := func(o *imap.FetchOptions) {
		t.Helper()
		if _, err := ic.Fetch(imap.SeqSetNum(1), o).Collect(); err != nil {
			t.Fatal(err)
		}
	}
	fetch(&imap.FetchOptions{Flags: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{}, RFC822Size: true})
	fetch(&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}})
	fetch(&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, Peek: true},
		{Specifier: imap.PartSpecifierText, Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 10}}},
		BinarySection: []*imap.FetchItemBinarySection{{Part: []int{1}, Peek: true}}})
	uid := "1"

	recs := trail(t, srv, "")
	noSecret(t, recs, password, wrong)

	// SMTP.
	connects := 0
	for _, r := range recs {
		if r.Action == "smtp.connect" {
			connects++
			if r.Actor != "anonymous" || r.Details["service"] != "submission" || r.Details["tls"] != "" || r.Source == "" {
				t.Errorf("smtp.connect: %+v", r)
			}
		}
	}
	if connects != 2 {
		t.Errorf("%d smtp.connect events, want 2 (two connections)", connects)
	}
	tlsUp := 0
	for _, r := range recs {
		if r.Action == "smtp.starttls" && strings.HasPrefix(r.Details["tls"], "TLS 1.") {
			tlsUp++
		}
	}
	if tlsUp != 2 {
		t.Errorf("%d smtp.starttls events with the TLS version, want 2", tlsUp)
	}
	ok := one(t, recs, "alice's AUTH", func(r storage.AuditRecord) bool { return r.Action == "smtp.auth" && r.Outcome == "ok" })
	if ok.Actor != alice || ok.Mechanism != "PLAIN" || ok.Account != alice || ok.Details["user"] != alice {
		t.Errorf("AUTH ok: %+v", ok)
	}
	bad := one(t, recs, "bob's failed AUTH", func(r storage.AuditRecord) bool { return r.Action == "smtp.auth" && r.Outcome == "refused" })
	if bad.Actor != "anonymous" || bad.Details["user"] != bob || bad.Account != bob || bad.Details["cause"] == "" || bad.Details["code"] != "535" {
		t.Errorf("AUTH refused: %+v", bad)
	}
	rcpt := one(t, recs, "refused RCPT", func(r storage.AuditRecord) bool { return r.Action == "smtp.rcpt" })
	if rcpt.Outcome != "refused" || rcpt.Object != nobody || rcpt.Actor != alice || rcpt.Details["code"] != "550" || rcpt.Details["from"] != alice {
		t.Errorf("RCPT refused: %+v", rcpt)
	}

	// IMAP.
	n := 0
	for _, r := range recs {
		if r.Action == "imap.connect" {
			n++
			if !strings.HasPrefix(r.Details["tls"], "TLS 1.") {
				t.Errorf("imap.connect: %+v", r)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d imap.connect events, want 2", n)
	}
	one(t, recs, "bob's failed LOGIN", func(r storage.AuditRecord) bool {
		return r.Action == "imap.login" && r.Outcome == "refused" && r.Actor == "anonymous" && r.Account == bob && r.Mechanism == "PLAIN" &&
			r.Details["mechanism"] == "LOGIN" && r.Details["user"] == bob && r.Details["cause"] != ""
	})
	one(t, recs, "bob's LOGIN", func(r storage.AuditRecord) bool {
		return r.Action == "imap.login" && r.Outcome == "ok" && r.Actor == bob && r.Account == bob && r.Mechanism == "PLAIN"
	})
	inbox, err := srv.Store.GetMailbox(context.Background(), bob, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var reads []storage.AuditRecord
	for _, r := range recs {
		if r.Action == "message.read" {
			reads = append(reads, r)
		}
	}
	if len(reads) != 2 {
		t.Fatalf("%d message.read events, want 2 (FLAGS and ENVELOPE read no content):\n%s", len(reads), dump(recs))
	}
	for _, r := range reads {
		if r.Actor != bob || r.Account != bob || r.Object != fmt.Sprintf("mailbox:%d", inbox.ID) || r.Details["uids"] != uid || r.Outcome != "ok" {
			t.Errorf("message.read: %+v", r)
		}
	}
	if got := reads[0].Details["sections"]; got != "BODY[]" {
		t.Errorf("sections of FETCH BODY[]: %q", got)
	}
	if got := reads[1].Details["sections"]; got != "BODY[HEADER] BODY[TEXT]<0.10> BINARY[1]" {
		t.Errorf("sections of the second FETCH: %q", got)
	}
}

// An MX peer's certificate is recorded when verified and with a refusal;
// the sending side records each relay attempt with the remote reply, by
// Message-ID, and the DSN of a recipient refused for good.
func TestAuditEventsFederation(t *testing.T) {
	p := startPair(t, "", fastQueue(), true)
	msg := message(p.alice, p.bob, "Adressage", "Patient vu ce jour.")
	msgID := msg[strings.Index(msg, "Message-ID: <")+len("Message-ID: <"):]
	msgID = msgID[:strings.Index(msgID, ">")]
	if err := submit(t, p.a, p.alice, p.alice, []string{p.bob}, msg); err != nil {
		t.Fatal(err)
	}
	inbox(t, p.b, p.bob, 1)
	att := waitTrail(t, p.a, "relay.attempt", func(r storage.AuditRecord) bool { return r.Object == msgID })
	if att.Outcome != "delivered" || att.Actor != "system" || att.Details["rcpt"] != p.bob ||
		!strings.HasPrefix(att.Details["reply"], "250") || att.Account != p.alice {
		t.Errorf("relay.attempt: %+v", att)
	}
	peer := waitTrail(t, p.b, "smtp.peer", func(storage.AuditRecord) bool { return true })
	if !strings.HasPrefix(peer.Actor, "peer:") || peer.Details["fingerprint"] == "" || peer.Details["service"] != "mx" {
		t.Errorf("smtp.peer: %+v", peer)
	}

	// A recipient B does not have: B refuses it at RCPT, naming the
	// peer; A records the failed attempt and the DSN to alice.
	ghost := "ghost@b.test"
	msg = message(p.alice, ghost, "Erreur", "x")
	ghostID := msg[strings.Index(msg, "Message-ID: <")+len("Message-ID: <"):]
	ghostID = ghostID[:strings.Index(ghostID, ">")]
	if err := submit(t, p.a, p.alice, p.alice, []string{ghost}, msg); err != nil {
		t.Fatal(err)
	}
	att = waitTrail(t, p.a, "relay.attempt", func(r storage.AuditRecord) bool { return r.Object == ghostID })
	if att.Outcome != "failed" || !strings.HasPrefix(att.Details["reply"], "5") {
		t.Errorf("relay.attempt refused: %+v", att)
	}
	dsn := waitTrail(t, p.a, "dsn", func(r storage.AuditRecord) bool { return r.Object == ghostID })
	if dsn.Outcome != "ok" || dsn.Details["to"] != p.alice || dsn.Details["failed"] != ghost || dsn.Account != p.alice {
		t.Errorf("dsn: %+v", dsn)
	}
	ref := waitTrail(t, p.b, "smtp.rcpt", func(r storage.AuditRecord) bool { return r.Object == ghost })
	if ref.Outcome != "refused" || !strings.HasPrefix(ref.Actor, "peer:") || ref.Details["peer_certificate"] == "" ||
		!strings.HasPrefix(ref.Details["code"], "5") || ref.Details["service"] != "mx" {
		t.Errorf("smtp.rcpt on MX: %+v", ref)
	}
}

// history reads srv's access history as user.
func history(t *testing.T, srv *servertest.Instance, user, pass, query string) (int, http.Header, map[string]any) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.ClientTLS()}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest("GET", "https://"+srv.AddrOf("https")+server.HistoryPath+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("not JSON (%d): %s", resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, out
}

// The owner reads their access history over HTTPS: logins to the
// account and reads of its messages, newest first; never another
// account's events; a wrong password is a 401 with a challenge.
func TestHistoryEndpoint(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Listen.HTTPS = "127.0.0.1:0" })
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	if err := submit(t, srv, bob, bob, []string{alice}, message(bob, alice, "Bilan", "Résultats.")); err != nil {
		t.Fatal(err)
	}
	if err := submit(t, srv, alice, alice, []string{bob}, message(alice, bob, "Réponse", "Merci.")); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{alice, bob} {
		c := dialIMAP(t, srv, u, nil)
		fetchAll(t, c)
		c.Close()
	}
	srv.FlushAuditEvents()

	code, _, ans := history(t, srv, alice, password, "")
	if code != http.StatusOK || ans["account"] != alice {
		t.Fatalf("history: %d %v", code, ans)
	}
	events, _ := ans["events"].([]any)
	var actions []string
	lastSeq := 1e18
	for _, e := range events {
		m := e.(map[string]any)
		actions = append(actions, m["action"].(string))
		if seq := m["seq"].(float64); seq >= lastSeq {
			t.Errorf("not newest first: %v after %v", seq, lastSeq)
		} else {
			lastSeq = seq
		}
		if m["actor"] == bob && m["action"] != "message.deliver" {
			t.Errorf("one of bob's events in alice's history: %v", m)
		}
		if m["action"] == "message.read" && (m["actor"] != alice || m["details"].(map[string]any)["uids"] != "1") {
			t.Errorf("read: %v", m)
		}
	}
	for _, want := range []string{"message.read", "imap.login", "smtp.auth"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("alice's history lacks %s: %v", want, actions)
		}
	}
	if ans["more"] != false {
		t.Errorf("more: %v", ans["more"])
	}

	// Limit and since.
	code, _, ans = history(t, srv, alice, password, "?limit=1")
	if ev, _ := ans["events"].([]any); code != http.StatusOK || len(ev) != 1 || ans["more"] != true {
		t.Errorf("limit=1: %d %v", code, ans)
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	code, _, ans = history(t, srv, alice, password, "?since="+future)
	if ev, _ := ans["events"].([]any); code != http.StatusOK || len(ev) != 0 {
		t.Errorf("since in the future: %d %v", code, ans)
	}
	code, _, ans = history(t, srv, alice, password, "?since=yesterday")
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(ans["error"]), "RFC 3339") {
		t.Errorf("bad since: %d %v", code, ans)
	}

	// Refusals.
	code, h, ans := history(t, srv, alice, "wrong password", "")
	if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") || ans["events"] != nil ||
		!strings.Contains(fmt.Sprint(ans["error"]), "Invalid user name or password") {
		t.Errorf("wrong password: %d %v %v", code, h, ans)
	}
	code, h, _ = history(t, srv, "", "", "")
	if code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
		t.Errorf("no credentials: %d %v", code, h)
	}
	// The failed attempt is in alice's history, by nobody known.
	srv.FlushAuditEvents()
	code, _, ans = history(t, srv, alice, password, "?limit=5")
	found := false
	for _, e := range ans["events"].([]any) {
		m := e.(map[string]any)
		if m["action"] == "https.login" && m["outcome"] == "refused" && m["actor"] == "anonymous" {
			found = true
		}
	}
	if code != http.StatusOK || !found {
		t.Errorf("the refused login is not in alice's history: %d %v", code, ans)
	}

	// Bob sees his own, none of alice's.
	_, _, ans = history(t, srv, bob, password, "?limit=1000")
	for _, e := range ans["events"].([]any) {
		m := e.(map[string]any)
		if m["actor"] == alice && m["action"] != "message.deliver" {
			t.Errorf("one of alice's events in bob's history: %v", m)
		}
	}
}

// A delegate's read of a shared mailbox is in that mailbox's history,
// under the delegate's name, and not in the delegate's own.
func TestHistoryShowsDelegates(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.Listen.HTTPS = "127.0.0.1:0" })
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	org := "cardiologie@" + srv.Config.Domains[0]
	ctx := context.Background()
	if _, err := srv.AddMailbox(ctx, directory.KindOrganisational, org, []string{alice}, "Cardiologie"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Dir.SetPassword(ctx, org, password); err != nil {
		t.Fatal(err)
	}
	if err := submit(t, srv, bob, bob, []string{org}, message(bob, org, "Avis", "Avis demandé.")); err != nil {
		t.Fatal(err)
	}
	c := dialIMAP(t, srv, alice, nil)
	if _, err := c.Select("Shared/"+org+"/INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	srv.FlushAuditEvents()

	code, _, ans := history(t, srv, org, password, "")
	found := false
	for _, e := range ans["events"].([]any) {
		m := e.(map[string]any)
		if m["action"] == "message.read" && m["actor"] == alice {
			found = true
		}
	}
	if code != http.StatusOK || !found {
		t.Errorf("the delegate's read is not in the shared mailbox's history: %d %v", code, ans)
	}
	_, _, ans = history(t, srv, alice, password, "")
	for _, e := range ans["events"].([]any) {
		if m := e.(map[string]any); m["action"] == "message.read" {
			t.Errorf("the read of the shared mailbox is in the delegate's own history: %v", m)
		}
	}
}

// A message refused at DATA (too large) leaves smtp.data with its code.
func TestAuditEventsRefusedData(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.MaxMessageSize = 2000 })
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	big := message(alice, bob, "Gros", strings.Repeat("Ligne de compte rendu.\r\n", 200))
	if err := submit(t, srv, alice, alice, []string{bob}, big); err == nil {
		t.Fatal("a message over the limit was accepted")
	}
	recs := trail(t, srv, "")
	data := one(t, recs, "refused DATA", func(r storage.AuditRecord) bool { return r.Action == "smtp.data" })
	if data.Outcome != "refused" || data.Actor != alice || data.Details["code"] != "552" || data.Details["from"] != alice {
		t.Errorf("smtp.data: %+v", data)
	}
}
