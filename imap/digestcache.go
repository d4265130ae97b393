package imap

import (
	"container/list"
	"sync"

	"carepost/storage"
)

// digestCache keeps the decrypted digests (header sections and summaries,
// Store.Digests) of recently fetched messages, server-wide, up to a byte
// budget, least recently used out first. Mail clients fetch the same
// message list again and again (at every synchronisation, from every
// device); a hit spares a read and two decryptions. A message never
// changes once stored and its UID is never given again in the same
// mailbox (UIDVALIDITY), so entries need no invalidation: an expunged
// message's entry just ages out. The plaintext it holds is of the same
// kind as the search index's (searchindex.go) and never leaves the
// process.
type digestCache struct {
	mu   sync.Mutex
	max  int
	size int
	ll   *list.List // of *digestEntry, most recent first
	m    map[digestKey]*list.Element
}

// digestCacheBytes is the budget of the server's digest cache.
const digestCacheBytes = 32 << 20

type digestKey struct {
	mailbox  int64
	validity uint32
	uid      uint32
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

// get returns the digest of uid when it holds what is asked (a header
// section, a summary or both).
func (c *digestCache) get(k digestKey, header, summary bool) (storage.Digest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
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

// put records what a Digests call read. A message without a summary (too
// large, or stored before summaries) stays without one here, so that a
// FETCH of its summary reads it again and falls back as before.
func (c *digestCache) put(k digestKey, d storage.Digest) {
	if d.Header == nil && d.Summary == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
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
