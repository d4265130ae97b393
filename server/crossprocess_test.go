package server_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/server/servertest"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
)

// A message written into the data directory through another handle on
// the store (what another process does: the same SQLite file, its own
// connections) reaches a session in IDLE of the running server, through
// the store's data_version watcher, without the session sending anything.
func TestWriteByAnotherHandleReachesIdle(t *testing.T) {
	srv := servertest.Start(t)
	bob := srv.AddProfessional("bob", password)
	exists := make(chan uint32, 8)
	c := srv.DialIMAP(t, bob, password, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		}}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	key, err := crypto.LoadOrCreateKey(filepath.Join(srv.Config.Data, "keys", "at-rest.key"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := sqlite.Open(filepath.Join(srv.Config.Data, "store"), sqlite.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	inbox, err := other.GetMailbox(ctx, bob, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := other.Deliver(ctx, strings.NewReader("Subject: from elsewhere\r\n\r\nhello\r\n"), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Fatalf("EXISTS %d", n)
		}
		t.Logf("EXISTS reached the IDLE session %v after the other handle's commit", time.Since(start))
	case <-time.After(15 * time.Second):
		t.Fatal("the IDLE session never heard of the other handle's message")
	}
}
