package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"github.com/liverelay/liverelay/internal/store"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the PostgreSQL schema history, one file per version,
// named NNNN_what.sql. It is not the SQLite store's history: each dialect
// has its own. A file, once released, is never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

func migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // a constant directory that go:embed has already checked
	}
	return sub
}

// migrate applies the migrations of fsys that the database has not applied
// yet, each in its own transaction together with its schema_migrations row,
// so that a crash leaves every migration either wholly applied and recorded
// or not at all. Nodes starting at once take turns on a session advisory
// lock held for the whole run (creating schema_migrations included), and
// each finds what the previous one recorded. It returns the versions it
// applied.
func migrate(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) (applied []int, err error) {
	ms, err := store.LoadMigrations(fsys)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	// A session lock lives as long as the connection: it is released
	// below, or by closing the connection when that fails.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockKey(lockMigrate)); err != nil {
		conn.Release()
		return nil, fmt.Errorf("wait for the migration lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey(lockMigrate)); uerr != nil {
			c := conn.Hijack()
			err = errors.Join(err, c.Close(context.WithoutCancel(ctx)))
			return
		}
		conn.Release()
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var newest *int
	if err := conn.QueryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	if known := len(ms); newest != nil && (known == 0 || *newest > ms[known-1].Version) {
		// A newer binary migrated this database; running on would mean
		// guessing what its schema means.
		return nil, fmt.Errorf("database schema version %d is newer than this program knows", *newest)
	}
	for _, m := range ms {
		did, err := applyMigration(ctx, conn.Conn(), m)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if did {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m store.Migration) (applied bool, err error) {
	err = pgx.BeginTxFunc(ctx, conn, readCommitted, func(tx pgx.Tx) error {
		var one int
		switch err := tx.QueryRow(ctx, `SELECT 1 FROM schema_migrations WHERE version = $1`, m.Version).Scan(&one); {
		case err == nil:
			return nil // applied before
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		// No arguments: pgx sends it with the simple protocol, which runs
		// a file of several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return applied, nil
}
