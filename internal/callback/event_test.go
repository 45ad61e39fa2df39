package callback

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/task"
)

func TestNewEventFilter(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tk := &task.Task{ID: "t1", ProjectID: "p1", Region: "r1", SourceType: task.PullVodPushLive,
		Destination: "rtmp://ingest.example/live/streamkey1234567?token=abc", CallbackURL: "http://cb.example/hook"}

	// Empty callback_events: every event.
	for _, name := range task.AllEvents {
		if NewEvent(tk, name, false, nil, at) == nil {
			t.Errorf("no callback_events: %s not produced", name)
		}
	}
	// A subset, as modify may set it: only those.
	tk.CallbackEvents = []string{task.EventTaskExit, task.EventTaskAlarm}
	for _, name := range task.AllEvents {
		got := NewEvent(tk, name, false, nil, at) != nil
		if want := name == task.EventTaskExit || name == task.EventTaskAlarm; got != want {
			t.Errorf("callback_events %v: %s produced = %v, want %v", tk.CallbackEvents, name, got, want)
		}
	}
	// No callback URL: nothing.
	tk.CallbackURL = ""
	if ev := NewEvent(tk, task.EventTaskExit, true, nil, at); ev != nil {
		t.Errorf("no callback URL: %s produced", ev.Name)
	}
}

func TestNewEventPayload(t *testing.T) {
	at := time.Date(2026, 11, 25, 18, 0, 0, 0, time.FixedZone("UTC+8", 8*3600))
	tk := &task.Task{ID: "t1", ProjectID: "p1", Region: "r1", SourceType: task.PullVodPushLive,
		Destination: "rtmp://ingest.example/live/streamkey1234567?token=abc", CallbackURL: "http://cb.example/hook"}
	ev := NewEvent(tk, task.EventTaskExit, true, map[string]any{"reason": "deleted"}, at)
	var p map[string]any
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p["event_id"] != ev.ID || p["event"] != "TaskExit" || p["event_time"] != "2026-11-25T10:00:00Z" ||
		p["final"] != true || p["task_id"] != "t1" || p["project_id"] != "p1" {
		t.Fatalf("payload %s", ev.Payload)
	}
	if _, ok := p["seq"]; ok {
		t.Fatalf("payload %s has a seq before the store numbered it", ev.Payload)
	}
	if d := p["destination"].(string); d == tk.Destination {
		t.Fatalf("destination %q not redacted", d)
	}
	if !ev.Final || ev.CallbackURL != tk.CallbackURL || ev.TaskID != "t1" || !ev.Time.Equal(at) {
		t.Fatalf("event %+v", ev)
	}
}
