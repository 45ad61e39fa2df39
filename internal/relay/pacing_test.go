package relay

import (
	"context"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/task"
)

// clockSink records, for the last frame written, its output DTS and the
// (bubble) wall time it was written at.
type clockSink struct {
	fakeSink
	first, last       time.Time
	firstDTS, lastDTS time.Duration
	frames            int
}

func (c *clockSink) WritePacket(p *media.Packet) error {
	if p.IsSequenceHeader() || p.IsMetadata() {
		return nil
	}
	now := time.Now()
	if c.frames == 0 {
		c.first, c.firstDTS = now, p.DTS
	}
	c.last, c.lastDTS = now, p.DTS
	c.frames++
	return nil
}

// TestVODPacingDriftOverAnHour plays a playlist of 10-second files for one
// hour of wall-clock time through the real supervisor, timers and pacing.
// The clock is synctest's, so the hour takes seconds and the result does not
// depend on the machine's load: it measures the pacing rule (one anchor per
// destination session), not the OS timer jitter a real run adds on top.
func TestVODPacingDriftOverAnHour(t *testing.T) {
	// With a batch window, frames go out in groups up to that much early.
	for _, batch := range []time.Duration{0, 50 * time.Millisecond} {
		var drift time.Duration
		var frames int
		var heap uint64
		synctest.Test(t, func(t *testing.T) {
			sink := &clockSink{}
			cfg := Config{
				Batch: batch,
				OpenFile: func(ctx context.Context, u string, start time.Duration) (media.FileSource, error) {
					return newFakeFile(10*time.Second, start), nil
				},
				OpenSink: func(ctx context.Context, u string) (media.Sink, error) { return sink, nil },
			}
			tk := &task.Task{ID: "drift", SourceType: task.PullVodPushLive, SourceURLs: []string{"a", "b", "c"},
				Destination: "d", VodLoopTime: task.LoopForever}
			sup := NewSupervisor(tk, cfg, &recorder{}, task.RunState{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { sup.Run(ctx); close(done) }()
			time.Sleep(time.Hour)
			synctest.Wait()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap = ms.HeapAlloc
			cancel()
			<-done
			wall := sink.last.Sub(sink.first)
			media := sink.lastDTS - sink.firstDTS
			drift, frames = media-wall, sink.frames
			if wall < 59*time.Minute {
				t.Fatalf("played only %v of wall time", wall)
			}
		})
		t.Logf("batch %v, one hour: %d frames written, output clock - wall clock = %v, heap %.2f MiB", batch, frames, drift, float64(heap)/(1<<20))
		// Output timestamps advance one frame (40 ms) per 40 ms of wall
		// time; at the end the two may differ by a frame per file switch
		// (360 switches) if the rule drifted, and by under a frame (plus
		// the batch window) if not.
		if drift < -40*time.Millisecond || drift > 40*time.Millisecond+batch {
			t.Fatalf("batch %v: the output clock drifted %v from the wall clock over an hour", batch, drift)
		}
	}
}
