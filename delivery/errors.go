package delivery

import (
	"github.com/carepost/carepost/refusal"
)

// A refusal of the pipeline is always a *refusal.Error with one Kind:
// AuthRequired, TLSRequired, RelayDenied, FederationDisabled,
// MessageTooLarge, MalformedMessage, BadSequence, NoRecipients, BodyRead or
// Temporary from the pipeline itself, or one of the directory's kinds
// (UnknownRecipient, RecipientInactive, OutsideTrustSpace, NotYourAddress,
// InvalidAddress) passed on or re-classified (maySendAs). Each protocol
// adapter maps the kinds to its codes in one function (smtp: smtp/errors.go,
// imap: imap/errors.go).
//
// Notes on some kinds as the pipeline uses them:
//   - FederationDisabled: the recipient belongs to another operator of the
//     trust space, and this server does not forward mail to other operators
//     yet. The durable outbound queue will take these recipients over: it is
//     the one place to change (see Transaction.AddRecipient).
//   - BodyRead: Reason says which (connection lost, timeout, or a limit of
//     the protocol library, which the adapter recognises with errors.Is).
//   - Temporary: an internal failure (storage, directory); Reason holds the
//     cause, for the log only.

func newError(kind refusal.Kind, address string, reason error, format string, args ...any) *refusal.Error {
	return refusal.New(kind, address, reason, format, args...)
}

// temporary wraps an internal failure. The text says nothing of the cause:
// it is logged by the adapter, not shown to the peer.
func temporary(reason error) *refusal.Error {
	return &refusal.Error{
		Kind:   refusal.Temporary,
		Text:   "A temporary problem on this server prevented handling the message; please try again later.",
		Reason: reason,
	}
}

// fromDirectory turns an error of the directory into a refusal: its
// refusals keep their kind and sentence (the directory writes sentences for
// people), anything else is an internal failure.
func fromDirectory(err error) *refusal.Error {
	if ref, ok := refusal.As(err); ok {
		return ref
	}
	return temporary(err)
}
