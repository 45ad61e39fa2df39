package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/liverelay/liverelay/internal/task"
)

// Conversions between Go values and columns. Times: unix milliseconds UTC,
// NULL for the zero time. String lists: JSON arrays, "[]" when empty.

func msOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func timeFromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

func listJSON(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // a []string always marshals
	}
	return string(b)
}

func listFromJSON(column, s string) ([]string, error) {
	if v, ok := plainList(s); ok {
		return v, nil
	}
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("column %s: %w", column, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// plainList decodes what listJSON writes when no string in it needed an
// escape (the common case: a list reads it for every row), without
// encoding/json's reflection. Anything else (an escape, a space, a control
// character, invalid UTF-8) is not ok: listFromJSON decodes it the long way.
func plainList(s string) ([]string, bool) {
	if s == "[]" {
		return nil, true
	}
	if len(s) < 4 || s[0] != '[' || s[len(s)-1] != ']' || !utf8.ValidString(s) {
		return nil, false
	}
	body := s[1 : len(s)-1]
	v := make([]string, 0, strings.Count(body, `","`)+1)
	for {
		if len(body) < 2 || body[0] != '"' {
			return nil, false
		}
		end := strings.IndexByte(body[1:], '"') + 1
		if end == 0 {
			return nil, false
		}
		str := body[1:end]
		for i := 0; i < len(str); i++ {
			if str[i] == '\\' || str[i] < 0x20 {
				return nil, false
			}
		}
		v = append(v, str)
		body = body[end+1:]
		if body == "" {
			return v, true
		}
		if body[0] != ',' {
			return nil, false
		}
		body = body[1:]
	}
}

// placeholders returns "?, ?, ?" for n values.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// taskColumns are the tasks table's columns in the order of taskRow.dest and
// taskArgs.
var taskColumns = []string{
	"id", "project_id", "region", "source_type", "source_urls",
	"domain", "app_name", "stream_name", "push_args", "destination_url", "destination", "destination_key",
	"start_time", "end_time",
	"vod_loop_time", "vod_refresh_type", "vod_start_video_index", "vod_start_video_time",
	"backup_source_type", "backup_source_urls", "callback_events", "callback_url",
	"status", "create_time", "update_time", "generation",
}

// taskImmutable are the columns UpdateTask leaves alone.
var taskImmutable = map[string]bool{"id": true, "project_id": true, "create_time": true}

var (
	// taskSelect selects every column of the tasks table aliased t.
	taskSelect = "t." + strings.Join(taskColumns, ", t.")
	taskInsert = "INSERT INTO tasks (" + strings.Join(taskColumns, ", ") + ") VALUES (" + placeholders(len(taskColumns)) + ")"
	taskUpdate = func() string {
		var set []string
		for _, c := range taskColumns {
			if !taskImmutable[c] {
				set = append(set, c+" = ?")
			}
		}
		return "UPDATE tasks SET " + strings.Join(set, ", ") + " WHERE id = ? AND project_id = ?"
	}()
)

func taskArgs(t *task.Task) []any {
	return []any{
		t.ID, t.ProjectID, t.Region, t.SourceType, listJSON(t.SourceURLs),
		t.Domain, t.AppName, t.StreamName, t.PushArgs, t.DestinationURL, t.Destination, t.DestinationKey,
		msOrNull(t.StartTime), msOrNull(t.EndTime),
		t.VodLoopTime, t.VodRefreshType, t.VodStartVideoIndex, t.VodStartVideoTime,
		t.BackupSourceType, listJSON(t.BackupSourceURLs), listJSON(t.CallbackEvents), t.CallbackURL,
		t.Status, msOrNull(t.CreateTime), msOrNull(t.UpdateTime), t.Generation,
	}
}

// taskUpdateArgs are the arguments of taskUpdate.
func taskUpdateArgs(t *task.Task) []any {
	all := taskArgs(t)
	args := make([]any, 0, len(all))
	for i, c := range taskColumns {
		if !taskImmutable[c] {
			args = append(args, all[i])
		}
	}
	return append(args, t.ID, t.ProjectID)
}

// taskRow receives one row of taskSelect.
type taskRow struct {
	t                              task.Task
	sourceURLs, backupURLs, events string
	start, end, created, updated   sql.NullInt64
}

func (r *taskRow) dest() []any {
	t := &r.t
	return []any{
		&t.ID, &t.ProjectID, &t.Region, &t.SourceType, &r.sourceURLs,
		&t.Domain, &t.AppName, &t.StreamName, &t.PushArgs, &t.DestinationURL, &t.Destination, &t.DestinationKey,
		&r.start, &r.end,
		&t.VodLoopTime, &t.VodRefreshType, &t.VodStartVideoIndex, &t.VodStartVideoTime,
		&t.BackupSourceType, &r.backupURLs, &r.events, &t.CallbackURL,
		&t.Status, &r.created, &r.updated, &t.Generation,
	}
}

func (r *taskRow) task() (task.Task, error) {
	t := r.t
	var err error
	if t.SourceURLs, err = listFromJSON("source_urls", r.sourceURLs); err != nil {
		return t, err
	}
	if t.BackupSourceURLs, err = listFromJSON("backup_source_urls", r.backupURLs); err != nil {
		return t, err
	}
	if t.CallbackEvents, err = listFromJSON("callback_events", r.events); err != nil {
		return t, err
	}
	t.StartTime, t.EndTime = timeFromMS(r.start), timeFromMS(r.end)
	t.CreateTime, t.UpdateTime = timeFromMS(r.created), timeFromMS(r.updated)
	return t, nil
}

// runStateColumns are the run_states table's columns in the order of
// runStateRow.dest and runStateArgs.
var runStateColumns = []string{
	"task_id", "state", "on_backup", "current_source_url", "current_index", "current_offset_ms",
	"loops_done", "started_at", "last_heartbeat", "bitrate_bps", "fps", "frames_out", "bytes_out",
	"reconnects", "failovers", "last_error", "exit_reason", "node_id", "frames_dropped",
}

var (
	// runStateSelect selects every column of run_states aliased r.
	runStateSelect = "r." + strings.Join(runStateColumns, ", r.")
	// runStateUpsert writes a run state unless its task is gone; the last
	// argument is the task ID again, for the EXISTS.
	runStateUpsert = func() string {
		var set []string
		for _, c := range runStateColumns[1:] {
			set = append(set, c+" = excluded."+c)
		}
		return "INSERT INTO run_states (" + strings.Join(runStateColumns, ", ") + ") " +
			"SELECT " + placeholders(len(runStateColumns)) + " WHERE EXISTS (SELECT 1 FROM tasks WHERE id = ?) " +
			"ON CONFLICT (task_id) DO UPDATE SET " + strings.Join(set, ", ")
	}()
)

// errorJSON is how run_states.last_error stores a task.ErrorInfo.
type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	AtMS    *int64 `json:"at_ms,omitempty"`
}

func runStateArgs(rs *task.RunState) []any {
	var lastErr any // NULL: no error
	if e := rs.LastError; e != nil {
		j := errorJSON{Code: e.Code, Message: e.Message}
		if !e.At.IsZero() {
			ms := e.At.UnixMilli()
			j.AtMS = &ms
		}
		b, err := json.Marshal(j)
		if err != nil {
			panic(err) // strings and an int always marshal
		}
		lastErr = string(b)
	}
	return []any{
		rs.TaskID, rs.State, rs.OnBackup, rs.CurrentSourceURL, rs.CurrentIndex, rs.CurrentOffsetMS,
		rs.LoopsDone, msOrNull(rs.StartedAt), msOrNull(rs.LastHeartbeat), rs.BitrateBPS, rs.FPS, rs.FramesOut, rs.BytesOut,
		rs.Reconnects, rs.Failovers, lastErr, rs.ExitReason, rs.NodeID, rs.FramesDropped,
	}
}

// runStateRow receives one run state; every column is nullable because list
// reads it through a LEFT JOIN.
type runStateRow struct {
	taskID, state, sourceURL, lastError, exitReason, nodeID sql.NullString
	onBackup                                                sql.NullBool
	index, offset, loops, started, heartbeat                sql.NullInt64
	bitrate, frames, bytes, reconnects, failovers, dropped  sql.NullInt64
	fps                                                     sql.NullFloat64
}

func (r *runStateRow) dest() []any {
	return []any{
		&r.taskID, &r.state, &r.onBackup, &r.sourceURL, &r.index, &r.offset,
		&r.loops, &r.started, &r.heartbeat, &r.bitrate, &r.fps, &r.frames, &r.bytes,
		&r.reconnects, &r.failovers, &r.lastError, &r.exitReason, &r.nodeID, &r.dropped,
	}
}

func (r *runStateRow) runState() (task.RunState, error) {
	rs := task.RunState{
		TaskID:           r.taskID.String,
		State:            r.state.String,
		OnBackup:         r.onBackup.Bool,
		CurrentSourceURL: r.sourceURL.String,
		CurrentIndex:     int(r.index.Int64),
		CurrentOffsetMS:  r.offset.Int64,
		LoopsDone:        int(r.loops.Int64),
		StartedAt:        timeFromMS(r.started),
		LastHeartbeat:    timeFromMS(r.heartbeat),
		BitrateBPS:       r.bitrate.Int64,
		FPS:              r.fps.Float64,
		FramesOut:        r.frames.Int64,
		BytesOut:         r.bytes.Int64,
		Reconnects:       r.reconnects.Int64,
		Failovers:        r.failovers.Int64,
		FramesDropped:    r.dropped.Int64,
		ExitReason:       r.exitReason.String,
		NodeID:           r.nodeID.String,
	}
	if r.lastError.Valid {
		var j errorJSON
		if err := json.Unmarshal([]byte(r.lastError.String), &j); err != nil {
			return rs, fmt.Errorf("column last_error: %w", err)
		}
		rs.LastError = &task.ErrorInfo{Code: j.Code, Message: j.Message}
		if j.AtMS != nil {
			rs.LastError.At = time.UnixMilli(*j.AtMS).UTC()
		}
	}
	return rs, nil
}
