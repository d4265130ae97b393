package smtp

import (
	"errors"
	"fmt"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/carepost/carepost/metrics"
	"github.com/carepost/carepost/refusal"
)

// step is the SMTP command a refusal answers; most kinds map to different
// codes depending on it (a bad address is 5.1.7 as sender, 5.1.3 as
// recipient, a header defect after DATA; an internal failure during AUTH is
// 454 4.7.0).
type step int

const (
	stepAuth step = iota + 1
	stepMail
	stepRcpt
	stepData
)

func (s step) String() string {
	switch s {
	case stepAuth:
		return "auth"
	case stepMail:
		return "sender"
	case stepRcpt:
		return "recipient"
	case stepData:
		return "message"
	}
	return "step"
}

// metric is the step as the metrics name it.
func (s step) metric() metrics.Step {
	switch s {
	case stepAuth:
		return metrics.StepAuth
	case stepMail:
		return metrics.StepMail
	case stepRcpt:
		return metrics.StepRcpt
	}
	return metrics.StepData
}

// refusalKind is the kind a refusal is counted under: reply's own
// reading of go-smtp's limits first, then the refusal's kind; anything
// else is an internal failure (refusal.Temporary).
func refusalKind(err error) refusal.Kind {
	switch {
	case errors.Is(err, gosmtp.ErrDataTooLarge):
		return refusal.MessageTooLarge
	case errors.Is(err, gosmtp.ErrTooLongLine):
		return refusal.MalformedMessage
	}
	if k := refusal.KindOf(err); k != 0 {
		return k
	}
	return refusal.Temporary
}

// code is one SMTP reply: code (RFC 5321 §4.2) and enhanced code (RFC
// 3463, RFC 5248's registry).
type code struct {
	code int
	enh  gosmtp.EnhancedCode
}

func c(n int, class, subject, detail int) code {
	return code{n, gosmtp.EnhancedCode{class, subject, detail}}
}

// kindReply is what a refusal kind answers at each step, with the sentence
// used when the refusal has none.
type kindReply struct {
	auth, mail, rcpt, data code
	text                   string
}

func (r kindReply) at(st step) code {
	switch st {
	case stepAuth:
		return r.auth
	case stepMail:
		return r.mail
	case stepRcpt:
		return r.rcpt
	}
	return r.data
}

// replies gives every refusal kind a deliberate reply at every step
// (TestEveryKindAtEveryStep fails for a kind missing here). The choices:
//
//   - At AUTH, every refusal about the account (unknown, inactive, not an
//     address, not ours, not allowed) is 535 5.7.8 (RFC 4954 §6): an AUTH
//     client learns that the login failed and nothing more. Internal and
//     read failures are 454 4.7.0, data too long or unreadable 500 5.5.6
//     and 501 5.5.2 (RFC 4954 §4).
//   - TLSRequired at AUTH is 523 5.7.10 (RFC 5248 "Encryption Needed"),
//     the reply go-smtp itself gives to AUTH in clear, so that the client
//     sees one reply whichever check fires; elsewhere 530 5.7.0 (RFC 3207
//     §4).
//   - Unknown and inactive recipients: 550 5.1.1 for an address that does
//     not exist, 550 5.2.1 for a suspended or closed mailbox. RFC 3463
//     defines X.2.1 as "mailbox disabled, not accepting messages", which is
//     exactly this case, and it tells the sender's client that retyping the
//     address will not help; existence is not a secret in a space whose
//     directory is published to every professional. As sender, an unknown
//     address is 550 5.1.0: X.1.1 names a destination.
//   - After DATA, RFC 5321 §4.3.2 allows 550, 552, 554 and 451: an
//     invalid address is then one of the header (a From: the directory
//     cannot read), a malformed message, 554 5.6.0.
//   - The checks of another operator's server (MX): no client certificate
//     is 530 5.7.0, as for a missing authentication (RFC 4954 §6); a
//     certificate outside the trust space, or one the white list does not
//     name for the sender's domain, is 550 5.7.1 (RFC 3463 "delivery not
//     authorized"); a trust decision that cannot be made (no white list,
//     unreadable trust anchors) is 451 4.7.0, so that the peer retries
//     instead of bouncing, and it is never an accept.
//   - FederationDisabled is permanent: the sender's client shows it at once
//     instead of retrying for days; when the outbound queue exists these
//     recipients are accepted and this reply disappears.
var replies = map[refusal.Kind]kindReply{
	refusal.AuthRequired: {c(530, 5, 7, 0), c(530, 5, 7, 0), c(530, 5, 7, 0), c(530, 5, 7, 0),
		"Authentication required."},
	refusal.AuthFailed: {c(535, 5, 7, 8), c(530, 5, 7, 0), c(530, 5, 7, 0), c(530, 5, 7, 0),
		refusal.AuthFailedText},
	refusal.TLSRequired: {c(523, 5, 7, 10), c(530, 5, 7, 0), c(530, 5, 7, 0), c(530, 5, 7, 0),
		"Must issue a STARTTLS command first."},
	refusal.UnknownRecipient: {c(535, 5, 7, 8), c(550, 5, 1, 0), c(550, 5, 1, 1), c(550, 5, 1, 1),
		"Unknown recipient."},
	refusal.RecipientInactive: {c(535, 5, 7, 8), c(550, 5, 2, 1), c(550, 5, 2, 1), c(550, 5, 2, 1),
		"The mailbox is not active."},
	refusal.OutsideTrustSpace: {c(535, 5, 7, 8), c(550, 5, 7, 1), c(550, 5, 7, 1), c(550, 5, 7, 1),
		"This address is not part of the secure health messaging space."},
	refusal.NotYourAddress: {c(535, 5, 7, 8), c(550, 5, 7, 1), c(550, 5, 7, 1), c(550, 5, 7, 1),
		"You may not send as this address."},
	refusal.InvalidAddress: {c(535, 5, 7, 8), c(553, 5, 1, 7), c(553, 5, 1, 3), c(554, 5, 6, 0),
		"The address is not valid."},
	refusal.RelayDenied: {c(550, 5, 7, 1), c(550, 5, 7, 1), c(550, 5, 7, 1), c(550, 5, 7, 1),
		"Relaying denied."},
	refusal.FederationDisabled: {c(550, 5, 7, 1), c(550, 5, 7, 1), c(550, 5, 7, 1), c(550, 5, 7, 1),
		"Delivery to other operators is not enabled."},
	refusal.MessageTooLarge: {c(500, 5, 5, 6), c(552, 5, 3, 4), c(552, 5, 3, 4), c(552, 5, 3, 4),
		"The message is too large."},
	refusal.MalformedMessage: {c(501, 5, 5, 2), c(501, 5, 5, 4), c(501, 5, 5, 4), c(554, 5, 6, 0),
		"The message cannot be read."},
	refusal.BadSequence: {c(503, 5, 5, 1), c(503, 5, 5, 1), c(503, 5, 5, 1), c(503, 5, 5, 1),
		"Bad sequence of commands."},
	refusal.NoRecipients: {c(503, 5, 5, 1), c(503, 5, 5, 1), c(503, 5, 5, 1), c(554, 5, 5, 1),
		"No valid recipients."},
	refusal.BodyRead: {c(454, 4, 7, 0), c(451, 4, 4, 2), c(451, 4, 4, 2), c(451, 4, 4, 2),
		"The message could not be received completely; please send it again."},
	refusal.Forbidden: {c(535, 5, 7, 8), c(550, 5, 7, 1), c(550, 5, 7, 1), c(550, 5, 7, 1),
		"This operation is not allowed."},
	refusal.NotFound: {c(535, 5, 7, 8), c(550, 5, 1, 0), c(550, 5, 1, 1), c(550, 5, 1, 1),
		"No such mailbox."},
	refusal.Temporary: {c(454, 4, 7, 0), c(451, 4, 3, 0), c(451, 4, 3, 0), c(451, 4, 3, 0),
		refusal.TemporaryText},
	refusal.InvalidInput: {c(501, 5, 5, 2), c(501, 5, 5, 4), c(501, 5, 5, 4), c(554, 5, 5, 4),
		"The data given is not valid."},
	refusal.OperatorCertRequired: {c(530, 5, 7, 0), c(530, 5, 7, 0), c(530, 5, 7, 0), c(530, 5, 7, 0),
		"A client certificate of an operator of the trust space is required."},
	refusal.OperatorNotTrusted: {c(535, 5, 7, 8), c(550, 5, 7, 1), c(550, 5, 7, 1), c(550, 5, 7, 1),
		"The certificate of this server is not trusted for this sender."},
	refusal.TrustUnavailable: {c(454, 4, 7, 0), c(451, 4, 7, 0), c(451, 4, 7, 0), c(451, 4, 7, 0),
		"The trust space cannot be checked right now; please try again later."},
}

// reply is the one place where errors become SMTP replies (STYLE "One error
// type per refusal"). A refusal answers by its one kind (refusal.KindOf:
// the outermost refusal of the chain, never a kind of a wrapped cause) and
// the step, with its own sentence, written for the person who sent the
// message. go-smtp's own limits, met while reading the message, come first
// with sentences written here; go-smtp's own replies (unsupported
// mechanism...) pass as they are. Whatever else is an internal failure:
// 451 4.3.0 (454 4.7.0 during AUTH, RFC 4954 §6), the cause being logged by
// the caller and never sent.
func reply(st step, err error, maxSize int64) *gosmtp.SMTPError {
	if err == nil {
		return nil
	}
	// go-smtp's limits arrive as the Reason of a BodyRead refusal. A
	// network timeout while reading is BodyRead's own 451 4.4.2.
	switch {
	case errors.Is(err, gosmtp.ErrDataTooLarge):
		return &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4},
			Message: replyText(fmt.Sprintf("The message is larger than the %d bytes this server accepts.", maxSize))}
	case errors.Is(err, gosmtp.ErrTooLongLine):
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0},
			Message: "A line of the message is too long (RFC 5322 section 2.1.1 allows 998 characters); the message was not accepted."}
	}
	if ref, ok := refusal.As(err); ok {
		if r, ok := replies[ref.Kind]; ok {
			text := ref.Text
			if text == "" {
				text = r.text
			}
			c := r.at(st)
			return &gosmtp.SMTPError{Code: c.code, EnhancedCode: c.enh, Message: replyText(text)}
		}
	} else if se := (*gosmtp.SMTPError)(nil); errors.As(err, &se) {
		return se
	}
	if st == stepAuth {
		return &gosmtp.SMTPError{Code: 454, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
			Message: "Temporary authentication failure; please try again later."}
	}
	return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message: "Temporary local problem; please try again later."}
}

// maxReplyText keeps a reply line within RFC 5321 §4.5.3.1.5 (512 octets
// with the codes).
const maxReplyText = 400

// replyText makes a sentence safe for one reply line: ASCII (RFC 5321
// §4.2; UTF-8 only after SMTPUTF8, which we do not offer), no control
// characters (go-smtp would turn a newline into a multi-line reply, and
// addresses quoted in refusals come from the peer), within maxReplyText.
func replyText(s string) string { return refusal.ASCII(s, maxReplyText) }

// errText is what the log says about a refusal: the cause when there is
// one (never shown to the peer), else the sentence.
func errText(err error) string {
	if ref, ok := refusal.As(err); ok && ref.Reason != nil {
		return truncateForLog(ref.Reason.Error())
	}
	if err == nil {
		return ""
	}
	return truncateForLog(err.Error())
}

func truncateForLog(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func enhancedString(e gosmtp.EnhancedCode) string {
	return fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
}
