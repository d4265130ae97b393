package imap

import (
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// maxResponseText keeps a refusal's sentence on a reasonable line.
const maxResponseText = 400

// imapReply is what a refusal kind answers over IMAP, with the sentence
// used when the refusal has none.
type imapReply struct {
	typ  imap.StatusResponseType
	code imap.ResponseCode
	text string
}

// imapReplies gives every refusal kind its IMAP response (RFC 9051 §7.1,
// codes of RFC 5530; TOOBIG is RFC 7889's). A message refused by APPEND is
// NO, not BAD: the command was well formed, its message is not acceptable
// (RFC 9051 §6.3.12). Kinds that mean a bug of ours (BadSequence,
// NoRecipients) are NO [SERVERBUG] and logged, as internal failures are.
var imapReplies = map[refusal.Kind]imapReply{
	refusal.AuthRequired:       {imap.StatusResponseTypeBad, imap.ResponseCodeClientBug, "Log in first."},
	refusal.AuthFailed:         {imap.StatusResponseTypeNo, imap.ResponseCodeAuthenticationFailed, refusal.AuthFailedText},
	refusal.TLSRequired:        {imap.StatusResponseTypeNo, imap.ResponseCodePrivacyRequired, "TLS is required."},
	refusal.UnknownRecipient:   {imap.StatusResponseTypeNo, imap.ResponseCodeNonExistent, "No such address."},
	refusal.RecipientInactive:  {imap.StatusResponseTypeNo, imap.ResponseCodeContactAdmin, "This mailbox is not active."},
	refusal.OutsideTrustSpace:  {imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "This address is not part of the secure health messaging space."},
	refusal.NotYourAddress:     {imap.StatusResponseTypeNo, imap.ResponseCodeNoPerm, "You may not use this address."},
	refusal.InvalidAddress:     {imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "The address is not valid."},
	refusal.RelayDenied:        {imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "Relaying denied."},
	refusal.FederationDisabled: {imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "Delivery to other operators is not enabled."},
	refusal.MessageTooLarge:    {imap.StatusResponseTypeNo, imap.ResponseCodeTooBig, "The message is too large."},
	refusal.MalformedMessage:   {imap.StatusResponseTypeNo, imap.ResponseCodeCannot, "The message cannot be read."},
	refusal.BadSequence:        {imap.StatusResponseTypeNo, imap.ResponseCodeServerBug, "Internal server error, the failure was logged"},
	refusal.NoRecipients:       {imap.StatusResponseTypeNo, imap.ResponseCodeServerBug, "Internal server error, the failure was logged"},
	refusal.BodyRead:           {imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable, "The message could not be received completely; please send it again."},
	refusal.Forbidden:          {imap.StatusResponseTypeNo, imap.ResponseCodeNoPerm, "You do not have the right to do this on this mailbox."},
	refusal.NotFound:           {imap.StatusResponseTypeNo, imap.ResponseCodeNonExistent, "No such mailbox"},
	refusal.Temporary:          {imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable, refusal.TemporaryText},
	refusal.InvalidInput:       {imap.StatusResponseTypeBad, imap.ResponseCodeClientBug, "The data given is not valid."},
	// The MX's checks of another operator (never an IMAP client's); mapped
	// so that every kind has a response.
	refusal.OperatorCertRequired: {imap.StatusResponseTypeNo, imap.ResponseCodeNoPerm, "A client certificate of an operator of the trust space is required."},
	refusal.OperatorNotTrusted:   {imap.StatusResponseTypeNo, imap.ResponseCodeNoPerm, "This certificate is not trusted."},
	refusal.TrustUnavailable:     {imap.StatusResponseTypeNo, imap.ResponseCodeUnavailable, "The trust space cannot be checked right now; please try again later."},
}

// mapError turns a refusal, a storage or an internal error into the
// *imap.Error the client sees: a response code from RFC 5530 and a
// sentence. A refusal answers by its one kind (refusal.KindOf, the
// outermost refusal of the chain) with its own sentence; storage errors
// come after. Unknown errors are logged with their cause and answered NO
// [SERVERBUG] without the details, and never end the connection.
func (s *session) mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie
	}
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	if ref, ok := refusal.As(err); ok {
		if r, ok := imapReplies[ref.Kind]; ok {
			if ref.Kind == refusal.Temporary || r.code == imap.ResponseCodeServerBug {
				s.srv.log.Error("imap: refused", "op", op, "account", s.account, "kind", ref.Kind, "err", ref.Reason)
			}
			text := ref.Text
			if text == "" {
				text = r.text
			}
			return &imap.Error{Type: r.typ, Code: r.code, Text: refusal.ASCII(text, maxResponseText)}
		}
	}
	switch {
	case errors.Is(err, storage.ErrNoMailbox), errors.Is(err, storage.ErrNoAccount):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, storage.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists, "A mailbox with that name already exists")
	case errors.Is(err, storage.ErrSpecialMailbox):
		return no(imap.ResponseCodeCannot, "INBOX cannot be deleted")
	case errors.Is(err, storage.ErrMailboxHasChild):
		return no(imap.ResponseCodeCannot, "Delete the mailboxes inside this one first")
	case errors.Is(err, storage.ErrInvalidName):
		return no(imap.ResponseCodeCannot, "Invalid mailbox name")
	case errors.Is(err, storage.ErrInvalidFlag):
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Invalid flag or keyword"}
	case errors.Is(err, storage.ErrNoMessage):
		return no(imap.ResponseCodeNonExistent, "No such message")
	case errors.Is(err, context.DeadlineExceeded):
		s.srv.log.Error("imap: command timed out", "op", op, "account", s.account, "err", err)
		return no(imap.ResponseCodeUnavailable, "The server is busy, try again later")
	}
	s.srv.log.Error("imap: internal error", "op", op, "account", s.account, "err", err)
	return no(imap.ResponseCodeServerBug, "Internal server error, the failure was logged")
}
