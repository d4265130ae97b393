package cache

import (
	"bytes"
	"testing"

	"github.com/carepost/carepost/storage"
)

// The digest cache answers only what it holds, and keeps within its
// budget by dropping the least recently used entries.
func TestDigestCache(t *testing.T) {
	c := newDigestCache(10 * (100 + entryOverhead))
	k := func(uid uint32) digestKey { return digestKey{mailbox: 1, uid: uid} }
	hdr := bytes.Repeat([]byte("h"), 50)
	sum := bytes.Repeat([]byte("s"), 50)

	c.put(k(1), storage.Digest{UID: 1, Header: hdr})
	if _, ok := c.get(k(1), true, true); ok {
		t.Fatal("a header-only entry answered for a summary")
	}
	if d, ok := c.get(k(1), true, false); !ok || !bytes.Equal(d.Header, hdr) || d.Summary != nil {
		t.Fatalf("header: %+v %v", d, ok)
	}
	c.put(k(1), storage.Digest{UID: 1, Summary: sum})
	if d, ok := c.get(k(1), true, true); !ok || !bytes.Equal(d.Header, hdr) || !bytes.Equal(d.Summary, sum) {
		t.Fatalf("both: %+v %v", d, ok)
	}
	if _, ok := c.get(digestKey{mailbox: 2, uid: 1}, true, false); ok {
		t.Fatal("another mailbox answered")
	}
	if c.put(k(2), storage.Digest{UID: 2}); c.ll.Len() != 1 {
		t.Fatal("an empty digest was kept")
	}

	for uid := uint32(2); uid <= 30; uid++ {
		c.put(k(uid), storage.Digest{UID: uid, Header: hdr, Summary: sum})
		c.get(k(1), true, true) // keeps 1 recent
	}
	if c.size > c.max {
		t.Fatalf("size %d over the budget %d", c.size, c.max)
	}
	if _, ok := c.get(k(1), true, true); !ok {
		t.Fatal("the most recently used entry was dropped")
	}
	if _, ok := c.get(k(2), true, false); ok {
		t.Fatal("the oldest entry is still there")
	}
	if c.ll.Len() != len(c.m) || c.ll.Len() > 10 {
		t.Fatalf("%d entries in the list, %d in the map", c.ll.Len(), len(c.m))
	}
}
