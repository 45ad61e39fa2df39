//go:build unix

package postgres

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

var clusterNow = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// twoStores opens two nodes on one new database, with projects p0..p(n-1).
func twoStores(t testing.TB, projects int) [2]*Store {
	t.Helper()
	a, dsn := openTest(t)
	nodes := [2]*Store{a, openDSN(t, dsn)}
	for i := range projects {
		if err := a.PutProject(t.Context(), &store.Project{ID: fmt.Sprintf("p%d", i), AccountID: "acct"}); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func clusterTask(projectID, id, destination string) *task.Task {
	return &task.Task{ID: id, ProjectID: projectID, Region: "r", SourceType: task.PullLivePushLive,
		SourceURLs: []string{"rtmp://src.example/live/" + id}, Destination: destination, DestinationKey: destination,
		StartTime: clusterNow, EndTime: clusterNow.Add(time.Hour), Status: task.StatusEnable,
		CreateTime: clusterNow, UpdateTime: clusterNow, Generation: 1}
}

// TestTwoNodesQuota races creates in one project from many goroutines on two
// nodes: exactly the quota succeed, and the others see ErrQuotaExceeded.
func TestTwoNodesQuota(t *testing.T) {
	const workers, tries, quota, rounds = 16, 3, 7, 4
	nodes := twoStores(t, rounds)
	for round := range rounds {
		project := fmt.Sprintf("p%d", round)
		var (
			mu      sync.Mutex
			created int
			wg      sync.WaitGroup
			start   = make(chan struct{})
		)
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := range tries {
					id := fmt.Sprintf("%s-w%d-%d", project, w, i)
					err := nodes[w%2].CreateTask(t.Context(), clusterTask(project, id, "rtmp://d.example/live/"+id), store.CreateLimits{Quota: quota, Now: clusterNow})
					switch {
					case err == nil:
						mu.Lock()
						created++
						mu.Unlock()
					case !errors.Is(err, store.ErrQuotaExceeded):
						t.Errorf("worker %d: CreateTask: %v", w, err)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		_, total, err := nodes[round%2].ListTasks(t.Context(), store.ListFilter{ProjectID: project})
		if err != nil {
			t.Fatal(err)
		}
		if created != quota || total != quota {
			t.Fatalf("round %d: %d creates succeeded, %d stored; want %d (the quota)", round, created, total, quota)
		}
	}
}

// TestTwoNodesDestination races, for one destination, creates from two
// projects and updates that enable paused tasks, on two nodes: after each
// round exactly one enabled task pushes to it.
func TestTwoNodesDestination(t *testing.T) {
	const workers, rounds = 16, 5
	nodes := twoStores(t, 2)
	ctx := t.Context()
	for round := range rounds {
		dest := fmt.Sprintf("rtmp://ingest.example/live/contended%d", round)
		// Paused tasks on the destination, which workers try to enable.
		var paused []*task.Task
		for i := range workers / 2 {
			tk := clusterTask("p1", fmt.Sprintf("r%d-paused%d", round, i), dest)
			tk.Status = task.StatusPause
			if err := nodes[0].CreateTask(ctx, tk, store.CreateLimits{Now: clusterNow}); err != nil {
				t.Fatal(err)
			}
			paused = append(paused, tk)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, workers)
		for w := range workers {
			wg.Go(func() {
				node := nodes[w%2]
				<-start
				if w%2 == 0 {
					tk := clusterTask(fmt.Sprintf("p%d", w%4/2), fmt.Sprintf("r%d-new%d", round, w), dest)
					errs[w] = node.CreateTask(ctx, tk, store.CreateLimits{Now: clusterNow})
					return
				}
				up := *paused[w/2]
				up.Status, up.Generation = task.StatusEnable, 2
				errs[w] = node.UpdateTask(ctx, &up, clusterNow)
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for w, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrDestinationInUse):
				t.Errorf("round %d, worker %d: %v, want ErrDestinationInUse", round, w, err)
			}
		}
		var enabled int
		if err := nodes[1].pool.QueryRow(ctx, `SELECT COUNT(*) FROM tasks WHERE destination_key = $1 AND status = $2`,
			dest, task.StatusEnable).Scan(&enabled); err != nil {
			t.Fatal(err)
		}
		if ok != 1 || enabled != 1 {
			t.Fatalf("round %d: %d writes succeeded, %d tasks enabled on the destination; want 1", round, ok, enabled)
		}
	}
}
