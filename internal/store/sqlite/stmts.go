package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCache keeps prepared statements by their SQL, for the queries that
// run all the time (list, the event backlog, create). SQLite parses a
// statement on every Exec and Query otherwise: for list's wide SELECT the
// parse cost more than the query.
//
// A statement must be fetched before the transaction that uses it begins
// (through tx.StmtContext): preparing takes a connection of the pool, and
// the writer's pool has one, which its own transaction holds.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt)}
}

// get returns the statements for the given queries, preparing those not
// seen before. The set of queries is the program's own, so the cache is
// bounded by the code.
func (c *stmtCache) get(ctx context.Context, queries ...string) ([]*sql.Stmt, error) {
	out := make([]*sql.Stmt, len(queries))
	for i, q := range queries {
		c.mu.Lock()
		st := c.m[q]
		c.mu.Unlock()
		if st == nil {
			prepared, err := c.db.PrepareContext(ctx, q)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			if st = c.m[q]; st == nil {
				st, c.m[q] = prepared, prepared
			} else {
				prepared.Close() // another goroutine was first
			}
			c.mu.Unlock()
		}
		out[i] = st
	}
	return out, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}
