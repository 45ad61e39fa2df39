// Package scheduler runs what should run. A reconcile loop compares the
// stored tasks and their windows with the supervisors running on this node
// and acts on the difference: it starts a task when its start_time comes,
// stops it at end_time, on pause and on delete, and after a restart of the
// process starts again every task that should be running. It is woken by
// Wake (after an API write), by the next start or end deadline, and by a
// slow poll as a safety net; there is one timer for all tasks.
//
// A node that shares its store with other nodes (Options.Leases) runs only
// the tasks it holds the lease of: it claims free tasks of its regions,
// renews its leases, writes every state under its lease, stops a task at
// once when its lease is lost or can no longer be renewed in time, and on
// shutdown hands its tasks over (final state, TaskExit, lease released) so
// other nodes take them on at once. See leases.go.
package scheduler

import (
	"context"
	"errors"
	"fmt"
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
	// NodeID names this node in the run states of the tasks it runs.
	NodeID string
	// MaxTasks is the most tasks the node runs at once; 0: no limit. With
	// Leases, the leases enforce it.
	MaxTasks int
	// Leases, when set, make the node one of several sharing the store;
	// nil: the node is alone on it (see Leases).
	Leases Leases
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

	// With Leases: the task's lease, until when it is surely valid (the
	// send time of its last successful renewal or claim, plus the TTL),
	// whether it is lost (stop, write nothing), and whether the node is
	// handing the task over as it shuts down.
	lease      store.Lease
	validUntil time.Time
	lost       bool
	handover   bool
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
	// freeSince is when each task this node wants to claim was first seen
	// free (with Leases): one free for a whole TTL is claimed urgently.
	freeSince map[string]time.Time

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
	s := &Scheduler{
		opt:       opt,
		log:       opt.Logger,
		wake:      make(chan struct{}, 1),
		changed:   make(chan struct{}, 1),
		running:   make(map[string]*running),
		states:    make(map[string]task.RunState),
		freeSince: make(map[string]time.Time),
	}
	s.writer = newStateWriter(s.writeStates, s.leaseLost, opt.Logger, opt.OnEvents)
	return s
}

// shared reports whether the node shares its store with others.
func (s *Scheduler) shared() bool { return s.opt.Leases != nil }

// writeStates stores queued states in one transaction: each under its lease
// when the node shares the store (a lost lease fails that write alone).
func (s *Scheduler) writeStates(deadline time.Time, batch []*pendingState) []error {
	ctx, cancel := writeContext(deadline)
	defer cancel()
	var errs []error
	var err error
	if s.shared() {
		writes := make([]store.LeasedWrite, len(batch))
		for i, p := range batch {
			writes[i] = store.LeasedWrite{Lease: p.lease, Release: p.release, State: &p.rs, Events: p.events}
		}
		errs, err = s.opt.Leases.Write(ctx, writes)
	} else {
		writes := make([]store.RunStateWrite, len(batch))
		for i, p := range batch {
			writes[i] = store.RunStateWrite{State: &p.rs, Events: p.events}
		}
		err = s.opt.Store.PutRunStates(ctx, writes)
	}
	if err != nil {
		errs = make([]error, len(batch))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
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
	if s.shared() {
		// Stopped last (defers run in reverse): the leases stay renewed
		// while the last states are written.
		keeperCtx, stopKeeper := context.WithCancel(context.Background())
		keeperDone := make(chan struct{})
		go func() {
			defer close(keeperDone)
			s.keepLeases(keeperCtx)
		}()
		defer func() {
			stopKeeper()
			<-keeperDone
		}()
	}
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

// stopAll stops every runner and waits for them. A node alone keeps the
// stored states as they are: its tasks resume when it starts again. A node
// of a cluster hands its tasks over: it stops claiming, and each stopped
// task gets its final state, a TaskExit and its lease released, so that the
// other nodes take it on at once.
func (s *Scheduler) stopAll() {
	if s.shared() {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		if err := s.opt.Leases.Drain(ctx); err != nil {
			s.log.Error("announce drain", "err", err)
		}
		cancel()
	}
	s.mu.Lock()
	for _, r := range s.running {
		r.final = "" // keep the stored state: the task resumes after a restart
		r.handover = s.shared() && !r.lost
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

// claims are the tasks a reconcile wants leases of (with Leases): to run
// them, or to write their state at rest.
type claims struct {
	run, rest []*task.Task
}

func (s *Scheduler) reconcile(ctx context.Context) (time.Time, error) {
	tasks, err := s.opt.Store.TasksInRegions(ctx, s.opt.Regions)
	if err != nil {
		return time.Time{}, err
	}
	holdings, err := s.survey(ctx, nil)
	if err != nil {
		return time.Time{}, err
	}
	now := s.opt.Now()
	var next time.Time
	var want claims
	seen := make(map[string]bool, len(tasks))
	for i := range tasks {
		seen[tasks[i].ID] = true
		next = earliest(next, s.reconcileTask(ctx, &tasks[i], holdings, now, &want))
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
	if s.shared() {
		// A task no longer wanted starts its wait afresh next time.
		wanted := make(map[string]bool, len(want.run))
		for _, t := range want.run {
			wanted[t.ID] = true
		}
		for id := range s.freeSince {
			if !wanted[id] {
				delete(s.freeSince, id)
			}
		}
	}
	return earliest(next, s.claim(ctx, &want, now)), nil
}

// survey reads the leases of the tasks (nil: every task of the served
// regions), by task ID; nil for a node alone.
func (s *Scheduler) survey(ctx context.Context, ids []string) (map[string]store.Holding, error) {
	if !s.shared() {
		return nil, nil
	}
	hs, err := s.opt.Leases.Survey(ctx, s.opt.Regions, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.Holding, len(hs))
	for _, h := range hs {
		out[h.TaskID] = h
	}
	return out, nil
}

// reconcileTask makes one task do what it should now, and returns when
// that changes next (zero: not by itself). With Leases, what needs a lease
// it does not hold goes into want.
func (s *Scheduler) reconcileTask(ctx context.Context, t *task.Task, holdings map[string]store.Holding, now time.Time, want *claims) time.Time {
	h, surveyed := holdings[t.ID]
	rs, err := s.stateFor(ctx, t.ID, h, surveyed)
	if err != nil {
		s.log.Error("load run state", "task_id", t.ID, "err", err)
		return time.Time{}
	}
	wantState, reason, at := desired(t, rs, now)

	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.running[t.ID]
	switch {
	case wantState == task.StateRunning && r == nil:
		if !s.shared() {
			if s.opt.MaxTasks <= 0 || len(s.running) < s.opt.MaxTasks {
				s.start(t, store.Lease{}, time.Time{})
			}
			break
		}
		at = earliest(at, s.wantLease(t, h, surveyed, now, &want.run))
	case wantState == task.StateRunning && r.stopping:
		// A pause-enable pair faster than the stop: start again once the
		// old runner is gone (it wakes us).
	case wantState == task.StateRunning:
		if r.task.Generation != t.Generation {
			r.task = t
			r.runner.Update(t)
		}
	case r != nil && !r.stopping:
		r.final, r.exitReason, r.stopping = wantState, reason, true
		r.cancel()
	case r == nil && (rs.State != wantState || rs.ExitReason != reason):
		if !s.shared() {
			rs.State, rs.ExitReason, rs.NodeID = wantState, reason, ""
			s.putState(rs, nil, store.Lease{}, false)
			break
		}
		at = earliest(at, s.wantLease(t, h, surveyed, now, &want.rest))
	}
	return at
}

// stateFor returns the run state a decision about a task starts from: the
// stored one (fresh from the survey) when another node may have written it
// since, the one this node knows otherwise.
func (s *Scheduler) stateFor(ctx context.Context, id string, h store.Holding, surveyed bool) (task.RunState, error) {
	if surveyed {
		s.mu.Lock()
		_, runsHere := s.running[id]
		mine := h.Owner == s.opt.NodeID && !h.Free // a write of ours is on its way
		if !runsHere && !mine {
			s.states[id] = h.State
			s.mu.Unlock()
			return h.State, nil
		}
		s.mu.Unlock()
	}
	return s.knownState(ctx, id)
}

// wantLease adds t to the tasks to claim when it is free, and otherwise
// returns when its holder's lease would expire without renewal, the moment
// to look again. s.mu must be held.
func (s *Scheduler) wantLease(t *task.Task, h store.Holding, surveyed bool, now time.Time, to *[]*task.Task) time.Time {
	switch {
	case !surveyed:
		// Created after the survey: its own notification, or the next
		// pass, brings it.
		return time.Time{}
	case h.Free:
		*to = append(*to, t)
		return time.Time{}
	default:
		return now.Add(h.Remaining + expirySlack)
	}
}

// claim claims the leases reconcile wanted, and starts or settles the tasks
// it got; it returns when to try again for those it did not get.
func (s *Scheduler) claim(ctx context.Context, want *claims, now time.Time) time.Time {
	if !s.shared() {
		return time.Time{}
	}
	var next time.Time
	ttl := s.opt.Leases.TTL()
	if len(want.run) > 0 {
		cands := make([]Candidate, len(want.run))
		for i, t := range want.run {
			since, ok := s.freeSince[t.ID]
			if !ok {
				since = now
				s.freeSince[t.ID] = now
			}
			cands[i] = Candidate{Task: t, Urgent: now.Sub(since) >= ttl}
		}
		sent := time.Now()
		grants, err := s.opt.Leases.Claim(ctx, cands, true)
		if err != nil && ctx.Err() == nil {
			s.log.Error("claim tasks", "err", err)
		}
		for _, g := range grants {
			delete(s.freeSince, g.Lease.TaskID)
			if t := byID(want.run, g.Lease.TaskID); t != nil {
				s.startClaimed(t, g, sent)
			}
		}
		if len(grants) < len(cands) {
			// Left to other nodes, the fair share says; if none takes them
			// they become urgent after a TTL.
			next = now.Add(ttl / 3)
		}
	}
	if len(want.rest) > 0 {
		cands := make([]Candidate, len(want.rest))
		for i, t := range want.rest {
			cands[i] = Candidate{Task: t}
		}
		grants, err := s.opt.Leases.Claim(ctx, cands, false)
		if err != nil && ctx.Err() == nil {
			s.log.Error("claim tasks at rest", "err", err)
		}
		for _, g := range grants {
			if t := byID(want.rest, g.Lease.TaskID); t != nil {
				s.settle(t, g, now)
			}
		}
	}
	return next
}

// byID returns the task of tasks with that ID, nil if none (a grant for a
// task not asked for, which Leases never makes; it then expires unused).
func byID(tasks []*task.Task, id string) *task.Task {
	for _, t := range tasks {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// startClaimed starts a task this node has just claimed, from the state
// stored at the claim. A run that ended without its node saying so (it died,
// or lost the database) gets its TaskExit now, before this run's TaskStart.
func (s *Scheduler) startClaimed(t *task.Task, g store.Grant, sent time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[t.ID] != nil {
		// Cannot happen: only the loop starts runners, and it asked for
		// the lease because none ran. Give it back rather than run twice.
		s.log.Error("claimed a task that already runs here", "task_id", t.ID)
		s.writer.put(g.State, nil, g.Lease, true)
		return
	}
	prev := g.State
	s.states[t.ID] = prev
	s.start(t, g.Lease, sent.Add(s.opt.Leases.TTL()))
	if orphaned(prev) {
		ev := s.event(t, task.EventTaskExit, false, map[string]any{
			"reason": ExitNodeLost, "code": CodeNodeLost,
			"message": fmt.Sprintf("node %s stopped renewing the lease of the task; node %s runs it now", prev.NodeID, s.opt.NodeID),
		})
		rs := prev
		rs.State, rs.NodeID = task.StateStarting, s.opt.NodeID
		s.putState(rs, ev, g.Lease, false)
	}
	s.log.Info("task claimed", "task_id", t.ID, "token", g.Lease.Token, "previous_node", prev.NodeID)
}

// settle writes the state at rest of a task this node claimed for that,
// and releases it. A run that ended without its node saying so gets its
// TaskExit, with the reason the task rests for.
func (s *Scheduler) settle(t *task.Task, g store.Grant, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := g.State
	rs := prev
	wantState, reason, _ := desired(t, prev, now)
	var ev *store.Event
	if wantState != task.StateRunning {
		rs.State, rs.ExitReason, rs.NodeID = wantState, reason, ""
		rs.BitrateBPS, rs.FPS = 0, 0
		if orphaned(prev) {
			ev = s.event(t, task.EventTaskExit, wantState == task.StateFinished, map[string]any{
				"reason": reason, "code": CodeNodeLost,
				"message": fmt.Sprintf("node %s stopped renewing the lease of the task", prev.NodeID),
			})
		}
	}
	// Else its window opened meanwhile: release it as it is, to be claimed
	// to run.
	s.putState(rs, ev, g.Lease, true)
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
	if len(changes) == 0 {
		return time.Time{}
	}
	var ids []string
	for _, c := range changes {
		if c.task != nil && s.serves(c.task.Region) {
			ids = append(ids, c.id)
		}
	}
	holdings, err := s.survey(ctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("read leases", "err", err)
		}
		s.Wake() // the full pass will do
		return time.Time{}
	}
	now := s.opt.Now()
	var next time.Time
	var want claims
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
		next = earliest(next, s.reconcileTask(ctx, c.task, holdings, now, &want))
	}
	return earliest(next, s.claim(ctx, &want, now))
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
// with the callback event it causes (nil for none), under lease l (with
// Leases) and releasing it with release. s.mu must be held.
func (s *Scheduler) putState(rs task.RunState, ev *store.Event, l store.Lease, release bool) {
	prev := s.states[rs.TaskID]
	s.states[rs.TaskID] = rs
	if s.opt.OnReport != nil {
		s.opt.OnReport(prev, rs)
	}
	s.writer.put(rs, ev, l, release)
}

// event builds a task's callback event (nil when the task does not want
// it) and logs it either way.
func (s *Scheduler) event(t *task.Task, name string, final bool, data map[string]any) *store.Event {
	s.log.Info("task event", "task_id", t.ID, "event", name, "final", final, "data", data)
	return callback.NewEvent(t, name, final, data, s.opt.Now())
}

// start launches a runner for t, under lease l valid until validUntil
// (with Leases). s.mu must be held.
func (s *Scheduler) start(t *task.Task, l store.Lease, validUntil time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{task: t, cancel: cancel, done: make(chan struct{}), lease: l, validUntil: validUntil}
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
// the TaskExit event (releasing the lease, with Leases), and lets the loop
// start the task again if needed.
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
	switch {
	case r.lost:
		final, reason = "", "lease lost"
	case r.handover:
		// Shutting down in a cluster: another node takes the task on.
		rs := s.states[r.task.ID]
		rs.State, rs.ExitReason, rs.NodeID = task.StateRecovering, task.ExitShutdown, ""
		rs.BitrateBPS, rs.FPS = 0, 0
		rs.LastHeartbeat = s.opt.Now().UTC()
		msg := fmt.Sprintf("node %s shut down; another node of the region takes the task on", s.opt.NodeID)
		rs.LastError = &task.ErrorInfo{Code: CodeNodeShutdown, Message: msg, At: rs.LastHeartbeat}
		ev := s.event(r.task, task.EventTaskExit, false, map[string]any{
			"reason": task.ExitShutdown, "code": CodeNodeShutdown, "message": msg,
		})
		s.putState(rs, ev, r.lease, true)
		final, reason = rs.State, task.ExitShutdown
	case final != "":
		rs := s.states[r.task.ID]
		rs.State, rs.ExitReason, rs.NodeID = final, reason, ""
		rs.BitrateBPS, rs.FPS = 0, 0
		rs.LastHeartbeat = s.opt.Now().UTC()
		// The exit is final only when the task will not run again.
		ev := s.event(r.task, task.EventTaskExit, final == task.StateFinished, map[string]any{
			"reason": reason, "code": "", "message": "task " + final,
		})
		s.putState(rs, ev, r.lease, true)
	}
	s.mu.Unlock()
	s.log.Info("task stopped", "task_id", r.task.ID, "state", final, "reason", reason)
	s.Wake()
}

// leaseLost stops, at once, the runner of a task whose lease l is gone
// (another node claimed it, or it could not be renewed in time): it writes
// nothing more, and its destination connection is cut.
func (s *Scheduler) leaseLost(l store.Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loseLocked(l, "another node holds the lease now")
}

// loseLocked is leaseLost with s.mu held.
func (s *Scheduler) loseLocked(l store.Lease, why string) {
	r := s.running[l.TaskID]
	if r == nil || r.lost || r.lease.Token != l.Token {
		return
	}
	r.lost, r.stopping, r.final = true, true, ""
	r.cancel()
	if c, ok := r.runner.(Cutter); ok {
		c.Cut()
	}
	s.log.Warn("lease lost: task stopped", "task_id", l.TaskID, "token", l.Token, "why", why)
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
	rs.NodeID = r.s.opt.NodeID
	r.s.putState(rs, nil, run.lease, false)
}

// Event stores the event with the task's latest run state, in one
// transaction.
func (r *reporter) Event(name string, data map[string]any) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	run := r.s.running[r.id]
	if run == nil || run.lost {
		return
	}
	if ev := r.s.event(run.task, name, false, data); ev != nil {
		rs, ok := r.s.states[r.id]
		if !ok {
			rs = task.RunState{TaskID: r.id, State: task.StateStarting, NodeID: r.s.opt.NodeID}
		}
		r.s.writer.put(rs, ev, run.lease, false)
	}
}
