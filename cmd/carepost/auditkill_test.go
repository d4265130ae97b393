package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/storage"
)

// TestKillAuditTrail runs a mixed load (SMTP submissions; IMAP APPEND,
// STORE, MOVE, EXPUNGE) against `carepost serve` and kills it (SIGKILL)
// at random moments, several times. Then: every stored message has the
// event that put it there (a delivery, an APPEND, a copy or a move into
// its mailbox and UID), every such event's message is still there or was
// moved or expunged by a later event, and `carepost audit verify` says
// the trail is intact. The events of a change are in the change's
// transaction (storage/sqlite/audit.go), so a crash keeps both or
// neither.
func TestKillAuditTrail(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills a server several times")
	}
	data := newData(t)
	const alice, bob = "alice@carepost.test", "bob@carepost.test"
	const pw = "audit kill: a long enough passphrase"
	for i, a := range []string{alice, bob} {
		ids := []string{"810001045367", "0012600631"}
		mustCarepost(t, data, "", "dir", "add-professional", "--id", ids[i], "--first", "A", "--last", "B", "--profession", "10", "--address", a)
		mustCarepost(t, data, pw+"\n", "user", "set-password", a)
	}
	caPEM := mustCarepost(t, data, "", "pki", "export", "ca")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("no CA certificate")
	}
	subAddr, imapAddr := freePort(t), freePort(t)
	conf := filepath.Join(t.TempDir(), "carepost.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `data = %q
hostname = "localhost"
[listen]
smtp = ""
submission = ""
submissions = %q
imap = ""
imaps = %q
https = ""
ldap = ""
ldaps = ""
[audit]
seal_interval = "50ms"
checkpoint_events = 50
`, data, subAddr, imapAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}

	var mu sync.Mutex
	ops := map[string]int{}
	count := func(op string) { mu.Lock(); ops[op]++; mu.Unlock() }
	const rounds = 4
	for round := range rounds {
		cmd := serveProcess(t, conf, subAddr)
		stop := make(chan struct{})
		stopped := func() bool {
			select {
			case <-stop:
				return true
			default:
				return false
			}
		}
		var wg sync.WaitGroup
		for client := range 2 { // submissions from alice to bob
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := gosmtp.DialTLS(subAddr, tlsConf)
				if err != nil {
					return
				}
				defer c.Close()
				if err := c.Auth(saslPlain(alice, pw)); err != nil {
					return
				}
				for i := 0; !stopped(); i++ {
					body := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: s\r\nMessage-ID: <r%d-c%d-m%d@kill.test>\r\n\r\nreferral\r\n", alice, bob, round, client, i)
					if c.SendMail(alice, []string{bob}, strings.NewReader(body)) != nil {
						return
					}
					count("submit")
				}
			}()
		}
		wg.Add(1)
		go func() { // bob: APPEND, STORE, MOVE to Archive, EXPUNGE there
			defer wg.Done()
			c, err := imapclient.DialTLS(imapAddr, &imapclient.Options{TLSConfig: tlsConf})
			if err != nil {
				return
			}
			defer c.Close()
			if c.Login(bob, pw).Wait() != nil {
				return
			}
			for i := 0; !stopped(); i++ {
				msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: a\r\nMessage-ID: <r%d-a%d@kill.test>\r\n\r\nnote\r\n", bob, bob, round, i)
				ac := c.Append("INBOX", int64(len(msg)), nil)
				ac.Write([]byte(msg))
				ac.Close()
				if _, err := ac.Wait(); err != nil {
					return
				}
				count("append")
				sel, err := c.Select("INBOX", nil).Wait()
				if err != nil {
					return
				}
				if sel.NumMessages == 0 {
					continue
				}
				first := imap.SeqSetNum(1)
				if c.Store(first, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close() != nil {
					return
				}
				count("store")
				if _, err := c.Move(first, "Archive").Wait(); err != nil {
					return
				}
				count("move")
				if i%2 == 0 {
					if _, err := c.Select("Archive", nil).Wait(); err != nil {
						return
					}
					if c.Store(first, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close() != nil {
						return
					}
					if c.Expunge().Close() != nil {
						return
					}
					count("expunge")
				}
			}
		}()
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		if round == 0 {
			// Beside the running server, under load: the command line
			// does not seal (the server holds the data directory) and
			// finds the trail intact.
			out, errs, code := carepost(t, data, "", "audit", "verify", "--config", conf)
			if code != 0 || !strings.Contains(out, "intact:") {
				t.Errorf("audit verify beside the server: exit %d\n%s%s", code, out, errs)
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		wg.Wait()
	}
	if ops["submit"] == 0 || ops["append"] == 0 || ops["move"] == 0 || ops["expunge"] == 0 {
		t.Fatalf("too little load to say anything: %v", ops)
	}

	// No server holds the data directory now: verify seals what the
	// killed one left, and checks the whole chain.
	out, errs, code := carepost(t, data, "", "audit", "verify", "--config", conf)
	if code != 0 || !strings.Contains(out, "intact:") {
		t.Fatalf("audit verify after the kills: exit %d\n%s%s", code, out, errs)
	}

	srv := openConfigured(t, conf)
	ctx := context.Background()
	recs, err := srv.Store.AuditEvents(ctx, storage.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	type place struct {
		mailbox int64
		uid     string
	}
	made := map[place]int64{} // a message's place and the event that put it there
	gone := map[place]int64{} // places a later move or expunge emptied
	for _, r := range recs {
		mb, _ := strconv.ParseInt(r.Details["mailbox"], 10, 64)
		switch r.Action {
		case "message.deliver", "message.append":
			made[place{mb, r.Details["uid"]}] = r.Seq
		case "message.copy", "message.move", "message.expunge":
			uids := strings.Split(r.Details["uids"], ",")
			if r.Action != "message.copy" {
				for _, u := range uids {
					gone[place{mb, u}] = r.Seq
				}
			}
			if r.Action != "message.expunge" {
				dest, _ := strconv.ParseInt(r.Details["dest"], 10, 64)
				for _, u := range strings.Split(r.Details["dest_uids"], ",") {
					made[place{dest, u}] = r.Seq
				}
			}
		}
	}
	stored := map[place]bool{}
	for _, account := range []string{alice, bob} {
		mbs, err := srv.Store.ListMailboxes(ctx, account)
		if err != nil {
			t.Fatal(err)
		}
		for _, mb := range mbs {
			ms, err := srv.Store.Messages(ctx, mb.ID, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				p := place{mb.ID, strconv.FormatUint(uint64(m.UID), 10)}
				stored[p] = true
				if _, ok := made[p]; !ok {
					t.Errorf("%s/%s UID %s is stored but no event put it there", account, mb.Name, p.uid)
				}
			}
		}
	}
	for p, seq := range made {
		if !stored[p] && gone[p] <= seq {
			t.Errorf("event %d put a message at mailbox %d UID %s, which is not there, and no later event moved or expunged it", seq, p.mailbox, p.uid)
		}
	}
	t.Logf("%d rounds: %v; %d events, %d messages stored\n%s", rounds, ops, len(recs), len(stored), out)
}
