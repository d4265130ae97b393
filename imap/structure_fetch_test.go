package imap_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/carepost/carepost/crypto"
	carepostimap "github.com/carepost/carepost/imap"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
)

// The nested messages of issue 21, stored before the limits existed (put
// in the store directly, without a summary, as old data is): FETCH
// BODYSTRUCTURE answers each with a valid structure cut at 64 levels,
// SEARCH BODY answers, and the session goes on.
func TestFetchNestedStoredBeforeLimits(t *testing.T) {
	srv, addrs := start(t, "alice")
	account := addrs[0]
	msgs := []string{
		"Subject: plain\r\n\r\nhello\r\n",
		carepostimap.NestedRFC822(6000),
		carepostimap.NestedRFC822(8000),
		carepostimap.NestedMultipart(10000),
	}
	// A second handle on the running server's store, as the command-line
	// tools open it, without a Summarizer.
	data := srv.Config.Data
	key, err := crypto.LoadOrCreateKey(filepath.Join(data, "keys", "at-rest.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(data, "store"), sqlite.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := db.GetMailbox(t.Context(), account, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := db.Deliver(t.Context(), strings.NewReader(m), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	c := client(t, srv, account, nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// go-imap's client parses each structure: a response it cannot read
	// fails here.
	got, err := c.Fetch(imap.SeqSetNum(1, 2, 3, 4), &imap.FetchOptions{
		Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d FETCH responses for %d messages", len(got), len(msgs))
	}
	for i, m := range got {
		depth, bottom := 0, imap.BodyStructure(nil)
		for bs := m.BodyStructure; bs != nil; depth++ {
			bottom = bs
			switch p := bs.(type) {
			case *imap.BodyStructureMultiPart:
				bs = p.Children[0]
			case *imap.BodyStructureSinglePart:
				bs = nil
				if p.MessageRFC822 != nil {
					bs = p.MessageRFC822.BodyStructure
				}
			}
		}
		if i == 0 {
			if depth != 1 || bottom.MediaType() != "text/plain" {
				t.Errorf("plain message: %d levels, %s", depth, bottom.MediaType())
			}
			continue
		}
		if depth != 64 || bottom.MediaType() != "application/octet-stream" {
			t.Errorf("message %d: %d levels down to %s, want 64 down to the cut", i+1, depth, bottom.MediaType())
		}
	}
	// SEARCH BODY reads them all, down to the limit: an attached message
	// is searched as text (whole), nested multiparts down to the cut.
	data2, err := c.UIDSearch(&imap.SearchCriteria{Body: []string{"hello"}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if uids := imap.UIDSetNum(data2.AllUIDs()...).String(); uids != "1:3" {
		t.Errorf("SEARCH BODY hello: %v, want 1:3", uids)
	}
	// A section path deeper than the limit names no part.
	r := login(t, srv, account)
	r.sel("INBOX")
	u := r.ok("FETCH 2 BODY.PEEK[%s]", strings.TrimSuffix(strings.Repeat("1.", 100), "."))
	if l := find(u, "FETCH"); !strings.Contains(l, "{0}") && !strings.Contains(l, `""`) {
		t.Errorf("deep section: %q", l)
	}
	r.ok("NOOP")
}
