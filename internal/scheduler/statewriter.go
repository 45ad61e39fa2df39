package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// stateWriter persists run states and their events off the media path: put
// never blocks; several states of one task queued before a write collapse
// into the latest, while its events are all kept, in order, and written in
// the same transaction as that state.
type stateWriter struct {
	st       store.Store
	log      *slog.Logger
	onEvents func() // called after events were stored

	mu      sync.Mutex
	pending map[string]*pendingState
	signal  chan struct{}
}

type pendingState struct {
	rs     task.RunState
	events []*store.Event
}

func newStateWriter(st store.Store, log *slog.Logger, onEvents func()) *stateWriter {
	return &stateWriter{st: st, log: log, onEvents: onEvents, pending: make(map[string]*pendingState), signal: make(chan struct{}, 1)}
}

func (w *stateWriter) put(rs task.RunState, ev *store.Event) {
	w.mu.Lock()
	p := w.pending[rs.TaskID]
	if p == nil {
		p = &pendingState{}
		w.pending[rs.TaskID] = p
	}
	p.rs = rs
	if ev != nil {
		p.events = append(p.events, ev)
	}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// run writes queued states until ctx is done, then writes what is left.
func (w *stateWriter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			w.flush()
			return
		case <-w.signal:
			w.flush()
		}
	}
}

func (w *stateWriter) flush() {
	w.mu.Lock()
	batch := w.pending
	w.pending = make(map[string]*pendingState, len(batch))
	w.mu.Unlock()
	events := false
	for id, p := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := w.st.PutRunState(ctx, &p.rs, p.events...); err != nil {
			w.log.Error("store run state", "task_id", id, "events", len(p.events), "err", err)
		}
		cancel()
		events = events || len(p.events) > 0
	}
	if events && w.onEvents != nil {
		w.onEvents()
	}
}
