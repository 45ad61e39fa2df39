package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/storetest"
	"github.com/liverelay/liverelay/internal/task"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "liverelay.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// Two Stores on one file (two processes, in effect) share SQLite's lock: the
// busy timeout, not the caller, absorbs the waits.
func TestTwoStoresOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(path)
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	ctx := t.Context()
	if err := stores[0].PutProject(ctx, &store.Project{ID: "p1"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		s := stores[w%2]
		wg.Go(func() {
			for i := range 20 {
				tk := &task.Task{ID: fmt.Sprintf("w%d-%d", w, i), ProjectID: "p1", Status: task.StatusPause,
					DestinationKey: fmt.Sprintf("k%d-%d", w, i)}
				if err := s.CreateTask(ctx, tk, store.CreateLimits{}); err != nil {
					t.Errorf("CreateTask: %v", err)
					return
				}
				if _, _, err := s.ListTasks(ctx, store.ListFilter{ProjectID: "p1", Limit: 5}); err != nil {
					t.Errorf("ListTasks: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i, s := range stores {
		if _, total, err := s.ListTasks(ctx, store.ListFilter{ProjectID: "p1"}); err != nil || total != 80 {
			t.Errorf("store %d sees %d tasks (%v), want 80", i, total, err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db"} {
		if s, err := Open(path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestOpenOddPath(t *testing.T) {
	// Characters that mean something in a URI.
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag%20", "l r.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.PutProject(t.Context(), &store.Project{ID: "p"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not created at %s: %v", path, err)
	}
}

func TestErrorsCarryContext(t *testing.T) {
	s := openTemp(t)
	_, err := s.GetTask(context.Background(), "p1", "t-404")
	if !errors.Is(err, store.ErrNotFound) || err.Error() != "sqlite: get task t-404: not found" {
		t.Fatalf("GetTask error = %q", err)
	}
	err = s.CreateTask(context.Background(), &task.Task{ID: "t1", ProjectID: "p9"}, store.CreateLimits{})
	if !errors.Is(err, store.ErrProjectNotFound) || err.Error() != "sqlite: create task t1: project p9: project not found" {
		t.Fatalf("CreateTask error = %q", err)
	}
}
