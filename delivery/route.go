package delivery

import (
	"context"
	"errors"
	"fmt"

	"github.com/carepost/carepost/storage"
)

// inbox returns the ID of account's INBOX. The storage account of a
// mailbox is created on its first delivery (the directory entry may have
// been added by an import that does not touch the mail store):
// CreateAccount is idempotent, so concurrent first deliveries are fine.
//
// The ID is cached: an INBOX is never deleted and keeps its ID when renamed
// (RFC 9051 §6.3.6 leaves it in place, empty), so the lookup, a read
// transaction per recipient, was needless work on every message. Should a
// delivery find the mailbox gone, the cache is emptied (forgetInboxes).
func (p *Pipeline) inbox(ctx context.Context, account string) (int64, error) {
	p.inboxMu.Lock()
	id, ok := p.inboxes[account]
	p.inboxMu.Unlock()
	if ok {
		return id, nil
	}
	mb, err := p.store.GetMailbox(ctx, account, "INBOX")
	if errors.Is(err, storage.ErrNoAccount) || errors.Is(err, storage.ErrNoMailbox) {
		if err := p.store.CreateAccount(ctx, account); err != nil {
			return 0, fmt.Errorf("delivery: create storage account %s: %w", account, err)
		}
		p.log.Info("storage account created on first delivery", "account", account)
		mb, err = p.store.GetMailbox(ctx, account, "INBOX")
	}
	if err != nil {
		return 0, fmt.Errorf("delivery: INBOX of %s: %w", account, err)
	}
	p.inboxMu.Lock()
	if p.inboxes == nil || len(p.inboxes) >= 100000 {
		p.inboxes = map[string]int64{}
	}
	p.inboxes[account] = mb.ID
	p.inboxMu.Unlock()
	return mb.ID, nil
}

// forgetInboxes empties the INBOX cache.
func (p *Pipeline) forgetInboxes() {
	p.inboxMu.Lock()
	p.inboxes = nil
	p.inboxMu.Unlock()
}
