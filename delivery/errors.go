package delivery

import (
	"errors"
	"fmt"

	"carepost/directory"
)

// Kinds of refusal that the pipeline adds to those of the directory. A
// refusal from the pipeline is always an *Error whose Kind is one of these or
// one of the directory's (directory.ErrUnknownRecipient,
// ErrRecipientInactive, ErrOutsideTrustSpace, ErrNotYourAddress,
// ErrInvalidAddress); each protocol adapter maps the kinds to its codes in one
// function (smtp: smtp/errors.go).
var (
	// ErrAuthRequired: a submission transaction without an authenticated
	// user (RFC 6409 §4.3, RFC 4954 §6: 530 5.7.0).
	ErrAuthRequired = errors.New("authentication required")
	// ErrTLSRequired: health data never travels in clear (SPEC §3).
	ErrTLSRequired = errors.New("TLS required")
	// ErrRelayDenied: a recipient that is not ours reached the MX, which
	// delivers only to local mailboxes.
	ErrRelayDenied = errors.New("relaying denied")
	// ErrFederationDisabled: the recipient belongs to another operator of
	// the trust space, and this server does not forward mail to other
	// operators yet. The durable outbound queue will take these recipients
	// over: it is the one place to change (see Transaction.AddRecipient).
	ErrFederationDisabled = errors.New("delivery to other operators is not enabled")
	// ErrMessageTooLarge: the message is larger than Options.MaxMessageSize
	// (RFC 1870).
	ErrMessageTooLarge = errors.New("message too large")
	// ErrMalformedMessage: the header cannot be read (RFC 5322 §2.2, §3.6).
	ErrMalformedMessage = errors.New("malformed message")
	// ErrBadSequence: the caller did not follow Sender → AddRecipient →
	// Deliver (a bug in the adapter, not the peer's fault).
	ErrBadSequence = errors.New("transaction steps out of order")
	// ErrNoRecipients: Deliver without any accepted recipient.
	ErrNoRecipients = errors.New("no valid recipients")
	// ErrBodyRead: reading the message from the client failed (connection
	// lost, timeout, or a limit of the protocol library); Reason says which.
	ErrBodyRead = errors.New("reading the message failed")
	// ErrForbidden: the principal may not act on this mailbox.
	ErrForbidden = errors.New("not permitted")
	// ErrTemporary: an internal failure (storage, directory); the client
	// should try again later. Reason holds the cause, for the log only.
	ErrTemporary = errors.New("temporary failure")
)

// Error is a refusal or failure of one step of a transaction.
//
// Text is a sentence safe to show to the sender (it names their own
// addresses and the rule, never internal details); Reason is the underlying
// cause for the log. errors.Is matches both Kind and Reason, so an adapter
// can look for a directory refusal or a protocol library's own error.
type Error struct {
	Kind    error  // one of the Err* kinds of this package or of directory
	Address string // the address concerned, if any
	Text    string // the sentence for the sender
	Reason  error  // the cause, for the log; may be nil
}

// Error returns Text only, so that an *Error shown by mistake to a peer
// leaks nothing; log Reason explicitly.
func (e *Error) Error() string { return e.Text }

// Unwrap exposes Kind and Reason to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Reason == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Reason}
}

// Temporary reports whether trying again later may succeed.
func (e *Error) Temporary() bool {
	return e.Kind == ErrTemporary || e.Kind == ErrBodyRead
}

func newError(kind error, address string, reason error, format string, args ...any) *Error {
	return &Error{Kind: kind, Address: address, Text: fmt.Sprintf(format, args...), Reason: reason}
}

// temporary wraps an internal failure. The text says nothing of the cause:
// it is logged by the adapter, not shown to the peer.
func temporary(reason error) *Error {
	return &Error{
		Kind:   ErrTemporary,
		Text:   "A temporary problem on this server prevented handling the message; please try again later.",
		Reason: reason,
	}
}

// fromDirectory turns an error of the directory into an *Error: its
// refusals keep their kind and sentence (the directory writes sentences for
// people), anything else is an internal failure.
func fromDirectory(err error) *Error {
	var ref *directory.RefusalError
	if errors.As(err, &ref) {
		return &Error{Kind: ref.Kind, Address: ref.Address, Text: ref.Text, Reason: err}
	}
	return temporary(err)
}
