package relay

import (
	"context"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/task"
)

// burstSource delivers its frames in bursts, as a socket read would: every
// interval, burst frames become readable at once (Buffered is true until
// the burst is consumed). Frame n is video (a keyframe every gop frames,
// its sequence number in the body) followed by an audio frame. It reuses
// its body buffer, as network sources do.
type burstSource struct {
	burst, gop int
	interval   time.Duration
	n          int // frames returned
	avail      int // packets readable without waiting
	queue      []*media.Packet
	body       []byte
	pkt        media.Packet
}

func (s *burstSource) next() *media.Packet {
	if len(s.queue) > 0 {
		p := s.queue[0]
		s.queue = s.queue[1:]
		return p
	}
	i := s.n / 2
	if s.n%2 == 1 {
		s.body = append(s.body[:0], 0xaf, 1, byte(i))
		s.pkt = media.Packet{Kind: media.KindAudio, DTS: time.Duration(i) * 10 * time.Millisecond, Body: s.body}
	} else {
		hdr := byte(0x27)
		if i%s.gop == 0 {
			hdr = 0x17
		}
		s.body = append(s.body[:0], hdr, 1, 0, 0, 0, byte(i>>16), byte(i>>8), byte(i))
		s.pkt = media.Packet{Kind: media.KindVideo, DTS: time.Duration(i) * 10 * time.Millisecond, Body: s.body}
	}
	s.n++
	return &s.pkt
}

func (s *burstSource) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if s.queue == nil && s.n == 0 {
		s.queue = []*media.Packet{avcConfig(), aacConfig()}
		s.avail = 2
	}
	if s.avail == 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.interval):
		}
		s.avail = 2 * s.burst
	}
	s.avail--
	return s.next(), nil
}

func (s *burstSource) Buffered() bool { return s.avail > 0 }
func (s *burstSource) Close() error   { return nil }

// frameSeq returns the sequence number a burstSource put in a video body.
func frameSeq(p media.Packet) int {
	b := p.Body
	return int(b[5])<<16 | int(b[6])<<8 | int(b[7])
}

func runBursts(t *testing.T, cfg Config, src *burstSource, sink media.Sink, until func(*recorder) bool) *recorder {
	t.Helper()
	cfg.OpenSource = func(ctx context.Context, u string) (media.Source, error) { return src, nil }
	cfg.OpenSink = func(ctx context.Context, u string) (media.Sink, error) { return sink, nil }
	rec := &recorder{}
	sup := NewSupervisor(&task.Task{ID: "b", SourceURLs: []string{"src"}, Destination: "dst"}, cfg, rec, task.RunState{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the relay to get there", func() bool { return until(rec) })
	return rec
}

// What a source has buffered is written in one flush, in order, and the
// reader waits the batch window before its next read.
func TestBufferedFramesGoOutInOneFlush(t *testing.T) {
	sink := &fakeSink{}
	src := &burstSource{burst: 5, gop: 10, interval: 20 * time.Millisecond}
	runBursts(t, Config{Batch: 30 * time.Millisecond}, src, sink, func(*recorder) bool {
		return len(sink.snapshot()) >= 200
	})
	sink.mu.Lock()
	pkts, flushes := len(sink.packets), sink.flushes
	sink.mu.Unlock()
	// Bursts of 10 packets every 20 ms, read every 30 ms or more: each
	// flush carries one or two bursts.
	if per := float64(pkts) / float64(flushes); per < 8 {
		t.Fatalf("%d packets in %d flushes (%.1f per flush), want a burst or more per flush", pkts, flushes, per)
	}
	want := 0
	for _, p := range sink.snapshot() {
		if p.Kind != media.KindVideo || p.IsSequenceHeader() {
			continue
		}
		if got := frameSeq(p); got != want {
			t.Fatalf("video frame %d after %d: frames lost or reordered", got, want-1)
		}
		want++
	}
}

// slowSink takes delay to write each packet (a destination slower than
// the source).
type slowSink struct {
	fakeSink
	delay time.Duration
}

func (s *slowSink) WritePacket(p *media.Packet) error {
	time.Sleep(s.delay)
	return s.fakeSink.WritePacket(p)
}

// When the destination cannot keep up, the bounded queue drops whole GOPs:
// after every gap the output resumes at a keyframe, codec configuration is
// never dropped, and the drops are counted in the run state.
func TestSlowDestinationDropsWholeGOPs(t *testing.T) {
	sink := &slowSink{delay: 2 * time.Millisecond}
	src := &burstSource{burst: 50, gop: 10, interval: 10 * time.Millisecond} // 10x what the sink takes
	rec := runBursts(t, Config{QueueBytes: 2000}, src, sink, func(r *recorder) bool {
		return r.last().FramesDropped > 100 && len(sink.snapshot()) > 300
	})
	prev := -1
	configs := 0
	for i, p := range sink.snapshot() {
		if p.IsSequenceHeader() {
			configs++
			continue
		}
		if p.Kind != media.KindVideo {
			continue
		}
		seq := frameSeq(p)
		if seq != prev+1 && !p.IsVideoKeyframe() {
			t.Fatalf("packet %d: video frame %d follows %d and is not a keyframe: a partial GOP", i, seq, prev)
		}
		prev = seq
	}
	if configs != 2 {
		t.Fatalf("%d codec configurations written, want 2 (video and audio, once)", configs)
	}
	t.Logf("dropped %d packets, wrote %d", rec.last().FramesDropped, len(sink.snapshot()))
}

// A steady relay allocates nothing per packet: batches and their blocks
// come back from their pools. (The race detector makes sync.Pool drop
// items at random, so this runs without it: scripts/test.sh runs the
// allocation tests again without -race.)
func TestBatchAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector; checked by the run without -race")
	}
	p := &media.Packet{Kind: media.KindVideo, Body: make([]byte, 3000)}
	fill := func() {
		b := newBatch()
		for range 10 {
			b.add(p)
		}
		b.release()
	}
	fill()
	if allocs := testing.AllocsPerRun(100, fill); allocs > 0 {
		t.Fatalf("%v allocations per batch of 10 packets", allocs)
	}
}

// Bodies are copies: the source may reuse its buffer.
func TestBatchCopiesBodies(t *testing.T) {
	body := []byte{1, 2, 3}
	b := newBatch()
	defer b.release()
	b.add(&media.Packet{Kind: media.KindVideo, Body: body})
	body[0] = 9
	if b.pkts[0].Body[0] != 1 {
		t.Fatal("batch body aliases the source's buffer")
	}
	big := make([]byte, 3*minBlock) // a block of its own class
	b.add(&media.Packet{Kind: media.KindVideo, Body: big})
	if len(b.pkts[1].Body) != len(big) || len(b.blocks) != 2 {
		t.Fatalf("big body: %d bytes in %d blocks", len(b.pkts[1].Body), len(b.blocks))
	}
}
