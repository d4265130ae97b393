package storagetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/carepost/carepost/storage"
)

// testOpenHeader: OpenHeader returns the header section up to and
// including the empty line, for CRLF and bare LF messages, a message
// without body, a large body, and a header too long to keep apart (cut at
// 64 KiB or given whole); unknown UIDs and mailboxes are errors.
func testOpenHeader(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	longField := "X-Long: " + strings.Repeat("a", 70<<10) + "\r\n"
	cases := []struct{ msg, header string }{
		{"Subject: one\r\nFrom: <a@x.test>\r\n\r\nbody\r\n", "Subject: one\r\nFrom: <a@x.test>\r\n\r\n"},
		{"Subject: lf\nFrom: <a@x.test>\n\nbody\n", "Subject: lf\nFrom: <a@x.test>\n\n"},
		{"Subject: no body\r\n", "Subject: no body\r\n"},
		{"Subject: big\r\n\r\n" + strings.Repeat("0123456789", 100000), "Subject: big\r\n\r\n"},
		{"\r\nbody without header\r\n", "\r\n"},
	}
	for i, c := range cases {
		res := h.deliver(c.msg, nil, inbox.ID)
		got, err := h.s.OpenHeader(h.ctx, inbox.ID, res[0].UID)
		if err != nil || string(got) != c.header {
			t.Fatalf("case %d: OpenHeader = %q, %v; want %q", i, truncate(string(got)), err, truncate(c.header))
		}
	}
	res := h.deliver("Subject: long\r\n"+longField+"\r\nbody\r\n", nil, inbox.ID)
	got, err := h.s.OpenHeader(h.ctx, inbox.ID, res[0].UID)
	if err != nil || !strings.HasPrefix(string(got), "Subject: long\r\nX-Long: aaa") || len(got) < 64<<10 {
		t.Fatalf("long header: %d bytes, %v", len(got), err)
	}
	if _, err := h.s.OpenHeader(h.ctx, inbox.ID, 999); !errors.Is(err, storage.ErrNoMessage) {
		t.Fatalf("unknown UID: %v", err)
	}
	if _, err := h.s.OpenHeader(h.ctx, inbox.ID+1000, 1); !errors.Is(err, storage.ErrNoMailbox) {
		t.Fatalf("unknown mailbox: %v", err)
	}
	// Copies share the header of their body.
	other := h.create(alice, "Other")
	if _, err := h.s.Copy(h.ctx, inbox.ID, []uint32{1}, other.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := h.s.OpenHeader(h.ctx, other.ID, 1); err != nil || string(got) != cases[0].header {
		t.Fatalf("header of a copy: %q, %v", got, err)
	}
}

// Summarize is the storage.Summarizer backends run the suite with: the
// size and the first line of the body.
func Summarize(body []byte) []byte {
	line, _, _ := strings.Cut(string(body), "\n")
	return fmt.Appendf(nil, "%d:%s", len(body), line)
}

// testDigests: Digests reads headers and summaries of many messages at
// once, as OpenHeader and Summarize give them one by one; copies share
// them; UIDs that do not exist are left out.
func testDigests(t *testing.T, h *harness) {
	h.account(alice)
	inbox := h.mailbox(alice, "INBOX")
	msgs := []string{
		"Subject: one\r\nFrom: <a@x.test>\r\n\r\nbody\r\n",
		"Subject: two\r\n\r\n" + strings.Repeat("x", 1000),
		"Subject: long\r\nX-Long: " + strings.Repeat("a", 70<<10) + "\r\n\r\nbody\r\n",
		"",
	}
	var uids []uint32
	for _, m := range msgs {
		uids = append(uids, h.deliver(m, nil, inbox.ID)[0].UID)
	}
	ask := append([]uint32{999}, uids...)
	for _, c := range []struct{ header, summary bool }{{true, true}, {true, false}, {false, true}, {false, false}} {
		ds, err := h.s.Digests(h.ctx, inbox.ID, ask, c.header, c.summary)
		if err != nil || len(ds) != len(msgs) {
			t.Fatalf("Digests(%v): %d digests, %v; want %d", c, len(ds), err, len(msgs))
		}
		for i, d := range ds {
			if d.UID != uids[i] {
				t.Fatalf("Digests(%v)[%d].UID = %d, want %d", c, i, d.UID, uids[i])
			}
			hdr, err := h.s.OpenHeader(h.ctx, inbox.ID, d.UID)
			if err != nil {
				t.Fatal(err)
			}
			if c.header && string(d.Header) != string(hdr) || !c.header && d.Header != nil {
				t.Fatalf("Digests(%v)[%d].Header = %q, want %q", c, i, truncate(string(d.Header)), truncate(string(hdr)))
			}
			if want := string(Summarize([]byte(msgs[i]))); c.summary && string(d.Summary) != want || !c.summary && d.Summary != nil {
				t.Fatalf("Digests(%v)[%d].Summary = %q, want %q", c, i, d.Summary, want)
			}
		}
	}
	all, err := h.s.Digests(h.ctx, inbox.ID, nil, false, true)
	if err != nil || len(all) != len(msgs) {
		t.Fatalf("Digests(all): %d, %v", len(all), err)
	}
	other := h.create(alice, "Other")
	if _, err := h.s.Copy(h.ctx, inbox.ID, uids[:1], other.ID); err != nil {
		t.Fatal(err)
	}
	if ds, err := h.s.Digests(h.ctx, other.ID, []uint32{1}, true, true); err != nil || len(ds) != 1 ||
		string(ds[0].Summary) != string(Summarize([]byte(msgs[0]))) || !strings.HasPrefix(string(ds[0].Header), "Subject: one") {
		t.Fatalf("digest of a copy: %+v, %v", ds, err)
	}
	if ds, err := h.s.Digests(h.ctx, inbox.ID, []uint32{}, true, true); err != nil || len(ds) != 0 {
		t.Fatalf("no UIDs: %v, %v", ds, err)
	}
	if _, err := h.s.Digests(h.ctx, inbox.ID+1000, nil, true, true); !errors.Is(err, storage.ErrNoMailbox) {
		t.Fatalf("unknown mailbox: %v", err)
	}
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
