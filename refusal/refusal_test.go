package refusal_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/carepost/carepost/refusal"
)

// Every kind has a name of its own: a kind added without one shows in logs
// as "kind(N)" and fails here.
func TestKindNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range refusal.Kinds() {
		n := k.String()
		if strings.HasPrefix(n, "kind(") || seen[n] {
			t.Errorf("kind %d is named %q", int(k), n)
		}
		seen[n] = true
	}
	if refusal.Kind(0).String() != "kind(0)" {
		t.Errorf("the zero kind is named %q", refusal.Kind(0))
	}
}

// The kind of a chain is the outermost refusal's, whatever the causes
// wrapped inside it say: the bug of a From: address that answered both to
// "invalid address" and to "malformed message".
func TestOutermostKindWins(t *testing.T) {
	inner := refusal.New(refusal.InvalidAddress, "a b@x.fr", nil, "The address %q is not valid: it contains a space.", "a b@x.fr")
	outer := refusal.Reclassify(fmt.Errorf("checking From: %w", inner), refusal.MalformedMessage, "")
	if k := refusal.KindOf(outer); k != refusal.MalformedMessage {
		t.Fatalf("KindOf = %v", k)
	}
	if refusal.Is(outer, refusal.InvalidAddress) || !refusal.Is(outer, refusal.MalformedMessage) {
		t.Fatal("Is answers to the inner kind")
	}
	if outer.Text != inner.Text || outer.Address != inner.Address {
		t.Fatalf("Reclassify lost the sentence or the address: %+v", outer)
	}
	// Wrapped again by a caller, the outermost refusal is still the one.
	if k := refusal.KindOf(fmt.Errorf("tx: %w", outer)); k != refusal.MalformedMessage {
		t.Fatalf("KindOf through fmt wrapping = %v", k)
	}
	if r := refusal.Reclassify(outer, refusal.NotYourAddress, "Another sentence."); r.Text != "Another sentence." || r.Kind != refusal.NotYourAddress {
		t.Fatalf("Reclassify with a text: %+v", r)
	}
}

// Reason is reachable with errors.Is (a protocol library's own error), and
// never shown: Error() is the sentence.
func TestReasonIsForTheLog(t *testing.T) {
	e := refusal.New(refusal.BodyRead, "", io.ErrUnexpectedEOF, "The message could not be received completely.")
	if !errors.Is(e, io.ErrUnexpectedEOF) || !e.Temporary() {
		t.Fatalf("%v: reason not reachable or not temporary", e)
	}
	in := refusal.Internal(errors.New("secret: disk full"))
	if in.Kind != refusal.Temporary || strings.Contains(in.Error(), "secret") || !in.Temporary() {
		t.Fatalf("Internal = %+v", in)
	}
	if refusal.KindOf(errors.New("plain")) != 0 || refusal.KindOf(nil) != 0 {
		t.Fatal("a plain error has a kind")
	}
	if r := refusal.Reclassify(errors.New("plain"), refusal.MalformedMessage, "x"); r.Kind != refusal.Temporary {
		t.Fatalf("Reclassify of a plain error = %+v, want an internal failure", r)
	}
}

func TestASCII(t *testing.T) {
	for in, want := range map[string]string{
		"MSSanté « ok » §3": `MSSante " ok " section 3`,
		"line\r\nbreak\x00": "line  break ",
		"名":                 "?",
	} {
		if got := refusal.ASCII(in, 100); got != want {
			t.Errorf("ASCII(%q) = %q, want %q", in, got, want)
		}
	}
	if got := refusal.ASCII(strings.Repeat("é", 50), 10); got != strings.Repeat("e", 10)+"..." {
		t.Errorf("cut: %q", got)
	}
}
