package bench

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/relay"
	"github.com/liverelay/liverelay/internal/rtmp"
	"github.com/liverelay/liverelay/internal/task"
	"github.com/liverelay/liverelay/internal/testpeer"
)

var (
	relays = flag.Int("relays", 10, "relays BenchmarkLiveRelay runs at once")
	batch  = flag.Duration("batch", 50*time.Millisecond, "relay.Config.Batch (the service's --relay-batch)")
)

// countingSink counts the packets written to a destination.
type countingSink struct {
	media.Sink
	n *atomic.Int64
}

func (s *countingSink) WritePacket(p *media.Packet) error {
	err := s.Sink.WritePacket(p)
	if err == nil {
		s.n.Add(1)
	}
	return err
}

type nopReporter struct{}

func (nopReporter) Report(task.RunState)         {}
func (nopReporter) Event(string, map[string]any) {}

// BenchmarkLiveRelay relays the test clip (720p30 H.264 + AAC, ~2.2 Mb/s,
// published in real time to nginx-rtmp) to -relays destination streams of
// the same nginx, each through its own relay.Supervisor with rtmp.Play and
// rtmp.Publish, as the service does (without the store and the API). One
// op is one packet (audio, video or data) written to a destination.
//
// The source is live, so the wall time per op only says how fast the clip
// plays; read cpu-ns/pkt (user+system CPU of this process per packet),
// %core/relay, B/op and allocs/op, and the profiles. Use a fixed count
// (-benchtime 20000x): every round starts the peers again.
func BenchmarkLiveRelay(b *testing.B) {
	ng := testpeer.StartNginx(b, testpeer.NginxOptions{})
	src := ng.RTMPURL("live", "src")
	testpeer.Publish(b, src)
	testpeer.WaitFor(b, 20*time.Second, "the source to be published", func() bool {
		return ng.Publishers(b, "live", "src") == 1
	})

	var pkts atomic.Int64
	cfg := relay.Config{
		OpenSource: func(ctx context.Context, rawURL string) (media.Source, error) {
			return rtmp.Play(ctx, rawURL, rtmp.Options{ReadTimeout: 3 * time.Second})
		},
		OpenSink: func(ctx context.Context, rawURL string) (media.Sink, error) {
			c, err := rtmp.Publish(ctx, rawURL, rtmp.Options{WriteTimeout: 5 * time.Second})
			if err != nil {
				return nil, err
			}
			return &countingSink{Sink: c, n: &pkts}, nil
		},
		Logger: slog.New(slog.DiscardHandler),
		Batch:  *batch,
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for i := range *relays {
		t := &task.Task{
			ID:          fmt.Sprintf("bench-%d", i),
			SourceType:  task.PullLivePushLive,
			SourceURLs:  []string{src},
			Destination: ng.RTMPURL("live", fmt.Sprintf("dst%d", i)),
			Status:      task.StatusEnable,
		}
		sup := relay.NewSupervisor(t, cfg, nopReporter{}, task.RunState{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			sup.Run(ctx)
		}()
	}
	// Every relay past its first keyframe.
	testpeer.WaitFor(b, 30*time.Second, "packets at every destination", func() bool {
		return pkts.Load() >= int64(*relays)*150
	})

	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := pkts.Load()
	t0 := time.Now()
	b.ResetTimer()
	deadline := t0.Add(time.Duration(b.N)*time.Second/time.Duration(*relays) + 30*time.Second)
	for pkts.Load()-start < int64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d packets relayed by the deadline", pkts.Load()-start, b.N)
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	wall := time.Since(t0)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	n := pkts.Load() - start
	cpu := time.Duration(syscall.TimevalToNsec(ru1.Utime) - syscall.TimevalToNsec(ru0.Utime) +
		syscall.TimevalToNsec(ru1.Stime) - syscall.TimevalToNsec(ru0.Stime))
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/pkt")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds()/float64(*relays), "%core/relay")
	b.ReportMetric(float64(n)/wall.Seconds()/float64(*relays), "pkt/s/relay")
}
