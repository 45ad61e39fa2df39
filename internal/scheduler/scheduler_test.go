package scheduler

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/relay"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/sqlite"
	"github.com/liverelay/liverelay/internal/task"
)

// fakeRunner records when it ran; it reports "running" like a supervisor.
type fakeRunner struct {
	t       *task.Task
	rep     relay.Reporter
	mu      sync.Mutex
	started time.Time
	stopped time.Time
	updates []*task.Task
}

func (f *fakeRunner) Run(ctx context.Context) {
	f.mu.Lock()
	f.started = time.Now()
	f.mu.Unlock()
	f.rep.Report(task.RunState{TaskID: f.t.ID, State: task.StateRunning, StartedAt: time.Now(), FramesOut: 42})
	<-ctx.Done()
	f.mu.Lock()
	f.stopped = time.Now()
	f.mu.Unlock()
}

func (f *fakeRunner) Update(t *task.Task) {
	f.mu.Lock()
	f.updates = append(f.updates, t)
	f.mu.Unlock()
}

type fixture struct {
	t       *testing.T
	st      store.Store
	mu      sync.Mutex
	runners map[string][]*fakeRunner
	cancel  context.CancelFunc
	done    chan struct{}
	sched   *Scheduler
}

func newFixture(t *testing.T, st store.Store) *fixture {
	return newFixtureWith(t, st, Options{})
}

// newFixtureWith is newFixture with opt's NodeID and MaxTasks.
func newFixtureWith(t *testing.T, st store.Store, opt Options) *fixture {
	f := &fixture{t: t, st: st, runners: map[string][]*fakeRunner{}}
	f.sched = New(Options{
		NodeID:   opt.NodeID,
		MaxTasks: opt.MaxTasks,
		Store:    st,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Poll:     time.Hour, // only wakes and deadlines drive it
		NewRunner: func(tk *task.Task, rep relay.Reporter, _ task.RunState) Runner {
			r := &fakeRunner{t: tk, rep: rep}
			f.mu.Lock()
			f.runners[tk.ID] = append(f.runners[tk.ID], r)
			f.mu.Unlock()
			return r
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go func() { _ = f.sched.Run(ctx); close(f.done) }()
	t.Cleanup(f.stop)
	return f
}

func (f *fixture) stop() {
	f.cancel()
	<-f.done
}

func (f *fixture) runnersOf(id string) []*fakeRunner {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*fakeRunner(nil), f.runners[id]...)
}

func (f *fixture) state(id string) task.RunState {
	rs, err := f.st.GetRunState(context.Background(), id)
	if err != nil {
		return task.RunState{}
	}
	return *rs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openStore(t *testing.T) (store.Store, string) {
	path := filepath.Join(t.TempDir(), "db")
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutProject(context.Background(), &store.Project{ID: "p", AccountID: "a", Region: "local"}); err != nil {
		t.Fatal(err)
	}
	return st, path
}

func addTask(t *testing.T, st store.Store, id string, start, end time.Time) *task.Task {
	tk := &task.Task{
		ID: id, ProjectID: "p", Region: "local", SourceType: task.PullLivePushLive,
		SourceURLs: []string{"rtmp://h/a/s"}, Destination: "rtmp://h/a/" + id, DestinationKey: "rtmp://h:1935/a/" + id,
		StartTime: start, EndTime: end, Status: task.StatusEnable, Generation: 1, VodLoopTime: -1,
		CreateTime: time.Now(),
	}
	if err := st.CreateTask(context.Background(), tk, store.CreateLimits{Quota: 100, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestStartsAtStartTimeAndStopsAtEndTime(t *testing.T) {
	st, _ := openStore(t)
	defer st.Close()
	start := time.Now().Add(400 * time.Millisecond).Truncate(time.Millisecond) // the store keeps milliseconds
	end := start.Add(600 * time.Millisecond)
	addTask(t, st, "t1", start, end)
	f := newFixture(t, st)
	f.sched.Wake()

	waitFor(t, "waiting state stored", func() bool { return f.state("t1").State == task.StateWaiting })
	if len(f.runnersOf("t1")) != 0 {
		t.Fatal("started before start_time")
	}
	waitFor(t, "runner made", func() bool { return len(f.runnersOf("t1")) == 1 })
	r := f.runnersOf("t1")[0]
	var started time.Time
	waitFor(t, "runner running", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		started = r.started
		return !started.IsZero()
	})
	if started.Before(start) {
		t.Fatalf("started %v before start_time %v", started, start)
	}
	t.Logf("started %v after start_time (goal: within 100 ms)", started.Sub(start))

	waitFor(t, "finished", func() bool { return f.state("t1").State == task.StateFinished })
	rs := f.state("t1")
	if rs.ExitReason != task.ExitEndTime || rs.FramesOut != 42 {
		t.Fatalf("final state %+v: want end_time_reached, keeping the runner's counters", rs)
	}
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	if stopped.IsZero() || stopped.Before(end) {
		t.Fatalf("runner stopped at %v, end_time %v", stopped, end)
	}
}

func TestPauseEnableModifyDelete(t *testing.T) {
	st, _ := openStore(t)
	defer st.Close()
	tk := addTask(t, st, "t2", time.Now().Add(-time.Second), time.Now().Add(time.Hour))
	f := newFixture(t, st)
	waitFor(t, "running", func() bool { return f.state("t2").State == task.StateRunning })

	update := func(mut func(*task.Task)) {
		cur, err := st.GetTask(context.Background(), "p", "t2")
		if err != nil {
			t.Fatal(err)
		}
		mut(cur)
		cur.Generation++
		if err := st.UpdateTask(context.Background(), cur, time.Now()); err != nil {
			t.Fatal(err)
		}
		f.sched.Wake()
	}
	update(func(c *task.Task) { c.Status = task.StatusPause })
	waitFor(t, "paused", func() bool { return f.state("t2").State == task.StatePaused })
	if rs := f.state("t2"); rs.ExitReason != task.ExitPaused {
		t.Fatalf("paused with exit_reason %q", rs.ExitReason)
	}
	update(func(c *task.Task) { c.Status = task.StatusEnable })
	waitFor(t, "second run", func() bool { return len(f.runnersOf("t2")) == 2 })
	waitFor(t, "running again", func() bool { return f.state("t2").State == task.StateRunning })

	// A change that does not stop the task reaches the running runner.
	update(func(c *task.Task) { c.EndTime = tk.EndTime.Add(time.Hour) })
	r := f.runnersOf("t2")[1]
	waitFor(t, "update delivered", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return len(r.updates) == 1 })
	if len(f.runnersOf("t2")) != 2 {
		t.Fatal("an end_time change restarted the task")
	}

	if err := st.DeleteTask(context.Background(), "p", "t2"); err != nil {
		t.Fatal(err)
	}
	f.sched.Wake()
	waitFor(t, "runner stopped on delete", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return !r.stopped.IsZero() })
}

func TestRestartResumesRunningTasks(t *testing.T) {
	st, path := openStore(t)
	addTask(t, st, "t3", time.Now().Add(-time.Second), time.Now().Add(time.Hour))
	f := newFixture(t, st)
	waitFor(t, "running", func() bool { return f.state("t3").State == task.StateRunning })
	f.stop()
	st.Close()

	st2, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	f2 := newFixture(t, st2)
	waitFor(t, "runner after restart", func() bool { return len(f2.runnersOf("t3")) == 1 })
}

// The API names the task it wrote: that task alone is reconciled, at once,
// without waiting for a full pass (the poll here is an hour).
func TestChangedReconcilesOneTask(t *testing.T) {
	st, _ := openStore(t)
	defer st.Close()
	f := newFixture(t, st)
	tk := addTask(t, st, "t4", time.Now().Add(-time.Second), time.Now().Add(time.Hour))
	f.sched.Changed(tk.ID, tk)
	waitFor(t, "runner started by Changed", func() bool { return len(f.runnersOf("t4")) == 1 })
	r := f.runnersOf("t4")[0]
	if err := st.DeleteTask(context.Background(), "p", "t4"); err != nil {
		t.Fatal(err)
	}
	f.sched.Changed(tk.ID, nil)
	waitFor(t, "runner stopped by Changed", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return !r.stopped.IsZero() })
}

// A node alone names itself in the states of the tasks it runs, and runs no
// more than MaxTasks at once.
func TestNodeIDAndCapacityAlone(t *testing.T) {
	st, _ := openStore(t)
	defer st.Close()
	addTask(t, st, "a", time.Now().Add(-time.Second), time.Now().Add(time.Hour))
	addTask(t, st, "b", time.Now().Add(-time.Second), time.Now().Add(time.Hour))
	f := newFixtureWith(t, st, Options{NodeID: "solo", MaxTasks: 1})
	waitFor(t, "one running", func() bool { return len(f.runnersOf("a"))+len(f.runnersOf("b")) == 1 })
	first, second := "a", "b"
	if len(f.runnersOf("a")) == 0 {
		first, second = "b", "a"
	}
	waitFor(t, "state stored", func() bool { return f.state(first).State == task.StateRunning })
	if rs := f.state(first); rs.NodeID != "solo" {
		t.Fatalf("run state names node %q, want solo", rs.NodeID)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(f.runnersOf(second)); n != 0 {
		t.Fatalf("a second task started beyond MaxTasks 1")
	}
	if err := st.DeleteTask(context.Background(), "p", first); err != nil {
		t.Fatal(err)
	}
	f.sched.Wake()
	waitFor(t, "the other task started once there is room", func() bool { return len(f.runnersOf(second)) == 1 })
}
