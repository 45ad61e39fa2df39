package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// stateWriter persists run states off the media path: put never blocks, and
// several states of one task queued before a write collapse into the latest.
type stateWriter struct {
	st  store.Store
	log *slog.Logger

	mu      sync.Mutex
	pending map[string]task.RunState
	signal  chan struct{}
}

func newStateWriter(st store.Store, log *slog.Logger) *stateWriter {
	return &stateWriter{st: st, log: log, pending: make(map[string]task.RunState), signal: make(chan struct{}, 1)}
}

func (w *stateWriter) put(rs task.RunState) {
	w.mu.Lock()
	w.pending[rs.TaskID] = rs
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
	w.pending = make(map[string]task.RunState, len(batch))
	w.mu.Unlock()
	for _, rs := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := w.st.PutRunState(ctx, &rs); err != nil {
			w.log.Error("store run state", "task_id", rs.TaskID, "err", err)
		}
		cancel()
	}
}
