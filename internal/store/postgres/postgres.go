// Package postgres is the cluster store: every node of a cluster opens the
// same PostgreSQL database (pgx, a connection pool per node) and sees the
// same tasks, run states and outbox.
//
// Rules that span rows hold across nodes because each write transaction
// (READ COMMITTED, whatever the server's default) first takes the lock that
// serialises it with the writes it could race with, and only then reads; in
// READ COMMITTED each statement sees what was committed before it started,
// so the reads after the lock see the previous holder's commit:
//
//   - quota: a create with a quota locks its project's row (FOR NO KEY
//     UPDATE, which foreign-key checks do not wait for), then counts;
//   - one enabled task per destination: a create, and an update that leaves
//     a task enabled, take a transaction advisory lock on the destination
//     key (a 64-bit hash of it; a collision only serialises two unrelated
//     keys), then look for another task there;
//   - event seq: appending an event takes an advisory lock on its task ID
//     (the task's row may be gone: a delete's events outlive it), then
//     numbers it after the highest seq stored;
//   - generation: an update locks the task's row before comparing.
//
// Locks are taken in one order (task or project row, then destination, then
// event seq), so two writes cannot wait on each other; should the server
// still report a deadlock or a serialization failure, the write is retried.
// Every commit is durable when it returns: Open refuses a server or session
// with fsync or synchronous_commit off.
//
// Every create, update and delete of a task announces itself (NOTIFY, sent
// at commit) to the nodes that listen (ListenChanges), so the node running
// the task hears of it at once, whichever node served the call.
//
// The schema has its own history (migrations/), applied by Open under a
// session advisory lock, so nodes that start together apply it once.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/liverelay/liverelay/internal/store"
)

// Store implements store.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as libpq takes), checks that commits are durable, and applies
// pending migrations. ctx bounds the connecting and migrating, not the
// Store's life.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s, _, err := open(ctx, dsn)
	return s, err
}

// open is Open that also reports which migration versions it applied.
func open(ctx context.Context, dsn string) (*Store, []int, error) {
	// Errors name no part of the DSN: it may hold a password. pgx's own
	// errors redact it.
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: open: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "liverelay"
	}
	// pgxpool's default (the CPUs, at least 4) is tight for a node whose API
	// calls, state writes, callback workers and lease renewals share it: a
	// renewal queued behind them is a renewal late. pool_max_conns in the
	// URL still decides.
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = max(cfg.MaxConns, minPoolConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := checkDurable(ctx, pool); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("postgres: open: %w", err)
	}
	applied, err := migrate(ctx, pool, migrations())
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("postgres: open: %w", err)
	}
	return &Store{pool: pool}, applied, nil
}

// checkDurable verifies that a commit is on disk when it returns, as the
// store promises; the server's settings (or the DSN's options) can turn that
// off silently. Other synchronous_commit values than off all flush locally.
func checkDurable(ctx context.Context, pool *pgxpool.Pool) error {
	var fsync, syncCommit string
	if err := pool.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&fsync, &syncCommit); err != nil {
		return err
	}
	if fsync != "on" {
		return fmt.Errorf("the server runs with fsync = %s: commits would not survive a crash", fsync)
	}
	if syncCommit == "off" {
		return errors.New("synchronous_commit is off: a commit could be lost after it returned")
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// readCommitted is the isolation every write runs in: the locking described
// in the package comment relies on each statement seeing the latest commits.
var readCommitted = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}

// minPoolConns is the smallest pool a node opens unless told otherwise.
const minPoolConns = 16

const (
	writeAttempts  = 8
	retryBaseDelay = 5 * time.Millisecond
)

// write runs fn in a transaction and commits it, running it again (at most
// writeAttempts times in all) when the server aborted it for a deadlock or a
// serialization failure, or when the connection broke before the
// transaction began. fn must therefore be safe to run again.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, readCommitted, fn)
		if err == nil || attempt == writeAttempts || !retryable(err) {
			return err
		}
		// Jittered, so that two writers that collided do not collide again.
		delay := retryBaseDelay << (attempt - 1)
		delay = delay/2 + rand.N(delay)
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// retryable reports whether a failed transaction left nothing behind and may
// succeed when run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01" // serialization_failure, deadlock_detected
	}
	return pgconn.SafeToRetry(err)
}

// isUniqueViolation reports whether err is a unique_violation of the named
// constraint.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// Advisory lock keys. Each kind of lock hashes its subject with a prefix of
// its own, so a destination and a task ID never share a key by accident.
const (
	lockMigrate     = "liverelay/migrate"
	lockDestination = "liverelay/destination\x00"
	lockEventSeq    = "liverelay/event-seq\x00"
)

func lockKey(s string) int64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return int64(h.Sum64())
}

// lockXact takes a transaction advisory lock, released at commit or
// rollback.
func lockXact(ctx context.Context, tx pgx.Tx, key string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey(key))
	return err
}
