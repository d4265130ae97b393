package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/carepost/carepost/storage"
)

// Target receives the recipients routed to it, in two phases (maddy's
// DeliveryTarget is the model): AddRcpt for each recipient while the
// envelope is given, Body once the message and its versions are ready,
// then Commit once the shared commit is durable, or Abort.
//
// Targets that write to the store (the local mailboxes today, the
// outbound queue with federation) do not commit on their own: Body adds
// their writes to the Batch, and the path commits the batch in one
// transaction, so that a message accepted for a local and a remote
// recipient is in both places or in neither.
type Target interface {
	Name() string
	// AddRcpt accepts one recipient or refuses it (*refusal.Error).
	// Nothing is visible to anyone yet.
	AddRcpt(ctx context.Context, r *Recipient) error
	// Body adds the target's writes for the given versions (each
	// restricted to this target's recipients) to b. It may read the
	// versions; it must not commit anything.
	Body(ctx context.Context, env *Envelope, vs []Version, b *Batch) error
	// Commit is called once the batch is durable, with what it stored.
	// It must not fail: what needs retrying belongs in an after-commit
	// hook.
	Commit(ctx context.Context, res *Committed)
	// Abort drops what AddRcpt and Body prepared: the message was not
	// accepted (refused, RSET, connection lost, commit failed).
	Abort(ctx context.Context)
}

// Batch is the one commit of a message: every target's writes to the
// store, committed together by the path (storage.Store.DeliverAll).
type Batch struct {
	deliveries []storage.Delivery
	owners     []Target
	rcpts      [][]*Recipient
}

// Deliver adds one version and the mailboxes that receive it, one per
// recipient in rcpts (same order as d.Targets).
func (b *Batch) Deliver(owner Target, d storage.Delivery, rcpts []*Recipient) {
	b.deliveries = append(b.deliveries, d)
	b.owners = append(b.owners, owner)
	b.rcpts = append(b.rcpts, rcpts)
}

// Committed is what the batch stored.
type Committed struct {
	deliveries []storage.Delivery
	owners     []Target
	appended   []storage.Appended
}

// Appended returns, in batch order, the copies stored for owner's
// deliveries, with the target each came from.
func (c *Committed) Appended(owner Target) []storage.Appended {
	var out []storage.Appended
	i := 0
	for di, d := range c.deliveries {
		n := len(d.Targets)
		if c.owners[di] == owner {
			out = append(out, c.appended[i:i+n]...)
		}
		i += n
	}
	return out
}

// All returns every stored copy.
func (c *Committed) All() []storage.Appended { return c.appended }

// commit writes the batch in one transaction.
func commitBatch(ctx context.Context, store storage.Store, b *Batch) (*Committed, error) {
	res := &Committed{deliveries: b.deliveries, owners: b.owners}
	if len(b.deliveries) == 0 {
		return res, nil
	}
	app, err := store.DeliverAll(ctx, b.deliveries)
	if err != nil {
		return nil, err
	}
	res.appended = app
	return res, nil
}

// storeTarget delivers into local mailboxes: the INBOX of a local
// recipient (mail), or the mailbox an APPEND names.
type storeTarget struct {
	p     *Pipeline
	rcpts []*Recipient
}

func (t *storeTarget) Name() string { return "store" }

// AddRcpt resolves a mail recipient's INBOX now, so that a missing store
// account is created before the body is read; an APPEND names its
// mailbox already.
func (t *storeTarget) AddRcpt(ctx context.Context, r *Recipient) error {
	if r.Mailbox == 0 {
		inbox, err := t.p.inbox(ctx, r.Address)
		if err != nil {
			return temporary(err)
		}
		r.Mailbox = inbox
	}
	t.rcpts = append(t.rcpts, r)
	return nil
}

func (t *storeTarget) Body(ctx context.Context, env *Envelope, vs []Version, b *Batch) error {
	once := onceKey(env)
	for _, v := range vs {
		rcpts := v.Recipients
		if once != "" {
			var err error
			if rcpts, err = t.notYetReceived(ctx, env, once, rcpts); err != nil {
				return err
			}
			if len(rcpts) == 0 {
				continue
			}
		}
		targets := make([]storage.Target, len(rcpts))
		for i, r := range rcpts {
			date := r.Date
			if date.IsZero() {
				date = env.Received
			}
			targets[i] = storage.Target{MailboxID: r.Mailbox, Flags: r.Flags, InternalDate: date}
		}
		action := "message.deliver"
		if env.Source.Append {
			action = "message.append"
		}
		b.Deliver(t, storage.Delivery{Body: v.Msg.Open(), Summary: v.Summary, Targets: targets, Once: once,
			MessageID: env.MessageID(), Action: action}, rcpts)
	}
	return nil
}

// onceKey is the key a message from another operator is taken once by
// (storage.Delivery.Once): a hash of the envelope sender's domain (which
// the MX checked belongs to that operator) and the Message-ID. An
// operator that died between our 250 and recording it sends the message
// again (RFC 5321 §6.1 allows the duplicate); the mailboxes that have the
// key already drop it. Mail without a Message-ID, and mail from our own
// users, have no key.
func onceKey(env *Envelope) string {
	if env.Source.Peer == nil {
		return ""
	}
	id := strings.TrimSpace(env.Header.Get("Message-Id"))
	if id == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.ToLower(domainOf(env.From)) + "\x00" + id))
	return hex.EncodeToString(sum[:])
}

// notYetReceived returns the recipients whose mailbox has not recorded
// once, and logs the others.
func (t *storeTarget) notYetReceived(ctx context.Context, env *Envelope, once string, rcpts []*Recipient) ([]*Recipient, error) {
	ids := make([]int64, len(rcpts))
	for i, r := range rcpts {
		ids[i] = r.Mailbox
	}
	seen, err := t.p.store.Received(ctx, once, ids)
	if err != nil {
		return nil, temporary(err)
	}
	if len(seen) == 0 {
		return rcpts, nil
	}
	var out []*Recipient
	for _, r := range rcpts {
		if seen[r.Mailbox] {
			t.p.log.Info("duplicate from another operator dropped: the mailbox has this message already",
				"tx", env.ID, "rcpt", r.Address, "message_id", env.Header.Get("Message-Id"), "from", env.From)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (t *storeTarget) Commit(ctx context.Context, res *Committed) {}

func (t *storeTarget) Abort(ctx context.Context) { t.rcpts = nil }
