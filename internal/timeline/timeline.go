// Package timeline maps the timestamps of successive sources onto one output
// clock, so a task's output stays a single continuous stream across source
// switches, reconnects and timestamp jumps inside a source.
//
// The rule: output DTS = input DTS + offset, one offset shared by audio and
// video so they stay in sync. When a new segment starts (Switch), the offset
// is chosen so that its first frame lands at the latest output DTS plus the
// real gap (at least one frame duration). Inside a segment, a jump of the
// source's own clock (backwards, or forwards by more than MaxJump) is smoothed
// the same way, and the 32-bit wraparound of RTMP timestamps is unwrapped.
//
// A Timeline is owned by one goroutine.
package timeline

import (
	"time"

	"github.com/liverelay/liverelay/internal/media"
)

const (
	wrap32 = time.Duration(1<<32) * time.Millisecond
	// defaultFrame is the frame duration assumed before one is observed.
	defaultFrame = 33 * time.Millisecond
	// smallBackstep is how far a track may step back before it counts as a
	// discontinuity; smaller steps are clamped (never emitted backwards).
	smallBackstep = 500 * time.Millisecond
)

type track struct {
	haveIn   bool
	lastIn   time.Duration // unwrapped input DTS
	wrapBase time.Duration // added to raw input to unwrap 32-bit wraparound
	haveOut  bool
	lastOut  time.Duration
	frame    time.Duration // estimated frame duration
	// overlap is set at a switch until a frame of the new segment lands
	// after this track's last output: frames before that are dropped.
	overlap bool
}

// Timeline is the output clock of one task.
type Timeline struct {
	// MaxJump is the largest forward step of a source's own clock taken as
	// real; a larger one is smoothed to one frame duration. Zero means 2 s.
	MaxJump time.Duration

	offset     time.Duration
	anchored   bool
	pendingGap time.Duration
	maxOut     time.Duration
	haveOut    bool
	tracks     [2]track // 0 audio, 1 video
	rebases    int
}

// New returns a Timeline whose first segment starts at output DTS 0.
func New() *Timeline { return &Timeline{} }

// Switch marks the start of a new segment (a new source, a reconnect, the
// next file). Its first frame will be placed gap after the latest output
// DTS, or one frame duration after it when gap is smaller.
func (t *Timeline) Switch(gap time.Duration) {
	t.anchored = false
	t.pendingGap = gap
	for i := range t.tracks {
		t.tracks[i].haveIn = false
		t.tracks[i].wrapBase = 0
		t.tracks[i].overlap = t.tracks[i].haveOut
	}
}

// Last returns the latest output DTS: the timestamp to give codec
// configuration and metadata sent between frames.
func (t *Timeline) Last() time.Duration { return t.maxOut }

// Rebases counts the discontinuities smoothed inside segments.
func (t *Timeline) Rebases() int { return t.rebases }

func (t *Timeline) frameDur() time.Duration {
	f := max(t.tracks[0].frame, t.tracks[1].frame)
	if f == 0 {
		return defaultFrame
	}
	return f
}

// Map returns the output DTS of an audio or video frame of the current
// segment, and false when the frame is to be dropped: at a switch, frames of
// the new segment that would land before the end of their track in the old
// one (the old file's audio usually runs a little past its last video
// frame). Codec configuration and metadata should use Last() instead, so
// they never move the clock.
func (t *Timeline) Map(kind media.Kind, dts time.Duration) (time.Duration, bool) {
	tr := &t.tracks[0]
	if kind == media.KindVideo {
		tr = &t.tracks[1]
	}

	in := dts + tr.wrapBase
	if tr.haveIn {
		d := in - tr.lastIn
		// A 32-bit RTMP clock that wrapped shows as a step back of almost
		// 2^32 ms: unwrap it instead of treating it as a discontinuity.
		if d < -wrap32/2 {
			tr.wrapBase += wrap32
			in += wrap32
			d += wrap32
		}
		maxJump := t.MaxJump
		if maxJump == 0 {
			maxJump = 2 * time.Second
		}
		if t.anchored && (d < -smallBackstep || d > maxJump) {
			// The source's clock jumped: continue one frame after this
			// track's last output, for both tracks.
			f := tr.frame
			if f == 0 {
				f = defaultFrame
			}
			t.offset = tr.lastOut + f - in
			t.rebases++
		} else if d > 0 && d < time.Second {
			// Exponential average of the frame duration.
			if tr.frame == 0 {
				tr.frame = d
			} else {
				tr.frame += (d - tr.frame) / 8
			}
		}
	}

	if !t.anchored {
		// The first frame of a segment (the caller anchors on a video
		// keyframe) lands one frame, or the real gap, after the end of its
		// own track: the other track's tail is dropped rather than leaving
		// a hole in the picture.
		start := time.Duration(0)
		switch {
		case tr.haveOut:
			f := tr.frame
			if f == 0 {
				f = defaultFrame
			}
			start = tr.lastOut + max(t.pendingGap, f)
		case t.haveOut:
			start = t.maxOut + max(t.pendingGap, t.frameDur())
		}
		t.offset = start - in
		t.anchored = true
	}

	out := in + t.offset
	if tr.overlap {
		if out < tr.lastOut+tr.frame/2 {
			tr.haveIn, tr.lastIn = true, in
			return 0, false
		}
		tr.overlap = false
	}
	if tr.haveOut && out < tr.lastOut {
		out = tr.lastOut
	}
	tr.haveIn, tr.lastIn = true, in
	tr.haveOut, tr.lastOut = true, out
	if !t.haveOut || out > t.maxOut {
		t.maxOut = out
	}
	t.haveOut = true
	return out, true
}
