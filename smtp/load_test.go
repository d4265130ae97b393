package smtp_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/smtp"
)

// TestConcurrentDeliveriesToOneMailbox: every client's "250" means its
// message is stored, even when the store commits them together. A quarter
// of the clients submit (with a login), the others come in as another
// operator on the MX: logins are deliberately expensive (argon2id), and
// the path under test, the pipeline and the store, is the same.
func TestConcurrentDeliveriesToOneMailbox(t *testing.T) {
	t.Parallel()
	const clients = 16
	e := newEnv(t)
	subAddr := e.start(smtp.ModeSubmission, false)
	mxAddr := e.start(smtp.ModeMX, false)

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			submit := i%4 == 0
			addr, from, cfg := mxAddr, doc, e.mxTLS
			if submit {
				addr, from, cfg = subAddr, bob, e.clientTLS
			}
			c, err := gosmtp.DialStartTLS(addr, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if submit {
				if err := c.Auth(sasl.NewPlainClient("", bob, e.bobPass)); err != nil {
					errs <- err
					return
				}
			}
			msg := message(from, alice, fmt.Sprintf("concurrent %02d", i), fmt.Sprintf("message %02d\r\n", i))
			if err := send(c, from, []string{alice}, msg); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
				return
			}
			errs <- c.Quit()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := e.inbox(alice)
	if len(got) != clients {
		t.Fatalf("%d messages stored, want %d", len(got), clients)
	}
	seen := map[string]bool{}
	for _, m := range got {
		_, body, _ := strings.Cut(string(m), "\r\n\r\n")
		seen[body] = true
	}
	if len(seen) != clients {
		t.Fatalf("%d distinct messages, want %d", len(seen), clients)
	}
}

// TestHugeHeaderLine: a 10 MB header line ends that session with an error
// and nothing stored, while another session delivers normally.
func TestHugeHeaderLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMaxSize(32<<20))
	addr := e.start(smtp.ModeSubmission, false)

	// The well-behaved session is mid-transaction when the attack starts.
	good := e.submit(addr, bob, e.bobPass)
	must(t, good.Mail(bob, nil))
	must(t, good.Rcpt(alice, nil))

	bad := e.submit(addr, alice, e.alicePass)
	must(t, bad.Mail(alice, nil))
	must(t, bad.Rcpt(bob, nil))
	w, err := bad.Data()
	must(t, err)
	// 10 MB of one header line, written in pieces so that the client
	// stops as soon as the server has hung up.
	_, werr := w.Write([]byte("From: " + alice + "\r\nX-Huge: "))
	piece := []byte(strings.Repeat("a", 64<<10))
	for n := 0; werr == nil && n < 10<<20; n += len(piece) {
		_, werr = w.Write(piece)
	}
	if werr == nil {
		_, werr = w.Write([]byte("\r\n\r\nbody\r\n"))
	}
	cerr := w.Close()
	if werr == nil && cerr == nil {
		t.Fatal("a 10 MB header line was accepted")
	}
	var se *gosmtp.SMTPError
	for _, err := range []error{werr, cerr} {
		if errors.As(err, &se) && se.Code/100 != 5 {
			t.Fatalf("reply %d %q, want a permanent error", se.Code, se.Message)
		}
	}

	must(t, data(good, message(bob, alice, "meanwhile", "still served\r\n")))
	if n := e.inboxCount(alice); n != 1 {
		t.Fatalf("alice has %d messages", n)
	}
	if n := e.inboxCount(bob); n != 0 {
		t.Fatalf("part of the huge message was stored: %d", n)
	}
	// And new sessions are still served.
	c := e.submit(addr, bob, e.bobPass)
	must(t, send(c, bob, []string{alice}, message(bob, alice, "after", "ok\r\n")))
}

// TestHugeHeaderLineBDAT: with CHUNKING go-smtp does not count line
// lengths, so the pipeline's own header limit must refuse it, cleanly.
func TestHugeHeaderLineBDAT(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withMaxSize(32<<20))
	addr := e.start(smtp.ModeSubmission, true)
	conn, err := tls.Dial("tcp", addr, e.clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	r := newRaw(t, conn)
	r.cmd("EHLO client.test")
	if caps := r.expect(250); !strings.Contains(caps, "CHUNKING") {
		t.Skip("CHUNKING not offered")
	}
	r.cmd("AUTH PLAIN %s", plain(alice, e.alicePass))
	r.expect(235)
	r.cmd("MAIL FROM:<%s>", alice)
	r.expect(250)
	r.cmd("RCPT TO:<%s>", bob)
	r.expect(250)
	chunk := "From: " + alice + "\r\nX-Long: " + strings.Repeat("b", 1<<20) + "\r\n\r\nbody\r\n"
	r.cmd("BDAT %d LAST", len(chunk))
	if _, err := conn.Write([]byte(chunk)); err != nil {
		t.Fatal(err)
	}
	if msg := r.expect(554); !strings.HasPrefix(msg, "5.6.0 ") || !strings.Contains(msg, "longer than") {
		t.Fatalf("reply %q", msg)
	}
	// The session goes on.
	r.cmd("MAIL FROM:<%s>", alice)
	r.expect(250)
	r.cmd("RCPT TO:<%s>", bob)
	r.expect(250)
	ok := message(alice, bob, "bdat ok", "fine\r\n")
	r.cmd("BDAT %d LAST", len(ok))
	if _, err := conn.Write([]byte(ok)); err != nil {
		t.Fatal(err)
	}
	r.expect(250)
	got := e.inbox(bob)
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	splitStored(t, got[0], ok)
}
