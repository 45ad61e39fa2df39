// Package relay runs one task: a supervisor goroutine owns the task's state
// machine, picks the source (primary or a backup), and writes what it reads
// to the destination through a timeline that keeps the output one continuous
// stream. The supervisor never speaks a protocol: sources and sinks are
// opened through Config.OpenSource and Config.OpenSink.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/task"
)

// Alarm types, as the callback API names them.
const (
	AlarmPullFileUnstable   = "PullFileUnstable"
	AlarmPullFileFailed     = "PullFileFailed"
	AlarmPushStreamUnstable = "PushStreamUnstable"
	AlarmPushStreamFailed   = "PushStreamFailed"
	AlarmFileEndEarly       = "FileEndEarly"
	AlarmSourceFailover     = "SourceFailover"
	AlarmSourceRecovered    = "SourceRecovered"
	AlarmUnsupportedCodec   = "UnsupportedCodec"
)

// Error codes carried in RunState.LastError.
const (
	CodeSourceUnavailable = "SOURCE_UNAVAILABLE"
	CodeSourceLost        = "SOURCE_LOST"
	CodeDestinationFailed = "DESTINATION_FAILED"
	CodeUnsupportedCodec  = "UNSUPPORTED_CODEC"
)

// Config holds the settings shared by every task of a node.
type Config struct {
	// NoMediaTimeout is how long a source may send no media before it
	// counts as interrupted (default 3 s). Sources should use it as their
	// read deadline.
	NoMediaTimeout time.Duration
	// HoldTime is how long a recovered primary must deliver media before
	// the task switches back to it (default 5 s).
	HoldTime time.Duration
	// DialTimeout bounds one attempt to open a source or the destination.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the jittered delay between attempts.
	BackoffMin, BackoffMax time.Duration
	// Batch is how long packets are gathered before they are written: a
	// live reader of a buffered source (RTMP) waits this long after each
	// batch, so the next read and the next write each carry several
	// frames, and paced files go out in groups this long. It trades that
	// much latency for fewer syscalls and wakeups. 0: every frame on its
	// own.
	Batch time.Duration
	// QueueBytes bounds the packet bytes queued between the readers of a
	// task and its writer (default 4 MiB); when the destination is slower
	// than the source and the queue is full, whole GOPs are dropped.
	QueueBytes int

	OpenSource func(ctx context.Context, rawURL string) (media.Source, error)
	// OpenFile opens one file of a VOD playlist, from the keyframe at or
	// before start.
	OpenFile func(ctx context.Context, rawURL string, start time.Duration) (media.FileSource, error)
	OpenSink func(ctx context.Context, rawURL string) (media.Sink, error)
	// Redact returns a URL safe to log and report.
	Redact func(rawURL string) string
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.NoMediaTimeout == 0 {
		out.NoMediaTimeout = 3 * time.Second
	}
	if out.HoldTime == 0 {
		out.HoldTime = 5 * time.Second
	}
	if out.DialTimeout == 0 {
		out.DialTimeout = 10 * time.Second
	}
	if out.BackoffMin == 0 {
		out.BackoffMin = 500 * time.Millisecond
	}
	if out.BackoffMax == 0 {
		out.BackoffMax = 15 * time.Second
	}
	if out.QueueBytes == 0 {
		out.QueueBytes = 4 << 20
	}
	if out.Redact == nil {
		out.Redact = func(s string) string { return s }
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return out
}

// queueBatches is the capacity of a task's queue in batches; QueueBytes is
// the limit that matters.
const queueBatches = 256

// Reporter receives what a running task does. Its methods are called from
// the supervisor goroutine and must not block for long.
type Reporter interface {
	// Report receives the whole run state whenever it changes and on every
	// heartbeat.
	Report(rs task.RunState)
	// Event records a callback event (TaskStart, TaskAlarm, ...) with its
	// data.
	Event(name string, data map[string]any)
}

// ErrUnsupportedCodec is returned (wrapped) by the supervisor's codec check.
var ErrUnsupportedCodec = errors.New("unsupported codec")

// checkCodec accepts what the destinations we push to can carry: H.264 or
// H.265 video, AAC or MP3 audio.
func checkCodec(p *media.Packet) error {
	switch p.Kind {
	case media.KindVideo:
		switch c := p.VideoCodec(); c {
		case "h264", "h265":
		default:
			return fmt.Errorf("%w: video codec %s (supported: h264, h265)", ErrUnsupportedCodec, c)
		}
	case media.KindAudio:
		switch c := p.AudioCodec(); c {
		case "aac", "mp3":
		default:
			return fmt.Errorf("%w: audio codec %s (supported: aac, mp3)", ErrUnsupportedCodec, c)
		}
	}
	return nil
}
