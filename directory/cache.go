package directory

import (
	"context"
	"errors"
	"time"
)

// The entry cache. Every message reads the directory entry of each of its
// recipients and of its sender (ResolveRecipient, Delegations); under load
// that was a database read per address per message (issue #8: "no
// per-message re-read of the directory"). Entries are kept for entryTTL.
// A change made through this Directory (the same process) empties the
// cache at once; one made by another process (`carepost dir suspend` beside
// a running server, another cluster node) is seen within entryTTL.
// Logins do not use it: they read the entry and credentials afresh.

// entryTTL bounds how long another process's change takes to be seen.
const entryTTL = 2 * time.Second

// maxCachedEntries bounds the memory of the cache; past it the cache is
// emptied and fills again with the addresses in use.
const maxCachedEntries = 50000

type cachedEntry struct {
	e       Entry
	missing bool // ErrNotFound, cached too: a flood to unknown addresses
	expires time.Time
}

// entry returns the entry of a canonical address, from the cache when
// fresh. ErrNotFound for an unknown address.
func (d *Directory) entry(ctx context.Context, addr string) (Entry, error) {
	now := d.now()
	d.entryMu.Lock()
	c, ok := d.entries[addr]
	d.entryMu.Unlock()
	if ok && now.Before(c.expires) {
		if c.missing {
			return Entry{}, ErrNotFound
		}
		return c.e, nil
	}
	e, err := d.store.GetEntry(ctx, addr)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return e, err
	}
	d.entryMu.Lock()
	if d.entries == nil || len(d.entries) >= maxCachedEntries {
		d.entries = map[string]cachedEntry{}
	}
	d.entries[addr] = cachedEntry{e: e, missing: err != nil, expires: now.Add(entryTTL)}
	d.entryMu.Unlock()
	return e, err
}

// forgetEntries empties the cache after a change made through d.
func (d *Directory) forgetEntries() {
	d.entryMu.Lock()
	d.entries = nil
	d.entryMu.Unlock()
}
