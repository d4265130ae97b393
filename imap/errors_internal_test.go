package imap

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// Every refusal kind has a decided IMAP response, with the refusal's own
// sentence; a kind added without one fails here.
func TestMapEveryRefusalKind(t *testing.T) {
	var logs strings.Builder
	srv := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() { srv.Close() })
	s := &session{srv: srv, account: "alice@carepost.test"}
	const no, bad = imap.StatusResponseTypeNo, imap.StatusResponseTypeBad
	want := map[refusal.Kind]struct {
		typ  imap.StatusResponseType
		code imap.ResponseCode
	}{
		refusal.AuthRequired:       {bad, imap.ResponseCodeClientBug},
		refusal.AuthFailed:         {no, imap.ResponseCodeAuthenticationFailed},
		refusal.TLSRequired:        {no, imap.ResponseCodePrivacyRequired},
		refusal.UnknownRecipient:   {no, imap.ResponseCodeNonExistent},
		refusal.RecipientInactive:  {no, imap.ResponseCodeContactAdmin},
		refusal.OutsideTrustSpace:  {no, imap.ResponseCodeCannot},
		refusal.NotYourAddress:     {no, imap.ResponseCodeNoPerm},
		refusal.InvalidAddress:     {no, imap.ResponseCodeCannot},
		refusal.RelayDenied:        {no, imap.ResponseCodeCannot},
		refusal.FederationDisabled: {no, imap.ResponseCodeCannot},
		refusal.MessageTooLarge:    {no, imap.ResponseCodeTooBig},
		refusal.MalformedMessage:   {no, imap.ResponseCodeCannot},
		refusal.BadSequence:        {no, imap.ResponseCodeServerBug},
		refusal.NoRecipients:       {no, imap.ResponseCodeServerBug},
		refusal.BodyRead:           {no, imap.ResponseCodeUnavailable},
		refusal.Forbidden:          {no, imap.ResponseCodeNoPerm},
		refusal.NotFound:           {no, imap.ResponseCodeNonExistent},
		refusal.Temporary:          {no, imap.ResponseCodeUnavailable},
		refusal.InvalidInput:       {bad, imap.ResponseCodeClientBug},

		refusal.OperatorCertRequired: {no, imap.ResponseCodeNoPerm},
		refusal.OperatorNotTrusted:   {no, imap.ResponseCodeNoPerm},
		refusal.TrustUnavailable:     {no, imap.ResponseCodeUnavailable},
	}
	for _, k := range refusal.Kinds() {
		w, ok := want[k]
		if !ok {
			t.Errorf("kind %v has no decided IMAP response: add it to imapReplies and to this table", k)
			continue
		}
		text := fmt.Sprintf("Sentence about the mailbox (MSSanté) for %v.", k)
		err := s.mapError("test", fmt.Errorf("op: %w", refusal.New(k, "x@y.fr", errors.New("secret cause"), "%s", text)))
		var ie *imap.Error
		if !errors.As(err, &ie) {
			t.Fatalf("%v: %#v", k, err)
		}
		if ie.Type != w.typ || ie.Code != w.code {
			t.Errorf("%v: %s [%s], want %s [%s]", k, ie.Type, ie.Code, w.typ, w.code)
		}
		if ie.Text != refusal.ASCII(text, maxResponseText) {
			t.Errorf("%v: text %q", k, ie.Text)
		}
		bare := s.mapError("test", &refusal.Error{Kind: k, Reason: errors.New("secret cause")})
		if !errors.As(bare, &ie) || ie.Text == "" || strings.Contains(ie.Text, "secret") {
			t.Errorf("%v without a sentence: %#v", k, bare)
		}
	}
	// The cause of an internal failure is logged, never sent.
	if !strings.Contains(logs.String(), "secret cause") {
		t.Errorf("the cause of a temporary refusal was not logged:\n%s", logs.String())
	}
	// A refusal answers by its kind even when it wraps a storage error;
	// storage errors alone keep their own responses.
	var ie *imap.Error
	err := s.mapError("test", refusal.New(refusal.Forbidden, "", storage.ErrNoMailbox, "Not yours."))
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeNoPerm {
		t.Errorf("refusal wrapping a storage error: %#v", err)
	}
	err = s.mapError("test", fmt.Errorf("x: %w", storage.ErrNoMailbox))
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeNonExistent {
		t.Errorf("storage error: %#v", err)
	}
	if len(want) != len(refusal.Kinds()) {
		t.Errorf("the table has %d kinds, the refusal package %d", len(want), len(refusal.Kinds()))
	}
}
