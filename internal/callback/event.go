// Package callback turns task events into callback requests: it builds the
// events the outbox stores, and delivers them at least once, in order per
// task, signed, off the media path.
package callback

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/liverelay/liverelay/internal/redact"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// payload is the callback body, without "seq" (see store.Event.Payload).
type payload struct {
	EventID     string         `json:"event_id"`
	Event       string         `json:"event"`
	EventTime   string         `json:"event_time"`
	ProjectID   string         `json:"project_id"`
	TaskID      string         `json:"task_id"`
	Region      string         `json:"region"`
	SourceType  string         `json:"source_type"`
	Destination string         `json:"destination"`
	Final       bool           `json:"final"`
	Data        map[string]any `json:"data"`
}

// NewEvent builds the outbox event for a task, or returns nil when the task
// has no callback URL or did not ask for this event (an empty
// callback_events means every event).
func NewEvent(t *task.Task, name string, final bool, data map[string]any, now time.Time) *store.Event {
	if t.CallbackURL == "" {
		return nil
	}
	if len(t.CallbackEvents) > 0 && !slices.Contains(t.CallbackEvents, name) {
		return nil
	}
	if data == nil {
		data = map[string]any{}
	}
	id := uuid.NewString()
	now = now.UTC()
	body, err := json.Marshal(payload{
		EventID:     id,
		Event:       name,
		EventTime:   now.Format("2006-01-02T15:04:05Z"),
		ProjectID:   t.ProjectID,
		TaskID:      t.ID,
		Region:      t.Region,
		SourceType:  t.SourceType,
		Destination: redact.URL(t.Destination),
		Final:       final,
		Data:        data,
	})
	if err != nil {
		// data holds only strings, numbers, bools and string slices.
		panic("callback: marshal event: " + err.Error())
	}
	return &store.Event{
		ID:          id,
		TaskID:      t.ID,
		ProjectID:   t.ProjectID,
		Name:        name,
		Time:        now,
		Final:       final,
		CallbackURL: t.CallbackURL,
		Payload:     body,
	}
}
