package scheduler

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// writeTimeout bounds one write of a run state.
const writeTimeout = 10 * time.Second

// stateWriter persists run states and their events off the media path: put
// never blocks; several states of one task queued under one lease before a
// write collapse into the latest, while its events are all kept, in order,
// and written in the same transaction as that state.
type stateWriter struct {
	// write stores a batch before deadline (zero: none) and returns one
	// error per state, or nil when all were stored.
	write    func(deadline time.Time, batch []*pendingState) []error
	lost     func(l store.Lease) // a write found its lease gone
	log      *slog.Logger
	onEvents func() // called after events were stored
	// gatherEvery is the pause after a flush while states queue up.
	gatherEvery time.Duration

	mu      sync.Mutex
	pending map[pendingKey]*pendingState
	signal  chan struct{}

	// While the store is out of reach every heartbeat of every task fails:
	// one error is logged per errorLogEvery, with the count of the others.
	lastErrLog time.Time
	unlogged   int
}

const errorLogEvery = 5 * time.Second

// pendingKey keeps the writes of two leases of one task apart (the node
// lost a lease and claimed the task again before the first was written).
type pendingKey struct {
	id    string
	token int64
}

type pendingState struct {
	rs      task.RunState
	events  []*store.Event
	lease   store.Lease // zero for a node alone on its store
	release bool        // release the lease with this write
}

func newStateWriter(write func(deadline time.Time, batch []*pendingState) []error, lost func(store.Lease), log *slog.Logger, onEvents func()) *stateWriter {
	return &stateWriter{write: write, lost: lost, log: log, onEvents: onEvents, gatherEvery: gatherEvery,
		pending: make(map[pendingKey]*pendingState), signal: make(chan struct{}, 1)}
}

// gatherEvery lets the run states of a second's heartbeats gather into a few
// transactions instead of one per task; events wait at most that long.
const gatherEvery = 100 * time.Millisecond

func (w *stateWriter) put(rs task.RunState, ev *store.Event, l store.Lease, release bool) {
	w.mu.Lock()
	k := pendingKey{rs.TaskID, l.Token}
	p := w.pending[k]
	if p == nil {
		p = &pendingState{lease: l}
		w.pending[k] = p
	}
	p.rs = rs
	p.release = p.release || release
	if ev != nil {
		p.events = append(p.events, ev)
	}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// run writes queued states until ctx is done, then writes what is left,
// within one writeTimeout in all: a node shutting down while the store is
// away does not wait a timeout per task. Between two flushes it lets
// gatherEvery pass, so that one write carries the heartbeats of many tasks.
// Writes that failed are tried again retryEvery later if nothing else came.
func (w *stateWriter) run(ctx context.Context) {
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	defer gather.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var retryC <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			w.flush(time.Now().Add(writeTimeout), false)
			return
		case <-w.signal:
		case <-retryC:
		}
		retry.Stop()
		retryC = nil
		if w.flush(time.Time{}, true) {
			retry.Reset(retryEvery)
			retryC = retry.C
		}
		if w.gatherEvery <= 0 {
			continue
		}
		gather.Reset(w.gatherEvery)
		select {
		case <-ctx.Done():
			w.flush(time.Now().Add(writeTimeout), false)
			return
		case <-gather.C:
		}
	}
}

const (
	// retryEvery is when failed writes are tried again if no new state
	// has come to carry them before.
	retryEvery = time.Second
	// maxPendingEvents bounds the events kept for one task while the
	// store cannot be written; past it the oldest are dropped (and logged).
	maxPendingEvents = 256
)

// flush writes what is queued, before deadline when it is not zero. With
// keep, a write that failed (other than for a lost lease) is queued again,
// under any newer state of its task and with its events first, and flush
// reports that something is waiting to be tried again.
func (w *stateWriter) flush(deadline time.Time, keep bool) (failed bool) {
	w.mu.Lock()
	batch := make([]*pendingState, 0, len(w.pending))
	for _, p := range w.pending {
		batch = append(batch, p)
	}
	w.pending = make(map[pendingKey]*pendingState, len(batch))
	w.mu.Unlock()
	if len(batch) == 0 {
		return false
	}
	// A task's older lease first: its writes fail, the newer one's land.
	slices.SortFunc(batch, func(a, b *pendingState) int {
		if c := cmp.Compare(a.rs.TaskID, b.rs.TaskID); c != 0 {
			return c
		}
		return cmp.Compare(a.lease.Token, b.lease.Token)
	})
	errs := w.write(deadline, batch)
	events := false
	var again []*pendingState
	for i, p := range batch {
		var err error
		if errs != nil {
			err = errs[i]
		}
		switch {
		case isLeaseLost(err):
			w.log.Warn("run state not stored: the lease is gone", "task_id", p.rs.TaskID, "token", p.lease.Token, "events", len(p.events))
			w.lost(p.lease)
		case err != nil:
			if keep {
				again = append(again, p)
			}
			if time.Since(w.lastErrLog) < errorLogEvery {
				w.unlogged++
				continue
			}
			what := "store run state (tried again)"
			if !keep {
				what = "store run state (not stored)"
			}
			w.log.Error(what, "task_id", p.rs.TaskID, "events", len(p.events), "err", err, "failures_not_logged", w.unlogged)
			w.lastErrLog, w.unlogged = time.Now(), 0
		default:
			events = events || len(p.events) > 0
		}
	}
	if events && w.onEvents != nil {
		w.onEvents()
	}
	w.requeue(again)
	return len(again) > 0
}

// requeue puts failed writes back: a newer state of the same lease queued
// meanwhile stays the state, and the failed write's events go before its
// own, so that a task's events are still stored in the order they came.
func (w *stateWriter) requeue(failed []*pendingState) {
	if len(failed) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range failed {
		k := pendingKey{p.rs.TaskID, p.lease.Token}
		if newer := w.pending[k]; newer != nil {
			newer.events = append(p.events, newer.events...)
			newer.release = newer.release || p.release
			p = newer
		} else {
			w.pending[k] = p
		}
		if n := len(p.events) - maxPendingEvents; n > 0 {
			w.log.Error("store unreachable: dropping the oldest events of a task", "task_id", p.rs.TaskID, "dropped", n)
			p.events = slices.Delete(p.events, 0, n)
		}
	}
}

// writeContext bounds one write by writeTimeout and by deadline, when that
// is not zero.
func writeContext(deadline time.Time) (context.Context, context.CancelFunc) {
	until := time.Now().Add(writeTimeout)
	if !deadline.IsZero() && deadline.Before(until) {
		until = deadline
	}
	return context.WithDeadline(context.Background(), until)
}
