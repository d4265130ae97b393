package imap

import (
	"strings"
	"sync/atomic"

	"github.com/carepost/carepost/storage/cache"
)

// What SEARCH asks of the header index that storage/cache keeps per open
// mailbox (storage/cache/headerindex.go): the cache keeps the index, this
// package keeps the IMAP semantics of SEARCH. searchTexts gives the index
// the very strings matchHeader compares a needle with, so that the index
// answers what reading the header answers (TestSearchIndexSameAsHeaders).

// searchTexts is SEARCH's cache.Indexer: for a value of an indexed field,
// every string matchHeader compares the needle with, lower-cased: the raw
// value, its RFC 2047 decoding and, for address fields, each address as
// matchAddresses formats it.
type searchTexts struct{}

func (searchTexts) IndexTexts(field, raw string, put func(string)) {
	put(strings.ToLower(raw))
	if dec, err := mimeDecoder.DecodeHeader(raw); err == nil {
		put(strings.ToLower(dec))
	}
	if addressHeaders[strings.ToLower(field)] {
		forEachAddressText(raw, func(a string) bool {
			put(strings.ToLower(a))
			return false
		})
	}
}

// matchIndexed answers a HEADER criterion the index holds (n.field >= 0)
// from an entry.
func matchIndexed(snap *cache.IndexSnapshot, e *cache.IndexEntry, n *indexedNeedle) bool {
	if !e.Has(n.field) {
		return false
	}
	if n.any {
		return true
	}
	return snap.Contains(e, n.field, n.needle)
}

// minIndexMessages is the size from which SEARCH asks for a mailbox's
// index: a smaller one is searched with a single Store.Digests call,
// which costs about a millisecond, and the many small mailboxes of a
// server keep no memory for SEARCH. Tests lower it (atomic: a server of an
// earlier test may still be searching).
var minIndexMessages atomic.Int64

func init() { minIndexMessages.Store(1000) }

// headerBatch is the number of headers SEARCH reads per Store.Digests
// call without the index or for fields it lacks: large enough that the
// per-call cost vanishes, small enough to hold little memory (as the
// index's own batches, cache.IndexBatch).
const headerBatch = cache.IndexBatch
