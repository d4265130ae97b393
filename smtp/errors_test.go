package smtp

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"carepost/delivery"
	"carepost/directory"
)

func TestReplyMapping(t *testing.T) {
	t.Parallel()
	refusal := func(kind error) error {
		return &directory.RefusalError{Kind: kind, Address: "x@y.fr", Text: "Sentence about x@y.fr (MSSanté)."}
	}
	dErr := func(kind error, reason error) error {
		return &delivery.Error{Kind: kind, Text: "Pipeline sentence.", Reason: reason}
	}
	for _, tc := range []struct {
		name string
		st   step
		err  error
		code int
		enh  string
		text string
	}{
		{"unknown", stepRcpt, refusal(directory.ErrUnknownRecipient), 550, "5.1.1", "Sentence about x@y.fr (MSSante)."},
		{"inactive", stepRcpt, refusal(directory.ErrRecipientInactive), 550, "5.2.1", "Sentence"},
		{"outside", stepRcpt, refusal(directory.ErrOutsideTrustSpace), 550, "5.7.1", "Sentence"},
		{"not yours", stepMail, refusal(directory.ErrNotYourAddress), 550, "5.7.1", "Sentence"},
		{"bad sender address", stepMail, refusal(directory.ErrInvalidAddress), 553, "5.1.7", "Sentence"},
		{"bad recipient address", stepRcpt, refusal(directory.ErrInvalidAddress), 553, "5.1.3", "Sentence"},
		{"auth failed", stepAuth, refusal(directory.ErrAuthFailed), 535, "5.7.8", "Authentication failed"},
		{"auth store down", stepAuth, errors.New("disk on fire"), 454, "4.7.0", "try again later"},
		{"auth required", stepMail, dErr(delivery.ErrAuthRequired, nil), 530, "5.7.0", "Pipeline sentence."},
		{"tls required", stepMail, dErr(delivery.ErrTLSRequired, nil), 530, "5.7.0", "Pipeline"},
		{"relay", stepRcpt, dErr(delivery.ErrRelayDenied, nil), 550, "5.7.1", "Pipeline"},
		{"federation", stepRcpt, dErr(delivery.ErrFederationDisabled, nil), 550, "5.7.1", "Pipeline"},
		{"too large", stepData, dErr(delivery.ErrMessageTooLarge, nil), 552, "5.3.4", "1234 bytes"},
		{"too large (go-smtp)", stepData, dErr(delivery.ErrBodyRead, gosmtp.ErrDataTooLarge), 552, "5.3.4", "1234 bytes"},
		{"long line", stepData, dErr(delivery.ErrBodyRead, gosmtp.ErrTooLongLine), 554, "5.6.0", "too long"},
		{"timeout", stepData, dErr(delivery.ErrBodyRead, os.ErrDeadlineExceeded), 451, "4.4.2", "Pipeline"},
		{"malformed", stepData, dErr(delivery.ErrMalformedMessage, nil), 554, "5.6.0", "Pipeline"},
		{"no recipients", stepData, dErr(delivery.ErrNoRecipients, nil), 554, "5.5.1", "Pipeline"},
		{"sequence", stepRcpt, dErr(delivery.ErrBadSequence, nil), 503, "5.5.1", "Pipeline"},
		{"temporary", stepRcpt, dErr(delivery.ErrTemporary, errors.New("secret cause")), 451, "4.3.0", "try again later"},
		{"plain error", stepData, errors.New("secret cause"), 451, "4.3.0", "try again later"},
		{"library reply", stepAuth, gosmtp.ErrAuthUnknownMechanism, 504, "5.7.4", "Unsupported"},
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
		r := reply(stepRcpt, &directory.RefusalError{Kind: directory.ErrUnknownRecipient, Text: s}, 0)
		if strings.ContainsAny(r.Message, "\r\n") || fmt.Sprint(r.Code) != "550" {
			t.Fatalf("reply %d %q", r.Code, r.Message)
		}
	})
}
