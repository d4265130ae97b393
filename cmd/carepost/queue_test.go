package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/carepost/carepost/server"
	"github.com/carepost/carepost/storage"
)

// queue list, show, retry and drop on a queued message, in text and JSON.
func TestQueueCommands(t *testing.T) {
	data := newData(t)
	cfg := server.Defaults()
	cfg.Data = data
	srv, err := server.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store.DeliverAll(context.Background(), []storage.Delivery{{Body: strings.NewReader("Subject: x\r\n\r\nbody\r\n"),
		Queue: &storage.Enqueue{From: "alice@carepost.test", Recipients: []string{"bob@b.test", "dave@b.test"}}}}); err != nil {
		t.Fatal(err)
	}
	srv.Close()

	out, errs, code := carepost(t, data, "", "queue", "list")
	if code != 0 || !strings.Contains(out, "alice@carepost.test") || !strings.Contains(out, "bob@b.test (pending), dave@b.test (pending)") {
		t.Fatalf("queue list: %d\n%s%s", code, out, errs)
	}
	out, _, code = carepost(t, data, "", "queue", "list", "--json")
	var l []struct {
		ID          int64  `json:"id"`
		NextAttempt string `json:"next_attempt"`
		Recipients  []struct{ Address, State string }
	}
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || len(l) != 1 || l[0].ID != 1 || len(l[0].Recipients) != 2 || l[0].NextAttempt == "" {
		t.Fatalf("queue list --json: %v\n%s", err, out)
	}
	out, _, code = carepost(t, data, "", "queue", "show", "1")
	if code != 0 || !strings.Contains(out, "next attempt: now") || !strings.Contains(out, "dave@b.test  pending") {
		t.Fatalf("queue show:\n%s", out)
	}
	if out, _, code = carepost(t, data, "", "queue", "retry", "1"); code != 0 || !strings.Contains(out, "tried again") {
		t.Fatalf("queue retry: %d %s", code, out)
	}
	if out, _, code = carepost(t, data, "", "queue", "drop", "1"); code != 0 || !strings.Contains(out, "not delivered to: bob@b.test, dave@b.test") {
		t.Fatalf("queue drop: %d %s", code, out)
	}
	if _, errs, code = carepost(t, data, "", "queue", "show", "1"); code != 1 || !strings.Contains(errs, "no message 1 in the outbound queue") {
		t.Fatalf("queue show after drop: %d %s", code, errs)
	}
	if _, errs, code = carepost(t, data, "", "queue", "retry", "x"); code != 2 || !strings.Contains(errs, "not a queue ID") {
		t.Fatalf("queue retry x: %d %s", code, errs)
	}
	if out, _, _ = carepost(t, data, "", "queue", "list"); out != "the outbound queue is empty\n" {
		t.Fatalf("queue list: %q", out)
	}
}

// A message signed with the server's DKIM keys verifies with go-msgauth
// against the records `carepost pki dkim` prints.
func TestPKIDKIM(t *testing.T) {
	data := newData(t)
	out, errs, code := carepost(t, data, "", "pki", "dkim")
	if code != 0 {
		t.Fatalf("pki dkim: %d %s", code, errs)
	}
	records := map[string]string{}
	quoted := regexp.MustCompile(`"([^"]*)"`)
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, rest, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(rest, "IN TXT ( ") {
			t.Fatalf("not a TXT record: %q", line)
		}
		var v strings.Builder
		for _, m := range quoted.FindAllStringSubmatch(rest, -1) {
			if len(m[1]) > 255 {
				t.Fatalf("a TXT string longer than 255: %q", m[1])
			}
			v.WriteString(m[1])
		}
		records[strings.TrimSuffix(name, ".")] = v.String()
	}
	if len(records) != 4 { // two domains of the default, two keys
		t.Fatalf("records %v", records)
	}
	cfg := server.Defaults()
	cfg.Data = data
	srv, err := server.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := srv.DKIMKeys()
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: <marie@carepost.test>\r\nTo: <bob@b.test>\r\nSubject: test\r\n\r\nbody\r\n"
	for _, k := range keys {
		var signed bytes.Buffer
		if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "carepost.test", Selector: k.Selector, Signer: k.Signer,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed}); err != nil {
			t.Fatal(err)
		}
		vs, err := dkim.VerifyWithOptions(&signed, &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
			if v, ok := records[name]; ok {
				return []string{v}, nil
			}
			return nil, &net.DNSError{Err: "no such record", Name: name, IsNotFound: true}
		}})
		if err != nil || len(vs) != 1 || vs[0].Err != nil {
			t.Fatalf("%s: %v %+v", k.Selector, err, vs)
		}
	}
}
