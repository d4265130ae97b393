package cache

import (
	"cmp"
	"container/list"
	"context"
	"slices"
	"sync"

	"github.com/carepost/carepost/storage"
)

// Digests reads the digests of the given UIDs (ascending) as the wrapped
// store's Digests does, answering from the digest cache those it holds
// (header sections and summaries of recently read messages, server-wide,
// up to Options.DigestBytes, least recently used out first) and reading
// the others in one call. Mail clients fetch the same message list again
// and again (at every synchronisation, from every device); a hit spares a
// read and two decryptions.
//
// A message never changes once stored, and a (mailbox ID, UID) pair names
// one message for the life of the store (storage.Store's contract: IDs
// are never reused), so entries need no invalidation: an expunged
// message's entry just ages out. Unlike the wrapped store's, the answer
// may therefore hold a message expunged since its digest was cached:
// callers match digests with the messages they know, by UID. The
// plaintext held is of the same kind as the header index's and never
// leaves the process.
func (c *Store) Digests(ctx context.Context, mailboxID int64, uids []uint32, header, summary bool) ([]storage.Digest, error) {
	if uids == nil || !header && !summary {
		// Every message (nil), or nothing worth caching.
		return c.Store.Digests(ctx, mailboxID, uids, header, summary)
	}
	out, miss := c.digests.getMany(mailboxID, uids, header, summary)
	c.digestHits.Add(uint64(len(out)))
	c.digestMisses.Add(uint64(len(miss)))
	if len(miss) == 0 {
		return out, nil
	}
	ds, err := c.Store.Digests(ctx, mailboxID, miss, header, summary)
	if err != nil {
		return nil, err
	}
	c.digests.putMany(mailboxID, ds)
	if len(out) == 0 {
		return ds, nil
	}
	out = append(out, ds...)
	slices.SortFunc(out, func(a, b storage.Digest) int { return cmp.Compare(a.UID, b.UID) })
	return out, nil
}

// DigestsHeld returns how many digests the cache holds and the bytes it
// counts for them against Options.DigestBytes.
func (c *Store) DigestsHeld() (entries, bytes int) {
	c.digests.mu.Lock()
	defer c.digests.mu.Unlock()
	return c.digests.ll.Len(), c.digests.size
}

// DefaultDigestBytes is the budget of the digest cache
// (Options.DigestBytes).
const DefaultDigestBytes = 32 << 20

// digestCache is the LRU behind Store.Digests.
type digestCache struct {
	mu   sync.Mutex
	max  int
	size int
	ll   *list.List // of *digestEntry, most recent first
	m    map[digestKey]*list.Element
}

type digestKey struct {
	mailbox int64
	uid     uint32
}

type digestEntry struct {
	key             digestKey
	header, summary []byte // nil: not read
}

// entryOverhead approximates the memory of an entry besides its bytes.
const entryOverhead = 160

func newDigestCache(max int) *digestCache {
	return &digestCache{max: max, ll: list.New(), m: map[digestKey]*list.Element{}}
}

// bytes is what the cache holds, overheads included.
func (c *digestCache) bytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

// getMany returns the digests of uids that it holds with what is asked,
// and the UIDs it does not, under one lock (every session of the server
// shares it).
func (c *digestCache) getMany(mailboxID int64, uids []uint32, header, summary bool) (hit []storage.Digest, miss []uint32) {
	hit = make([]storage.Digest, 0, len(uids))
	k := digestKey{mailbox: mailboxID}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, uid := range uids {
		k.uid = uid
		if d, ok := c.getLocked(k, header, summary); ok {
			hit = append(hit, d)
		} else {
			miss = append(miss, uid)
		}
	}
	return hit, miss
}

// get returns the digest of uid when it holds what is asked (a header
// section, a summary or both).
func (c *digestCache) get(k digestKey, header, summary bool) (storage.Digest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(k, header, summary)
}

func (c *digestCache) getLocked(k digestKey, header, summary bool) (storage.Digest, bool) {
	el, ok := c.m[k]
	if !ok {
		return storage.Digest{}, false
	}
	e := el.Value.(*digestEntry)
	if header && e.header == nil || summary && e.summary == nil {
		return storage.Digest{}, false
	}
	c.ll.MoveToFront(el)
	d := storage.Digest{UID: k.uid}
	if header {
		d.Header = e.header
	}
	if summary {
		d.Summary = e.summary
	}
	return d, true
}

// forget drops the entry of an expunged message, if there is one.
func (c *digestCache) forget(k digestKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		e := el.Value.(*digestEntry)
		c.ll.Remove(el)
		delete(c.m, k)
		c.size -= len(e.header) + len(e.summary) + entryOverhead
	}
}

// put records what a Digests call read. A message without a summary (too
// large, or stored before summaries) stays without one here, so that a
// FETCH of its summary reads it again and falls back as before.
func (c *digestCache) put(k digestKey, d storage.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, d)
}

// putMany is put for what one Digests call read, under one lock.
func (c *digestCache) putMany(mailboxID int64, ds []storage.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range ds {
		c.putLocked(digestKey{mailbox: mailboxID, uid: ds[i].UID}, ds[i])
	}
}

func (c *digestCache) putLocked(k digestKey, d storage.Digest) {
	if d.Header == nil && d.Summary == nil {
		return
	}
	if el, ok := c.m[k]; ok {
		e := el.Value.(*digestEntry)
		c.size -= len(e.header) + len(e.summary)
		if d.Header != nil {
			e.header = d.Header
		}
		if d.Summary != nil {
			e.summary = d.Summary
		}
		c.size += len(e.header) + len(e.summary)
		c.ll.MoveToFront(el)
	} else {
		e := &digestEntry{key: k, header: d.Header, summary: d.Summary}
		c.m[k] = c.ll.PushFront(e)
		c.size += len(e.header) + len(e.summary) + entryOverhead
	}
	for c.size > c.max && c.ll.Len() > 0 {
		el := c.ll.Back()
		e := el.Value.(*digestEntry)
		c.ll.Remove(el)
		delete(c.m, e.key)
		c.size -= len(e.header) + len(e.summary) + entryOverhead
	}
}
