package storagetest

import (
	"errors"
	"strings"
	"testing"

	"carepost/storage"
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

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
