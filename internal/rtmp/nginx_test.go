package rtmp

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// startSource starts nginx and an ffmpeg publisher of the test clip on live/src.
func startSource(t *testing.T) (*testpeer.Nginx, *testpeer.Proc) {
	t.Helper()
	testpeer.RequireTools(t, "nginx", "ffmpeg", "ffprobe")
	n := testpeer.StartNginx(t, testpeer.NginxOptions{})
	pub := testpeer.Publish(t, n.RTMPURL("live", "src"))
	testpeer.WaitFor(t, 10*time.Second, "ffmpeg to publish live/src", func() bool {
		return n.Publishers(t, "live", "src") == 1
	})
	return n, pub
}

func play(t *testing.T, url string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Play(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPlayFromNginx(t *testing.T) {
	t.Parallel()
	n, _ := startSource(t)
	c := play(t, n.RTMPURL("live", "src"))

	var (
		sawVideoHeader, sawAudioHeader, sawMeta bool
		video, audio, keyframes                 int
		lastDTS                                 = map[media.Kind]time.Duration{}
	)
	deadline := time.Now().Add(8 * time.Second)
	for i := 0; (keyframes < 2 || audio < 50) && time.Now().Before(deadline); i++ {
		p, err := c.ReadPacket(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i < 6 {
			t.Logf("packet %d: kind %d, DTS %v, sequence header %v, keyframe %v", i, p.Kind, p.DTS, p.IsSequenceHeader(), p.IsVideoKeyframe())
		}
		if last, ok := lastDTS[p.Kind]; ok && p.DTS < last && p.Kind != media.KindData {
			t.Errorf("%d DTS went back from %v to %v", p.Kind, last, p.DTS)
		}
		lastDTS[p.Kind] = p.DTS
		switch p.Kind {
		case media.KindData:
			if name, _, _ := amf0StringPrefix(p.Body); name != "onMetaData" {
				t.Errorf("data packet %q", name)
			}
			sawMeta = true
		case media.KindVideo:
			if c := p.VideoCodec(); c != "h264" {
				t.Fatalf("video codec %q", c)
			}
			if p.IsSequenceHeader() {
				sawVideoHeader = true
				continue
			}
			if !sawVideoHeader {
				t.Fatal("video frame before the AVC sequence header")
			}
			video++
			if p.IsVideoKeyframe() {
				keyframes++
			}
		case media.KindAudio:
			if c := p.AudioCodec(); c != "aac" {
				t.Fatalf("audio codec %q", c)
			}
			if p.IsSequenceHeader() {
				sawAudioHeader = true
				continue
			}
			if !sawAudioHeader {
				t.Fatal("audio frame before the AAC sequence header")
			}
			audio++
		}
	}
	if keyframes < 2 || audio < 50 || !sawMeta {
		t.Fatalf("after 8 s: %d video frames (%d keyframes), %d audio frames, metadata %v", video, keyframes, audio, sawMeta)
	}
	if c.BytesRead() < 100_000 {
		t.Errorf("BytesRead = %d", c.BytesRead())
	}
}

// relay copies packets from src to dst, shifting timestamps by offset.
func relay(ctx context.Context, src, dst *Conn, offset time.Duration) error {
	for {
		p, err := src.ReadPacket(ctx)
		if err != nil {
			return err
		}
		q := *p
		q.DTS += offset
		if err := dst.WritePacket(&q); err != nil {
			return err
		}
		// A batch: what the source has buffered goes out in one write.
		if !src.Buffered() {
			if err := dst.Flush(); err != nil {
				return err
			}
		}
	}
}

// TestRelayThroughNginx plays live/src and publishes it to live/dst with
// our client, at DTS offsets that make the stream cross the 2^24 ms
// extended-timestamp threshold and the 2^32 ms wrap 2 s in. What arrives at
// nginx is read back by our player (absolute timestamps: the crossing must
// be seamless) and recorded by ffmpeg (codecs, packet timing by ffprobe).
func TestRelayThroughNginx(t *testing.T) {
	t.Parallel()
	n, _ := startSource(t)
	for _, tc := range []struct {
		name  string
		cross time.Duration // a timestamp to cross 2 s after the relay starts; 0: none
	}{
		{"as is", 0},
		{"across 2^24 ms", 0xffffff * time.Millisecond},
		{"across 2^32 ms", 1 << 32 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dstName := strings.NewReplacer(" ", "", "^", "", "*", "").Replace(tc.name)
			src := play(t, n.RTMPURL("live", "src"))
			// nginx sends onMetaData stamped 0 first, whatever the stream's
			// clock: the first audio or video packet gives the clock.
			var head []media.Packet
			for len(head) == 0 || head[len(head)-1].Kind == media.KindData {
				p, err := src.ReadPacket(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				head = append(head, *p)
			}
			var offset time.Duration
			if tc.cross != 0 {
				offset = tc.cross - 2*time.Second - head[len(head)-1].DTS
			}

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			dst, err := Publish(ctx, n.RTMPURL("live", dstName), Options{})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range head {
				q.DTS += offset
				if err := dst.WritePacket(&q); err != nil {
					t.Fatal(err)
				}
			}
			relayCtx, stopRelay := context.WithCancel(context.Background())
			relayDone := make(chan error, 1)
			go func() { relayDone <- relay(relayCtx, src, dst, offset) }()
			t.Cleanup(func() {
				stopRelay()
				<-relayDone
				dst.Close()
			})

			out := filepath.Join(t.TempDir(), "dst.flv")
			rec := testpeer.Record(t, n.RTMPURL("live", dstName), out)

			// Our player: absolute timestamps, continuous across the crossing.
			check := play(t, n.RTMPURL("live", dstName))
			last := map[media.Kind]time.Duration{}
			var minDTS, maxDTS time.Duration = 1 << 62, 0
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
				p, err := check.ReadPacket(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if p.Kind == media.KindData {
					continue
				}
				if l, ok := last[p.Kind]; ok && (p.DTS < l || p.DTS-l > 200*time.Millisecond) {
					t.Errorf("kind %d: DTS from %v to %v", p.Kind, l, p.DTS)
				}
				last[p.Kind] = p.DTS
				minDTS, maxDTS = min(minDTS, p.DTS), max(maxDTS, p.DTS)
			}
			t.Logf("played back DTS %v .. %v", minDTS, maxDTS)
			if tc.cross != 0 && (minDTS >= tc.cross || maxDTS <= tc.cross) {
				t.Errorf("played back DTS %v .. %v; want it to cross %v", minDTS, maxDTS, tc.cross)
			}

			rec.Stop()
			select {
			case err := <-relayDone:
				t.Fatalf("relay stopped: %v", err)
			default:
			}
			if dst.BytesWritten() < 500_000 {
				t.Errorf("BytesWritten = %d", dst.BytesWritten())
			}

			p := testpeer.ProbeFile(t, out)
			if p.VideoCodec != "h264" || p.AudioCodec != "aac" {
				t.Fatalf("codecs %q, %q; want h264, aac\n%s", p.VideoCodec, p.AudioCodec, rec.Output())
			}
			if v, a := p.Count("video"), p.Count("audio"); v < 60 || a < 100 {
				t.Errorf("recorded %d video and %d audio packets; want at least 60 and 100", v, a)
			}
			for _, s := range []string{"video", "audio"} {
				if b := p.Backwards(s); b != 0 {
					t.Errorf("%s: %d DTS steps backwards", s, b)
				}
				if g := p.MaxGap(s); g > 200*time.Millisecond {
					t.Errorf("%s: gap of %v", s, g)
				}
			}
			// ffmpeg joins, then waits for a keyframe (every 2 s).
			if span := p.Span("video"); span < 2500*time.Millisecond || span > 6*time.Second {
				t.Errorf("video spans %v in a 5 s recording", span)
			}
		})
	}
}

func TestUnpublishedWhenPublisherDies(t *testing.T) {
	t.Parallel()
	n, pub := startSource(t)
	c := play(t, n.RTMPURL("live", "src"))
	for {
		p, err := c.ReadPacket(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if p.IsVideoKeyframe() && !p.IsSequenceHeader() {
			break
		}
	}
	pub.Kill()
	killed := time.Now()
	for {
		_, err := c.ReadPacket(context.Background())
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrUnpublished) {
			t.Fatalf("got %v, want ErrUnpublished", err)
		}
		if d := time.Since(killed); d > 2*time.Second {
			t.Errorf("ErrUnpublished %v after the publisher died", d)
		}
		t.Logf("%v after the kill: %v", time.Since(killed).Round(time.Millisecond), err)
		return
	}
}

func TestPublishRefused(t *testing.T) {
	t.Parallel()
	n, _ := startSource(t)
	url := n.RTMPURL("live", "src") + "?token=s3cr3tvalue"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Publish(ctx, url, Options{})
	if err == nil {
		c.Close()
		t.Fatal("second publisher of live/src accepted")
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Code != "NetStream.Publish.BadName" {
		t.Fatalf("got %v; want a StatusError NetStream.Publish.BadName", err)
	}
	if !strings.Contains(err.Error(), "NetStream.Publish.BadName") || strings.Contains(err.Error(), "s3cr3tvalue") {
		t.Errorf("error text: %v", err)
	}
	t.Log(err)
}

func TestReadPacketContextCancel(t *testing.T) {
	t.Parallel()
	testpeer.RequireTools(t, "nginx")
	n := testpeer.StartNginx(t, testpeer.NginxOptions{})
	// nginx-rtmp accepts a player of a stream nobody publishes.
	c := play(t, n.RTMPURL("live", "nobody"))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ReadPacket(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestReadTimeout(t *testing.T) {
	t.Parallel()
	testpeer.RequireTools(t, "nginx")
	n := testpeer.StartNginx(t, testpeer.NginxOptions{})
	c, err := Play(context.Background(), n.RTMPURL("live", "nobody"), Options{ReadTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.ReadPacket(context.Background())
	if err == nil || !strings.Contains(err.Error(), "nothing received for 500ms") {
		t.Fatalf("got %v, want a read timeout", err)
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
}
