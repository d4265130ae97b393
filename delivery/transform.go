package delivery

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/carepost/carepost/directory"
)

// Envelope is what the stages know of a message besides its bytes: who
// handed it in, the envelope addresses, and the header as received.
type Envelope struct {
	ID     string // the transaction's identifier (logs, Received:)
	Source Source
	// From is the envelope sender; "" for the null reverse-path.
	From string
	// Recipients are the accepted recipients, in RCPT order.
	Recipients []*Recipient
	// Header is the header section as received, parsed (read only).
	Header textproto.Header
	// Received is when the message was received (Received:, INTERNALDATE).
	Received time.Time
	// addedMessageID is the Message-ID the trace transform gave a
	// submitted message that had none (without angle brackets).
	addedMessageID string
	// headerLen is the length of the header fields of the message as
	// received, without the empty line that ends them.
	headerLen int64
	// spooled is when the message was fully received (the monotonic
	// clock, for Options.Observe).
	spooled time.Time
}

// Recipient is one accepted recipient and where it goes.
type Recipient struct {
	Address string // canonical
	Route   directory.Route
	// Mailbox is the store mailbox that receives the copy, set by the
	// store target (AddRcpt) for a local recipient.
	Mailbox int64
	// Flags and Date are those of the stored copy (APPEND); zero values
	// for mail: no flags, the envelope's Received time.
	Flags []string
	Date  time.Time
	// target is where Route sent it.
	target Target
}

// Version is one version of the message and the recipients that get it.
// The path starts with one version for all recipients; each transform
// may give some of them a version of their own (S/MIME decrypts for the
// recipient whose key it has, signs and encrypts per outbound route).
type Version struct {
	Msg        Staged
	Recipients []*Recipient
	// Summary is the IMAP summary of Msg (Options.Summarize), computed by
	// the path once the transforms are done, for every version.
	Summary []byte
	// Undelivered, when a transform sets it, says that the recipients of
	// this version get no copy, and why: the path sets the version
	// aside (later transforms, the summary and the targets never see
	// it), commits the others, then sends the envelope sender a
	// delivery status notification naming these recipients with
	// Undelivered's reason (dsn.go, through Pipeline.Notify). Msg stays
	// the message as it was: its header goes into the notification. The
	// S/MIME gateway uses it for a recipient it cannot encrypt to
	// (smime.go): the message must not go in clear, and the sender must
	// hear of it.
	Undelivered *Undelivered
}

// Undelivered is why the recipients of a version get no copy.
type Undelivered struct {
	// Status is the enhanced status code of RFC 3463 for the
	// notification ("5.7.5"); "" means "5.0.0".
	Status string
	// Reason is a sentence for the sender, in English (the notification
	// gives it under its own French and English text).
	Reason string
}

// Transform maps a version of the message to one or more versions that
// split its recipients among them (every recipient in exactly one). A
// transform that changes the message for everyone returns one version.
// A refusal (*refusal.Error) refuses the whole message; any other error
// is a temporary failure. Transforms run in order, after the policy
// checks and before the targets; they must not keep a Staged past the
// transaction.
type Transform interface {
	Name() string
	Apply(ctx context.Context, env *Envelope, v Version) ([]Version, error)
}

// TransformFunc adapts a function (a test, a small transform) to
// Transform.
type TransformFunc struct {
	N string
	F func(ctx context.Context, env *Envelope, v Version) ([]Version, error)
}

func (t TransformFunc) Name() string { return t.N }
func (t TransformFunc) Apply(ctx context.Context, env *Envelope, v Version) ([]Version, error) {
	return t.F(ctx, env, v)
}

// runTransforms runs the chain and checks each step's contract. The
// versions a transform marks Undelivered leave the chain there; they
// come back last, for the path to report.
func runTransforms(ctx context.Context, chain []Transform, env *Envelope, vs []Version) ([]Version, error) {
	var undelivered []Version
	for _, tr := range chain {
		var next []Version
		for _, v := range vs {
			out, err := tr.Apply(ctx, env, v)
			if err != nil {
				return nil, err
			}
			if err := sameRecipients(v.Recipients, out); err != nil {
				return nil, fmt.Errorf("delivery: transform %s: %w", tr.Name(), err)
			}
			for _, o := range out {
				if o.Undelivered != nil {
					undelivered = append(undelivered, o)
				} else {
					next = append(next, o)
				}
			}
		}
		vs = next
	}
	return append(vs, undelivered...), nil
}

// sameRecipients checks that the versions split exactly the recipients
// of the version they came from: a transform that loses or duplicates one
// would lose or duplicate a copy.
func sameRecipients(in []*Recipient, out []Version) error {
	seen := make(map[*Recipient]int, len(in))
	for _, r := range in {
		seen[r] = 0
	}
	for _, v := range out {
		if v.Msg == nil {
			return fmt.Errorf("a version without a message")
		}
		for _, r := range v.Recipients {
			n, ok := seen[r]
			if !ok || n > 0 {
				return fmt.Errorf("recipient %s given twice or not ours", r.Address)
			}
			seen[r] = 1
		}
	}
	for r, n := range seen {
		if n == 0 {
			return fmt.Errorf("recipient %s lost", r.Address)
		}
	}
	return nil
}

// traceTransform is the first transform of mail (SMTP, later the portal):
// it writes Received: (RFC 5321 §4.4) before the header and, on
// submission, the Message-ID: and Date: fields a client left out (RFC
// 6409 §8). It only prefixes the message: the body is not copied.
type traceTransform struct {
	hostname string
}

func (traceTransform) Name() string { return "trace" }

func (t traceTransform) Apply(ctx context.Context, env *Envelope, v Version) ([]Version, error) {
	rcpts := make([]string, len(env.Recipients))
	for i, r := range env.Recipients {
		rcpts[i] = r.Address
	}
	var prefix bytes.Buffer
	prefix.Write(receivedField(env.Source, t.hostname, env.ID, rcpts, env.Received))
	if !env.Source.Submission {
		v.Msg = Prefix(prefix.Bytes(), v.Msg)
		return []Version{v}, nil
	}
	extra := submissionFields(env.Header, t.hostname, env.ID, env.Received)
	if !env.Header.Has("Message-Id") {
		env.addedMessageID = env.ID + "@" + t.hostname
	}
	if len(extra) == 0 {
		v.Msg = Prefix(prefix.Bytes(), v.Msg)
		return []Version{v}, nil
	}
	// The added fields go at the end of the header, before the empty line
	// that ends it: the message is split there (Envelope.headerLen), without
	// copying the body.
	v.Msg = &spliced{head: prefix.Bytes(), base: v.Msg, at: env.headerLen, insert: extra}
	return []Version{v}, nil
}
