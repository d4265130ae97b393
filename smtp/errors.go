package smtp

import (
	"errors"
	"fmt"
	"net"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"carepost/delivery"
	"carepost/directory"
)

// step is the SMTP command a refusal answers; a few kinds map to different
// codes depending on it (a bad address is 5.1.7 as sender, 5.1.3 as
// recipient; an internal failure during AUTH is 454 4.7.0).
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

// authFailedText is the one sentence of every failed login.
const authFailedText = "Authentication failed: the address or the password is wrong, or the account is not active."

// reply is the one place where errors become SMTP replies (STYLE "One error
// type per refusal"). Codes follow RFC 5321 §4.2 and enhanced codes RFC
// 3463; the sentence is the pipeline's or the directory's, written for the
// person who sent the message, or one written here for the library's own
// limits. Whatever is not recognised is an internal failure: 451 4.3.0
// (454 4.7.0 during AUTH, RFC 4954 §6), the cause being logged by the
// caller and never sent.
//
// Unknown and inactive recipients: 550 5.1.1 for an address that does not
// exist, 550 5.2.1 for a suspended or closed mailbox. RFC 3463 defines
// X.2.1 as "mailbox disabled, not accepting messages", which is exactly
// this case, and it tells the sender's client that retyping the address
// will not help; existence is not a secret in a space whose directory is
// published to every professional.
func reply(st step, err error, maxSize int64) *gosmtp.SMTPError {
	text := ""
	var de *delivery.Error
	var ref *directory.RefusalError
	switch {
	case errors.As(err, &de):
		text = de.Text
	case errors.As(err, &ref):
		text = ref.Text
	}
	r := func(code int, enh gosmtp.EnhancedCode, defaultText string) *gosmtp.SMTPError {
		if text == "" {
			text = defaultText
		}
		return &gosmtp.SMTPError{Code: code, EnhancedCode: enh, Message: replyText(text)}
	}
	var ne net.Error
	switch {
	case err == nil:
		return nil

	// Limits met while reading the message: go-smtp's first (they arrive
	// wrapped in delivery.ErrBodyRead), then the pipeline's.
	case errors.Is(err, gosmtp.ErrDataTooLarge), errors.Is(err, delivery.ErrMessageTooLarge):
		text = fmt.Sprintf("The message is larger than the %d bytes this server accepts.", maxSize)
		return r(552, gosmtp.EnhancedCode{5, 3, 4}, "")
	case errors.Is(err, gosmtp.ErrTooLongLine):
		text = "A line of the message is too long (RFC 5322 §2.1.1 allows 998 characters); the message was not accepted."
		return r(554, gosmtp.EnhancedCode{5, 6, 0}, "")
	case errors.Is(err, delivery.ErrBodyRead) && errors.As(err, &ne) && ne.Timeout():
		return r(451, gosmtp.EnhancedCode{4, 4, 2}, "")
	case errors.Is(err, delivery.ErrBodyRead):
		return r(451, gosmtp.EnhancedCode{4, 4, 2}, "")

	// Authentication (RFC 4954 §6).
	case errors.Is(err, delivery.ErrAuthRequired):
		return r(530, gosmtp.EnhancedCode{5, 7, 0}, "Authentication required.")
	case errors.Is(err, delivery.ErrTLSRequired):
		// RFC 3207 §4.
		return r(530, gosmtp.EnhancedCode{5, 7, 0}, "Must issue a STARTTLS command first.")
	case errors.Is(err, directory.ErrAuthFailed):
		// One generic sentence whatever the cause: no user enumeration.
		text = authFailedText
		return r(535, gosmtp.EnhancedCode{5, 7, 8}, "")

	// Addresses.
	case errors.Is(err, directory.ErrUnknownRecipient):
		return r(550, gosmtp.EnhancedCode{5, 1, 1}, "Unknown recipient.")
	case errors.Is(err, directory.ErrRecipientInactive):
		return r(550, gosmtp.EnhancedCode{5, 2, 1}, "The recipient's mailbox is not active.")
	case errors.Is(err, directory.ErrOutsideTrustSpace):
		return r(550, gosmtp.EnhancedCode{5, 7, 1}, "This address is not part of the secure health messaging space.")
	case errors.Is(err, directory.ErrNotYourAddress):
		return r(550, gosmtp.EnhancedCode{5, 7, 1}, "You may not send as this address.")
	case errors.Is(err, delivery.ErrRelayDenied):
		return r(550, gosmtp.EnhancedCode{5, 7, 1}, "Relaying denied.")
	case errors.Is(err, delivery.ErrFederationDisabled):
		// Permanent: the sender's client shows it at once instead of
		// retrying for days; when the outbound queue exists these
		// recipients are accepted and this reply disappears.
		return r(550, gosmtp.EnhancedCode{5, 7, 1}, "Delivery to other operators is not enabled.")
	case errors.Is(err, directory.ErrInvalidAddress) && st == stepMail:
		return r(553, gosmtp.EnhancedCode{5, 1, 7}, "The sender address is not valid.")
	case errors.Is(err, directory.ErrInvalidAddress):
		return r(553, gosmtp.EnhancedCode{5, 1, 3}, "The recipient address is not valid.")

	// The message.
	case errors.Is(err, delivery.ErrMalformedMessage):
		return r(554, gosmtp.EnhancedCode{5, 6, 0}, "The message header cannot be read.")
	case errors.Is(err, delivery.ErrNoRecipients):
		return r(554, gosmtp.EnhancedCode{5, 5, 1}, "No valid recipients.")
	case errors.Is(err, delivery.ErrBadSequence):
		return r(503, gosmtp.EnhancedCode{5, 5, 1}, "Bad sequence of commands.")
	}

	// go-smtp's own replies (unsupported mechanism...) pass as they are.
	var se *gosmtp.SMTPError
	if errors.As(err, &se) && de == nil {
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

// replyText makes a sentence safe for one reply line. Replies are ASCII
// (RFC 5321 §4.2; UTF-8 only after SMTPUTF8, which we do not offer), so
// the accents of French sentences and names are dropped ("MSSanté" →
// "MSSante") and other non-ASCII becomes "?". Control characters become
// spaces: go-smtp would turn a newline into a multi-line reply, and
// addresses quoted in refusals come from the peer.
func replyText(s string) string {
	var b strings.Builder
	for _, c := range s {
		if b.Len() >= maxReplyText {
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

// errText is what the log says about a refusal: the cause when there is
// one (never shown to the peer), else the sentence.
func errText(err error) string {
	var de *delivery.Error
	if errors.As(err, &de) && de.Reason != nil {
		return truncateForLog(de.Reason.Error())
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
