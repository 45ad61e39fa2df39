package api

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/liverelay/liverelay/internal/redact"
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
// older clients ignore. The URLs and push_args come back as stored except for
// the credentials inside them (see withoutCredentials).
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
	NodeID           string          `json:"node_id"`
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
	FramesDropped    int64           `json:"frames_dropped"`
	LastError        *task.ErrorInfo `json:"last_error"`
	ExitReason       string          `json:"exit_reason"`

	// Callback delivery: events not yet delivered, events given up after
	// the retry window, and the last delivery error.
	CallbackPending   int    `json:"callback_pending"`
	CallbackGaveUp    int    `json:"callback_gave_up"`
	CallbackLastError string `json:"callback_last_error"`
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
		SourceURLs:       urlsWithoutCredentials(t.SourceURLs),
		Domain:           t.Domain,
		AppName:          t.AppName,
		StreamName:       t.StreamName,
		PushArgs:         queryWithoutCredentials(t.PushArgs),
		DestinationURL:   withoutCredentials(t.DestinationURL),
		StartTime:        formatTime(t.StartTime),
		EndTime:          formatTime(t.EndTime),
		BackupSourceType: t.BackupSourceType,
		BackupSourceURLs: urlsWithoutCredentials(t.BackupSourceURLs),
		CallbackEvents:   nonNil(t.CallbackEvents),
		CallbackURL:      withoutCredentials(t.CallbackURL),
		Status:           t.Status,
		CreateTime:       formatTime(t.CreateTime),

		RunState:         rs.State,
		NodeID:           rs.NodeID,
		OnBackup:         rs.OnBackup,
		CurrentSourceURL: withoutCredentials(rs.CurrentSourceURL),
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
		FramesDropped:    rs.FramesDropped,
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

// withoutCredentials returns a stored URL as it was given except for the
// credentials in it, which become redact.Placeholder: the password of the
// user information and the values of query parameters whose names look
// secret (redact.IsSecretKey). List must return the create fields as stored,
// so clients can compare them with what they sent, and must never return a
// secret: this keeps every other byte, the user name, the stream name and
// the encoding included. (Logs use redact.URL, which hides more.)
func withoutCredentials(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return redact.URL(rawURL) // not echoed; stored URLs were validated and parse
	}
	// Cut the way url.Parse does: the fragment at the first '#', then the
	// query at the first '?', then the user information up to the last '@'
	// of the authority.
	rest, fragment, hasFragment := strings.Cut(rawURL, "#")
	rest, query, hasQuery := strings.Cut(rest, "?")
	if _, hasPassword := u.User.Password(); hasPassword {
		rest = withoutPassword(rest)
	}
	out := rest
	if hasQuery {
		out += "?" + queryWithoutCredentials(query)
	}
	if hasFragment {
		out += "#" + fragment
	}
	return out
}

// withoutPassword replaces the password in scheme://user:password@host/path.
func withoutPassword(s string) string {
	_, afterScheme, ok := strings.Cut(s, "//")
	if !ok {
		return s
	}
	start := len(s) - len(afterScheme)
	authority := afterScheme
	if i := strings.IndexByte(authority, '/'); i >= 0 {
		authority = authority[:i]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return s
	}
	colon := strings.IndexByte(authority[:at], ':')
	if colon < 0 {
		return s
	}
	return s[:start+colon+1] + redact.Placeholder + s[start+at:]
}

// queryWithoutCredentials replaces the values of secret-looking parameters
// in a raw query string, keeping the order and encoding of the rest.
func queryWithoutCredentials(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, v, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && v != "" && redact.IsSecretKey(name) {
			parts[i] = k + "=" + redact.Placeholder
		}
	}
	return strings.Join(parts, "&")
}

func urlsWithoutCredentials(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = withoutCredentials(u)
	}
	return out
}
