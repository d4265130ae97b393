// Package cache is the caching storage.Store that the protocol adapters
// read through (imap today, the patient portal next): it wraps any
// storage.Store, passes every write through to it, and keeps in memory
// what clients read again and again. The wrapped store stays the truth;
// the cache only accelerates.
//
// What it keeps:
//   - digests.go: the digests (header sections and summaries) of
//     recently read messages, server-wide, up to a byte budget
//     (Store.Digests).
package cache
