package bench

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/carepost/carepost/server/servertest"
)

// The generators against a whole Carepost (every listener, SQLite, dev
// PKI): submission with STARTTLS and AUTH, submissions with implicit TLS
// and a connection per message, then the IMAP workload over imaps and
// imap+STARTTLS on the mailboxes they filled, with IDLE connections held.
// Only correctness is asserted; `go test -run TestCarepost -v ./bench`
// prints the figures of this small run.
func TestCarepost(t *testing.T) {
	srv := servertest.Start(t)
	const pw = "bench: a long enough passphrase"
	alice := srv.AddProfessional("alice.bench", pw)
	bob := srv.AddProfessional("bob.bench", pw)
	carol := srv.AddProfessional("carol.bench", pw)
	ca := srv.PKI.CAPath()
	ctx := context.Background()

	var out bytes.Buffer
	sum, err := RunSMTP(ctx, SMTPConfig{
		Endpoint: Endpoint{Addr: srv.AddrOf("submission"), Security: StartTLS, CAFile: ca},
		User:     alice, Password: pw, From: alice, To: []string{bob, carol},
		Clients: 4, Messages: 50, Size: 10240,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Completed != 50 || sum.Errors.Total != 0 || sum.SMTP.BytesSent != 50*10240 {
		t.Fatalf("submission: %+v, errors %+v", sum, sum.Errors)
	}
	sum.WriteText(&out)

	sum, err = RunSMTP(ctx, SMTPConfig{
		Endpoint: Endpoint{Addr: srv.AddrOf("submissions"), Security: ImplicitTLS, CAFile: ca},
		User:     alice, Password: pw, From: alice, To: []string{bob, carol}, ToAll: true, NewConn: true,
		Clients: 2, Messages: 10, Size: 100 << 10,
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Completed != 10 || sum.Errors.Total != 0 {
		t.Fatalf("submissions: %+v, errors %+v", sum, sum.Errors)
	}
	sum.WriteText(&out)

	// Bob and Carol each got 25 + 10 messages.
	for _, tc := range []struct {
		user, listener string
		sec            Security
		clients, idle  int
	}{
		{bob, "imaps", ImplicitTLS, 3, 5},
		{carol, "imap", StartTLS, 1, 0},
	} {
		sum, err = RunIMAP(ctx, IMAPConfig{
			Endpoint: Endpoint{Addr: srv.AddrOf(tc.listener), Security: tc.sec, CAFile: ca},
			User:     tc.user, Password: pw, Clients: tc.clients, Idle: tc.idle, Duration: 2 * time.Second,
		}, &out)
		if err != nil {
			t.Fatal(err)
		}
		if sum.IMAP.Messages != 35 || sum.Errors.Total != 0 || sum.Completed == 0 ||
			sum.IMAP.IdleHeld != tc.idle || sum.IMAP.IdleHeldAtEnd != tc.idle {
			t.Fatalf("imap %s: %+v %+v, errors %+v", tc.user, sum, sum.IMAP, sum.Errors)
		}
		for _, m := range mix {
			if o := opByName(t, sum, m.op); o.Count == 0 {
				t.Errorf("%s never ran: %+v", m.op, sum.Operations)
			}
		}
		sum.WriteText(&out)
	}
	t.Logf("\n%s", out.String())
}
