// Package sqlite is the single-node store: one SQLite file (pure Go driver,
// modernc.org/sqlite) in WAL mode.
//
// Every write goes through one connection, in a BEGIN IMMEDIATE transaction,
// so writes of this process queue in Go instead of fighting over SQLite's
// lock, and the rules checked inside a transaction (quota, one enabled task
// per destination) cannot race. Reads use a separate pool that WAL lets run
// beside the writer. synchronous=FULL makes every commit durable before the
// call returns, so a killed process loses no acknowledged write.
//
// Storage conventions (see migrations/0001_init.sql): times are unix
// milliseconds UTC, NULL for the zero time; string lists are JSON arrays.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/liverelay/liverelay/internal/store"
)

// busyTimeout bounds how long a connection waits for a lock held by another
// process (a second liverelay on the same file, a backup tool). Inside this
// process writes never wait on SQLite: they queue for the one writer.
const busyTimeout = 10 * time.Second

// Store implements store.Store on one SQLite file.
type Store struct {
	w *sql.DB // exactly one connection; every write goes through it
	r *sql.DB // read-only pool
	// Prepared statements of the hot queries, on each pool.
	ws, rs *stmtCache
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it if needed) the database file at path and applies
// pending migrations.
func Open(path string) (*Store, error) {
	s, _, err := open(path)
	return s, err
}

// open is Open that also reports which migration versions it applied.
func open(path string) (*Store, []int, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, nil, fmt.Errorf("sqlite: open %q: need a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	ctx := context.Background()

	w, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	if err := checkWriter(ctx, w); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), w.Close())
	}
	applied, err := migrate(ctx, w, mustSub(migrationFiles, "migrations"))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), w.Close())
	}

	// Readers are opened after the writer has switched the file to WAL, a
	// setting that lives in the file.
	r, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), w.Close())
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("sqlite: open %s: %w", path, err), r.Close(), w.Close())
	}
	return &Store{w: w, r: r, ws: newStmtCache(w), rs: newStmtCache(r)}, applied, nil
}

// dsn builds the driver's name for the file. The URI form lets any path
// through (SQLite decodes %XX); the driver reads the underscore keys and
// runs every _pragma on each new connection.
func dsn(abs string, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		// Truncate the WAL back to this size after a checkpoint, so one burst
		// of writes does not leave a large file behind for good.
		q.Add("_pragma", "journal_size_limit(67108864)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// checkWriter opens the writer's connection and verifies that the settings
// durability depends on took effect: SQLite ignores some silently (WAL on a
// file system without shared memory, for one).
func checkWriter(ctx context.Context, w *sql.DB) error {
	var mode string
	if err := w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal", mode)
	}
	var sync, fk int
	if err := w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
		return err
	}
	if sync != 2 { // FULL
		return fmt.Errorf("synchronous is %d, want 2 (FULL)", sync)
	}
	if err := w.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		return err
	}
	if fk != 1 {
		return errors.New("foreign keys are off")
	}
	return nil
}

// Close closes both pools. Closing the last connection checkpoints the WAL
// into the main file.
func (s *Store) Close() error {
	return errors.Join(s.rs.close(), s.ws.close(), s.r.Close(), s.w.Close())
}

// write runs fn in a transaction on the writer connection. fn must use only
// tx: asking s.w for another connection inside it would wait forever.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return rollback(tx, err)
	}
	return tx.Commit()
}

// rollback ends tx after err, keeping err's chain as it is unless the
// rollback fails too.
func rollback(tx *sql.Tx, err error) error {
	if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
		return errors.Join(err, rbErr)
	}
	return err
}
