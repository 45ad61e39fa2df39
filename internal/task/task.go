// Package task holds the relay-task domain types and every validation rule of
// the API as pure functions: no I/O, so they are cheap to test and to fuzz.
package task

import "time"

// Source types, as the API spells them.
const (
	PullLivePushLive = "PullLivePushLive"
	PullVodPushLive  = "PullVodPushLive"
)

// Task statuses (the user's desired state).
const (
	StatusEnable = "enable"
	StatusPause  = "pause"
)

// VOD refresh types.
const (
	RefreshImmediate     = "immediate_new_source"
	RefreshFromFileStart = "continue_from_file_start"
	RefreshFromBreak     = "continue_from_break_point"
)

// Callback event names.
const (
	EventTaskStart           = "TaskStart"
	EventTaskExit            = "TaskExit"
	EventVodSourceFileStart  = "VodSourceFileStart"
	EventVodSourceFileFinish = "VodSourceFileFinish"
	EventResetTaskConfig     = "ResetTaskConfig"
	EventTaskAlarm           = "TaskAlarm"
)

// AllEvents lists every callback event, in the API's order.
var AllEvents = []string{
	EventTaskStart, EventTaskExit, EventVodSourceFileStart,
	EventVodSourceFileFinish, EventResetTaskConfig, EventTaskAlarm,
}

// VODOnlyEvents are the events a PullLivePushLive task may not ask for.
var VODOnlyEvents = []string{EventVodSourceFileStart, EventVodSourceFileFinish, EventResetTaskConfig}

// LoopForever is the vod_loop_time value meaning "loop until end_time".
const LoopForever = -1

// Task is a stored relay task: every create field, normalised, plus identity.
type Task struct {
	ID        string
	ProjectID string
	Region    string

	SourceType string
	SourceURLs []string

	Domain     string
	AppName    string
	StreamName string
	PushArgs   string
	// DestinationURL is the complete target URL when the caller gave one.
	DestinationURL string
	// Destination is the resolved URL the relay publishes to: either
	// DestinationURL, or the domain's ingest + /app/stream?push_args.
	Destination string
	// DestinationKey identifies the destination stream for the rule "one
	// enabled task per destination" (see DestinationKey()).
	DestinationKey string

	StartTime time.Time
	EndTime   time.Time

	VodLoopTime        int // LoopForever or N >= 1
	VodRefreshType     string
	VodStartVideoIndex int
	VodStartVideoTime  int // seconds

	BackupSourceType string
	BackupSourceURLs []string

	CallbackEvents []string
	CallbackURL    string

	Status     string
	CreateTime time.Time
	UpdateTime time.Time
	// Generation increases on every modify; the scheduler uses it to notice
	// that a running task's configuration changed.
	Generation int64
}

// IsVOD reports whether the task plays files.
func (t *Task) IsVOD() bool { return t.SourceType == PullVodPushLive }

// Run states, reported in list output.
const (
	StateWaiting    = "waiting"
	StateStarting   = "starting"
	StateRunning    = "running"
	StateRecovering = "recovering"
	StatePaused     = "paused"
	StateFinished   = "finished"
	StateFailed     = "failed"
)

// Exit reasons.
const (
	ExitEndTime   = "end_time_reached"
	ExitLoopsDone = "loops_done"
	ExitDeleted   = "deleted"
	ExitPaused    = "paused"
	ExitGaveUp    = "gave_up"
	ExitShutdown  = "shutdown"
)

// ErrorInfo is the last error a task met.
type ErrorInfo struct {
	Code    string    `json:"code"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// RunState is what a task is doing now, as the node running it last saw it.
type RunState struct {
	TaskID string
	State  string
	// NodeID names the node that runs the task; empty while no node runs
	// it (waiting, paused, finished).
	NodeID           string
	OnBackup         bool
	CurrentSourceURL string
	CurrentIndex     int
	CurrentOffsetMS  int64
	LoopsDone        int
	StartedAt        time.Time // zero: never started
	LastHeartbeat    time.Time
	BitrateBPS       int64
	FPS              float64
	FramesOut        int64
	BytesOut         int64
	Reconnects       int64
	Failovers        int64
	FramesDropped    int64 // frames dropped because the destination was slower than the source
	LastError        *ErrorInfo
	ExitReason       string
}

// Checkpoint is where a VOD task has got to: what resume-after-crash and
// continue_from_break_point read.
type Checkpoint struct {
	Loop     int
	Index    int
	OffsetMS int64
}
