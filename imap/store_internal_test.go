package imap

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
)

// countingStore counts the bytes read from messages (bodies and headers);
// the UIDs in gone are missing, as if expunged by another session.
type countingStore struct {
	storage.Store
	read atomic.Int64
	gone map[uint32]bool
}

func (c *countingStore) OpenBody(ctx context.Context, mailboxID int64, uid uint32) (storage.Body, error) {
	if c.gone[uid] {
		return nil, storage.ErrNoMessage
	}
	b, err := c.Store.OpenBody(ctx, mailboxID, uid)
	if err != nil {
		return nil, err
	}
	return &countingBody{Body: b, n: &c.read}, nil
}

func (c *countingStore) OpenHeader(ctx context.Context, mailboxID int64, uid uint32) ([]byte, error) {
	if c.gone[uid] {
		return nil, storage.ErrNoMessage
	}
	h, err := c.Store.OpenHeader(ctx, mailboxID, uid)
	c.read.Add(int64(len(h)))
	return h, err
}

type countingBody struct {
	storage.Body
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.Body.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.Body.ReadAt(p, off)
	b.n.Add(int64(n))
	return n, err
}

// internalSession is a session on a real store wrapped by cs, with INBOX
// selected and holding msgs.
func internalSession(t *testing.T, cs *countingStore, msgs ...string) *session {
	t.Helper()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	const account = "alice@carepost.test"
	if err := db.CreateAccount(ctx, account); err != nil {
		t.Fatal(err)
	}
	inbox, err := db.GetMailbox(ctx, account, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if _, err := db.Deliver(ctx, strings.NewReader(m), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	cs.Store = db
	srv := New(Options{Store: cs, Logger: slog.New(slog.DiscardHandler)})
	s := &session{srv: srv, account: account, principal: &auth.Principal{Address: account, Mechanism: auth.MechPlain}}
	srv.sessions.Add(1) // s.Close marks it done
	t.Cleanup(func() {
		s.Close()
		srv.Close()
	})
	if _, err := s.Select("INBOX", &imap.SelectOptions{}); err != nil {
		t.Fatal(err)
	}
	return s
}

// Criteria on header fields read the header, not the message (a 2 MB
// attachment is not read to match FROM); BODY reads it all.
func TestSearchReadsHeaderOnly(t *testing.T) {
	header := "From: Alice <alice@carepost.test>\r\nSubject: bilan\r\nDate: Wed, 25 Nov 2026 10:00:00 +0100\r\n\r\n"
	msg := header + strings.Repeat("x", 2<<20) + "\r\nneedle\r\n"
	cs := &countingStore{}
	s := internalSession(t, cs, msg)
	search := func(c *imap.SearchCriteria) uint32 {
		t.Helper()
		data, err := s.Search(0, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return data.Count
	}
	for _, c := range []*imap.SearchCriteria{
		{Header: []imap.SearchCriteriaHeaderField{{Key: "From", Value: "alice"}}},
		{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "bilan"}}},
		{SentSince: sinceDate()},
	} {
		cs.read.Store(0)
		if n := search(c); n != 1 {
			t.Errorf("%+v matched %d", c, n)
		}
		if got := cs.read.Load(); got == 0 || got > 64<<10 {
			t.Errorf("%+v read %d bytes of a %d-byte message", c, got, len(msg))
		}
	}
	cs.read.Store(0)
	if n := search(&imap.SearchCriteria{Body: []string{"needle"}}); n != 1 {
		t.Errorf("BODY matched %d", n)
	}
	if got := cs.read.Load(); got < int64(len(msg)) {
		t.Errorf("BODY read %d bytes of %d", got, len(msg))
	}
}

func sinceDate() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }

// A message expunged by another session between the metadata read and
// the body read is left out of SEARCH, which answers for the others
// (RFC 9051 §7.5.1).
func TestSearchExpungedMeanwhile(t *testing.T) {
	cs := &countingStore{gone: map[uint32]bool{2: true}}
	s := internalSession(t, cs, "Subject: a\r\n\r\nneedle\r\n", "Subject: b\r\n\r\nneedle\r\n", "Subject: c\r\n\r\nneedle\r\n")
	data, err := s.Search(0, &imap.SearchCriteria{Body: []string{"needle"}}, nil)
	if err != nil || data.Count != 2 {
		t.Fatalf("SEARCH BODY: %+v, %v", data, err)
	}
	if got := data.All.String(); got != "1,3" {
		t.Errorf("SEARCH BODY = %s, want 1,3", got)
	}
}
