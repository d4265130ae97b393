package sqlite

import (
	"slices"
	"sync"

	"carepost/storage"
)

// watchers is the in-process change bus: the committer publishes the
// changes of each committed transaction, in commit order, before it answers
// the callers (so a session that gets nil from a write and then waits on
// its watch sees its own change first).
type watchers struct {
	mu sync.RWMutex
	m  map[int64]map[*watcher]struct{}
}

type watcher struct{ fn func(storage.Change) }

// Watch implements storage.Store. fn is called from the committer with
// db's watch lock held: it must not block, nor call Watch or a stop
// function; it queues the change and returns. Each call gets its own copy of
// Change.Flags.
func (db *DB) Watch(mailboxID int64, fn func(storage.Change)) (stop func()) {
	w := &watcher{fn: fn}
	ws := &db.watchers
	ws.mu.Lock()
	if ws.m == nil {
		ws.m = make(map[int64]map[*watcher]struct{})
	}
	if ws.m[mailboxID] == nil {
		ws.m[mailboxID] = make(map[*watcher]struct{})
	}
	ws.m[mailboxID][w] = struct{}{}
	ws.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			ws.mu.Lock()
			delete(ws.m[mailboxID], w)
			if len(ws.m[mailboxID]) == 0 {
				delete(ws.m, mailboxID)
			}
			ws.mu.Unlock()
		})
	}
}

// publish calls the watchers of each change. Holding the read lock during
// the calls means that once stop returns, fn is not called again.
func (ws *watchers) publish(changes []storage.Change) {
	if len(changes) == 0 {
		return
	}
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	for _, c := range changes {
		for w := range ws.m[c.MailboxID] {
			c := c
			c.Flags = slices.Clone(c.Flags)
			w.fn(c)
		}
	}
}
