package sqlite

import (
	"errors"
	"strings"
	"testing"

	"github.com/carepost/carepost/storage"
)

func TestCanonName(t *testing.T) {
	for in, want := range map[string]string{
		"INBOX": "INBOX", "inbox": "INBOX", "Inbox/Sub": "INBOX/Sub", "INBOXES": "INBOXES",
		"Archive/2026": "Archive/2026", "Envoyés": "Envoyés",
	} {
		if got, err := canonName(in); err != nil || got != want {
			t.Errorf("canonName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/", "a/", "/a", "a//b", "a\tb", "a\x7fb", "a*", "%", "\xc3", strings.Repeat("a", maxNameLen+1)} {
		if _, err := canonName(in); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("canonName(%q): err = %v", in, err)
		}
	}
}

func FuzzCanonName(f *testing.F) {
	for _, s := range []string{"INBOX", "inbox/a", "a/b/c", "Envoyés", "a//b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := canonName(s)
		if err != nil {
			return
		}
		// Canonical names are fixed points and stay valid.
		if c2, err := canonName(c); err != nil || c2 != c {
			t.Fatalf("canonName(%q) = %q, then %q, %v", s, c, c2, err)
		}
		if !strings.EqualFold(c, s) {
			t.Fatalf("canonName(%q) = %q changes more than case", s, c)
		}
	})
}

func TestParseFlags(t *testing.T) {
	fs, err := parseFlags([]string{`\SEEN`, `\deleted`, "$Label", "$LABEL", `\Recent`, "Todo", `\Custom`})
	if err != nil {
		t.Fatal(err)
	}
	if fs.bits != flagSeen|flagDeleted || joinKeywords(fs.keywords) != `$Label Todo \Custom` {
		t.Errorf("parseFlags = %+v", fs)
	}
	if got := formatFlags(fs.bits, joinKeywords(fs.keywords)); strings.Join(got, " ") != `\Seen \Deleted $Label Todo \Custom` {
		t.Errorf("formatFlags = %v", got)
	}
	for _, bad := range []string{"", "a b", "a(b", "a\\b", "é", "x]", strings.Repeat("k", maxKeywordLen+1)} {
		if _, err := parseFlags([]string{bad}); !errors.Is(err, storage.ErrInvalidFlag) {
			t.Errorf("parseFlags(%q): err = %v", bad, err)
		}
	}
}

func FuzzParseFlags(f *testing.F) {
	f.Add(`\Seen`, "$Label", "$label")
	f.Add(`\recent`, `\Draft`, "a b")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		fs, err := parseFlags([]string{a, b, c})
		if err != nil {
			return
		}
		// What is stored reads back as the same set.
		back, err := parseFlags(formatFlags(fs.bits, joinKeywords(fs.keywords)))
		if err != nil || back.bits != fs.bits || !sameKeywords(joinKeywords(back.keywords), joinKeywords(fs.keywords)) {
			t.Fatalf("round trip of %q %q %q: %+v -> %+v, %v", a, b, c, fs, back, err)
		}
		if len(back.keywords) != len(fs.keywords) {
			t.Fatalf("duplicates: %+v", fs)
		}
	})
}
