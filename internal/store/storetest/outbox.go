package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// The callback outbox: events appended with task writes, numbered per task,
// handed out for delivery one at a time per task.

// newEvent returns an outbox event of a task as a producer fills it.
func newEvent(taskID, name string, at time.Time) *store.Event {
	id := fmt.Sprintf("%s-%s-%d", taskID, name, at.UnixNano())
	return &store.Event{
		ID:          id,
		TaskID:      taskID,
		ProjectID:   "p1",
		Name:        name,
		Time:        at,
		Final:       name == task.EventTaskExit,
		CallbackURL: "https://callback.example/" + taskID + "?token=abc",
		Payload:     []byte(`{"event_id":"` + id + `","event":"` + name + `","data":{"n":"\u00e9"}}`),
	}
}

// due returns the IDs of the due events at, in the order DueEvents gives.
func due(t *testing.T, s store.Store, at time.Time, limit int) []string {
	t.Helper()
	evs, err := s.DueEvents(t.Context(), at, limit)
	if err != nil {
		t.Fatalf("DueEvents: %v", err)
	}
	ids := []string{}
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	return ids
}

func wantIDs(t *testing.T, what string, got []string, want ...*store.Event) {
	t.Helper()
	ids := []string{}
	for _, ev := range want {
		ids = append(ids, ev.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("%s: %v, want %v", what, got, ids)
	}
}

func wantSeqs(t *testing.T, what string, evs []*store.Event, seqs ...int64) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != seqs[i] {
			t.Errorf("%s: event %d (%s) has seq %d, want %d", what, i, ev.Name, ev.Seq, seqs[i])
		}
	}
}

func testEventAppend(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	t1 := newTask("p1", "t1")
	t2 := newTask("p1", "t2")
	mustCreate(t, s, t1)
	mustCreate(t, s, t2)

	// Seq counts per task, across every kind of write.
	a1 := newEvent("t1", task.EventResetTaskConfig, now)
	a2 := newEvent("t1", task.EventTaskAlarm, now.Add(time.Millisecond))
	t1.Generation++
	if err := s.UpdateTask(ctx, t1, now, a1, nil, a2); err != nil {
		t.Fatalf("UpdateTask with events: %v", err)
	}
	wantSeqs(t, "UpdateTask", []*store.Event{a1, a2}, 1, 2)
	a3 := newEvent("t1", task.EventTaskStart, now.Add(2*time.Millisecond))
	if err := s.PutRunState(ctx, &task.RunState{TaskID: "t1", State: task.StateRunning}, a3); err != nil {
		t.Fatalf("PutRunState with an event: %v", err)
	}
	b1 := newEvent("t2", task.EventTaskStart, now.Add(3*time.Millisecond))
	if err := s.PutRunState(ctx, &task.RunState{TaskID: "t2", State: task.StateRunning}, b1); err != nil {
		t.Fatalf("PutRunState with an event: %v", err)
	}
	wantSeqs(t, "PutRunState", []*store.Event{a3, b1}, 3, 1)

	// A rejected write stores none of its events.
	stale := *t1
	lost := newEvent("t1", task.EventResetTaskConfig, now.Add(4*time.Millisecond))
	wantErr(t, "UpdateTask with a stale generation", s.UpdateTask(ctx, &stale, now, lost), store.ErrConflict)

	a4 := newEvent("t1", task.EventTaskExit, now.Add(5*time.Millisecond))
	if err := s.DeleteTask(ctx, "p1", "t1", a4); err != nil {
		t.Fatalf("DeleteTask with an event: %v", err)
	}
	wantSeqs(t, "DeleteTask", []*store.Event{a4}, 4)

	// A state reported for a task that is gone is dropped, its events too.
	late := newEvent("t1", task.EventTaskAlarm, now.Add(6*time.Millisecond))
	never := newEvent("t0", task.EventTaskStart, now.Add(6*time.Millisecond))
	for _, ev := range []*store.Event{late, never} {
		if err := s.PutRunState(ctx, &task.RunState{TaskID: ev.TaskID, State: task.StateRunning}, ev); err != nil {
			t.Fatalf("PutRunState of a missing task %s: %v, want the write dropped", ev.TaskID, err)
		}
	}

	// Only each task's first event is due; delivering it releases the next.
	at := now.Add(time.Hour)
	wantIDs(t, "due events", due(t, s, at, 10), a1, b1)
	got, err := s.DueEvents(ctx, at, 10)
	if err != nil {
		t.Fatalf("DueEvents: %v", err)
	}
	checkEvent(t, got[0], a1)
	checkEvent(t, got[1], b1)

	var delivered []string
	for range 10 {
		evs, err := s.DueEvents(ctx, at, 10)
		if err != nil {
			t.Fatalf("DueEvents: %v", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			if err := s.MarkDelivered(ctx, ev.ID, at); err != nil {
				t.Fatalf("MarkDelivered: %v", err)
			}
			delivered = append(delivered, fmt.Sprintf("%s#%d", ev.TaskID, ev.Seq))
		}
	}
	if want := "[t1#1 t2#1 t1#2 t1#3 t1#4]"; fmt.Sprint(delivered) != want {
		t.Fatalf("delivered %v, want %s (late and rejected events never stored)", delivered, want)
	}
	wantErr(t, "MarkDelivered of an unknown event", s.MarkDelivered(ctx, "nope", at), store.ErrNotFound)
	wantErr(t, "MarkFailed of an unknown event", s.MarkFailed(ctx, "nope", 1, at, "x", false), store.ErrNotFound)
}

// checkEvent compares an event read back with the one appended.
func checkEvent(t *testing.T, got store.Event, want *store.Event) {
	t.Helper()
	checkUTC(t, "event "+want.ID, got.Time, got.NextAttemptAt, got.DeliveredAt)
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("event %s: payload %s, want %s", want.ID, got.Payload, want.Payload)
	}
	w := *want
	w.Time = canonTime(w.Time)
	w.NextAttemptAt = w.Time // first attempt: at once
	w.Payload = nil
	got.Payload = nil
	checkFields(t, "event "+want.ID, got, w)
}

func testDueEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	var a, b, c []*store.Event
	for i, id := range []string{"a", "b", "c"} {
		tk := newTask("p1", id)
		mustCreate(t, s, tk)
		evs := []*store.Event{
			newEvent(id, task.EventTaskStart, now.Add(time.Duration(i)*time.Second)),
			newEvent(id, task.EventTaskAlarm, now.Add(time.Duration(i)*time.Second+time.Millisecond)),
			newEvent(id, task.EventTaskExit, now.Add(time.Duration(i)*time.Second+2*time.Millisecond)),
		}
		if err := s.PutRunState(ctx, &task.RunState{TaskID: id, State: task.StateRunning}, evs...); err != nil {
			t.Fatalf("PutRunState: %v", err)
		}
		switch id {
		case "a":
			a = evs
		case "b":
			b = evs
		default:
			c = evs
		}
	}

	// Not due before their time; oldest first; limit honoured.
	wantIDs(t, "due before any event", due(t, s, now.Add(-time.Second), 10))
	wantIDs(t, "due at the first event's time", due(t, s, now, 10), a[0])
	wantIDs(t, "due later", due(t, s, now.Add(time.Hour), 10), a[0], b[0], c[0])
	wantIDs(t, "due with limit 2", due(t, s, now.Add(time.Hour), 2), a[0], b[0])
	wantIDs(t, "due with limit 0", due(t, s, now.Add(time.Hour), 0))

	// A failed head holds its task back until its next attempt, and is
	// then handed out after the events tried fewer times.
	retryAt := now.Add(time.Minute)
	if err := s.MarkFailed(ctx, a[0].ID, 1, retryAt, "POST https://callback.example/a: 500", false); err != nil {
		t.Fatalf("MarkFailed: %v", err)
	}
	wantIDs(t, "due while a's head waits", due(t, s, retryAt.Add(-time.Millisecond), 10), b[0], c[0])
	wantIDs(t, "due when a's head is due again", due(t, s, retryAt, 10), b[0], c[0], a[0])
	got, err := s.DueEvents(ctx, retryAt, 10)
	if err != nil {
		t.Fatalf("DueEvents: %v", err)
	}
	if h := got[2]; h.Attempts != 1 || !h.NextAttemptAt.Equal(retryAt) || h.LastError == "" || h.GaveUp || !h.DeliveredAt.IsZero() {
		t.Fatalf("a's head after a failure: attempts %d, next %v, error %q, gave up %v, delivered %v",
			h.Attempts, h.NextAttemptAt, h.LastError, h.GaveUp, h.DeliveredAt)
	}

	// Giving up releases the task's next event.
	if err := s.MarkFailed(ctx, a[0].ID, 2, retryAt, "gave up", true); err != nil {
		t.Fatalf("MarkFailed giving up: %v", err)
	}
	wantIDs(t, "due after giving up a's head", due(t, s, retryAt, 10), a[1], b[0], c[0])

	// Delivered events are not handed out again; each task goes in order.
	for _, ev := range []*store.Event{a[1], b[0], b[1], c[0]} {
		if err := s.MarkDelivered(ctx, ev.ID, retryAt); err != nil {
			t.Fatalf("MarkDelivered: %v", err)
		}
	}
	wantIDs(t, "due after deliveries", due(t, s, retryAt, 10), a[2], b[2], c[1])

	// A due event whose task was deleted is still handed out.
	if err := s.DeleteTask(ctx, "p1", "c"); err != nil {
		t.Fatalf("DeleteTask: %v", err)
	}
	wantIDs(t, "due after deleting c", due(t, s, retryAt, 10), a[2], b[2], c[1])
}

func testPruneEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Hour)
	events := map[string][]*store.Event{}
	for _, id := range []string{"a", "b", "c", "d"} {
		mustCreate(t, s, newTask("p1", id))
		for i := range 3 {
			ev := newEvent(id, task.EventTaskAlarm, old.Add(time.Duration(i)*time.Millisecond))
			if err := s.PutRunState(ctx, &task.RunState{TaskID: id, State: task.StateRunning}, ev); err != nil {
				t.Fatalf("PutRunState: %v", err)
			}
			events[id] = append(events[id], ev)
		}
	}
	mark := func(ev *store.Event, at time.Time) {
		t.Helper()
		if err := s.MarkDelivered(ctx, ev.ID, at); err != nil {
			t.Fatalf("MarkDelivered: %v", err)
		}
	}
	giveUp := func(ev *store.Event, at time.Time) {
		t.Helper()
		if err := s.MarkFailed(ctx, ev.ID, 9, at, "refused", true); err != nil {
			t.Fatalf("MarkFailed: %v", err)
		}
	}
	// a: all delivered long ago: all but the last go.
	for _, ev := range events["a"] {
		mark(ev, old)
	}
	// b: one given up long ago, one delivered recently, one pending: the first goes.
	giveUp(events["b"][0], old)
	mark(events["b"][1], recent)
	// c: all delivered long ago, then the task is deleted: all go.
	for _, ev := range events["c"] {
		mark(ev, old)
	}
	if err := s.DeleteTask(ctx, "p1", "c"); err != nil {
		t.Fatalf("DeleteTask: %v", err)
	}
	// d: pending, never tried: nothing goes, however old.

	n, err := s.PruneEvents(ctx, now.Add(-24*time.Hour))
	if err != nil {
		t.Fatalf("PruneEvents: %v", err)
	}
	if n != 2+1+3 {
		t.Fatalf("PruneEvents deleted %d events, want 6", n)
	}
	if n, err := s.PruneEvents(ctx, now.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("PruneEvents again = %d, %v; want 0", n, err)
	}

	// Seq keeps counting after a prune.
	next := newEvent("a", task.EventTaskExit, now)
	if err := s.PutRunState(ctx, &task.RunState{TaskID: "a", State: task.StateFinished}, next); err != nil {
		t.Fatalf("PutRunState: %v", err)
	}
	wantSeqs(t, "event after a prune", []*store.Event{next}, 4)

	wantIDs(t, "due after prune", due(t, s, now, 10), events["d"][0], events["b"][2], next)
	backlog, err := s.EventBacklog(ctx, []string{"a", "b", "c", "d"})
	if err != nil {
		t.Fatalf("EventBacklog: %v", err)
	}
	want := map[string]store.EventBacklog{"a": {Pending: 1}, "b": {Pending: 1}, "d": {Pending: 3}}
	if fmt.Sprint(backlog) != fmt.Sprint(want) {
		t.Fatalf("backlog after prune: %v, want %v", backlog, want)
	}
}

func testEventBacklog(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	var evs []*store.Event
	for _, id := range []string{"a", "b", "c"} {
		mustCreate(t, s, newTask("p1", id))
		for i := range 3 {
			ev := newEvent(id, task.EventTaskAlarm, now.Add(time.Duration(i)*time.Millisecond))
			if err := s.PutRunState(ctx, &task.RunState{TaskID: id, State: task.StateRunning}, ev); err != nil {
				t.Fatalf("PutRunState: %v", err)
			}
			evs = append(evs, ev)
		}
	}
	// a: first given up, second failing, third waiting behind it.
	if err := s.MarkFailed(ctx, evs[0].ID, 5, now, "first error", true); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(ctx, evs[1].ID, 2, now.Add(time.Minute), "receiver answered 503", false); err != nil {
		t.Fatal(err)
	}
	// b: everything delivered.
	for _, ev := range evs[3:6] {
		if err := s.MarkDelivered(ctx, ev.ID, now); err != nil {
			t.Fatal(err)
		}
	}
	// c: untouched.

	got, err := s.EventBacklog(ctx, []string{"a", "b", "c", "unknown"})
	if err != nil {
		t.Fatalf("EventBacklog: %v", err)
	}
	want := map[string]store.EventBacklog{
		"a": {Pending: 2, GaveUp: 1, LastError: "receiver answered 503"},
		"c": {Pending: 3},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("EventBacklog = %v, want %v", got, want)
	}
	if got, err := s.EventBacklog(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("EventBacklog of no tasks = %v, %v; want empty", got, err)
	}
}

func testProjectCallbackKey(t *testing.T, s store.Store) {
	ctx := t.Context()
	err := s.SetProjectCallbackKey(ctx, "p1", []byte("sealed"))
	wantErr(t, "SetProjectCallbackKey of an unknown project", err, store.ErrProjectNotFound)

	key := []byte{1, 0, 0xff, 'k'}
	if err := s.PutProject(ctx, &store.Project{ID: "p1", AccountID: "acct", Region: "region-a", CallbackKey: key}); err != nil {
		t.Fatalf("PutProject: %v", err)
	}
	putProject(t, s, "p2")
	wantKey := func(id string, want []byte) {
		t.Helper()
		p, err := s.GetProject(ctx, id)
		if err != nil {
			t.Fatalf("GetProject: %v", err)
		}
		if !bytes.Equal(p.CallbackKey, want) {
			t.Fatalf("project %s: callback key %x, want %x", id, p.CallbackKey, want)
		}
	}
	wantKey("p1", key)
	wantKey("p2", nil)

	// PutProject keeps an existing project, key included.
	if err := s.PutProject(ctx, &store.Project{ID: "p1", AccountID: "acct"}); err != nil {
		t.Fatalf("PutProject again: %v", err)
	}
	wantKey("p1", key)

	other := []byte("another sealed key")
	if err := s.SetProjectCallbackKey(ctx, "p2", other); err != nil {
		t.Fatalf("SetProjectCallbackKey: %v", err)
	}
	wantKey("p2", other)
	wantKey("p1", key)
	if err := s.SetProjectCallbackKey(ctx, "p1", nil); err != nil {
		t.Fatalf("SetProjectCallbackKey(nil): %v", err)
	}
	wantKey("p1", nil)
}
