package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// flakyStore is a write function that fails while down is set and records
// what it stored.
type flakyStore struct {
	mu     sync.Mutex
	down   bool
	states []task.RunState
	events []string
}

func (f *flakyStore) write(_ time.Time, batch []*pendingState) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		errs := make([]error, len(batch))
		for i := range errs {
			errs[i] = errors.New("database is locked")
		}
		return errs
	}
	for _, p := range batch {
		f.states = append(f.states, p.rs)
		for _, ev := range p.events {
			f.events = append(f.events, ev.ID)
		}
	}
	return nil
}

func (f *flakyStore) stored() ([]task.RunState, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]task.RunState(nil), f.states...), append([]string(nil), f.events...)
}

func newTestWriter(f *flakyStore) *stateWriter {
	return newStateWriter(f.write, func(store.Lease) {}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
}

func ev(id string) *store.Event { return &store.Event{ID: id, TaskID: "t1"} }

// A write that fails keeps its events: they are stored with the next state
// of the task, before that state's own, and nothing is stored twice.
func TestStateWriterKeepsEventsOfAFailedWrite(t *testing.T) {
	f := &flakyStore{down: true}
	w := newTestWriter(f)
	w.put(task.RunState{TaskID: "t1", State: task.StateRunning, FramesOut: 1}, ev("e1"), store.Lease{}, false)
	if !w.flush(time.Time{}, true) {
		t.Fatal("flush with the store down reported nothing to try again")
	}
	w.put(task.RunState{TaskID: "t1", State: task.StateRecovering, FramesOut: 2}, ev("e2"), store.Lease{}, false)
	if !w.flush(time.Time{}, true) {
		t.Fatal("second flush with the store down reported nothing to try again")
	}
	w.put(task.RunState{TaskID: "t1", State: task.StateRunning, FramesOut: 3}, ev("e3"), store.Lease{}, false)
	f.mu.Lock()
	f.down = false
	f.mu.Unlock()
	if w.flush(time.Time{}, true) {
		t.Fatal("flush with the store up left something to try again")
	}
	states, events := f.stored()
	if len(states) != 1 || states[0].FramesOut != 3 {
		t.Fatalf("stored states %+v, want the latest alone (frames_out 3)", states)
	}
	if len(events) != 3 || events[0] != "e1" || events[1] != "e2" || events[2] != "e3" {
		t.Fatalf("stored events %v, want [e1 e2 e3]", events)
	}
	if w.flush(time.Time{}, true) {
		t.Fatal("nothing queued, yet something to try again")
	}
	if _, events := f.stored(); len(events) != 3 {
		t.Fatalf("events stored again: %v", events)
	}
}

// While the store stays down, a task's kept events are bounded.
func TestStateWriterBoundsKeptEvents(t *testing.T) {
	f := &flakyStore{down: true}
	w := newTestWriter(f)
	for i := range maxPendingEvents + 10 {
		w.put(task.RunState{TaskID: "t1", State: task.StateRecovering}, ev(fmt.Sprintf("e%d", i)), store.Lease{}, false)
		w.flush(time.Time{}, true)
	}
	w.mu.Lock()
	p := w.pending[pendingKey{"t1", 0}]
	w.mu.Unlock()
	if p == nil || len(p.events) != maxPendingEvents {
		t.Fatalf("kept %v events, want %d", p, maxPendingEvents)
	}
	if p.events[len(p.events)-1].ID != fmt.Sprintf("e%d", maxPendingEvents+9) {
		t.Fatalf("the newest event was dropped: last kept %s", p.events[len(p.events)-1].ID)
	}
}

// The writer tries a failed write again by itself, without a new state to
// carry it (a task's last state is often the one that failed).
func TestStateWriterRetriesWithoutNewStates(t *testing.T) {
	f := &flakyStore{down: true}
	w := newTestWriter(f)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	w.put(task.RunState{TaskID: "t1", State: task.StatePaused, ExitReason: task.ExitPaused}, ev("exit"), store.Lease{}, true)
	time.Sleep(200 * time.Millisecond) // the first attempt fails
	f.mu.Lock()
	f.down = false
	f.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, events := f.stored(); len(events) == 1 && events[0] == "exit" {
			return
		}
		if time.Now().After(deadline) {
			states, events := f.stored()
			t.Fatalf("after 10 s: stored %+v, events %v; want the exit stored by a retry", states, events)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
