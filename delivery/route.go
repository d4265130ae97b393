package delivery

import (
	"context"
	"errors"
	"fmt"

	"carepost/storage"
)

// inbox returns the ID of account's INBOX. The storage account of a
// mailbox is created on its first delivery (the directory entry may have
// been added by an import that does not touch the mail store):
// CreateAccount is idempotent, so concurrent first deliveries are fine.
func (p *Pipeline) inbox(ctx context.Context, account string) (int64, error) {
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
	return mb.ID, nil
}
