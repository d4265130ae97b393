// Package refusal is the one protocol-neutral type of a refusal: what the
// directory, the rights check and the message path answer when they say no.
// Each protocol maps a Kind to its codes in exactly one function
// (smtp/errors.go for SMTP replies, imap/errors.go for IMAP responses, the
// portal's pages later), and shows Text to the person.
//
// A refusal has exactly one Kind. Kinds are compared by value on the
// outermost *Error of a chain (KindOf), never with errors.Is through
// wrapped causes: a From: address the directory found invalid and that the
// message path re-classifies as a malformed message answers to one kind
// only, the message path's.
package refusal

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the category of a refusal. The zero value is not a refusal.
type Kind int

const (
	_ Kind = iota
	// AuthRequired: the step needs an authenticated user (RFC 4954 §6,
	// RFC 6409 §4.3).
	AuthRequired
	// AuthFailed: credentials refused. Always the same sentence whatever
	// the cause, so that nobody can probe which accounts exist.
	AuthFailed
	// TLSRequired: health data and credentials never travel in clear.
	TLSRequired
	// UnknownRecipient: the address does not exist in the directory.
	UnknownRecipient
	// RecipientInactive: the mailbox exists but is suspended or closed.
	RecipientInactive
	// OutsideTrustSpace: the domain is not part of the secure health
	// messaging space.
	OutsideTrustSpace
	// NotYourAddress: the user may not send as this address.
	NotYourAddress
	// InvalidAddress: an envelope address that cannot be read.
	InvalidAddress
	// RelayDenied: a recipient that is not ours reached the MX.
	RelayDenied
	// FederationDisabled: the recipient belongs to another operator and
	// this server does not forward to other operators.
	FederationDisabled
	// MessageTooLarge: over the size limit (RFC 1870).
	MessageTooLarge
	// MalformedMessage: the message cannot be accepted as written (header
	// unreadable, From: unreadable, MIME structure past the limits).
	MalformedMessage
	// BadSequence: steps out of order (a bug in the caller, not the peer).
	BadSequence
	// NoRecipients: a message without any accepted recipient.
	NoRecipients
	// BodyRead: reading the message from the client failed (connection
	// lost, timeout, a limit of the protocol library).
	BodyRead
	// Forbidden: the principal lacks the right for this operation on this
	// mailbox (auth.Rights).
	Forbidden
	// NotFound: the mailbox or the object does not exist, or is not
	// visible to this principal (the two are not told apart).
	NotFound
	// Temporary: an internal failure; trying again later may work. Reason
	// holds the cause, for the log only.
	Temporary
	// InvalidInput: the data given to an administration operation is not
	// acceptable (an empty name, an unknown member, an address already
	// taken, a password too short). Reason may hold a sentinel of the
	// package that refused (directory.ErrInvalidEntry, ErrExists).
	InvalidInput
	// OperatorCertRequired: another operator's server delivered to the MX
	// without presenting a client certificate (SPEC §2 "Trust space").
	OperatorCertRequired
	// OperatorNotTrusted: the server's certificate does not chain to a
	// trust anchor, or it is not the certificate the white list names for
	// the sender's domain (the domain belongs to another operator).
	OperatorNotTrusted
	// TrustUnavailable: the trust decision cannot be made now (the white
	// list is missing, the trust anchors cannot be read); never an accept.
	TrustUnavailable
	// kindEnd is one past the last kind, for tables that cover them all.
	kindEnd
)

// Kinds returns every kind, for table tests that must cover them all.
func Kinds() []Kind {
	out := make([]Kind, 0, int(kindEnd)-1)
	for k := Kind(1); k < kindEnd; k++ {
		out = append(out, k)
	}
	return out
}

var kindNames = [...]string{
	AuthRequired:       "auth-required",
	AuthFailed:         "auth-failed",
	TLSRequired:        "tls-required",
	UnknownRecipient:   "unknown-recipient",
	RecipientInactive:  "recipient-inactive",
	OutsideTrustSpace:  "outside-trust-space",
	NotYourAddress:     "not-your-address",
	InvalidAddress:     "invalid-address",
	RelayDenied:        "relay-denied",
	FederationDisabled: "federation-disabled",
	MessageTooLarge:    "message-too-large",
	MalformedMessage:   "malformed-message",
	BadSequence:        "bad-sequence",
	NoRecipients:       "no-recipients",
	BodyRead:           "body-read",
	Forbidden:          "forbidden",
	NotFound:           "not-found",
	Temporary:          "temporary",
	InvalidInput:       "invalid-input",

	OperatorCertRequired: "operator-cert-required",
	OperatorNotTrusted:   "operator-not-trusted",
	TrustUnavailable:     "trust-unavailable",
}

// String names the kind for logs.
func (k Kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a refusal: its Kind, the address or object concerned, a
// sentence safe to show to the user, and the cause for the log.
type Error struct {
	Kind    Kind
	Address string // the address or mailbox concerned, if any
	Text    string // the sentence for the user; never internal details
	Reason  error  // the cause, for the log only; may be nil
}

// Error returns Text only, so that an *Error shown by mistake to a peer
// leaks nothing; log Reason explicitly.
func (e *Error) Error() string { return e.Text }

// Unwrap exposes Reason to errors.Is and errors.As (a protocol library's
// own error, a network timeout). It does not expose the Kind: see KindOf.
func (e *Error) Unwrap() error { return e.Reason }

// Temporary reports whether trying again later may succeed.
func (e *Error) Temporary() bool {
	return e.Kind == Temporary || e.Kind == BodyRead || e.Kind == TrustUnavailable
}

// New builds a refusal whose Text is format with args.
func New(kind Kind, address string, reason error, format string, args ...any) *Error {
	return &Error{Kind: kind, Address: address, Text: fmt.Sprintf(format, args...), Reason: reason}
}

// TemporaryText is the sentence of every internal failure: the cause is
// logged, never shown.
const TemporaryText = "A temporary problem on this server prevented this operation; please try again later."

// AuthFailedText is the one sentence of every failed login, whatever the
// cause (unknown account, wrong password, suspended account, an
// authorization identity that is not the user's), so that nobody can probe
// which accounts exist.
const AuthFailedText = "Authentication failed: the address or the password is wrong, or the account is not active."

// Internal wraps an internal failure as a Temporary refusal.
func Internal(reason error) *Error {
	return &Error{Kind: Temporary, Text: TemporaryText, Reason: reason}
}

// As returns the outermost *Error in err's chain.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// KindOf returns the Kind of the outermost *Error in err's chain, 0 if
// there is none (an internal error that is not a refusal).
func KindOf(err error) Kind {
	if e, ok := As(err); ok {
		return e.Kind
	}
	return 0
}

// Is reports whether err is a refusal of kind k (its outermost *Error).
func Is(err error, k Kind) bool { return KindOf(err) == k }

// Reclassify returns a copy of the refusal in err with another kind and,
// when text is not empty, another sentence; the original error becomes the
// Reason. err that holds no refusal is returned as an Internal failure.
func Reclassify(err error, kind Kind, text string) *Error {
	e, ok := As(err)
	if !ok {
		return Internal(err)
	}
	n := &Error{Kind: kind, Address: e.Address, Text: e.Text, Reason: err}
	if text != "" {
		n.Text = text
	}
	return n
}

// ASCII makes a sentence safe for one line of a protocol that carries
// ASCII only (SMTP replies, RFC 5321 §4.2, UTF-8 only after SMTPUTF8; IMAP
// response text, RFC 9051 §4.3 resp-text without UTF8=ACCEPT). The accents
// of French sentences and names are dropped ("MSSanté" → "MSSante"),
// other non-ASCII becomes "?", and control characters become spaces:
// addresses quoted in refusals come from the peer, and a newline would end
// the line early. Past max bytes the sentence is cut and ends with "...".
func ASCII(s string, max int) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= max {
			b.WriteString("...")
			break
		}
		switch {
		case c < ' ' || c == 0x7f:
			b.WriteByte(' ')
		case c < 0x7f:
			b.WriteRune(c)
		default:
			b.WriteString(asciiFold(c))
		}
	}
	return b.String()
}

// asciiFold spells a non-ASCII character in ASCII.
func asciiFold(c rune) string {
	switch c {
	case 'à', 'â', 'ä', 'á':
		return "a"
	case 'À', 'Â', 'Ä', 'Á':
		return "A"
	case 'é', 'è', 'ê', 'ë':
		return "e"
	case 'É', 'È', 'Ê', 'Ë':
		return "E"
	case 'î', 'ï', 'í':
		return "i"
	case 'Î', 'Ï':
		return "I"
	case 'ô', 'ö', 'ó':
		return "o"
	case 'Ô', 'Ö':
		return "O"
	case 'ù', 'û', 'ü', 'ú':
		return "u"
	case 'Ù', 'Û', 'Ü':
		return "U"
	case 'ç':
		return "c"
	case 'Ç':
		return "C"
	case 'œ':
		return "oe"
	case 'Œ':
		return "OE"
	case '§':
		return "section "
	case '«', '»', '“', '”':
		return "\""
	case '’', '‘':
		return "'"
	case '…':
		return "..."
	case '→':
		return "->"
	case '–', '—':
		return "-"
	case '\u00a0', '\u202f':
		return " "
	}
	return "?"
}
