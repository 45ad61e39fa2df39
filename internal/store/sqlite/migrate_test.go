package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/storetest"
)

func TestOpenAppliesMigrationsOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	all, err := store.LoadMigrations(mustSub(migrationFiles, "migrations"))
	if err != nil || len(all) == 0 {
		t.Fatalf("embedded migrations: %d, %v", len(all), err)
	}
	var versions []int
	for _, m := range all {
		versions = append(versions, m.Version)
	}

	s, applied, err := open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(applied, versions) {
		t.Fatalf("first open applied %v, want %v", applied, versions)
	}
	before := schemaMigrations(t, s.w)
	s.Close()

	for range 2 {
		s, applied, err = open(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(applied) != 0 {
			t.Fatalf("reopen applied %v", applied)
		}
		if got := schemaMigrations(t, s.w); !reflect.DeepEqual(got, before) {
			t.Fatalf("schema_migrations = %v, was %v", got, before)
		}
		s.Close()
	}
}

// rawWriter opens a database the way Open opens its writer, without
// migrating it.
func rawWriter(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(filepath.Join(t.TempDir(), "raw.db"), true))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrateSteps(t *testing.T) {
	ctx := context.Background()
	db := rawWriter(t)
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER) STRICT;\nINSERT INTO a VALUES (1);")},
		"0002_b.sql": {Data: []byte("ALTER TABLE a ADD COLUMN y TEXT;")},
		"README.md":  {Data: []byte("not a migration")},
	}
	if applied, err := migrate(ctx, db, fsys); err != nil || !reflect.DeepEqual(applied, []int{1, 2}) {
		t.Fatalf("migrate = %v, %v; want [1 2]", applied, err)
	}

	// A failing migration leaves nothing of itself behind, and what came
	// before it stays applied.
	fsys["0003_c.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (x INTEGER);\nINSERT INTO nowhere VALUES (1);")}
	fsys["0004_d.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE d (x INTEGER);")}
	applied, err := migrate(ctx, db, fsys)
	if err == nil || !strings.Contains(err.Error(), "0003_c.sql") || len(applied) != 0 {
		t.Fatalf("migrate with a broken 0003 = %v, %v; want an error naming it", applied, err)
	}
	for _, table := range []string{"c", "d"} {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE name = ?`, table).Scan(&n); err != nil || n != 0 {
			t.Fatalf("table %s exists after the failed migration (%d, %v)", table, n, err)
		}
	}

	fsys["0003_c.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE c (x INTEGER);")}
	if applied, err := migrate(ctx, db, fsys); err != nil || !reflect.DeepEqual(applied, []int{3, 4}) {
		t.Fatalf("migrate after the fix = %v, %v; want [3 4]", applied, err)
	}
	if applied, err := migrate(ctx, db, fsys); err != nil || len(applied) != 0 {
		t.Fatalf("migrate again = %v, %v; want nothing applied", applied, err)
	}
	var x int
	if err := db.QueryRow(`SELECT x FROM a`).Scan(&x); err != nil || x != 1 {
		t.Fatalf("data of 0001: %d, %v", x, err)
	}

	// A database from a newer program is refused.
	delete(fsys, "0004_d.sql")
	if _, err := migrate(ctx, db, fsys); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("migrate of a newer database: %v, want a refusal", err)
	}
}

// Migration 5 counts the tasks each project already holds: the quota of an
// upgraded database is right from its first create.
func TestMigrationCountsExistingTasks(t *testing.T) {
	ctx := context.Background()
	db := rawWriter(t)
	if _, err := migrate(ctx, db, storetest.MigrationsUpTo(t, mustSub(migrationFiles, "migrations"), 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO projects (id, account_id, region, create_time) VALUES (?, 'a', 'r', 0), ('empty', 'a', 'r', 0)`, crashProject); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 3; n++ {
		if _, err := db.Exec(taskInsert, taskArgs(crashTask(n))...); err != nil {
			t.Fatal(err)
		}
	}
	if applied, err := migrate(ctx, db, mustSub(migrationFiles, "migrations")); err != nil || !slices.Contains(applied, 5) {
		t.Fatalf("migrate to the latest: %v, %v", applied, err)
	}
	for id, want := range map[string]int{crashProject: 3, "empty": 0} {
		var n int
		if err := db.QueryRow(`SELECT task_count FROM projects WHERE id = ?`, id).Scan(&n); err != nil || n != want {
			t.Fatalf("project %s: task_count %d, %v; want %d", id, n, err, want)
		}
	}
}
