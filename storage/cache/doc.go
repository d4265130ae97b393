// Package cache is the caching storage.Store that the protocol adapters
// read through (imap today, the patient portal next): it wraps any
// storage.Store, passes every write through to it, and keeps in memory
// what clients read again and again. The wrapped store stays the truth;
// the cache only accelerates, and is kept fresh by the store's hints
// (Watch) and Changes, never trusted over them. One cache serves a whole
// server (server.Server.Cache), so that every session and every adapter
// shares its memory.
//
// What it keeps:
//   - mailbox.go, pull.go: the state of each open mailbox (Store.Open,
//     Mailbox.Release): its UIDs in order and the metadata of each message
//     (flags, internal date, size, MODSEQ: 32 bytes a message, the flag
//     sets shared between messages), from one snapshot, then applying the
//     store's feed while its MODSEQs follow, pulling Changes when they
//     jump, when another writer's hint says more, every few seconds
//     anyway, and when a user confirms its own write (Mailbox.Ensure).
//     A subscriber (cache.Listener) hears of each change applied, under
//     the mailbox's lock, numbered as the cache numbered the messages when
//     it happened.
//   - headerindex.go: per open mailbox, an index of the header fields
//     searched most (From, To, Cc, Bcc, Subject, the Date's day), built on
//     the first search that asks for it and freed with the mailbox.
//   - digests.go: the digests (header sections and summaries) of
//     recently read messages, server-wide, up to a byte budget
//     (Store.Digests).
//
// What it leaves to the protocols, and why:
//   - What is per session stays with the session: IMAP's sequence numbers
//     as a client knows them, its queue of pending updates, the messages
//     that are \Recent for it, its saved search. The cache numbers messages
//     once for everyone (index+1 in Mailbox.UIDsLocked); imap translates.
//   - The texts a search compares are the searcher's (Indexer): IMAP's
//     SEARCH semantics (RFC 2047 decoding, how an address is spelled)
//     live in imap, and the index holds exactly the strings its matching
//     would compare, so that the index and reading the header answer
//     alike. An index is built by one Indexer; another one gets no index
//     rather than a wrong one.
//   - Two things IMAP asks for are kept here although only IMAP asks for
//     them today, because they change with the mailbox's state under its
//     lock: the list of flags seen in the mailbox, in the order first seen
//     (IMAP sends FLAGS before a response that uses a new keyword, RFC
//     9051 §7.3.5; the portal can show labels from it), and the watermark
//     of \Recent claims, which is a cache of the store's own (ClaimRecent:
//     \Recent is per server, storage/storage.go), so that the sessions of
//     a server ask the store once per arrival instead of once each.
package cache
