//go:build unix

package postgres

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
	"github.com/liverelay/liverelay/internal/testpeer"
)

const crashProject = "crash-project"

var crashEpoch = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// crashTask is task n of the crash test, every field set and derived from
// n, so that the test can tell what a stored row must hold.
func crashTask(n int) *task.Task {
	id := fmt.Sprintf("crash-%07d", n)
	at := crashEpoch.Add(time.Duration(n) * time.Millisecond)
	return &task.Task{
		ID: id, ProjectID: crashProject, Region: fmt.Sprintf("region-%d", n%3),
		SourceType: task.PullVodPushLive,
		SourceURLs: []string{"https://media.example/" + id + "/a.mp4", "https://media.example/" + id + "/b.mp4"},
		Domain:     "push.example", AppName: "live", StreamName: id, PushArgs: "k=" + strconv.Itoa(n),
		Destination:    "rtmp://ingest.push.example/live/" + id + "?k=" + strconv.Itoa(n),
		DestinationKey: "rtmp://ingest.push.example/live/" + id,
		StartTime:      at, EndTime: at.Add(time.Hour),
		VodLoopTime: n%5 + 1, VodRefreshType: task.RefreshImmediate, VodStartVideoIndex: n % 2, VodStartVideoTime: n % 60,
		BackupSourceType: task.PullLivePushLive, BackupSourceURLs: []string{"rtmp://backup.example/live/" + id},
		CallbackEvents: []string{task.EventTaskStart, task.EventTaskExit},
		CallbackURL:    "https://callback.example/" + id,
		Status:         task.StatusEnable, CreateTime: at, UpdateTime: at, Generation: 1,
	}
}

func crashRunState(n int) *task.RunState {
	at := crashEpoch.Add(time.Duration(n) * time.Millisecond)
	return &task.RunState{
		TaskID: fmt.Sprintf("crash-%07d", n), State: task.StateRunning, OnBackup: n%2 == 0,
		CurrentSourceURL: "https://media.example/x.mp4", CurrentIndex: n % 2, CurrentOffsetMS: int64(n) * 40,
		LoopsDone: n % 3, StartedAt: at, LastHeartbeat: at.Add(time.Second), BitrateBPS: int64(n) * 1000,
		FPS: 25, FramesOut: int64(n), BytesOut: int64(n) << 10, Reconnects: int64(n % 7), Failovers: int64(n % 4),
		LastError: &task.ErrorInfo{Code: "PullFileUnstable", Message: "slow read " + strconv.Itoa(n), At: at},
	}
}

func crashEvent(n int) *store.Event {
	id := fmt.Sprintf("crash-%07d", n)
	return &store.Event{ID: "ev-" + id, TaskID: id, ProjectID: crashProject, Name: task.EventTaskStart,
		Time: crashEpoch.Add(time.Duration(n) * time.Millisecond), CallbackURL: "https://callback.example/" + id,
		Payload: []byte(`{"event_id":"ev-` + id + `"}`)}
}

// TestCrashKeepsAcknowledgedWrites stops the server the hard way
// (pg_ctl stop -m immediate: no checkpoint, recovery from the WAL at the next
// start) while several goroutines write, starts it again, and checks that
// every write that returned nil is there, whole.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	const crashAfter = 300 // acknowledged task creates
	pg := testpeer.StartPostgresCluster(t)
	dsn := pg.CreateDatabase(t)
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.PutProject(t.Context(), &store.Project{ID: crashProject, AccountID: "a", Region: "region-0"}); err != nil {
		t.Fatal(err)
	}
	migrationsBefore := schemaMigrations(t, s.pool)

	var (
		next          atomic.Int64
		mu            sync.Mutex // guards tasks, states, stopErrs
		tasks, states = map[int]bool{}, map[int]bool{}
		stopErrs      []string
		wg            sync.WaitGroup
		crashed       = make(chan struct{})
		crashOnce     sync.Once
	)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ack := func(m map[int]bool, n int) int {
		mu.Lock()
		defer mu.Unlock()
		m[n] = true
		return len(tasks)
	}
	for range 4 {
		wg.Go(func() {
			// Each writer goes on until a write fails: the server is gone.
			for {
				n := int(next.Add(1))
				err := s.CreateTask(ctx, crashTask(n), store.CreateLimits{Quota: 1 << 30, Now: crashEpoch})
				if err == nil && ack(tasks, n) >= crashAfter {
					crashOnce.Do(func() { close(crashed) })
				}
				if err == nil {
					err = s.PutRunState(ctx, crashRunState(n), crashEvent(n))
				}
				if err == nil {
					ack(states, n)
					continue
				}
				mu.Lock()
				stopErrs = append(stopErrs, err.Error())
				mu.Unlock()
				return
			}
		})
	}
	select {
	case <-crashed:
		pg.Crash(t)
	case <-ctx.Done():
	}
	wg.Wait()
	s.Close()
	if len(tasks) < crashAfter {
		t.Fatalf("%d creates acknowledged, want at least %d; the writers stopped with %q", len(tasks), crashAfter, stopErrs)
	}
	t.Logf("crashed the server after %d acknowledged creates (%d run states); the writers stopped with e.g. %q",
		len(tasks), len(states), stopErrs[0])

	pg.Start(t)
	s, applied, err := open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer s.Close()
	if len(applied) != 0 {
		t.Errorf("reopen applied migrations %v again", applied)
	}
	if got := schemaMigrations(t, s.pool); !reflect.DeepEqual(got, migrationsBefore) {
		t.Errorf("schema_migrations changed by the crash and reopen: %v, was %v", got, migrationsBefore)
	}

	rctx := t.Context()
	for n := range tasks {
		got, err := s.GetTask(rctx, crashProject, crashTask(n).ID)
		if err != nil {
			t.Fatalf("acknowledged task %d lost: %v", n, err)
		}
		if want := crashTask(n); !reflect.DeepEqual(got, want) {
			t.Fatalf("acknowledged task %d:\n got %+v\nwant %+v", n, got, want)
		}
	}
	events := map[string]store.Event{}
	due, err := s.DueEvents(rctx, crashEpoch.Add(time.Hour), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range due {
		events[ev.ID] = ev
	}
	for n := range states {
		got, err := s.GetRunState(rctx, crashTask(n).ID)
		if err != nil {
			t.Fatalf("acknowledged run state %d lost: %v", n, err)
		}
		if want := crashRunState(n); !reflect.DeepEqual(got, want) {
			t.Fatalf("acknowledged run state %d:\n got %+v\nwant %+v", n, got, want)
		}
		ev, ok := events[crashEvent(n).ID]
		if !ok || ev.Seq != 1 || string(ev.Payload) != string(crashEvent(n).Payload) {
			t.Fatalf("event of acknowledged run state %d: %+v (found %v), want seq 1 and its payload", n, ev, ok)
		}
	}
	// Writes in flight at the crash may have committed or not, but nothing
	// is half there: every stored task is whole, with a whole run state and
	// its event.
	views, total, err := s.ListTasks(rctx, store.ListFilter{ProjectID: crashProject})
	if err != nil {
		t.Fatal(err)
	}
	if total < len(tasks) {
		t.Fatalf("%d tasks stored, %d acknowledged", total, len(tasks))
	}
	for _, v := range views {
		n, err := strconv.Atoi(strings.TrimPrefix(v.Task.ID, "crash-"))
		if err != nil {
			t.Fatalf("unexpected task %q", v.Task.ID)
		}
		if want := crashTask(n); !reflect.DeepEqual(&v.Task, want) {
			t.Fatalf("stored task %d is not whole:\n got %+v\nwant %+v", n, v.Task, *want)
		}
		if v.State.State == task.StateWaiting {
			continue
		}
		if want := crashRunState(n); !reflect.DeepEqual(&v.State, want) {
			t.Fatalf("stored run state %d is not whole:\n got %+v\nwant %+v", n, v.State, *want)
		}
		if _, ok := events[crashEvent(n).ID]; !ok {
			t.Fatalf("run state %d stored without its event", n)
		}
	}
	if len(events) > total {
		t.Fatalf("%d events stored for %d tasks", len(events), total)
	}

	// The store still works.
	if err := s.CreateTask(rctx, crashTask(1<<20), store.CreateLimits{Now: crashEpoch}); err != nil {
		t.Fatalf("CreateTask after recovery: %v", err)
	}
}
