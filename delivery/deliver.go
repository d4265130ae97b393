package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"carepost/refusal"
	"carepost/storage"

	"github.com/emersion/go-message/textproto"
)

// Deliver reads the message from body, checks its header, and stores one
// copy in the INBOX of every accepted recipient. It returns nil only when
// every copy is durable (storage.Store.Deliver's contract): the adapter may
// acknowledge the message then, and not before.
//
// The body is read once, as a stream: the header (bounded) is parsed with
// go-message's textproto, the rest flows to the store unparsed. A message
// whose MIME structure is broken is therefore stored as given, as mail
// servers do; only a header that cannot be read is refused, since the
// From: check depends on it.
//
// On submission every From: address (and Sender:, if present) must be one
// the user may send as; on MX they must belong to the trust space and not
// to our domains.
func (t *Transaction) Deliver(ctx context.Context, body io.Reader) error {
	if !t.senderSet {
		return newError(refusal.BadSequence, "", nil, "The sender must be given before the message.")
	}
	if len(t.rcpts) == 0 {
		return newError(refusal.NoRecipients, "", nil, "No valid recipients: the message was not accepted for anyone.")
	}
	limit := t.p.opts.MaxMessageSize
	src := &countingReader{r: body, limit: limit}
	defer func() { t.size = src.n }()
	br := bufio.NewReaderSize(src, headerBufferSize)

	raw, sep, err := readHeader(br)
	if err != nil {
		return t.readFailure(src, err)
	}
	h, err := parseHeader(raw)
	if err != nil {
		return t.readFailure(src, err)
	}
	if err := t.checkFrom(ctx, h); err != nil {
		return err
	}

	// Transform. Extension point: DKIM signing of outbound mail and
	// verification of inbound mail (adding Authentication-Results, RFC
	// 8601), then S/MIME, go here, as stream transforms of (header, rest).
	now := t.p.now()
	var prefix bytes.Buffer
	prefix.Write(receivedField(t.src, t.p.opts.Hostname, t.id, t.Recipients(), now))
	prefix.Write(raw)
	if t.src.Submission {
		prefix.Write(submissionFields(h, t.p.opts.Hostname, t.id, now))
	}
	if len(sep) > 0 {
		prefix.Write(sep)
	} else if br.Buffered() > 0 {
		// Unreachable: readHeader stops at end of input only.
		return temporary(errors.New("delivery: header ended before end of input"))
	}
	msg := io.MultiReader(&prefix, br)

	// Route. Every recipient is local today (AddRecipient refuses the
	// others); the durable queue will take its share of the recipients
	// here and commit with the same all-or-nothing contract.
	targets := make([]storage.Target, len(t.rcpts))
	for i, r := range t.rcpts {
		targets[i] = storage.Target{MailboxID: r.inbox, InternalDate: now}
	}
	if _, err := t.p.store.Deliver(ctx, msg, targets); err != nil {
		if errors.Is(err, storage.ErrNoMailbox) {
			t.p.forgetInboxes() // the client retries after the 451
		}
		// The store read the body: a limit or a broken connection shows
		// up as its error, but the counting reader knows the real cause.
		if src.err != nil {
			return t.readFailure(src, src.err)
		}
		return temporary(fmt.Errorf("delivery: store: %w", err))
	}
	// Extension point: the audit trail (SPEC §9) records the delivery here,
	// after the commit, with t.ID().
	return nil
}

// readFailure classifies an error met while reading the message.
func (t *Transaction) readFailure(src *countingReader, err error) error {
	if src.tooLarge {
		return newError(refusal.MessageTooLarge, "", err,
			"The message is larger than the %d bytes this server accepts.", t.p.opts.MaxMessageSize)
	}
	if he, ok := asHeaderError(err); ok {
		return newError(refusal.MalformedMessage, "", err, "The message header cannot be read: %s.", he.why)
	}
	return newError(refusal.BodyRead, "", err, "The message could not be received completely; please send it again.")
}

// checkFrom applies the sender rules to the From: and Sender: fields.
func (t *Transaction) checkFrom(ctx context.Context, h textproto.Header) error {
	from, sender, err := fromAddresses(h)
	if err != nil {
		he, _ := asHeaderError(err)
		return newError(refusal.MalformedMessage, "", err, "The message header is not acceptable: %s.", he.why)
	}
	if sender != "" {
		from = append(from, sender)
	}
	for _, addr := range from {
		var e *refusal.Error
		if t.src.Submission {
			e = t.maySendAs(ctx, addr, "From")
		} else {
			e = t.peerAddress(ctx, addr, "From")
		}
		if e != nil {
			return e
		}
	}
	return nil
}

// countingReader counts the bytes of the message as received and fails
// past limit, so that a message over the limit is refused while it streams
// (RFC 1870 §6: the server may refuse once the limit is exceeded).
type countingReader struct {
	r        io.Reader
	limit    int64
	n        int64
	tooLarge bool
	err      error // first error other than io.EOF
}

var errTooLarge = errors.New("delivery: message exceeds the size limit")

func (c *countingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	// Read at most one byte past the limit: enough to know it is exceeded.
	if room := c.limit - c.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		c.tooLarge, c.err = true, errTooLarge
		return 0, c.err
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}
