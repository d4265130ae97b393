package bench

import (
	"context"
	"testing"
	"time"

	"github.com/carepost/carepost/server/servertest"
)

// The quiet idler against a whole Carepost, over imaps and over imap with
// STARTTLS, with a password that must go as a literal (8-bit): it logs
// in, selects, idles, sees a delivery's notification without losing the
// connection, notices when the server goes away, and a held session
// answers DONE at the end.
func TestQuietIdlerCarepost(t *testing.T) {
	srv := servertest.Start(t)
	const pw = "un mot de passe accentué, assez long"
	bob := srv.AddProfessional("bob.idle", pw)
	ca := srv.PKI.CAPath()
	ctx := context.Background()

	var idlers []*quietIdler
	for _, tc := range []struct {
		listener string
		sec      Security
	}{{"imaps", ImplicitTLS}, {"imap", StartTLS}} {
		ep := Endpoint{Addr: srv.AddrOf(tc.listener), Security: tc.sec, CAFile: ca}
		tlsCfg, err := ep.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		d := &imapDialer{ep: ep, tls: tlsCfg, password: pw}
		q, step, err := d.openQuietIdle(ctx, bob, "INBOX")
		if err != nil {
			t.Fatalf("%s: %s: %v", tc.listener, step, err)
		}
		if !q.open() {
			t.Fatalf("%s: idler not open", tc.listener)
		}
		idlers = append(idlers, q)

		bad := &imapDialer{ep: ep, tls: tlsCfg, password: "not the password at all"}
		if _, step, err := bad.openQuietIdle(ctx, bob, "INBOX"); step != "login" || err == nil {
			t.Fatalf("%s: wrong password: %s %v", tc.listener, step, err)
		}
		if _, step, err := d.openQuietIdle(ctx, bob, "No such mailbox"); step != "select" || err == nil {
			t.Fatalf("%s: missing mailbox: %s %v", tc.listener, step, err)
		}
	}

	// A delivery: both idlers get an EXISTS, which open() reads and drops.
	sum, err := RunSMTP(ctx, SMTPConfig{
		Endpoint: Endpoint{Addr: srv.AddrOf("submissions"), Security: ImplicitTLS, CAFile: ca},
		User:     bob, Password: pw, From: bob, To: []string{bob}, Clients: 1, Messages: 1, Size: 500,
	}, nil)
	if err != nil || sum.Completed != 1 {
		t.Fatalf("delivery: %v %+v", err, sum)
	}
	for i, q := range idlers {
		// Wait for the notification to reach the socket (no timing is
		// asserted: the loop only bounds the wait).
		for end := time.Now().Add(10 * time.Second); peekSocket(q.raw) != peekData && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		if !q.open() || peekSocket(q.raw) != peekNothing {
			t.Fatalf("idler %d after a delivery: open %v, peek %v", i, q.open(), peekSocket(q.raw))
		}
	}
	if !idlers[0].close(10 * time.Second) {
		t.Fatal("a held session did not answer DONE")
	}

	// The server stops: the idler sees it, and DONE gets no answer.
	srv.Restart()
	q := idlers[1]
	for end := time.Now().Add(10 * time.Second); q.open() && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if q.open() {
		t.Fatal("the closed connection still counts as open")
	}
	if q.close(5 * time.Second) {
		t.Fatal("DONE answered on a closed connection")
	}
}
