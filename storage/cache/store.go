package cache

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/carepost/carepost/storage"
)

// Options configure a cache.
type Options struct {
	// DigestBytes is the budget of the digest cache (Store.Digests); 0
	// means DefaultDigestBytes.
	DigestBytes int
	// ResyncInterval is how often every open mailbox pulls its changes
	// from the store whatever the store's hints said (pull.go); 0 means
	// DefaultResyncInterval.
	ResyncInterval time.Duration
	// Logger receives what the cache's background work could not do; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Store is a storage.Store that caches what the protocol adapters read
// most; see the package comment. Every method it does not name passes
// through to the wrapped store.
type Store struct {
	storage.Store // the wrapped store: the truth

	opts    Options
	log     *slog.Logger
	digests *digestCache // digests.go

	// Hit counts, for the operator's metrics (Stats).
	digestHits, digestMisses   atomic.Uint64
	mailboxHits, mailboxMisses atomic.Uint64

	mu        sync.Mutex
	mailboxes map[int64]*Mailbox // open (mailbox.go)
	// base is the parent of the cache's own storage calls: Stop cancels
	// it.
	base   context.Context
	cancel context.CancelFunc
}

// New returns a cache in front of store. Stop (or Close) ends its
// background work.
func New(store storage.Store, opts Options) *Store {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DigestBytes <= 0 {
		opts.DigestBytes = DefaultDigestBytes
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = DefaultResyncInterval
	}
	c := &Store{Store: store, opts: opts, log: opts.Logger, digests: newDigestCache(opts.DigestBytes),
		mailboxes: map[int64]*Mailbox{}}
	c.base, c.cancel = context.WithCancel(context.Background())
	go c.resyncLoop(opts.ResyncInterval)
	return c
}

// Stats is what the cache has done since it started, for monitoring
// (carepost_cache_* metrics): hit rates are hits / (hits + misses).
type Stats struct {
	// DigestHits and DigestMisses count the digests Digests was asked
	// for, answered from memory or read from the store.
	DigestHits, DigestMisses uint64
	// MailboxHits and MailboxMisses count Open: a mailbox state already
	// held (another session has it open) or loaded from the store.
	MailboxHits, MailboxMisses uint64
	// OpenMailboxes is the number of mailbox states held now;
	// DigestBytes the bytes the digest cache holds now.
	OpenMailboxes, DigestBytes int
}

// Stats returns the cache's counts.
func (c *Store) Stats() Stats {
	return Stats{
		DigestHits: c.digestHits.Load(), DigestMisses: c.digestMisses.Load(),
		MailboxHits: c.mailboxHits.Load(), MailboxMisses: c.mailboxMisses.Load(),
		OpenMailboxes: c.Opened(), DigestBytes: c.digests.bytes(),
	}
}

// Wrapped returns the store the cache is in front of, for reads that
// should neither use nor fill the cache (a scan of every header of a
// large mailbox would only push out what clients fetch again).
func (c *Store) Wrapped() storage.Store { return c.Store }

// Stop ends the cache's background work and cancels its storage calls
// under way, without closing the wrapped store: the owner of the cache
// calls it once the cache's users (sessions) are gone.
func (c *Store) Stop() error {
	c.cancel()
	return nil
}

// Close stops the cache, then closes the wrapped store.
func (c *Store) Close() error {
	c.Stop()
	return c.Store.Close()
}
