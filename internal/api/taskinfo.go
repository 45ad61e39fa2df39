package api

import (
	"strconv"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

const timeFormat = "2006-01-02T15:04:05Z"

type listResponse struct {
	TaskInfos []taskInfo `json:"task_infos"`
	Total     int        `json:"total"`
	RequestID string     `json:"request_id"`
}

// taskInfo is one task as list returns it: every create field as stored,
// normalised, then identity and status, then the run-state extensions that
// older clients ignore.
type taskInfo struct {
	TaskID             string   `json:"task_id"`
	Region             string   `json:"region"`
	SourceType         string   `json:"source_type"`
	SourceURLs         []string `json:"source_urls"`
	Domain             string   `json:"domain"`
	AppName            string   `json:"app_name"`
	StreamName         string   `json:"stream_name"`
	PushArgs           string   `json:"push_args"`
	DestinationURL     string   `json:"destination_url"`
	StartTime          string   `json:"start_time"`
	EndTime            string   `json:"end_time"`
	VodLoopTime        string   `json:"vod_loop_time,omitempty"`
	VodRefreshType     string   `json:"vod_refresh_type,omitempty"`
	VodStartVideoIndex *int     `json:"vod_start_video_index,omitempty"`
	VodStartVideoTime  *int     `json:"vod_start_video_time,omitempty"`
	BackupSourceType   string   `json:"backup_source_type,omitempty"`
	BackupSourceURLs   []string `json:"backup_source_urls"`
	CallbackEvents     []string `json:"callback_events"`
	CallbackURL        string   `json:"callback_url"`
	Status             string   `json:"status"`
	CreateTime         string   `json:"create_time"`

	RunState         string          `json:"run_state"`
	OnBackup         bool            `json:"on_backup"`
	CurrentSourceURL string          `json:"current_source_url"`
	CurrentIndex     int             `json:"current_index"`
	CurrentOffsetMS  int64           `json:"current_offset_ms"`
	LoopsDone        int             `json:"loops_done"`
	StartedAt        *string         `json:"started_at"`
	LastHeartbeat    *string         `json:"last_heartbeat"`
	BitrateBPS       int64           `json:"bitrate_bps"`
	FPS              float64         `json:"fps"`
	FramesOut        int64           `json:"frames_out"`
	BytesOut         int64           `json:"bytes_out"`
	Reconnects       int64           `json:"reconnects"`
	Failovers        int64           `json:"failovers"`
	LastError        *task.ErrorInfo `json:"last_error"`
	ExitReason       string          `json:"exit_reason"`
}

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

func newTaskInfo(v *store.TaskView) taskInfo {
	t, rs := &v.Task, &v.State
	info := taskInfo{
		TaskID:           t.ID,
		Region:           t.Region,
		SourceType:       t.SourceType,
		SourceURLs:       nonNil(t.SourceURLs),
		Domain:           t.Domain,
		AppName:          t.AppName,
		StreamName:       t.StreamName,
		PushArgs:         t.PushArgs,
		DestinationURL:   t.DestinationURL,
		StartTime:        formatTime(t.StartTime),
		EndTime:          formatTime(t.EndTime),
		BackupSourceType: t.BackupSourceType,
		BackupSourceURLs: nonNil(t.BackupSourceURLs),
		CallbackEvents:   nonNil(t.CallbackEvents),
		CallbackURL:      t.CallbackURL,
		Status:           t.Status,
		CreateTime:       formatTime(t.CreateTime),

		RunState:         rs.State,
		OnBackup:         rs.OnBackup,
		CurrentSourceURL: rs.CurrentSourceURL,
		CurrentIndex:     rs.CurrentIndex,
		CurrentOffsetMS:  rs.CurrentOffsetMS,
		LoopsDone:        rs.LoopsDone,
		StartedAt:        optTime(rs.StartedAt),
		LastHeartbeat:    optTime(rs.LastHeartbeat),
		BitrateBPS:       rs.BitrateBPS,
		FPS:              rs.FPS,
		FramesOut:        rs.FramesOut,
		BytesOut:         rs.BytesOut,
		Reconnects:       rs.Reconnects,
		Failovers:        rs.Failovers,
		LastError:        rs.LastError,
		ExitReason:       rs.ExitReason,
	}
	if info.RunState == "" {
		info.RunState = task.StateWaiting
	}
	if t.IsVOD() {
		info.VodLoopTime = strconv.Itoa(t.VodLoopTime)
		info.VodRefreshType = t.VodRefreshType
		info.VodStartVideoIndex = &t.VodStartVideoIndex
		info.VodStartVideoTime = &t.VodStartVideoTime
	}
	return info
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
