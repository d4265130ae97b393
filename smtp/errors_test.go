package smtp

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/refusal"
)

// TestEveryKindAtEveryStep goes through every refusal kind at every step:
// a kind added to the refusal package without a reply here (or with one
// nobody decided) fails. The sentence is always the refusal's own.
func TestEveryKindAtEveryStep(t *testing.T) {
	t.Parallel()
	type codes [4]string // "code enh" at auth, mail, rcpt, data
	want := map[refusal.Kind]codes{
		refusal.AuthRequired:       {"530 5.7.0", "530 5.7.0", "530 5.7.0", "530 5.7.0"},
		refusal.AuthFailed:         {"535 5.7.8", "530 5.7.0", "530 5.7.0", "530 5.7.0"},
		refusal.TLSRequired:        {"523 5.7.10", "530 5.7.0", "530 5.7.0", "530 5.7.0"},
		refusal.UnknownRecipient:   {"535 5.7.8", "550 5.1.0", "550 5.1.1", "550 5.1.1"},
		refusal.RecipientInactive:  {"535 5.7.8", "550 5.2.1", "550 5.2.1", "550 5.2.1"},
		refusal.OutsideTrustSpace:  {"535 5.7.8", "550 5.7.1", "550 5.7.1", "550 5.7.1"},
		refusal.NotYourAddress:     {"535 5.7.8", "550 5.7.1", "550 5.7.1", "550 5.7.1"},
		refusal.InvalidAddress:     {"535 5.7.8", "553 5.1.7", "553 5.1.3", "554 5.6.0"},
		refusal.RelayDenied:        {"550 5.7.1", "550 5.7.1", "550 5.7.1", "550 5.7.1"},
		refusal.FederationDisabled: {"550 5.7.1", "550 5.7.1", "550 5.7.1", "550 5.7.1"},
		refusal.MessageTooLarge:    {"500 5.5.6", "552 5.3.4", "552 5.3.4", "552 5.3.4"},
		refusal.MalformedMessage:   {"501 5.5.2", "501 5.5.4", "501 5.5.4", "554 5.6.0"},
		refusal.BadSequence:        {"503 5.5.1", "503 5.5.1", "503 5.5.1", "503 5.5.1"},
		refusal.NoRecipients:       {"503 5.5.1", "503 5.5.1", "503 5.5.1", "554 5.5.1"},
		refusal.BodyRead:           {"454 4.7.0", "451 4.4.2", "451 4.4.2", "451 4.4.2"},
		refusal.Forbidden:          {"535 5.7.8", "550 5.7.1", "550 5.7.1", "550 5.7.1"},
		refusal.NotFound:           {"535 5.7.8", "550 5.1.0", "550 5.1.1", "550 5.1.1"},
		refusal.Temporary:          {"454 4.7.0", "451 4.3.0", "451 4.3.0", "451 4.3.0"},
		refusal.InvalidInput:       {"501 5.5.2", "501 5.5.4", "501 5.5.4", "554 5.5.4"},

		refusal.OperatorCertRequired: {"530 5.7.0", "530 5.7.0", "530 5.7.0", "530 5.7.0"},
		refusal.OperatorNotTrusted:   {"535 5.7.8", "550 5.7.1", "550 5.7.1", "550 5.7.1"},
		refusal.TrustUnavailable:     {"454 4.7.0", "451 4.7.0", "451 4.7.0", "451 4.7.0"},
	}
	steps := []step{stepAuth, stepMail, stepRcpt, stepData}
	for _, k := range refusal.Kinds() {
		w, ok := want[k]
		if !ok {
			t.Errorf("kind %v has no decided reply: add it to replies (smtp/errors.go) and to this table", k)
			continue
		}
		for i, st := range steps {
			text := fmt.Sprintf("Sentence about x@y.fr (MSSanté) for %v at %v.", k, st)
			err := refusal.New(k, "x@y.fr", errors.New("secret cause"), "%s", text)
			// Wrapped as a caller would, the refusal still answers.
			r := reply(st, fmt.Errorf("tx 123: %w", err), 1234)
			got := fmt.Sprintf("%d %s", r.Code, enhancedString(r.EnhancedCode))
			if got != w[i] {
				t.Errorf("%v at %v: %s, want %s", k, st, got, w[i])
			}
			if r.Message != replyText(text) {
				t.Errorf("%v at %v: sentence %q, want the refusal's %q", k, st, r.Message, replyText(text))
			}
			// A refusal without a sentence still gets one, never the cause.
			bare := reply(st, &refusal.Error{Kind: k, Reason: errors.New("secret cause")}, 1234)
			if bare.Message == "" || strings.Contains(bare.Message, "secret") || bare.Code != r.Code {
				t.Errorf("%v at %v without a sentence: %d %q", k, st, bare.Code, bare.Message)
			}
		}
	}
	if len(want) != len(refusal.Kinds()) {
		t.Errorf("the table has %d kinds, the refusal package %d", len(want), len(refusal.Kinds()))
	}
}

// TestReplyMapping covers what is not a refusal kind: go-smtp's own
// limits and replies, internal failures, and the one-kind rule.
func TestReplyMapping(t *testing.T) {
	t.Parallel()
	bodyRead := func(reason error) error {
		return refusal.New(refusal.BodyRead, "", reason, "Pipeline sentence.")
	}
	fromDirectory := refusal.New(refusal.InvalidAddress, `"a b"@x.fr`, nil, "The address is not valid: it has a space.")
	for _, tc := range []struct {
		name string
		st   step
		err  error
		code int
		enh  string
		text string
	}{
		{"auth store down", stepAuth, errors.New("disk on fire"), 454, "4.7.0", "try again later"},
		{"too large (go-smtp)", stepData, bodyRead(gosmtp.ErrDataTooLarge), 552, "5.3.4", "1234 bytes"},
		{"long line", stepData, bodyRead(gosmtp.ErrTooLongLine), 554, "5.6.0", "too long"},
		{"timeout", stepData, bodyRead(os.ErrDeadlineExceeded), 451, "4.4.2", "Pipeline"},
		{"plain error", stepData, errors.New("secret cause"), 451, "4.3.0", "try again later"},
		{"unknown kind", stepRcpt, &refusal.Error{Kind: refusal.Kind(1000), Text: "secret"}, 451, "4.3.0", "try again later"},
		{"library reply", stepAuth, gosmtp.ErrAuthUnknownMechanism, 504, "5.7.4", "Unsupported"},
		{"library reply inside a refusal", stepRcpt, refusal.Internal(&gosmtp.SMTPError{Code: 250, Message: "secret"}), 451, "4.3.0", "try again later"},
		// Issue 19: a From: address the directory refused, re-classified by
		// the pipeline, answers as the malformed message it is.
		{"re-classified From:", stepData, refusal.Reclassify(fromDirectory, refusal.MalformedMessage, ""), 554, "5.6.0", "has a space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := reply(tc.st, tc.err, 1234)
			if r.Code != tc.code || enhancedString(r.EnhancedCode) != tc.enh {
				t.Fatalf("got %d %s %q", r.Code, enhancedString(r.EnhancedCode), r.Message)
			}
			if !strings.Contains(r.Message, tc.text) {
				t.Fatalf("text %q does not contain %q", r.Message, tc.text)
			}
			if strings.Contains(r.Message, "secret") {
				t.Fatalf("internal cause sent to the peer: %q", r.Message)
			}
		})
	}
	if reply(stepData, nil, 0) != nil {
		t.Fatal("nil error gave a reply")
	}
}

func FuzzReplyText(f *testing.F) {
	f.Add("The domain gmail.com is not part of the secure health messaging space (MSSanté).")
	f.Add("line\r\nbreak\x00 and § « quotes » …")
	f.Add(strings.Repeat("é", 500))
	f.Fuzz(func(t *testing.T, s string) {
		out := replyText(s)
		if len(out) > maxReplyText+16 {
			t.Fatalf("reply text of %d bytes", len(out))
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < ' ' || c >= 0x7f {
				t.Fatalf("byte %q in %q", c, out)
			}
		}
		// Through the whole mapping too: whatever a refusal says, the reply
		// is one clean line.
		r := reply(stepRcpt, &refusal.Error{Kind: refusal.UnknownRecipient, Text: s}, 0)
		if strings.ContainsAny(r.Message, "\r\n") || fmt.Sprint(r.Code) != "550" {
			t.Fatalf("reply %d %q", r.Code, r.Message)
		}
	})
}
