package storetest

import (
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/liverelay/liverelay/internal/store"
)

// MigrationsUpTo returns the migrations of fsys up to version last: a
// database as an older release left it, to test what a later migration
// does to its data.
func MigrationsUpTo(t *testing.T, fsys fs.FS, last int) fs.FS {
	t.Helper()
	all, err := store.LoadMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	sub := fstest.MapFS{}
	for _, m := range all {
		if m.Version > last {
			continue
		}
		sub[m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
	}
	return sub
}
