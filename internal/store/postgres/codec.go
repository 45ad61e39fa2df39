package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/liverelay/liverelay/internal/task"
)

// Conversions between Go values and columns. Times: timestamptz to the
// millisecond, NULL for the zero time, read back in UTC. String lists:
// text[], '{}' when empty, read back nil when empty.

// timeArg is t as a column value: NULL when zero, else cut to the
// millisecond like the SQLite store (which keeps unix milliseconds).
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

func timeOf(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// listArg is v as a text[] value: pgx sends a nil slice as NULL.
func listArg(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

func listOf(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	return v
}

// bytesArg is b as a bytea value that is never NULL.
func bytesArg(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// textArg makes s storable in a text column, which refuses NUL and invalid
// UTF-8. It is for strings that come from outside (error messages of remote
// peers), where a lossy copy is better than a failed write.
func textArg(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// placeholders returns "$from, $from+1, ..." for n values.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
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
	taskInsert = "INSERT INTO tasks (" + strings.Join(taskColumns, ", ") + ") VALUES (" + placeholders(1, len(taskColumns)) + ")"
	taskUpdate = func() string {
		var set []string
		for _, c := range taskColumns {
			if !taskImmutable[c] {
				set = append(set, fmt.Sprintf("%s = $%d", c, len(set)+1))
			}
		}
		return "UPDATE tasks SET " + strings.Join(set, ", ") +
			fmt.Sprintf(" WHERE id = $%d AND project_id = $%d", len(set)+1, len(set)+2)
	}()
)

func taskArgs(t *task.Task) []any {
	return []any{
		t.ID, t.ProjectID, t.Region, t.SourceType, listArg(t.SourceURLs),
		t.Domain, t.AppName, t.StreamName, t.PushArgs, t.DestinationURL, t.Destination, t.DestinationKey,
		timeArg(t.StartTime), timeArg(t.EndTime),
		t.VodLoopTime, t.VodRefreshType, t.VodStartVideoIndex, t.VodStartVideoTime,
		t.BackupSourceType, listArg(t.BackupSourceURLs), listArg(t.CallbackEvents), t.CallbackURL,
		t.Status, timeArg(t.CreateTime), timeArg(t.UpdateTime), t.Generation,
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
	t                            task.Task
	start, end, created, updated pgtype.Timestamptz
}

func (r *taskRow) dest() []any {
	t := &r.t
	return []any{
		&t.ID, &t.ProjectID, &t.Region, &t.SourceType, &t.SourceURLs,
		&t.Domain, &t.AppName, &t.StreamName, &t.PushArgs, &t.DestinationURL, &t.Destination, &t.DestinationKey,
		&r.start, &r.end,
		&t.VodLoopTime, &t.VodRefreshType, &t.VodStartVideoIndex, &t.VodStartVideoTime,
		&t.BackupSourceType, &t.BackupSourceURLs, &t.CallbackEvents, &t.CallbackURL,
		&t.Status, &r.created, &r.updated, &t.Generation,
	}
}

func (r *taskRow) task() task.Task {
	t := r.t
	t.SourceURLs, t.BackupSourceURLs, t.CallbackEvents = listOf(t.SourceURLs), listOf(t.BackupSourceURLs), listOf(t.CallbackEvents)
	t.StartTime, t.EndTime = timeOf(r.start), timeOf(r.end)
	t.CreateTime, t.UpdateTime = timeOf(r.created), timeOf(r.updated)
	return t
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
	// runStateUpsert writes a run state unless its task is gone. The task's
	// row is locked (FOR KEY SHARE) so that a delete running at the same
	// time either comes first, and nothing is written, or waits for this
	// write and takes the state with it.
	runStateUpsert = func() string {
		var set []string
		for _, c := range runStateColumns[1:] {
			set = append(set, c+" = excluded."+c)
		}
		return "WITH t AS (SELECT id FROM tasks WHERE id = $1 FOR KEY SHARE) " +
			"INSERT INTO run_states (" + strings.Join(runStateColumns, ", ") + ") " +
			"SELECT t.id, " + placeholders(2, len(runStateColumns)-1) + " FROM t " +
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
		rs.LoopsDone, timeArg(rs.StartedAt), timeArg(rs.LastHeartbeat), rs.BitrateBPS, rs.FPS, rs.FramesOut, rs.BytesOut,
		rs.Reconnects, rs.Failovers, lastErr, rs.ExitReason, rs.NodeID, rs.FramesDropped,
	}
}

// runStateRow receives one run state; every column is nullable because list
// reads it through a LEFT JOIN.
type runStateRow struct {
	taskID, state, sourceURL, lastError, exitReason, nodeID pgtype.Text
	onBackup                                                pgtype.Bool
	index, offset, loops                                    pgtype.Int8
	bitrate, frames, bytes, reconnects, failovers, dropped  pgtype.Int8
	started, heartbeat                                      pgtype.Timestamptz
	fps                                                     pgtype.Float8
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
		StartedAt:        timeOf(r.started),
		LastHeartbeat:    timeOf(r.heartbeat),
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
