// Package scheduler runs what should run. A reconcile loop compares the
// stored tasks and their windows with the supervisors running on this node
// and acts on the difference: it starts a task when its start_time comes,
// stops it at end_time, on pause and on delete, and after a restart of the
// process starts again every task that should be running. It is woken by
// Wake (after an API write), by the next start or end deadline, and by a
// slow poll as a safety net; there is one timer for all tasks.
package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/liverelay/liverelay/internal/callback"
	"github.com/liverelay/liverelay/internal/relay"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// Runner is a running task as the scheduler sees it; *relay.Supervisor is one.
type Runner interface {
	// Run relays until ctx is done.
	Run(ctx context.Context)
	// Update hands over a changed configuration without stopping the task.
	Update(t *task.Task)
}

// NewRunner makes the Runner of a task; resume is the task's last known run
// state (a VOD task continues from its position).
type NewRunner func(t *task.Task, rep relay.Reporter, resume task.RunState) Runner

// Options configure a Scheduler.
type Options struct {
	Store     store.Store
	Regions   []string // the regions this node serves; empty: all
	NewRunner NewRunner
	// OnEvents, when set, is called after callback events were stored.
	OnEvents func()
	Logger   *slog.Logger
	Now      func() time.Time
	// Poll is the longest the loop sleeps without a wake-up (default 5 s).
	Poll time.Duration
	// OnReport, when set, sees every run state reported (metrics).
	OnReport func(prev, next task.RunState)
}

type running struct {
	task   *task.Task
	runner Runner
	cancel context.CancelFunc
	done   chan struct{}
	// final is the state written when the runner has stopped; empty means
	// write nothing (the task was deleted, or the node is shutting down).
	final      string
	exitReason string
	stopping   bool
}

// Scheduler reconciles stored tasks with running supervisors.
type Scheduler struct {
	opt     Options
	log     *slog.Logger
	wake    chan struct{} // a full reconcile, soon
	changed chan struct{} // changes queued
	writer  *stateWriter

	mu      sync.Mutex
	running map[string]*running
	changes []change
	// states is the latest known run state of every task of the served
	// regions: what list shows, what metrics count, what the final state of
	// a stopped task is built from.
	states map[string]task.RunState

	wg sync.WaitGroup // runner goroutines
}

// New returns a Scheduler; start it with Run.
func New(opt Options) *Scheduler {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Poll == 0 {
		opt.Poll = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Scheduler{
		opt:     opt,
		log:     opt.Logger,
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}, 1),
		writer:  newStateWriter(opt.Store, opt.Logger, opt.OnEvents),
		running: make(map[string]*running),
		states:  make(map[string]task.RunState),
	}
}

// Wake asks for a reconcile soon. It never blocks.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx is done, then stops every running task and
// waits for them.
func (s *Scheduler) Run(ctx context.Context) error {
	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writer.run(writerCtx)
	}()
	defer func() {
		stopWriter()
		<-writerDone
	}()

	timer := time.NewTimer(0)
	defer timer.Stop()
	var rest time.Duration
	var next time.Time // the earliest start or end deadline known
	for {
		select {
		case <-ctx.Done():
			s.stopAll()
			return nil
		case <-s.wake:
			// A burst of API writes wakes the loop once per reconcile, and a
			// reconcile reads every task: rest as long as the last one took,
			// so reconciling costs at most half the loop's time.
			if rest > 0 {
				select {
				case <-ctx.Done():
					s.stopAll()
					return nil
				case <-time.After(rest):
				}
			}
		case <-timer.C:
		case <-s.changed:
			// One task changed (an API write): reconcile it alone, and move
			// the timer up if its deadline comes first.
			if at := s.applyChanges(ctx); !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
				timer.Stop()
				timer.Reset(max(at.Sub(s.opt.Now()), 0))
			}
			continue
		}
		began := time.Now()
		s.applyChanges(ctx) // a full pass covers them; drop the queue
		var err error
		next, err = s.reconcile(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("reconcile", "err", err)
		}
		rest = min(time.Since(began), time.Second)
		wait := s.opt.Poll
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(s.opt.Now()), 0))
		}
		timer.Stop()
		timer.Reset(wait)
	}
}

func (s *Scheduler) stopAll() {
	s.mu.Lock()
	for _, r := range s.running {
		r.final = "" // keep the stored state: the task resumes after a restart
		r.stopping = true
		r.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// desired says what a task should be doing now, and when that changes next.
func desired(t *task.Task, rs task.RunState, now time.Time) (state, reason string, next time.Time) {
	switch {
	case rs.State == task.StateFinished && rs.ExitReason == task.ExitLoopsDone:
		return task.StateFinished, task.ExitLoopsDone, time.Time{}
	case !now.Before(t.EndTime):
		return task.StateFinished, task.ExitEndTime, time.Time{}
	case t.Status == task.StatusPause:
		return task.StatePaused, task.ExitPaused, time.Time{}
	case now.Before(t.StartTime):
		return task.StateWaiting, "", t.StartTime
	default:
		return task.StateRunning, "", t.EndTime
	}
}

func (s *Scheduler) reconcile(ctx context.Context) (time.Time, error) {
	tasks, err := s.opt.Store.TasksInRegions(ctx, s.opt.Regions)
	if err != nil {
		return time.Time{}, err
	}
	now := s.opt.Now()
	var next time.Time
	seen := make(map[string]bool, len(tasks))
	for i := range tasks {
		seen[tasks[i].ID] = true
		next = earliest(next, s.reconcileTask(ctx, &tasks[i], now))
	}

	s.mu.Lock()
	for id := range s.running {
		if !seen[id] {
			s.stopDeleted(id)
		}
	}
	for id := range s.states {
		if !seen[id] && s.running[id] == nil {
			delete(s.states, id)
		}
	}
	s.mu.Unlock()
	return next, nil
}

// reconcileTask makes one task do what it should now, and returns when
// that changes next (zero: not by itself).
func (s *Scheduler) reconcileTask(ctx context.Context, t *task.Task, now time.Time) time.Time {
	rs, err := s.knownState(ctx, t.ID)
	if err != nil {
		s.log.Error("load run state", "task_id", t.ID, "err", err)
		return time.Time{}
	}
	want, reason, at := desired(t, rs, now)

	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.running[t.ID]
	switch {
	case want == task.StateRunning && r == nil:
		s.start(t)
	case want == task.StateRunning && r.stopping:
		// A pause-enable pair faster than the stop: start again once the
		// old runner is gone (it wakes us).
	case want == task.StateRunning:
		if r.task.Generation != t.Generation {
			r.task = t
			r.runner.Update(t)
		}
	case r != nil && !r.stopping:
		r.final, r.exitReason, r.stopping = want, reason, true
		r.cancel()
	case r == nil && (rs.State != want || rs.ExitReason != reason):
		rs.State, rs.ExitReason = want, reason
		s.putState(rs, nil)
	}
	return at
}

// stopDeleted stops the runner of a task that is gone, writing nothing.
// s.mu must be held.
func (s *Scheduler) stopDeleted(id string) {
	if r := s.running[id]; r != nil && !r.stopping {
		r.final, r.stopping = "", true
		r.cancel()
	}
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// Changed tells the scheduler that one task was created, modified or (t
// nil) deleted: that task alone is reconciled, at once, instead of every
// task. It never blocks.
func (s *Scheduler) Changed(id string, t *task.Task) {
	s.mu.Lock()
	s.changes = append(s.changes, change{id: id, task: t})
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

type change struct {
	id   string
	task *task.Task // nil: deleted
}

// applyChanges reconciles the tasks named by Changed and returns the
// earliest deadline among them.
func (s *Scheduler) applyChanges(ctx context.Context) time.Time {
	s.mu.Lock()
	changes := s.changes
	s.changes = nil
	s.mu.Unlock()
	now := s.opt.Now()
	var next time.Time
	for _, c := range changes {
		if c.task == nil || !s.serves(c.task.Region) {
			s.mu.Lock()
			s.stopDeleted(c.id)
			if s.running[c.id] == nil {
				delete(s.states, c.id)
			}
			s.mu.Unlock()
			continue
		}
		next = earliest(next, s.reconcileTask(ctx, c.task, now))
	}
	return next
}

func (s *Scheduler) serves(region string) bool {
	return len(s.opt.Regions) == 0 || slices.Contains(s.opt.Regions, region)
}

// knownState returns the latest run state of a task, loading it from the
// store the first time the task is seen.
func (s *Scheduler) knownState(ctx context.Context, id string) (task.RunState, error) {
	s.mu.Lock()
	rs, ok := s.states[id]
	s.mu.Unlock()
	if ok {
		return rs, nil
	}
	stored, err := s.opt.Store.GetRunState(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		rs = task.RunState{TaskID: id}
	case err != nil:
		return rs, err
	default:
		rs = *stored
	}
	s.mu.Lock()
	if cur, ok := s.states[id]; ok {
		rs = cur // a runner reported meanwhile
	} else {
		s.states[id] = rs
	}
	s.mu.Unlock()
	return rs, nil
}

// putState records a run state in memory and queues it for the store,
// with the callback event it causes (nil for none). s.mu must be held.
func (s *Scheduler) putState(rs task.RunState, ev *store.Event) {
	prev := s.states[rs.TaskID]
	s.states[rs.TaskID] = rs
	if s.opt.OnReport != nil {
		s.opt.OnReport(prev, rs)
	}
	s.writer.put(rs, ev)
}

// event builds a task's callback event (nil when the task does not want
// it) and logs it either way.
func (s *Scheduler) event(t *task.Task, name string, final bool, data map[string]any) *store.Event {
	s.log.Info("task event", "task_id", t.ID, "event", name, "final", final, "data", data)
	return callback.NewEvent(t, name, final, data, s.opt.Now())
}

// start launches a runner for t. s.mu must be held.
func (s *Scheduler) start(t *task.Task) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{task: t, cancel: cancel, done: make(chan struct{})}
	rep := &reporter{s: s, id: t.ID}
	r.runner = s.opt.NewRunner(t, rep, s.states[t.ID])
	s.running[t.ID] = r
	s.log.Info("task starting", "task_id", t.ID)

	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		r.runner.Run(ctx)
		s.finish(r)
	}()
}

// finish runs after a runner has returned: it writes the final state and
// the TaskExit event, and lets the loop start the task again if needed.
func (s *Scheduler) finish(r *running) {
	s.mu.Lock()
	delete(s.running, r.task.ID)
	final, reason := r.final, r.exitReason
	if !r.stopping {
		// The runner completed on its own (a VOD task's rounds are done):
		// its last report says how.
		rs := s.states[r.task.ID]
		final, reason = rs.State, rs.ExitReason
	}
	if final != "" {
		rs := s.states[r.task.ID]
		rs.State, rs.ExitReason = final, reason
		rs.BitrateBPS, rs.FPS = 0, 0
		rs.LastHeartbeat = s.opt.Now().UTC()
		// The exit is final only when the task will not run again.
		ev := s.event(r.task, task.EventTaskExit, final == task.StateFinished, map[string]any{
			"reason": reason, "code": "", "message": "task " + final,
		})
		s.putState(rs, ev)
	}
	s.mu.Unlock()
	s.log.Info("task stopped", "task_id", r.task.ID, "state", final, "reason", reason)
	s.Wake()
}

// StateCounts returns how many tasks of the served regions are in each run
// state, as this node knows them.
func (s *Scheduler) StateCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int)
	for _, rs := range s.states {
		if rs.State != "" {
			out[rs.State]++
		}
	}
	return out
}

// reporter is a task's relay.Reporter.
type reporter struct {
	s  *Scheduler
	id string
}

func (r *reporter) Report(rs task.RunState) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	run := r.s.running[r.id]
	if run == nil || run.stopping {
		return // the final state is the scheduler's to write
	}
	r.s.putState(rs, nil)
}

// Event stores the event with the task's latest run state, in one
// transaction.
func (r *reporter) Event(name string, data map[string]any) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	run := r.s.running[r.id]
	if run == nil {
		return
	}
	if ev := r.s.event(run.task, name, false, data); ev != nil {
		rs, ok := r.s.states[r.id]
		if !ok {
			rs = task.RunState{TaskID: r.id, State: task.StateStarting}
		}
		r.s.writer.put(rs, ev)
	}
}
