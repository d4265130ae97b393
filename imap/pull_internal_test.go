package imap

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/carepost/carepost/crypto"
	"github.com/carepost/carepost/delivery"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/storage"
	"github.com/carepost/carepost/storage/sqlite"
)

// deafStore loses every hint: Watch never calls back. A server on it must
// still converge, from the MODSEQs its own writes return and from its
// periodic pulls (storage/cache/pull.go).
type deafStore struct{ storage.Store }

func (deafStore) Watch(int64, func(storage.Change)) func() { return func() {} }

// mailboxEvents records what a client was told without asking.
type mailboxEvents struct {
	mu       sync.Mutex
	exists   uint32
	expunged int
	changed  chan struct{}
}

func (e *mailboxEvents) handler() *imapclient.UnilateralDataHandler {
	note := func() {
		select {
		case e.changed <- struct{}{}:
		default:
		}
	}
	return &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				e.mu.Lock()
				e.exists = *d.NumMessages
				e.mu.Unlock()
				note()
			}
		},
		Expunge: func(uint32) {
			e.mu.Lock()
			e.expunged++
			e.mu.Unlock()
			note()
		},
	}
}

// waitFor waits until cond holds, failing after a generous bound.
func (e *mailboxEvents) waitFor(t *testing.T, what string, cond func(exists uint32, expunged int) bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		e.mu.Lock()
		ok := cond(e.exists, e.expunged)
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.changed:
		case <-deadline:
			t.Fatalf("never saw %s", what)
		}
	}
}

const alice = "alice@carepost.test"

// deafServer serves IMAPS for alice on a store whose hints are all lost.
func deafServer(t *testing.T, resync time.Duration) (addr string, db *sqlite.DB, clientTLS *tls.Config) {
	t.Helper()
	db, err := sqlite.Open(t.TempDir(), sqlite.Options{Key: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateAccount(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	dir := directory.New(db, directory.Config{Domains: []string{"carepost.test"}})
	pki, err := crypto.OpenPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ServerCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	store := deafStore{db}
	srv := New(Options{Store: store, Accounts: oneAccount{alice, "pw"}, Logger: slog.New(slog.DiscardHandler),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ResyncInterval: resync,
		Appender: delivery.New(dir, store, delivery.Options{})})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.opts.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), db, &tls.Config{RootCAs: pki.CertPool(), ServerName: "localhost"}
}

func dialDeaf(t *testing.T, addr string, cfg *tls.Config, ev *mailboxEvents) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: cfg, UnilateralDataHandler: ev.handler()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(alice, "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func appendMsg(t *testing.T, c *imapclient.Client, body string) {
	t.Helper()
	cmd := c.Append("INBOX", int64(len(body)), nil)
	if _, err := cmd.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// A session reports its own writes from the MODSEQ the store returned:
// with every hint lost and no periodic pull, APPEND, EXPUNGE and MOVE
// still show their EXISTS and EXPUNGE to the session that made them.
func TestOwnWritesWithoutHints(t *testing.T) {
	addr, _, cfg := deafServer(t, time.Hour)
	ev := &mailboxEvents{changed: make(chan struct{}, 1)}
	c := dialDeaf(t, addr, cfg, ev)
	for i := range 3 {
		appendMsg(t, c, "Subject: m\r\n\r\nbody "+strings.Repeat("x", i)+"\r\n")
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "EXISTS 3 after APPEND", func(n uint32, _ int) bool { return n == 3 })
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	// The EXPUNGE responses of the command go to the command (imapclient).
	if seqs, err := c.Expunge().Collect(); err != nil || len(seqs) != 1 || seqs[0] != 1 {
		t.Fatalf("EXPUNGE answered %v, %v", seqs, err)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Archive").Wait(); err != nil {
		t.Fatal(err)
	}
	ev.waitFor(t, "the EXPUNGE of its own MOVE", func(_ uint32, x int) bool { return x == 1 })
	st, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(st) != 1 || st[0].UID != 3 {
		t.Fatalf("FETCH after MOVE: %+v, %v", st, err)
	}
}

// Another writer's changes, with every hint lost, reach a session in IDLE
// and a session between commands through the periodic pull.
func TestOthersWritesWithoutHints(t *testing.T) {
	addr, db, cfg := deafServer(t, 100*time.Millisecond)
	idleEv := &mailboxEvents{changed: make(chan struct{}, 1)}
	idler := dialDeaf(t, addr, cfg, idleEv)
	idle, err := idler.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	ev := &mailboxEvents{changed: make(chan struct{}, 1)}
	c := dialDeaf(t, addr, cfg, ev)

	ctx := context.Background()
	inbox, err := db.GetMailbox(ctx, alice, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	// Written through the store directly, as another process would.
	for range 2 {
		if _, err := db.Deliver(ctx, strings.NewReader("Subject: s\r\n\r\nb\r\n"), []storage.Target{{MailboxID: inbox.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	idleEv.waitFor(t, "EXISTS 2 in IDLE", func(n uint32, _ int) bool { return n == 2 })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		ev.mu.Lock()
		n := ev.exists
		ev.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session between commands never saw EXISTS 2")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := db.StoreFlags(ctx, inbox.ID, []uint32{1}, storage.FlagsAdd, []string{storage.FlagDeleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Expunge(ctx, inbox.ID, nil); err != nil {
		t.Fatal(err)
	}
	idleEv.waitFor(t, "the EXPUNGE in IDLE", func(_ uint32, x int) bool { return x == 1 })
}
