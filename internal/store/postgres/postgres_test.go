//go:build unix

package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/storetest"
	"github.com/liverelay/liverelay/internal/task"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// The tests run against a real PostgreSQL 15: one cluster for the test
// binary, a new database for each test (see testpeer.StartPostgres).
func TestMain(m *testing.M) {
	code := m.Run()
	testpeer.StopSharedPostgres()
	os.Exit(code)
}

// openTest opens a Store on a new, empty database.
func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := testpeer.StartPostgres(t)
	return openDSN(t, dsn), dsn
}

// openDSN opens a Store on dsn, closed when the test ends.
func openDSN(t testing.TB, dsn string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTest(t)
		return s
	})
}

// TestStoreTwoNodes runs the behaviour suite against two nodes: two Stores,
// each with its own pool, on one database, the calls of the suite going to
// one and the other in turn. Every rule, the concurrent ones included, must
// hold across nodes as it does within one.
func TestStoreTwoNodes(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		a, dsn := openTest(t)
		return &twoNodes{Store: a, nodes: [2]*Store{a, openDSN(t, dsn)}}
	})
}

// twoNodes is a store.Store whose calls go to two nodes in turn. Methods it
// does not list go to the first node.
type twoNodes struct {
	*Store
	nodes [2]*Store
	next  atomic.Uint32
}

func (n *twoNodes) node() *Store { return n.nodes[n.next.Add(1)%2] }

func (n *twoNodes) CreateTask(ctx context.Context, t *task.Task, lim store.CreateLimits) error {
	return n.node().CreateTask(ctx, t, lim)
}

func (n *twoNodes) GetTask(ctx context.Context, projectID, taskID string) (*task.Task, error) {
	return n.node().GetTask(ctx, projectID, taskID)
}

func (n *twoNodes) UpdateTask(ctx context.Context, t *task.Task, now time.Time, events ...*store.Event) error {
	return n.node().UpdateTask(ctx, t, now, events...)
}

func (n *twoNodes) DeleteTask(ctx context.Context, projectID, taskID string, events ...*store.Event) error {
	return n.node().DeleteTask(ctx, projectID, taskID, events...)
}

func (n *twoNodes) ListTasks(ctx context.Context, f store.ListFilter) ([]store.TaskView, int, error) {
	return n.node().ListTasks(ctx, f)
}

func (n *twoNodes) PutRunState(ctx context.Context, rs *task.RunState, events ...*store.Event) error {
	return n.node().PutRunState(ctx, rs, events...)
}

func (n *twoNodes) GetRunState(ctx context.Context, taskID string) (*task.RunState, error) {
	return n.node().GetRunState(ctx, taskID)
}

func (n *twoNodes) PutCheckpoint(ctx context.Context, taskID string, cp task.Checkpoint) error {
	return n.node().PutCheckpoint(ctx, taskID, cp)
}

func (n *twoNodes) PutProject(ctx context.Context, p *store.Project) error {
	return n.node().PutProject(ctx, p)
}

func (n *twoNodes) PutCredential(ctx context.Context, c *store.Credential) error {
	return n.node().PutCredential(ctx, c)
}

func (n *twoNodes) DueEvents(ctx context.Context, now time.Time, limit int) ([]store.Event, error) {
	return n.node().DueEvents(ctx, now, limit)
}

func (n *twoNodes) MarkDelivered(ctx context.Context, id string, at time.Time) error {
	return n.node().MarkDelivered(ctx, id, at)
}

func (n *twoNodes) MarkFailed(ctx context.Context, id string, attempts int, next time.Time, lastErr string, gaveUp bool) error {
	return n.node().MarkFailed(ctx, id, attempts, next, lastErr, gaveUp)
}

func TestErrorsCarryContext(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	_, err := s.GetTask(ctx, "p1", "t-404")
	if !errors.Is(err, store.ErrNotFound) || err.Error() != "postgres: get task t-404: not found" {
		t.Fatalf("GetTask error = %q", err)
	}
	err = s.CreateTask(ctx, &task.Task{ID: "t1", ProjectID: "p9"}, store.CreateLimits{})
	if !errors.Is(err, store.ErrProjectNotFound) || err.Error() != "postgres: create task t1: project p9: project not found" {
		t.Fatalf("CreateTask error = %q", err)
	}
}

func TestOpenRejects(t *testing.T) {
	dsn := testpeer.StartPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for name, tc := range map[string]struct{ dsn, want string }{
		"not a DSN": {dsn: "postgres://u:hunter2@[::1", want: "postgres: open"},
		"no server": {dsn: "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=5", want: "postgres: open"},
		// A session that would acknowledge commits before they are on
		// disk breaks the store's promise.
		"synchronous_commit off": {dsn: dsn + "&synchronous_commit=off", want: "synchronous_commit is off"},
	} {
		s, err := Open(ctx, tc.dsn)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded, want an error", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open error %q, want it to say %q", name, err, tc.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: Open error %q shows the password", name, err)
		}
	}
}

// TestSeqAcrossNodes appends events of one task from many goroutines on two
// nodes, through run state writes and updates (which lock different rows):
// every event gets its own seq, and together they count 1..n.
func TestSeqAcrossNodes(t *testing.T) {
	a, dsn := openTest(t)
	nodes := [2]*Store{a, openDSN(t, dsn)}
	ctx := t.Context()
	if err := a.PutProject(ctx, &store.Project{ID: "p1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateTask(ctx, &task.Task{ID: "t1", ProjectID: "p1", DestinationKey: "k", Status: task.StatusPause, Generation: 1},
		store.CreateLimits{}); err != nil {
		t.Fatal(err)
	}
	const reporters, updaters, each = 6, 2, 20
	event := func(w, i int) *store.Event {
		return &store.Event{ID: fmt.Sprintf("e-%d-%d", w, i), TaskID: "t1", ProjectID: "p1",
			Name: task.EventTaskAlarm, Time: time.Now(), Payload: []byte(`{}`)}
	}
	start := make(chan struct{})
	errs := make(chan error, reporters+updaters)
	for w := range reporters + updaters {
		node := nodes[w%2]
		go func() {
			<-start
			for i := 0; i < each; {
				var err error
				if w < reporters {
					err = node.PutRunState(ctx, &task.RunState{TaskID: "t1", State: task.StateRunning}, event(w, i))
				} else {
					// An update appends its event only when it wins the
					// generation; the loser reads again and retries.
					var tk *task.Task
					if tk, err = node.GetTask(ctx, "p1", "t1"); err == nil {
						tk.Generation++
						if err = node.UpdateTask(ctx, tk, time.Now(), event(w, i)); errors.Is(err, store.ErrConflict) {
							continue
						}
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				i++
			}
			errs <- nil
		}()
	}
	close(start)
	for range reporters + updaters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	const n = (reporters + updaters) * each
	var distinct, lo, hi int64
	if err := a.pool.QueryRow(ctx, `SELECT COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events WHERE task_id = 't1'`).
		Scan(&distinct, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if distinct != n || lo != 1 || hi != n {
		t.Fatalf("%d distinct seqs from %d to %d, want %d from 1", distinct, lo, hi, n)
	}
}
