package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/task"
)

// fakeFile is a short file: codec config, then 25 fps video with a
// keyframe every 5 frames and audio, from file time `start` (rounded down to
// a keyframe) to its duration, then io.EOF.
type fakeFile struct {
	dur   time.Duration
	queue []*media.Packet
}

func newFakeFile(dur, start time.Duration) *fakeFile {
	f := &fakeFile{dur: dur}
	f.queue = append(f.queue, avcConfig(), aacConfig())
	frame := 40 * time.Millisecond
	first := (start / (5 * frame)) * 5 * frame
	for i, dts := 0, first; dts < dur; i, dts = i+1, dts+frame {
		hdr := byte(0x27)
		if (dts/frame)%5 == 0 {
			hdr = 0x17
		}
		f.queue = append(f.queue,
			&media.Packet{Kind: media.KindVideo, DTS: dts, Body: []byte{hdr, 1, 0, 0, 0, byte(i)}},
			&media.Packet{Kind: media.KindAudio, DTS: dts, Body: []byte{0xaf, 1, byte(i)}})
	}
	return f
}

func (f *fakeFile) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if len(f.queue) == 0 {
		return nil, io.EOF
	}
	p := f.queue[0]
	f.queue = f.queue[1:]
	return p, nil
}
func (f *fakeFile) Close() error            { return nil }
func (f *fakeFile) Duration() time.Duration { return f.dur }

type vodEnv struct {
	sink   *fakeSink
	rec    *recorder
	opened []string
}

func runVOD(t *testing.T, tk *task.Task, resume task.RunState, until func(*vodEnv) bool) *vodEnv {
	t.Helper()
	return runVODFiles(t, tk, resume, 400*time.Millisecond, until)
}

// runVODFiles plays files of duration dur each.
func runVODFiles(t *testing.T, tk *task.Task, resume task.RunState, dur time.Duration, until func(*vodEnv) bool) *vodEnv {
	t.Helper()
	env := &vodEnv{sink: &fakeSink{}, rec: &recorder{}}
	cfg := Config{
		BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		OpenFile: func(ctx context.Context, u string, start time.Duration) (media.FileSource, error) {
			env.rec.mu.Lock()
			env.opened = append(env.opened, fmt.Sprintf("%s@%v", u, start))
			env.rec.mu.Unlock()
			if strings.Contains(u, "missing") {
				return nil, errors.New("HTTP 404")
			}
			return newFakeFile(dur, start), nil
		},
		OpenSink: func(ctx context.Context, u string) (media.Sink, error) { return env.sink, nil },
	}
	sup := NewSupervisor(tk, cfg, env.rec, resume)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "condition", func() bool {
		select {
		case <-done:
			return true
		default:
		}
		return until(env)
	})
	return env
}

func vodTask(files ...string) *task.Task {
	return &task.Task{ID: "v", SourceType: task.PullVodPushLive, SourceURLs: files, Destination: "d",
		VodLoopTime: 2, VodRefreshType: task.RefreshImmediate}
}

func TestPlaylistTwoRoundsIsOneContinuousStream(t *testing.T) {
	start := time.Now()
	env := runVOD(t, vodTask("a", "missing", "c"), task.RunState{}, func(e *vodEnv) bool {
		return e.rec.last().State == task.StateFinished
	})
	wall := time.Since(start)
	rs := env.rec.last()
	if rs.ExitReason != task.ExitLoopsDone || rs.LoopsDone != 2 {
		t.Fatalf("final state %+v, want finished/loops_done after 2 rounds", rs)
	}
	out := env.sink.snapshot()
	checkOutput(t, out)

	// Two rounds of two playable 400 ms files: 1.6 s of media, continuous.
	var first, last, prev time.Duration
	n := 0
	for _, p := range out {
		if p.Kind != media.KindVideo || p.IsSequenceHeader() {
			continue
		}
		if n == 0 {
			first = p.DTS
		} else if gap := p.DTS - prev; gap > 80*time.Millisecond || gap <= 0 {
			t.Fatalf("video frame %d: step %v (want one or two frame durations)", n, gap)
		}
		prev, last = p.DTS, p.DTS
		n++
	}
	if n != 40 {
		t.Fatalf("video frames out = %d, want 40", n)
	}
	if span := last - first; span < 1500*time.Millisecond || span > 1700*time.Millisecond {
		t.Fatalf("output span %v, want about 1.56 s", span)
	}
	// Paced at real time, not as fast as the files can be read.
	if wall < 1400*time.Millisecond {
		t.Fatalf("played 1.6 s of media in %v: not paced", wall)
	}
	// Codec configuration is identical in every file: sent once.
	configs := 0
	for _, p := range out {
		if p.IsSequenceHeader() && p.Kind == media.KindVideo {
			configs++
		}
	}
	if configs != 1 {
		t.Fatalf("video config sent %d times, want 1 (the files' configs are identical)", configs)
	}

	env.rec.mu.Lock()
	events := append([]string(nil), env.rec.events...)
	env.rec.mu.Unlock()
	want := []string{
		"TaskStart:<nil>",
		"VodSourceFileStart:<nil>", "VodSourceFileFinish:<nil>", "TaskAlarm:PullFileFailed",
		"VodSourceFileStart:<nil>", "VodSourceFileFinish:<nil>",
		"VodSourceFileStart:<nil>", "VodSourceFileFinish:<nil>", "TaskAlarm:PullFileFailed",
		"VodSourceFileStart:<nil>", "VodSourceFileFinish:<nil>",
	}
	if strings.Join(events, " ") != strings.Join(want, " ") {
		t.Fatalf("events:\n got %v\nwant %v", events, want)
	}
}

func TestPlaylistStartsAtIndexAndTime(t *testing.T) {
	tk := vodTask("a", "b")
	tk.VodLoopTime = 1
	tk.VodStartVideoIndex = 1
	env := runVOD(t, tk, task.RunState{}, func(e *vodEnv) bool { return e.rec.last().State == task.StateFinished })
	if len(env.opened) != 1 || env.opened[0] != "b@0s" {
		t.Fatalf("opened %v, want only b from 0", env.opened)
	}
}

func TestPlaylistResumesFromStoredPosition(t *testing.T) {
	tk := vodTask("a", "b", "c")
	resume := task.RunState{StartedAt: time.Now(), CurrentIndex: 2, CurrentOffsetMS: 300, LoopsDone: 1}
	env := runVOD(t, tk, resume, func(e *vodEnv) bool { return e.rec.last().State == task.StateFinished })
	if len(env.opened) != 1 || env.opened[0] != "c@300ms" {
		t.Fatalf("opened %v, want c from its break point only (the second round ends with it)", env.opened)
	}
	// The keyframe at or before 300 ms is at 200 ms: 5 video frames remain.
	frames := 0
	for _, p := range env.sink.snapshot() {
		if p.Kind == media.KindVideo && !p.IsSequenceHeader() {
			frames++
		}
	}
	if frames != 5 {
		t.Fatalf("video frames = %d, want 5 (from the keyframe at 200 ms)", frames)
	}
}

// Every stored state must name a position that exists: the offset is in
// the file the index names. A state with the new index and the previous
// file's offset would resume the new file past its end after a restart.
func TestPlaylistReportsIndexAndOffsetTogether(t *testing.T) {
	// Files longer than a heartbeat, so that an offset is stored in the
	// first one before the switch.
	tk := vodTask("a", "b")
	env := runVODFiles(t, tk, task.RunState{}, 1500*time.Millisecond, func(e *vodEnv) bool {
		return e.rec.last().CurrentIndex == 1
	})
	env.rec.mu.Lock()
	defer env.rec.mu.Unlock()
	sawB := false
	for _, rs := range env.rec.states {
		if rs.CurrentIndex == 1 && !sawB {
			sawB = true
			if rs.CurrentOffsetMS != 0 {
				t.Fatalf("first state on file 1 is at %d ms, want its start (0 ms)", rs.CurrentOffsetMS)
			}
		}
	}
	if !sawB {
		t.Fatal("no state reported the second file")
	}
}

func TestPlaylistRefreshTypes(t *testing.T) {
	for _, tc := range []struct {
		refresh, wantURL string
		wantStart        time.Duration
	}{
		{task.RefreshImmediate, "x", 2 * time.Second}, // vod_start_video_index 0, time 2 s
		{task.RefreshFromFileStart, "b", 0},
		{task.RefreshFromBreak, "b", 1500 * time.Millisecond},
	} {
		t.Run(tc.refresh, func(t *testing.T) {
			p := &playlist{files: []string{"a", "b"}, index: 1, offset: 1500 * time.Millisecond, started: true}
			p.refresh(&task.Task{SourceURLs: []string{"x", "y", "b"}, VodRefreshType: tc.refresh, VodStartVideoTime: 2})
			if p.url() != tc.wantURL || p.start != tc.wantStart {
				t.Fatalf("after refresh: %s from %v, want %s from %v", p.url(), p.start, tc.wantURL, tc.wantStart)
			}
		})
	}
	// A playing file missing from the new list keeps its index.
	p := &playlist{files: []string{"a", "b"}, index: 1}
	p.refresh(&task.Task{SourceURLs: []string{"x", "y"}, VodRefreshType: task.RefreshFromFileStart})
	if p.url() != "y" {
		t.Fatalf("missing file: now at %s, want y (same index)", p.url())
	}
}

func TestPlaylistModifyKeepsTheDestination(t *testing.T) {
	env := &vodEnv{sink: &fakeSink{}, rec: &recorder{}}
	sinks := 0
	cfg := Config{
		OpenFile: func(ctx context.Context, u string, start time.Duration) (media.FileSource, error) {
			env.rec.mu.Lock()
			env.opened = append(env.opened, fmt.Sprintf("%s@%v", u, start))
			env.rec.mu.Unlock()
			return newFakeFile(2*time.Second, start), nil
		},
		OpenSink: func(ctx context.Context, u string) (media.Sink, error) { sinks++; return env.sink, nil },
	}
	tk := vodTask("a")
	tk.VodLoopTime = task.LoopForever
	sup := NewSupervisor(tk, cfg, env.rec, task.RunState{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "half a second played", func() bool { return len(env.sink.snapshot()) > 25 })
	next := *tk
	next.SourceURLs = []string{"b", "a"}
	next.VodRefreshType = task.RefreshFromBreak
	sup.Update(&next)
	waitFor(t, "reopened at the break point", func() bool {
		env.rec.mu.Lock()
		defer env.rec.mu.Unlock()
		return len(env.opened) == 2
	})
	waitFor(t, "frames after the refresh", func() bool { return len(env.sink.snapshot()) > 60 })
	env.rec.mu.Lock()
	reopened := env.opened[1]
	env.rec.mu.Unlock()
	if !strings.HasPrefix(reopened, "a@") || reopened == "a@0s" {
		t.Fatalf("reopened %s, want a at its break point", reopened)
	}
	if sinks != 1 {
		t.Fatalf("destination sessions = %d, want 1", sinks)
	}
	checkOutput(t, env.sink.snapshot())
}

// A live task whose backups are files: when the primary fails, the files
// loop as filler (paced), and the task switches back when the primary
// returns.
func TestFillerBackupsLoopUntilThePrimaryReturns(t *testing.T) {
	h := &harness{sources: map[string][]*fakeSource{}, down: map[string]bool{}}
	cfg := h.config()
	var mu = &h.mu
	var opened []string
	cfg.OpenFile = func(ctx context.Context, u string, start time.Duration) (media.FileSource, error) {
		mu.Lock()
		opened = append(opened, u)
		mu.Unlock()
		return newFakeFile(300*time.Millisecond, start), nil
	}
	tk := &task.Task{ID: "f", SourceType: task.PullLivePushLive, SourceURLs: []string{"primary"},
		BackupSourceType: task.PullVodPushLive, BackupSourceURLs: []string{"f1", "f2"}, Destination: "d"}
	rec := &recorder{}
	sup := NewSupervisor(tk, cfg, rec, task.RunState{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "running", func() bool { return rec.last().State == task.StateRunning })
	h.setDown("primary", true)
	h.failSource("primary")
	waitFor(t, "three filler files played", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(opened) >= 3
	})
	mu.Lock()
	got := strings.Join(opened[:3], ",")
	mu.Unlock()
	if got != "f1,f2,f1" {
		t.Fatalf("filler files opened %s, want f1,f2,f1", got)
	}
	h.setDown("primary", false)
	waitFor(t, "back on the primary", func() bool { rs := rec.last(); return !rs.OnBackup && rs.CurrentSourceURL == "primary" })
	if n := h.sessions(); n != 2 { // the harness's first sink fails once by design
		t.Fatalf("destination sessions = %d, want 2", n)
	}
	checkOutput(t, h.sink(1).snapshot())
}

// bigFile is an endless file of 10 KB video frames at 25 fps (a keyframe
// every 25) that counts what was read of it.
type bigFile struct {
	read atomic.Int64
	body []byte
	cfg  bool
}

func (f *bigFile) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if !f.cfg {
		f.cfg = true
		return avcConfig(), nil
	}
	n := f.read.Add(1) - 1
	f.body[0] = 0x27
	if n%25 == 0 {
		f.body[0] = 0x17
	}
	return &media.Packet{Kind: media.KindVideo, DTS: time.Duration(n) * 40 * time.Millisecond, Body: f.body}, nil
}
func (f *bigFile) Close() error            { return nil }
func (f *bigFile) Duration() time.Duration { return time.Hour }

// A paced file is read only a bounded amount ahead of what was written,
// however fast it can be read: a VOD task's memory does not depend on the
// file.
func TestFileReadAheadIsBounded(t *testing.T) {
	f := &bigFile{body: append([]byte{0x17, 1, 0, 0, 0}, make([]byte, 10_000)...)}
	sink := &fakeSink{}
	cfg := Config{
		OpenFile: func(ctx context.Context, u string, start time.Duration) (media.FileSource, error) { return f, nil },
		OpenSink: func(ctx context.Context, u string) (media.Sink, error) { return sink, nil },
	}
	sup := NewSupervisor(vodTask("big"), cfg, &recorder{}, task.RunState{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "a second of frames written", func() bool { return len(sink.snapshot()) > 25 })
	time.Sleep(500 * time.Millisecond)
	written := int64(len(sink.snapshot()))
	ahead := f.read.Load() - written
	limit := int64(fileReadAhead/len(f.body)) + 4 // a batch in hand, one pending, one held
	if ahead > limit {
		t.Fatalf("%d frames read ahead of the %d written (%d KB), want at most %d", ahead, written, ahead*int64(len(f.body))>>10, limit)
	}
	if q := sup.q.bytes.Load(); q > fileReadAhead+int64(len(f.body)) {
		t.Fatalf("%d bytes queued, want at most %d", q, fileReadAhead+len(f.body))
	}
}
