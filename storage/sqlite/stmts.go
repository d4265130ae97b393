package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// Prepared statements, kept for the life of the DB.
//
// modernc.org/sqlite, through database/sql, parses the SQL text again on
// every call that is not a prepared statement: profiles of durable
// submission showed the SQL parser (yy_reduce) at 15 % of the server's CPU.
// Every query text seen is therefore prepared once per pool and reused;
// database/sql keeps the prepared form per connection. The set of texts is
// bounded (queries are constants, or built from a bounded set of parts);
// past maxStmts new texts simply run unprepared.

const maxStmts = 512

type stmtCache struct {
	db *sql.DB
	wg sync.WaitGroup // preparations under way
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}}
}

// get returns the prepared statement for q, or nil when it is not ready:
// the caller then runs q unprepared. A text is prepared in the background
// on first use, never inside the caller's transaction: preparing needs a
// connection of the pool, and waiting for one while holding another can
// deadlock (the writer pool has a single connection, held by the
// committer's transaction). Texts holding several statements are never
// prepared (SQLite would prepare only the first).
func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.RLock()
	s, ok := c.m[q]
	c.mu.RUnlock()
	if ok || strings.Contains(strings.TrimRight(strings.TrimSpace(q), ";"), ";") {
		return s // nil while being prepared
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[q]; ok || c.m == nil || len(c.m) >= maxStmts {
		return nil
	}
	c.m[q] = nil // being prepared
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		s, err := c.db.PrepareContext(context.Background(), q)
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err != nil:
			// Leave the nil entry: the text keeps running unprepared,
			// and its errors are reported there.
		case c.m == nil: // closed meanwhile
			s.Close()
		default:
			c.m[q] = s
		}
	}()
	return nil
}

// close stops new preparations, waits for those under way (so that no
// connection is opened after the pool closes) and closes the statements.
func (c *stmtCache) close() {
	c.mu.Lock()
	m := c.m
	c.m = nil
	c.mu.Unlock()
	c.wg.Wait()
	for _, s := range m {
		if s != nil {
			s.Close()
		}
	}
}

// stx is a transaction whose queries use the cache.
type stx struct {
	*sql.Tx
	c *stmtCache
}

func (t stx) QueryRowContext(cx context.Context, q string, args ...any) *sql.Row {
	if s := t.c.get(cx, q); s != nil {
		return t.Tx.StmtContext(cx, s).QueryRowContext(cx, args...)
	}
	return t.Tx.QueryRowContext(cx, q, args...)
}

func (t stx) QueryContext(cx context.Context, q string, args ...any) (*sql.Rows, error) {
	if s := t.c.get(cx, q); s != nil {
		return t.Tx.StmtContext(cx, s).QueryContext(cx, args...)
	}
	return t.Tx.QueryContext(cx, q, args...)
}

func (t stx) ExecContext(cx context.Context, q string, args ...any) (sql.Result, error) {
	if s := t.c.get(cx, q); s != nil {
		return t.Tx.StmtContext(cx, s).ExecContext(cx, args...)
	}
	return t.Tx.ExecContext(cx, q, args...)
}

// PrepareContext returns q prepared for this transaction, from the cache
// when it is there; the transaction closes it.
func (t stx) PrepareContext(cx context.Context, q string) (*sql.Stmt, error) {
	if s := t.c.get(cx, q); s != nil {
		return t.Tx.StmtContext(cx, s), nil
	}
	return t.Tx.PrepareContext(cx, q)
}

// queryRow runs a one-row query on a pool outside a transaction.
func (c *stmtCache) queryRow(cx context.Context, q string, args ...any) *sql.Row {
	if s := c.get(cx, q); s != nil {
		return s.QueryRowContext(cx, args...)
	}
	return c.db.QueryRowContext(cx, q, args...)
}

// poolQ runs queries on a pool outside any transaction, each statement in
// its own snapshot. Reads of one statement (the messages of a FETCH, a
// body) use it: an explicit read transaction costs a BEGIN and a ROLLBACK
// more, about 6 % of the CPU under imaptest's stress load.
type poolQ struct{ c *stmtCache }

func (p poolQ) QueryRowContext(cx context.Context, q string, args ...any) *sql.Row {
	return p.c.queryRow(cx, q, args...)
}

func (p poolQ) QueryContext(cx context.Context, q string, args ...any) (*sql.Rows, error) {
	if s := p.c.get(cx, q); s != nil {
		return s.QueryContext(cx, args...)
	}
	return p.c.db.QueryContext(cx, q, args...)
}
