package imap

import (
	"context"

	"carepost/storage"
)

// Digests counts the header bytes read in batches too (SEARCH reads
// headers through Store.Digests to build its index), and leaves out the
// UIDs in gone.
func (c *countingStore) Digests(ctx context.Context, mailboxID int64, uids []uint32, header, summary bool) ([]storage.Digest, error) {
	ds, err := c.Store.Digests(ctx, mailboxID, uids, header, summary)
	kept := ds[:0]
	for _, d := range ds {
		if c.gone[d.UID] {
			continue
		}
		c.read.Add(int64(len(d.Header)))
		kept = append(kept, d)
	}
	return kept, err
}

// SetMinIndexMessages changes the mailbox size from which SEARCH builds an
// index (1000), so that tests exercise it on small mailboxes; the returned
// function restores it. Tests that call it must not run in parallel.
func SetMinIndexMessages(n int) (undo func()) {
	old := minIndexMessages.Swap(int64(n))
	return func() { minIndexMessages.Store(old) }
}
