package delivery

import (
	"bytes"
	"context"
	"fmt"

	"github.com/carepost/carepost/auth"
	"github.com/carepost/carepost/directory"
	"github.com/carepost/carepost/refusal"
	"github.com/carepost/carepost/storage"
)

// queueTarget is the target of RouteRemote: recipients of other operators
// of the trust space. Body adds one outbound queue entry per version to
// the batch (storage.Delivery.Queue), so that the entry is committed in the
// same transaction as the local copies of the same message and is durable
// before the adapter says 250 (SPEC §4 "Queue"). The runner (queue/)
// delivers it afterwards.
type queueTarget struct {
	p     *Pipeline
	rcpts []*Recipient
}

func (t *queueTarget) Name() string { return "queue" }

func (t *queueTarget) AddRcpt(ctx context.Context, r *Recipient) error {
	t.rcpts = append(t.rcpts, r)
	return nil
}

func (t *queueTarget) Body(ctx context.Context, env *Envelope, vs []Version, b *Batch) error {
	for _, v := range vs {
		addrs := make([]string, len(v.Recipients))
		for i, r := range v.Recipients {
			addrs[i] = r.Address
		}
		b.Deliver(t, storage.Delivery{Body: v.Msg.Open(), Queue: &storage.Enqueue{From: env.From, Recipients: addrs},
			MessageID: env.MessageID(), Action: "queue.add"}, v.Recipients)
	}
	return nil
}

// Commit wakes the runner: the entries are durable.
func (t *queueTarget) Commit(ctx context.Context, res *Committed) {
	if t.p.opts.Queued != nil {
		t.p.opts.Queued()
	}
}

func (t *queueTarget) Abort(ctx context.Context) { t.rcpts = nil }

// Notify delivers a message the server itself writes (a delivery status
// notification, RFC 3464) to a local mailbox, through the whole path:
// null reverse-path (RFC 5321 §4.5.5: nobody answers a notification with
// another), trace field, summary, one durable commit, hooks. Only local
// recipients are accepted; the message's From: is not checked, since it
// is ours.
func (p *Pipeline) Notify(ctx context.Context, rcpt string, msg []byte) error {
	t := p.Begin(ctx, Source{System: true, TLS: true, Helo: p.opts.Hostname})
	defer t.Abort()
	if err := t.Sender(ctx, ""); err != nil {
		return err
	}
	if err := t.AddRecipient(ctx, rcpt); err != nil {
		return err
	}
	return t.Deliver(ctx, bytes.NewReader(msg))
}

// remoteRecipient decides on a recipient of another operator of the trust
// space (AddRecipient).
func (t *Transaction) remoteRecipient(r directory.Recipient) error {
	if !t.src.Submission {
		return newError(refusal.RelayDenied, r.Address, nil,
			"This server does not relay: %s is not one of its mailboxes.", r.Address)
	}
	if !t.p.opts.Outbound {
		return newError(refusal.FederationDisabled, r.Address, nil,
			"%s belongs to another operator of the secure health messaging space, and delivery to other operators is not enabled on this server yet.", r.Address)
	}
	return nil
}

// SendAs sends a message the server writes on behalf of one of its own
// mailboxes (a DMP deposit receipt from the patient's mailbox or the
// deposit address) to rcpt, local or of another operator, through the
// whole path as that mailbox would submit it: sender rules, trace field,
// DKIM, the S/MIME gateway (signed with the mailbox's certificate,
// encrypted to a remote recipient), the outbound queue. The principal is
// the mailbox with mechanism SYSTEM: the audit trail names it as the
// actor, done by the server.
func (p *Pipeline) SendAs(ctx context.Context, from, rcpt string, msg []byte) error {
	e, err := p.dir.Lookup(ctx, from)
	if err != nil {
		return fmt.Errorf("delivery: send as %s: %w", from, err)
	}
	pr := &auth.Principal{Address: e.Address, Kind: e.Kind, NationalID: e.NationalID, Organisation: e.Organisation,
		Mechanism: auth.MechSystem}
	ctx = auth.WithPrincipal(ctx, pr)
	t := p.Begin(ctx, Source{Principal: pr, Submission: true, TLS: true, Helo: p.opts.Hostname})
	defer t.Abort()
	if err := t.Sender(ctx, e.Address); err != nil {
		return err
	}
	if err := t.AddRecipient(ctx, rcpt); err != nil {
		return err
	}
	return t.Deliver(ctx, bytes.NewReader(msg))
}
