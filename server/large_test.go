package server_test

import (
	"fmt"
	"io"
	"runtime/debug"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/server/servertest"
)

// bigMessage generates a message of about size bytes without holding it.
type bigMessage struct {
	head []byte
	left int
}

func newBigMessage(from, to string, size int) *bigMessage {
	head := fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: scanner\r\nMessage-ID: <big@test>\r\n\r\n", from, to)
	return &bigMessage{head: []byte(head), left: size - len(head)}
}

func (m *bigMessage) Read(p []byte) (int, error) {
	if len(m.head) > 0 {
		n := copy(p, m.head)
		m.head = m.head[n:]
		return n, nil
	}
	if m.left <= 0 {
		return 0, io.EOF
	}
	n := min(len(p), m.left)
	line := "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcde\r\n" // 78 bytes
	for i := 0; i < n; i++ {
		p[i] = line[(m.left-i)%len(line)]
	}
	m.left -= n
	return n, nil
}

// A 50 MB message goes through SMTP into the store and back out over IMAP
// without ever being held whole in the server's memory (issue #8): the
// heap in use, sampled throughout, grows by far less than the message.
func TestLargeMessageStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB through SMTP and IMAP")
	}
	const size = 50 << 20
	srv := servertest.Start(t, func(c *server.Config) { c.MaxMessageSize = 64 << 20 })
	alice := srv.AddProfessional("alice", password)
	bob := srv.AddProfessional("bob", password)

	// Log in first: a password check allocates 19 MiB on purpose
	// (argon2id), which is not what this test measures.
	c, err := gosmtp.DialTLS(srv.AddrOf("submissions"), srv.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", alice, password)); err != nil {
		t.Fatal(err)
	}
	ic := dialIMAP(t, srv, bob, nil)

	// Collect garbage promptly, so that the heap in use is close to what
	// is live (the figure that tells whether the message is held).
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	heapGrowth := servertest.HeapGrowth(20 * time.Millisecond)

	if err := c.SendMail(alice, []string{bob}, newBigMessage(alice, bob, size)); err != nil {
		t.Fatal(err)
	}
	c.Close()

	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fetch := ic.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	msg := fetch.Next()
	if msg == nil {
		t.Fatal("no message")
	}
	var got int64
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		if bs, ok := item.(imapclient.FetchItemDataBodySection); ok {
			got, err = io.Copy(io.Discard, bs.Literal)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := fetch.Close(); err != nil {
		t.Fatal(err)
	}
	growth := heapGrowth()
	if got < size {
		t.Fatalf("fetched %d bytes, sent %d", got, size)
	}
	// The test's own client streams too; the whole process is measured.
	t.Logf("heap in use grew by at most %.1f MB for a %d MB message", float64(growth)/(1<<20), size>>20)
	if growth > size/4 {
		t.Fatalf("heap in use grew by %d MB while a %d MB message went through: it was held in memory", growth>>20, size>>20)
	}
}
