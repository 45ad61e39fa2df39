package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/task"
)

// fakeSource plays synthetic H.264/AAC packets at real time until told to
// fail. It stands in for a network source to inject faults.
type fakeSource struct {
	name    string
	fail    chan struct{}
	started time.Time
	i       int
	gop     int
	base    time.Duration
	queue   []*media.Packet
}

func avcConfig() *media.Packet {
	return &media.Packet{Kind: media.KindVideo, Body: []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f}}
}
func aacConfig() *media.Packet {
	return &media.Packet{Kind: media.KindAudio, Body: []byte{0xaf, 0, 0x12, 0x10}}
}

func (f *fakeSource) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if len(f.queue) > 0 {
		p := f.queue[0]
		f.queue = f.queue[1:]
		return p, nil
	}
	if f.started.IsZero() {
		f.started = time.Now()
		f.queue = []*media.Packet{avcConfig(), aacConfig()}
		return f.ReadPacket(ctx)
	}
	// One video frame every 10 ms, an audio frame after each.
	dts := f.base + time.Duration(f.i)*10*time.Millisecond
	wait := time.Until(f.started.Add(time.Duration(f.i) * 10 * time.Millisecond))
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-f.fail:
		return nil, errors.New(f.name + " failed")
	case <-time.After(wait):
	}
	key := f.i%f.gop == 0
	hdr := byte(0x27)
	if key {
		hdr = 0x17
	}
	f.i++
	f.queue = []*media.Packet{{Kind: media.KindAudio, DTS: dts, Body: []byte{0xaf, 1, byte(f.i)}}}
	return &media.Packet{Kind: media.KindVideo, DTS: dts, Body: []byte{hdr, 1, 0, 0, 0, byte(f.i)}}, nil
}

func (f *fakeSource) Close() error { return nil }

// fakeSink records what was written; it can be made to fail once.
type fakeSink struct {
	mu      sync.Mutex
	packets []media.Packet
	failAt  int
	bytes   uint64
	flushes int
}

func (s *fakeSink) WritePacket(p *media.Packet) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAt > 0 && len(s.packets) >= s.failAt {
		s.failAt = 0
		return errors.New("broken pipe")
	}
	s.packets = append(s.packets, media.Packet{Kind: p.Kind, DTS: p.DTS, Body: append([]byte(nil), p.Body...)})
	s.bytes += uint64(len(p.Body))
	return nil
}
func (s *fakeSink) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
	return nil
}
func (s *fakeSink) BytesWritten() uint64 { s.mu.Lock(); defer s.mu.Unlock(); return s.bytes }
func (s *fakeSink) Close() error         { return nil }
func (s *fakeSink) snapshot() []media.Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]media.Packet(nil), s.packets...)
}

type recorder struct {
	mu     sync.Mutex
	states []task.RunState
	events []string
}

func (r *recorder) Report(rs task.RunState) {
	r.mu.Lock()
	r.states = append(r.states, rs)
	r.mu.Unlock()
}
func (r *recorder) Event(name string, data map[string]any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf("%s:%v", name, data["type"]))
}
func (r *recorder) last() task.RunState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return task.RunState{}
	}
	return r.states[len(r.states)-1]
}
func (r *recorder) has(ev string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e == ev {
			return true
		}
	}
	return false
}

type harness struct {
	mu      sync.Mutex
	sources map[string][]*fakeSource // opened sources by URL
	down    map[string]bool          // URLs that refuse to open
	sinks   []*fakeSink
	sinkErr error
}

func (h *harness) config() Config {
	return Config{
		NoMediaTimeout: time.Second,
		HoldTime:       300 * time.Millisecond,
		BackoffMin:     20 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
		OpenSource: func(ctx context.Context, u string) (media.Source, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.down[u] {
				return nil, errors.New("connection refused")
			}
			s := &fakeSource{name: u, fail: make(chan struct{}), gop: 10, base: time.Duration(len(h.sources[u])+1) * time.Hour}
			h.sources[u] = append(h.sources[u], s)
			return s, nil
		},
		OpenSink: func(ctx context.Context, u string) (media.Sink, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.sinkErr != nil {
				return nil, h.sinkErr
			}
			s := &fakeSink{}
			if len(h.sinks) == 0 {
				s.failAt = 60
			}
			h.sinks = append(h.sinks, s)
			return s, nil
		},
	}
}

// sink returns the i-th destination session, or an empty one.
func (h *harness) sink(i int) *fakeSink {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= len(h.sinks) {
		return &fakeSink{}
	}
	return h.sinks[i]
}

func (h *harness) sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sinks)
}

func (h *harness) failSource(u string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.sources[u]
	close(list[len(list)-1].fail)
}

func (h *harness) setDown(u string, down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down[u] = down
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkOutput verifies one destination session: codec config before the
// first frame, a keyframe first, DTS never backwards per track.
func checkOutput(t *testing.T, pkts []media.Packet) {
	t.Helper()
	var seenV, seenA, first bool
	last := map[media.Kind]time.Duration{}
	for i, p := range pkts {
		if p.IsSequenceHeader() {
			if p.Kind == media.KindVideo {
				seenV = true
			} else {
				seenA = true
			}
		} else if !first {
			first = true
			if !seenV || !seenA {
				t.Fatalf("packet %d: media before codec config", i)
			}
			if !p.IsVideoKeyframe() {
				t.Fatalf("packet %d: first frame is not a keyframe", i)
			}
		}
		if p.DTS < last[p.Kind] {
			t.Fatalf("packet %d (%d): DTS went back from %v to %v", i, p.Kind, last[p.Kind], p.DTS)
		}
		last[p.Kind] = p.DTS
	}
}

func TestFailoverAndSwitchBack(t *testing.T) {
	h := &harness{sources: map[string][]*fakeSource{}, down: map[string]bool{}}
	tk := &task.Task{ID: "t1", SourceURLs: []string{"primary"}, BackupSourceURLs: []string{"backup"}, Destination: "dst"}
	rec := &recorder{}
	sup := NewSupervisor(tk, h.config(), rec, task.RunState{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "running", func() bool { return rec.last().State == task.StateRunning })
	// The first sink fails after 60 packets: the supervisor redials.
	waitFor(t, "second destination session", func() bool { return h.sessions() == 2 })
	waitFor(t, "frames on the second session", func() bool { return len(h.sink(1).snapshot()) > 20 })

	// Primary fails and stays down: the backup takes over at once.
	h.setDown("primary", true)
	h.failSource("primary")
	waitFor(t, "on backup", func() bool { rs := rec.last(); return rs.OnBackup && rs.State == task.StateRunning })
	if !rec.has("TaskAlarm:" + AlarmSourceFailover) {
		t.Fatalf("no SourceFailover alarm: %v", rec.events)
	}
	n := len(h.sink(1).snapshot())
	waitFor(t, "backup frames", func() bool { return len(h.sink(1).snapshot()) > n+30 })

	// Primary back: after the hold time, the task switches back.
	h.setDown("primary", false)
	waitFor(t, "back on primary", func() bool { rs := rec.last(); return !rs.OnBackup && rs.State == task.StateRunning })
	if !rec.has("TaskAlarm:" + AlarmSourceRecovered) {
		t.Fatalf("no SourceRecovered alarm: %v", rec.events)
	}
	n = len(h.sink(1).snapshot())
	waitFor(t, "primary frames", func() bool { return len(h.sink(1).snapshot()) > n+30 })

	if n := h.sessions(); n != 2 {
		t.Fatalf("destination sessions = %d, want 2 (switches must keep the connection)", n)
	}
	checkOutput(t, h.sink(0).snapshot())
	out := h.sink(1).snapshot()
	checkOutput(t, out)

	// Each source starts an hour later on its own clock; the output must
	// not jump by more than the real gaps (well under a second here).
	var prev time.Duration
	for i, p := range out {
		if p.Kind != media.KindVideo || p.IsSequenceHeader() {
			continue
		}
		if prev != 0 && p.DTS-prev > 500*time.Millisecond {
			t.Fatalf("video packet %d jumps %v", i, p.DTS-prev)
		}
		prev = p.DTS
	}
	rs := rec.last()
	if rs.Failovers != 1 || rs.Reconnects < 1 || rs.FramesOut == 0 {
		t.Fatalf("run state counters: failovers %d reconnects %d frames %d", rs.Failovers, rs.Reconnects, rs.FramesOut)
	}
}

func TestDestinationDownIsRecovering(t *testing.T) {
	h := &harness{sources: map[string][]*fakeSource{}, down: map[string]bool{}, sinkErr: errors.New("connection refused")}
	tk := &task.Task{ID: "t2", SourceURLs: []string{"primary"}, Destination: "dst"}
	rec := &recorder{}
	sup := NewSupervisor(tk, h.config(), rec, task.RunState{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "recovering with error", func() bool {
		rs := rec.last()
		return rs.State == task.StateRecovering && rs.LastError != nil && rs.LastError.Code == CodeDestinationFailed
	})
	h.mu.Lock()
	h.sinkErr = nil
	h.mu.Unlock()
	waitFor(t, "running after the destination is back", func() bool { return rec.last().State == task.StateRunning })
	waitFor(t, "frames", func() bool { return len(h.sink(0).snapshot()) > 10 })
	checkOutput(t, h.sink(0).snapshot())
}

func TestUnsupportedCodecAlarms(t *testing.T) {
	cfg := Config{
		OpenSource: func(ctx context.Context, u string) (media.Source, error) {
			return &vp6Source{}, nil
		},
		OpenSink:   func(ctx context.Context, u string) (media.Sink, error) { return &fakeSink{}, nil },
		BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
	}
	rec := &recorder{}
	sup := NewSupervisor(&task.Task{ID: "t3", SourceURLs: []string{"x"}, Destination: "d"}, cfg, rec, task.RunState{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sup.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "unsupported codec alarm", func() bool { return rec.has("TaskAlarm:" + AlarmUnsupportedCodec) })
	rs := rec.last()
	if rs.State != task.StateRecovering || rs.LastError == nil || rs.LastError.Code != CodeUnsupportedCodec {
		t.Fatalf("run state %+v", rs)
	}
}

type vp6Source struct{}

func (vp6Source) ReadPacket(ctx context.Context) (*media.Packet, error) {
	return &media.Packet{Kind: media.KindVideo, Body: []byte{0x14, 0, 0, 0}}, nil
}
func (vp6Source) Close() error { return nil }
