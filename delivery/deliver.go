package delivery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"

	"github.com/emersion/go-message/textproto"
)

// Deliver runs the message through the path: it receives the message once
// into a spool, checks its header, runs the transforms, gives each target
// the versions of its recipients, commits every target's writes in one
// transaction, and starts the after-commit hooks. It returns nil only when
// every copy is durable (storage.Store.DeliverAll's contract): the adapter
// may acknowledge the message then, and not before.
//
// A message whose MIME structure is broken is stored as given, as mail
// servers do; only a header that cannot be read, and a structure past the
// limits of the summarizer (nesting, number of parts), are refused.
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
	defer t.abortTargets(ctx) // after a commit the targets have nothing left to drop

	// Spool: the message is received once, whole, before anything else;
	// the size is counted on the stream itself.
	src := &countingReader{r: body, limit: t.p.opts.MaxMessageSize}
	sp, err := t.p.opts.Spool.Receive(src)
	t.size = src.n
	if err != nil {
		if src.err != nil {
			return t.readFailure(src, src.err)
		}
		return temporary(err)
	}
	defer sp.Release()

	// Policy on the header.
	env, err := t.envelope(sp)
	if err != nil {
		return err
	}
	if err := t.checkFrom(ctx, env.Header); err != nil {
		return err
	}

	// Transforms: the trace fields first, then the configured chain.
	chain := append([]Transform{traceTransform{hostname: t.p.opts.Hostname}}, t.p.opts.Transforms...)
	if err := t.p.finish(ctx, env, sp, chain, t.targets); err != nil {
		return err
	}
	t.targets = nil // committed: nothing left for Abort
	return nil
}

// envelope reads and parses the header of the spooled message.
func (t *Transaction) envelope(sp Staged) (*Envelope, error) {
	spooled := time.Now()
	br := bufio.NewReaderSize(sp.Open(), headerBufferSize)
	raw, _, err := readHeader(br)
	if err == nil {
		var h textproto.Header
		if h, err = parseHeader(raw); err == nil {
			return &Envelope{ID: t.id, Source: t.src, From: t.from, Recipients: t.rcpts,
				Header: h, Received: t.p.now(), headerLen: int64(len(raw)), spooled: spooled}, nil
		}
	}
	if he, ok := asHeaderError(err); ok {
		return nil, newError(refusal.MalformedMessage, "", err, "The message header cannot be read: %s.", he.why)
	}
	return nil, temporary(fmt.Errorf("delivery: read the spool: %w", err))
}

// finish runs the stages after the policy: transforms, summaries,
// targets, the one commit, the targets' Commit, the hooks. env.Recipients
// have their targets set.
func (p *Pipeline) finish(ctx context.Context, env *Envelope, msg Staged, chain []Transform, targets map[directory.Route]Target) error {
	return p.finishWith(ctx, env, msg, chain, targets, nil)
}

// finishWith is finish, calling committed (if not nil) with what the
// commit stored, before the hooks start.
func (p *Pipeline) finishWith(ctx context.Context, env *Envelope, msg Staged, chain []Transform, targets map[directory.Route]Target, committed func(*Committed)) error {
	ctx = withActor(ctx, env.Source)
	vs, err := runTransforms(ctx, chain, env, []Version{{Msg: msg, Recipients: env.Recipients}})
	if err != nil {
		return asRefusal(err)
	}
	var undelivered []Version
	for len(vs) > 0 && vs[len(vs)-1].Undelivered != nil { // last, by runTransforms
		undelivered = append(undelivered, vs[len(vs)-1])
		vs = vs[:len(vs)-1]
	}
	if p.opts.Summarize != nil {
		for i := range vs {
			sum, err := p.opts.Summarize(vs[i].Msg.Open())
			if err != nil {
				return asRefusal(err)
			}
			vs[i].Summary = sum
		}
	}

	// Route: each target gets the versions of its own recipients.
	var b Batch
	order := make([]Target, 0, len(targets))
	for _, tg := range targets {
		order = append(order, tg)
	}
	slices.SortFunc(order, func(a, b Target) int { return strings.Compare(a.Name(), b.Name()) })
	for _, tg := range order {
		var mine []Version
		for _, v := range vs {
			var rs []*Recipient
			for _, r := range v.Recipients {
				if r.target == tg {
					rs = append(rs, r)
				}
			}
			if len(rs) > 0 {
				mine = append(mine, Version{Msg: v.Msg, Recipients: rs, Summary: v.Summary})
			}
		}
		if len(mine) == 0 {
			continue
		}
		if err := tg.Body(ctx, env, mine, &b); err != nil {
			return asRefusal(err)
		}
	}

	// Commit: every target's writes in one transaction.
	commitStart := time.Now()
	res, err := commitBatch(ctx, p.store, &b)
	commitTime := time.Since(commitStart)
	if err != nil {
		if errors.Is(err, storage.ErrNoMailbox) {
			p.forgetInboxes() // the client retries after the 451
		}
		return temporary(fmt.Errorf("delivery: store: %w", err))
	}
	for _, tg := range order {
		tg.Commit(ctx, res)
	}
	if committed != nil {
		committed(res)
	}
	if p.opts.Observe != nil {
		p.opts.Observe(env.Source.SourceName(), msg.Size(), time.Since(env.spooled), commitTime)
	}
	if len(undelivered) > 0 {
		p.notifyUndelivered(ctx, env, undelivered)
	}

	// After-commit hooks: outside the client's wait.
	if p.opts.Hooks != nil {
		d := &Delivered{ID: env.ID, Source: env.Source, From: env.From, Size: msg.Size(), At: env.Received}
		i := 0
		for di, db := range b.deliveries {
			for ti := range db.Targets {
				d.Copies = append(d.Copies, DeliveredCopy{Address: b.rcpts[di][ti].Address, Appended: res.appended[i]})
				i++
			}
		}
		d.Append = env.Source.Append
		p.opts.Hooks.run(d)
	}
	return nil
}

// asRefusal keeps a refusal and makes anything else a temporary failure.
func asRefusal(err error) error {
	if e, ok := refusal.As(err); ok {
		return e
	}
	return temporary(err)
}

// readFailure classifies an error met while reading the message.
func (t *Transaction) readFailure(src *countingReader, err error) error {
	return readFailure(src, err, t.p.opts.MaxMessageSize)
}

func readFailure(src *countingReader, err error, limit int64) error {
	if src.tooLarge {
		return newError(refusal.MessageTooLarge, "", err,
			"The message is larger than the %d bytes this server accepts.", limit)
	}
	if he, ok := asHeaderError(err); ok {
		return newError(refusal.MalformedMessage, "", err, "The message header cannot be read: %s.", he.why)
	}
	return newError(refusal.BodyRead, "", err, "The message could not be received completely; please send it again.")
}

// checkFrom applies the sender rules to the From: and Sender: fields.
func (t *Transaction) checkFrom(ctx context.Context, h textproto.Header) error {
	if t.src.System {
		return nil // written by this server (Pipeline.Notify)
	}
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

// withActor makes the context name who hands the message in, as the actor
// of the store's audit events (storage.AuditRecord): the user, or the
// other operator by its certificate's subject; nobody (the system) for
// the server's own notifications.
func withActor(ctx context.Context, src Source) context.Context {
	if auth.FromContext(ctx) != nil {
		return ctx
	}
	switch {
	case src.Principal != nil:
		return auth.WithPrincipal(ctx, src.Principal)
	case src.Peer != nil:
		return auth.WithPrincipal(ctx, &auth.Principal{Address: src.Peer.Subject, Mechanism: auth.MechPeer, Source: src.RemoteAddr})
	}
	return ctx
}

// MessageID is the message's Message-ID without its angle brackets (the
// one the server added on submission if it had none), "" if it has none.
func (env *Envelope) MessageID() string {
	if env.addedMessageID != "" {
		return env.addedMessageID
	}
	id := strings.TrimSpace(env.Header.Get("Message-Id"))
	return strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
}
