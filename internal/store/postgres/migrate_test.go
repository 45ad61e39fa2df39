//go:build unix

package postgres

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/storetest"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// rawPool connects to dsn without migrating.
func rawPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func embeddedVersions(t *testing.T) []int {
	t.Helper()
	all, err := store.LoadMigrations(migrations())
	if err != nil || len(all) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(all), err)
	}
	var versions []int
	for _, m := range all {
		versions = append(versions, m.Version)
	}
	return versions
}

type migrationRow struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

func schemaMigrations(t *testing.T, pool *pgxpool.Pool) []migrationRow {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.Version, &r.Name, &r.AppliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConcurrentOpensMigrateOnce starts four nodes on an empty database at
// the same moment: each opens, and each migration is applied by exactly one.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := testpeer.StartPostgres(t)
	versions := embeddedVersions(t)
	const nodes = 4
	applied := make([][]int, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			var s *Store
			s, applied[i], errs[i] = open(t.Context(), dsn)
			if s != nil {
				s.Close()
			}
		})
	}
	close(start)
	wg.Wait()
	var all []int
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: open: %v", i, errs[i])
		}
		all = append(all, applied[i]...)
	}
	slices.Sort(all)
	if !reflect.DeepEqual(all, versions) {
		t.Fatalf("the nodes applied %v between them (%v), want each of %v once", all, applied, versions)
	}
	pool := rawPool(t, dsn)
	before := schemaMigrations(t, pool)
	if len(before) != len(versions) {
		t.Fatalf("schema_migrations = %v, want versions %v", before, versions)
	}

	// Opening again applies nothing and leaves the history as it was.
	s, again, err := open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(again) != 0 {
		t.Fatalf("reopen applied %v", again)
	}
	if got := schemaMigrations(t, pool); !reflect.DeepEqual(got, before) {
		t.Fatalf("schema_migrations = %v, was %v", got, before)
	}
}

// TestConcurrentMigrateSlow widens the window: a slow first migration, run by
// four sessions at once, each with a side effect that shows how often it ran.
func TestConcurrentMigrateSlow(t *testing.T) {
	dsn := testpeer.StartPostgres(t)
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte("CREATE TABLE a (x integer);\nSELECT pg_sleep(0.3);\nINSERT INTO a VALUES (1);")},
		"0002_b.sql": {Data: []byte("INSERT INTO a VALUES (2);")},
	}
	const sessions = 4
	applied := make([][]int, sessions)
	errs := make([]error, sessions)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range sessions {
		pool := rawPool(t, dsn) // a pool each: a session each, as on separate nodes
		wg.Go(func() {
			<-start
			applied[i], errs[i] = migrate(t.Context(), pool, fsys)
		})
	}
	close(start)
	wg.Wait()
	var all []int
	for i := range sessions {
		if errs[i] != nil {
			t.Fatalf("session %d: migrate: %v", i, errs[i])
		}
		all = append(all, applied[i]...)
	}
	slices.Sort(all)
	if !reflect.DeepEqual(all, []int{1, 2}) {
		t.Fatalf("the sessions applied %v between them (%v), want 1 and 2 once", all, applied)
	}
	var xs []int
	rows, err := rawPool(t, dsn).Query(t.Context(), `SELECT x FROM a ORDER BY x`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var x int
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(xs, []int{1, 2}) {
		t.Fatalf("table a holds %v, want [1 2]: a migration ran more than once", xs)
	}
}

func TestMigrateSteps(t *testing.T) {
	ctx := context.Background()
	pool := rawPool(t, testpeer.StartPostgres(t))
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte("CREATE TABLE a (x integer);\nINSERT INTO a VALUES (1);")},
		"0002_b.sql": {Data: []byte("ALTER TABLE a ADD COLUMN y text;")},
		"README.md":  {Data: []byte("not a migration")},
	}
	if applied, err := migrate(ctx, pool, fsys); err != nil || !reflect.DeepEqual(applied, []int{1, 2}) {
		t.Fatalf("migrate = %v, %v; want [1 2]", applied, err)
	}

	// A failing migration leaves nothing of itself behind, and what came
	// before it stays applied.
	fsys["0003_c.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (x integer);\nINSERT INTO nowhere VALUES (1);")}
	fsys["0004_d.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE d (x integer);")}
	applied, err := migrate(ctx, pool, fsys)
	if err == nil || !strings.Contains(err.Error(), "0003_c.sql") || len(applied) != 0 {
		t.Fatalf("migrate with a broken 0003 = %v, %v; want an error naming it", applied, err)
	}
	for _, table := range []string{"c", "d"} {
		var n int
		if err := pool.QueryRow(ctx, `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1`, table).
			Scan(&n); err != nil || n != 0 {
			t.Fatalf("table %s exists after the failed migration (%d, %v)", table, n, err)
		}
	}
	// The failed run gave the lock back.
	var locks int
	if err := pool.QueryRow(ctx, `SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&locks); err != nil || locks != 0 {
		t.Fatalf("%d advisory locks held after a failed migration (%v), want none", locks, err)
	}

	fsys["0003_c.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (x integer);")}
	if applied, err := migrate(ctx, pool, fsys); err != nil || !reflect.DeepEqual(applied, []int{3, 4}) {
		t.Fatalf("migrate after the fix = %v, %v; want [3 4]", applied, err)
	}
	if applied, err := migrate(ctx, pool, fsys); err != nil || len(applied) != 0 {
		t.Fatalf("migrate again = %v, %v; want nothing applied", applied, err)
	}
	var x int
	if err := pool.QueryRow(ctx, `SELECT x FROM a`).Scan(&x); err != nil || x != 1 {
		t.Fatalf("data of 0001: %d, %v", x, err)
	}

	// A database from a newer program is refused.
	delete(fsys, "0004_d.sql")
	if _, err := migrate(ctx, pool, fsys); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("migrate of a newer database: %v, want a refusal", err)
	}
}

// Migration 3 counts the tasks each project already holds: the quota of an
// upgraded database is right from its first create.
func TestMigrationCountsExistingTasks(t *testing.T) {
	ctx := context.Background()
	pool := rawPool(t, testpeer.StartPostgres(t))
	if _, err := migrate(ctx, pool, storetest.MigrationsUpTo(t, migrations(), 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO projects (id, account_id, region, create_time, callback_key)
		VALUES ($1, 'a', 'r', now(), ''), ('empty', 'a', 'r', now(), '')`, crashProject); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		if _, err := pool.Exec(ctx, taskInsert, taskArgs(crashTask(n))...); err != nil {
			t.Fatal(err)
		}
	}
	if applied, err := migrate(ctx, pool, migrations()); err != nil || !slices.Contains(applied, 3) {
		t.Fatalf("migrate to the latest: %v, %v", applied, err)
	}
	for id, want := range map[string]int{crashProject: 3, "empty": 0} {
		var n int
		if err := pool.QueryRow(ctx, `SELECT task_count FROM projects WHERE id = $1`, id).Scan(&n); err != nil || n != want {
			t.Fatalf("project %s: task_count %d, %v; want %d", id, n, err, want)
		}
	}
}
