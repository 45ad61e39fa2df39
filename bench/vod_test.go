package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/files"
	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/relay"
	"github.com/liverelay/liverelay/internal/rtmp"
	"github.com/liverelay/liverelay/internal/task"
	"github.com/liverelay/liverelay/internal/testpeer"
)

var (
	vodTasks = flag.Int("vodtasks", 10, "playlists BenchmarkVODPlaylist plays at once")
	vodTime  = flag.Duration("vodtime", time.Minute, "how long BenchmarkVODPlaylist plays them")
)

// pacedSink records when the first and the last video frame of a
// destination session were written, and their output timestamps.
type pacedSink struct {
	media.Sink
	mu                sync.Mutex
	first, last       time.Time
	firstDTS, lastDTS time.Duration
	frames            int
}

func (s *pacedSink) WritePacket(p *media.Packet) error {
	if err := s.Sink.WritePacket(p); err != nil {
		return err
	}
	if p.Kind != media.KindVideo || p.IsSequenceHeader() {
		return nil
	}
	now := time.Now()
	s.mu.Lock()
	if s.frames == 0 {
		s.first, s.firstDTS = now, p.DTS
	}
	s.last, s.lastDTS = now, p.DTS
	s.frames++
	s.mu.Unlock()
	return nil
}

// drift is how far the output clock has run from the wall clock since the
// first frame (positive: ahead).
func (s *pacedSink) drift() (time.Duration, time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wall := s.last.Sub(s.first)
	return (s.lastDTS - s.firstDTS) - wall, wall, s.frames
}

// BenchmarkVODPlaylist plays -vodtasks playlists of two 10 s MP4 files (one
// with moov at the start, one with it at the end), served by nginx over
// HTTP with ranges, looped, each to its own nginx-rtmp destination, for
// -vodtime of real time, through relay.Supervisor as the service runs it.
// It reports the pacing drift (how far the output timestamps moved against
// the wall clock between a few seconds in and the end; the largest of the
// tasks, in ms), the constant lead of the batch window, and the live heap
// per task.
// Run it once: -benchtime 1x, e.g. for an hour:
//
//	go test ./bench -run '^$' -bench VODPlaylist -benchtime 1x -vodtime 1h -timeout 2h
func BenchmarkVODPlaylist(b *testing.B) {
	testpeer.RequireTools(b, "ffmpeg", "nginx")
	dir := b.TempDir()
	clip := testpeer.TestClip(b)
	for name, args := range map[string][]string{
		"a.mp4": {"-movflags", "+faststart"},
		"b.mp4": nil,
	} {
		cmd := exec.Command("ffmpeg", append(append([]string{"-v", "error", "-y", "-i", clip, "-c", "copy"}, args...), filepath.Join(dir, name))...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ffmpeg %s: %v: %s", name, err, out)
		}
	}
	ng := testpeer.StartNginx(b, testpeer.NginxOptions{HTTPRoot: dir})
	opener := &files.Opener{Client: &http.Client{}, UnsupportedCodec: relay.ErrUnsupportedCodec}
	var mu sync.Mutex
	var sinks []*pacedSink
	cfg := relay.Config{
		OpenFile: opener.Open,
		OpenSink: func(ctx context.Context, rawURL string) (media.Sink, error) {
			c, err := rtmp.Publish(ctx, rawURL, rtmp.Options{WriteTimeout: 5 * time.Second})
			if err != nil {
				return nil, err
			}
			s := &pacedSink{Sink: c}
			mu.Lock()
			sinks = append(sinks, s)
			mu.Unlock()
			return s, nil
		},
		Logger: slog.New(slog.DiscardHandler),
		Batch:  *batch,
	}

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	b.ResetTimer()
	for i := range *vodTasks {
		t := &task.Task{
			ID: fmt.Sprintf("vod-%d", i), SourceType: task.PullVodPushLive,
			SourceURLs:  []string{ng.HTTPURL("/a.mp4"), ng.HTTPURL("/b.mp4")},
			Destination: ng.RTMPURL("live", fmt.Sprintf("vod%d", i)),
			Status:      task.StatusEnable, VodLoopTime: task.LoopForever,
		}
		sup := relay.NewSupervisor(t, cfg, nopReporter{}, task.RunState{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			sup.Run(ctx)
		}()
	}
	// The output runs ahead of the wall clock by up to the batch window
	// from the start (frames go out in groups): that lead, read after a
	// few seconds, is not drift; what it becomes by the end is.
	settle := min(10*time.Second, *vodTime/4)
	time.Sleep(settle)
	leads := make([]time.Duration, *vodTasks)
	mu.Lock()
	if len(sinks) != *vodTasks {
		mu.Unlock()
		b.Fatalf("%d destination sessions after %v for %d tasks", len(sinks), settle, *vodTasks)
	}
	for i, s := range sinks {
		leads[i], _, _ = s.drift()
	}
	mu.Unlock()
	time.Sleep(*vodTime - settle)
	during := heap()
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	if len(sinks) != *vodTasks {
		b.Fatalf("%d destination sessions for %d tasks: a destination was redialled", len(sinks), *vodTasks)
	}
	var worst, lead, played time.Duration
	for i, s := range sinks {
		d, wall, frames := s.drift()
		if frames == 0 {
			b.Fatal("a playlist wrote no frame")
		}
		drift := d - leads[i]
		if drift < 0 {
			drift = -drift
		}
		worst, lead, played = max(worst, drift), max(lead, leads[i]), max(played, wall)
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-drift-ms")
	b.ReportMetric(float64(lead.Microseconds())/1000, "max-lead-ms")
	b.ReportMetric(played.Seconds(), "played-s")
	b.ReportMetric(float64(int64(during)-int64(before))/float64(*vodTasks)/(1<<10), "KiB/task")
}
