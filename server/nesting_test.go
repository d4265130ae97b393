package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/server/servertest"
)

// nestedRFC822 is a message of depth levels of message/rfc822 attached
// in one another (issue 21: 6,000 levels in 192 KB took the server from
// 24 MB to 748 MB).
func nestedRFC822(from, to string, depth int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: nested\r\n", from, to)
	for range depth {
		b.WriteString("Content-Type: message/rfc822\r\n\r\nSubject: n\r\n")
	}
	b.WriteString("\r\ninnermost\r\n")
	return b.String()
}

// nestedMultipart is depth levels of multipart/mixed, one in another.
func nestedMultipart(from, to string, depth int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: nested multipart\r\nMIME-Version: 1.0\r\n", from, to)
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\ninnermost\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\r\n", i)
	}
	return b.String()
}

// procStatus reads a field of /proc/self/status in kB.
func procStatus(t *testing.T, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status: peak memory cannot be read here")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Skipf("no %s in /proc/self/status", field)
	return 0
}

// Deeply nested messages are refused at SMTP (554 5.6.0) and APPEND (NO),
// each with a sentence; four of them sent at once while a client reads
// its mailbox leave the process's peak memory under 100 MB above its
// start, and the client does not notice.
func TestNestedMessagesRefused(t *testing.T) {
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)

	// Bob's mailbox has a message to read.
	sendOne(t, srv, alice, bob, "From: "+alice+"\r\nTo: "+bob+"\r\nSubject: hello\r\n\r\nhi\r\n")
	c := srv.DialIMAP(t, bob, password, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	// Reset the peak resident size (Linux: clear_refs 5), then send four
	// 8,000-level messages at once while bob fetches.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak resident size: %v", err)
	}
	start := procStatus(t, "VmRSS")
	attacks := []string{
		nestedRFC822(alice, bob, 8000),
		nestedRFC822(alice, bob, 8000),
		nestedRFC822(alice, bob, 6000),
		nestedMultipart(alice, bob, 10000),
	}
	var wg sync.WaitGroup
	replies := make([]error, len(attacks))
	for i, msg := range attacks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = sendErr(srv, alice, bob, msg)
		}()
	}
	stop := make(chan struct{})
	fetchErr := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				fetchErr <- nil
				return
			default:
			}
			if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
				BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect(); err != nil {
				fetchErr <- err
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	if err := <-fetchErr; err != nil {
		t.Fatalf("the reading client noticed: %v", err)
	}
	peak := procStatus(t, "VmHWM")
	for i, err := range replies {
		var se *gosmtp.SMTPError
		if !errors.As(err, &se) || se.Code != 554 || se.EnhancedCode != (gosmtp.EnhancedCode{5, 6, 0}) ||
			!strings.Contains(se.Message, "accepts") {
			t.Errorf("nested message %d: %v", i, err)
		}
	}
	t.Logf("peak resident size %d MB above the start (%d MB)", (peak-start)>>10, start>>10)
	if peak-start > 100<<10 {
		t.Errorf("peak resident size grew by %d MB", (peak-start)>>10)
	}

	// APPEND of the same is refused with NO and the sentence; the session
	// goes on.
	msg := attacks[2]
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	cmd.Close()
	if _, err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "deeper than the 64 levels") {
		t.Fatalf("APPEND of a nested message: %v", err)
	}
	if st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil || *st.NumMessages != 1 {
		t.Fatalf("after the refusals: %+v, %v", st, err)
	}
}

// A message with a 2 MB PDF gets its summary at delivery like a small
// one: after a restart, FETCH BODYSTRUCTURE of it reads the summary, not
// the body.
func TestLargeMessageHasItsSummary(t *testing.T) {
	srv := servertest.Start(t)
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)
	pdf := make([]byte, 2<<20)
	for i := range pdf {
		pdf[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(pdf)
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: compte rendu\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nCi-joint.\r\n--x\r\nContent-Type: application/pdf; name=\"cr.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", alice, bob)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--x--\r\n")
	sendOne(t, srv, alice, bob, b.String())
	for i := range 20 {
		sendOne(t, srv, alice, bob, fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: small %d\r\n\r\nhi\r\n", alice, bob, i))
	}
	srv.Restart()

	ctx := context.Background()
	mb, err := srv.Store.GetMailbox(ctx, bob, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := srv.Store.Digests(ctx, mb.ID, nil, false, true)
	if err != nil || len(ds) != 21 {
		t.Fatalf("%d digests, %v", len(ds), err)
	}
	for _, d := range ds {
		if len(d.Summary) == 0 {
			t.Errorf("message %d has no summary", d.UID)
		}
	}
	c := srv.DialIMAP(t, bob, password, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, set := range []imap.SeqSet{imap.SeqSetNum(1), imap.SeqSetNum(2)} {
		t0 := time.Now()
		msgs, err := c.Fetch(set, &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{Extended: true}}).Collect()
		if err != nil || len(msgs) != 1 || msgs[0].BodyStructure == nil {
			t.Fatalf("FETCH BODYSTRUCTURE: %v", err)
		}
		t.Logf("FETCH %v BODYSTRUCTURE (%s): %v", set, msgs[0].BodyStructure.MediaType(), time.Since(t0))
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	mp, ok := msgs[0].BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 2 || mp.Children[1].MediaType() != "application/pdf" {
		t.Fatalf("structure %#v", msgs[0].BodyStructure)
	}
}

func sendErr(srv *servertest.Instance, from, to, msg string) error {
	c, err := gosmtp.DialTLS(srv.AddrOf("submissions"), srv.ClientTLS())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", from, password)); err != nil {
		return err
	}
	return c.SendMail(from, []string{to}, bytes.NewReader([]byte(msg)))
}

func sendOne(t *testing.T, srv *servertest.Instance, from, to, msg string) {
	t.Helper()
	if err := sendErr(srv, from, to, msg); err != nil {
		t.Fatal(err)
	}
}
