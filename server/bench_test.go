package server_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/server/servertest"
)

// Benchmarks of the whole path, over real sockets and TLS (issue #8). Run
// with: go test -run '^$' -bench . -benchtime 2000x ./server/

// BenchmarkSubmitDurable10KB: authenticated submission over implicit TLS,
// connections reused, b.N messages of 10 KB spread over parallel clients;
// each 250 means the message is fsynced.
func BenchmarkSubmitDurable10KB(b *testing.B) {
	benchSubmit(b, 10<<10)
}

// BenchmarkSubmitDurable1MB: the same with 1 MB messages.
func BenchmarkSubmitDurable1MB(b *testing.B) {
	benchSubmit(b, 1<<20)
}

func benchSubmit(b *testing.B, size int) {
	srv := servertest.Start(b)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	body := message(alice, bob, "bench", strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", size/58))
	b.SetBytes(int64(len(body)))
	b.SetParallelism(8) // 16 clients on 2 cores
	var failures atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := gosmtp.DialTLS(srv.AddrOf("submissions"), srv.ClientTLS())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		if err := c.Auth(sasl.NewPlainClient("", alice, password)); err != nil {
			b.Error(err)
			return
		}
		for pb.Next() {
			if err := c.SendMail(alice, []string{bob}, strings.NewReader(body)); err != nil {
				failures.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d messages refused", n)
	}
}

// BenchmarkDeliveryToIdlePush measures the time from the end of DATA (the
// 250) to the EXISTS pushed to a client in IDLE.
func BenchmarkDeliveryToIdlePush(b *testing.B) {
	srv := servertest.Start(b)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	exists := make(chan time.Time, 16)
	c, err := imapclient.DialTLS(srv.AddrOf("imaps"), &imapclient.Options{TLSConfig: srv.ClientTLS(),
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- time.Now()
			}
		}}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(bob, password).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		b.Fatal(err)
	}
	defer idle.Close()
	sc, err := gosmtp.DialTLS(srv.AddrOf("submissions"), srv.ClientTLS())
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	if err := sc.Auth(sasl.NewPlainClient("", alice, password)); err != nil {
		b.Fatal(err)
	}
	msg := message(alice, bob, "push", "x")
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := sc.SendMail(alice, []string{bob}, strings.NewReader(msg)); err != nil {
			b.Fatal(err)
		}
		done := time.Now()
		select {
		case at := <-exists:
			total += at.Sub(done)
		case <-time.After(10 * time.Second):
			b.Fatal("no EXISTS pushed")
		}
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-250-to-push")
}

// BenchmarkFetchHeaders: FETCH of envelopes and flags of 100 messages.
func BenchmarkFetchHeaders(b *testing.B) {
	c := fetchSetup(b, 100, "corps")
	var all imap.SeqSet
	all.AddRange(1, 100)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
		if err != nil || len(msgs) != 100 {
			b.Fatalf("fetch: %d messages, %v", len(msgs), err)
		}
	}
}

// BenchmarkFetchBody: FETCH BODY.PEEK[] of one 10 KB message (decrypted
// and streamed), a different one each time.
func BenchmarkFetchBody(b *testing.B) {
	c := fetchSetup(b, 100, strings.Repeat("Compte rendu de consultation.\r\n", 330))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msgs, err := c.Fetch(imap.SeqSetNum(uint32(i%100+1)), &imap.FetchOptions{
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
			b.Fatalf("fetch: %v", err)
		}
	}
}

// fetchSetup delivers n messages with body to bob over submission and
// returns an IMAP client with bob's INBOX selected.
func fetchSetup(b *testing.B, n int, body string) *imapclient.Client {
	srv := servertest.Start(b)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	sc, err := gosmtp.DialTLS(srv.AddrOf("submissions"), srv.ClientTLS())
	if err != nil {
		b.Fatal(err)
	}
	if err := sc.Auth(sasl.NewPlainClient("", alice, password)); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := sc.SendMail(alice, []string{bob}, strings.NewReader(message(alice, bob, fmt.Sprint("n", i), body))); err != nil {
			b.Fatal(err)
		}
	}
	sc.Close()
	c, err := imapclient.DialTLS(srv.AddrOf("imaps"), &imapclient.Options{TLSConfig: srv.ClientTLS()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.Login(bob, password).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	return c
}
