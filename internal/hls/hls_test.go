package hls

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/netguard"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// liveHLS is ffmpeg's HLS muxer writing a live playlist of 1 s segments
// into a temporary directory, and an HTTP server on 127.0.0.1 serving it.
type liveHLS struct {
	dir    string
	url    string // of the playlist
	ffmpeg *exec.Cmd
	out    *bytes.Buffer
	done   chan struct{}
}

// startLiveHLS encodes a small test pattern in real time (H.264 with
// B-frames or H.265, a keyframe every second, AAC), for at most a minute
// whatever happens to the test.
func startLiveHLS(t *testing.T, segmentType, videoCodec string) *liveHLS {
	t.Helper()
	testpeer.RequireTools(t, "ffmpeg", "ffprobe")
	dir := t.TempDir()
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", "60", "-pix_fmt", "yuv420p"}
	switch videoCodec {
	case "h265":
		args = append(args, "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
			"-x265-params", "log-level=error:keyint=30:min-keyint=30:scenecut=0:bframes=2")
	default:
		args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
			"-g", "30", "-keyint_min", "30", "-sc_threshold", "0")
	}
	args = append(args, "-c:a", "aac", "-b:a", "64k",
		"-f", "hls", "-hls_time", "1", "-hls_list_size", "5", "-hls_flags", "delete_segments",
		"-hls_segment_type", segmentType, filepath.Join(dir, "live.m3u8"))
	h := &liveHLS{dir: dir, out: &bytes.Buffer{}, done: make(chan struct{})}
	h.ffmpeg = exec.Command("ffmpeg", args...)
	h.ffmpeg.Stdout, h.ffmpeg.Stderr = h.out, h.out
	if err := h.ffmpeg.Start(); err != nil {
		t.Fatalf("start ffmpeg: %v", err)
	}
	go func() {
		h.ffmpeg.Wait()
		close(h.done)
	}()
	t.Cleanup(h.kill)

	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	h.url = srv.URL + "/live.m3u8"

	// gohlslib starts 3 segments from the live edge; Open waits for them
	// (see liveEdge) once the playlist is there.
	testpeer.WaitFor(t, 20*time.Second, "the HLS playlist", func() bool {
		select {
		case <-h.done:
			t.Fatalf("ffmpeg exited: %s", h.out.String())
		default:
		}
		b, _ := os.ReadFile(filepath.Join(dir, "live.m3u8"))
		return bytes.Count(b, []byte("#EXTINF")) >= 1
	})
	return h
}

func (h *liveHLS) kill() {
	h.ffmpeg.Process.Kill()
	<-h.done
}

// readFor reads packets for d, copying them.
func readFor(t *testing.T, src media.Source, d time.Duration) []media.Packet {
	t.Helper()
	var pkts []media.Packet
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		p, err := src.ReadPacket(context.Background())
		if err != nil {
			t.Fatalf("after %d packets: %v", len(pkts), err)
		}
		pkts = append(pkts, media.Packet{Kind: p.Kind, DTS: p.DTS, Body: bytes.Clone(p.Body)})
	}
	return pkts
}

// checkStream checks what every live source must deliver: sequence headers
// before the frames of their track, a keyframe first, DTS that never go
// back (per track, and across tracks: the merge), the codecs, keyframes
// about every second, and composition times from the B-frames.
func checkStream(t *testing.T, pkts []media.Packet, videoCodec string) {
	t.Helper()
	seqSeen := map[media.Kind]bool{}
	frames := map[media.Kind]int{}
	var keyframes, withCTS int
	var lastDTS time.Duration
	for i, p := range pkts {
		if i > 0 && p.DTS < lastDTS {
			t.Fatalf("packet %d (%d): DTS %v after %v", i, p.Kind, p.DTS, lastDTS)
		}
		lastDTS = p.DTS
		if p.IsSequenceHeader() {
			seqSeen[p.Kind] = true
			continue
		}
		if !seqSeen[p.Kind] {
			t.Fatalf("packet %d (%d) before its sequence header", i, p.Kind)
		}
		switch p.Kind {
		case media.KindVideo:
			if got := p.VideoCodec(); got != videoCodec {
				t.Fatalf("video codec %s, want %s", got, videoCodec)
			}
			if frames[p.Kind] == 0 && !p.IsVideoKeyframe() {
				t.Fatal("first video frame is not a keyframe")
			}
			if p.IsVideoKeyframe() {
				keyframes++
			}
			if cts := videoCTS(p); cts != 0 {
				withCTS++
			}
		case media.KindAudio:
			if p.AudioCodec() != "aac" {
				t.Fatalf("audio codec %s", p.AudioCodec())
			}
		}
		frames[p.Kind]++
	}
	span := lastDTS - pkts[0].DTS
	t.Logf("%d video frames (%d keyframes, %d with composition time), %d audio frames over %v",
		frames[media.KindVideo], keyframes, withCTS, frames[media.KindAudio], span)
	if span < 3*time.Second {
		t.Fatalf("stream spans %v, want at least 3s", span)
	}
	secs := span.Seconds()
	if v := float64(frames[media.KindVideo]) / secs; v < 25 || v > 35 {
		t.Fatalf("%.1f video frames/s, want about 30", v)
	}
	if a := float64(frames[media.KindAudio]) / secs; a < 38 || a > 48 {
		t.Fatalf("%.1f audio frames/s, want about 43", a)
	}
	if keyframes < int(secs)-1 || keyframes > int(secs)+2 {
		t.Fatalf("%d keyframes over %.1fs, want one a second", keyframes, secs)
	}
	if withCTS == 0 {
		t.Fatal("no frame has a composition time: B-frames lost their PTS")
	}
}

// videoCTS reads the composition time of a legacy or enhanced video body.
func videoCTS(p media.Packet) int32 {
	b := p.Body
	off := 2
	if b[0]&0x80 != 0 {
		off = 5
	}
	if len(b) < off+3 {
		return 0
	}
	return int32(uint32(b[off])<<24|uint32(b[off+1])<<16|uint32(b[off+2])<<8) >> 8
}

// writeFLV is the smallest FLV muxer: header, then each packet as a tag.
func writeFLV(t *testing.T, path string, pkts []media.Packet) {
	t.Helper()
	var b bytes.Buffer
	b.Write([]byte{'F', 'L', 'V', 1, 0x05, 0, 0, 0, 9, 0, 0, 0, 0})
	for _, p := range pkts {
		n, ts := len(p.Body), uint32(p.DTS/time.Millisecond)
		b.Write([]byte{byte(p.Kind), byte(n >> 16), byte(n >> 8), byte(n), byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24), 0, 0, 0})
		b.Write(p.Body)
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(11+n)))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// decodeErrors decodes every frame of path with ffprobe and returns what it
// printed on stderr: nothing when the stream is valid.
func decodeErrors(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command("ffprobe", "-v", "error", "-show_frames", "-of", "compact", path)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("ffprobe: %v: %s", err, stderr.String())
	}
	return stderr.String()
}

func testLiveHLS(t *testing.T, segmentType string) {
	h := startLiveHLS(t, segmentType, "h264")
	const readTimeout = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := Open(ctx, h.url, Options{
		DialContext: netguard.New(nil).DialContext,
		ReadTimeout: readTimeout,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	cancel() // the setup context only bounds Open
	if err != nil {
		t.Fatalf("%v\nffmpeg: %s", err, h.out.String())
	}
	defer src.Close()

	pkts := readFor(t, src, 4*time.Second)
	checkStream(t, pkts, "h264")
	checkBuffered(t, src)

	// What we made of the access units decodes cleanly.
	path := filepath.Join(t.TempDir(), "out.flv")
	writeFLV(t, path, pkts)
	if out := decodeErrors(t, path); out != "" {
		t.Fatalf("ffprobe -v error: %s", out)
	}
	probe := testpeer.ProbeFile(t, path)
	if probe.VideoCodec != "h264" || probe.AudioCodec != "aac" {
		t.Fatalf("ffprobe finds %q and %q, want h264 and aac", probe.VideoCodec, probe.AudioCodec)
	}
	if probe.Backwards("video") != 0 || probe.Backwards("audio") != 0 {
		t.Fatalf("ffprobe sees DTS going back")
	}

	// The publisher stops: the playlist stops growing. gohlslib still has
	// up to three segments to play, then the source fails.
	h.kill()
	start := time.Now()
	for {
		_, err := src.ReadPacket(context.Background())
		if err != nil {
			t.Logf("after %v: %v", time.Since(start), err)
			break
		}
		if time.Since(start) > readTimeout+5*time.Second {
			t.Fatal("still reading long after the playlist stopped")
		}
	}
}

// checkBuffered checks that the source says when packets are waiting: the
// relay's reader batches what Buffered reports and then sleeps.
func checkBuffered(t *testing.T, src media.Source) {
	t.Helper()
	buf, ok := src.(interface{ Buffered() bool })
	if !ok {
		t.Fatalf("%T has no Buffered method", src)
	}
	// Samples come at their real-time pace: in 300 ms several are waiting.
	time.Sleep(300 * time.Millisecond)
	n := 0
	for buf.Buffered() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := src.ReadPacket(ctx)
		cancel()
		if err != nil {
			t.Fatalf("packet %d: Buffered said one was waiting, ReadPacket: %v", n, err)
		}
		n++
		if n > 10*inboxSize {
			t.Fatalf("Buffered still true after %d packets", n)
		}
	}
	if n < 3 {
		t.Fatalf("%d packets were buffered after 300 ms, want several", n)
	}
	t.Logf("%d packets buffered after 300 ms", n)
}

func TestLiveMPEGTS(t *testing.T) {
	t.Parallel()
	testLiveHLS(t, "mpegts")
}

func TestLiveFMP4(t *testing.T) {
	t.Parallel()
	testLiveHLS(t, "fmp4")
}

// H.265 goes out as enhanced RTMP ("hvc1"). ffmpeg 5.1 cannot read that
// from FLV, so the check turns the packets back into an Annex-B stream, the
// parameter sets taken from our HEVCDecoderConfigurationRecord, and decodes
// it.
func TestLiveFMP4H265(t *testing.T) {
	t.Parallel()
	h := startLiveHLS(t, "fmp4", "h265")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := Open(ctx, h.url, Options{ReadTimeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("%v\nffmpeg: %s", err, h.out.String())
	}
	defer src.Close()
	pkts := readFor(t, src, 4*time.Second)
	checkStream(t, pkts, "h265")

	var annexB bytes.Buffer
	var params [][]byte
	for _, p := range pkts {
		if p.Kind != media.KindVideo {
			continue
		}
		if p.IsSequenceHeader() {
			var err error
			if params, err = parseHVCC(p.Body[5:]); err != nil {
				t.Fatalf("sequence header: %v", err)
			}
			continue
		}
		if p.Body[0]&0x0f != 1 {
			t.Fatalf("packet type %d, want CodedFrames", p.Body[0]&0x0f)
		}
		if p.IsVideoKeyframe() {
			for _, n := range params {
				annexB.Write([]byte{0, 0, 0, 1})
				annexB.Write(n)
			}
		}
		for b := p.Body[8:]; len(b) > 0; {
			if len(b) < 4 || int(binary.BigEndian.Uint32(b)) > len(b)-4 {
				t.Fatalf("bad NALU length in % x", b[:min(len(b), 8)])
			}
			n := int(binary.BigEndian.Uint32(b))
			annexB.Write([]byte{0, 0, 0, 1})
			annexB.Write(b[4 : 4+n])
			b = b[4+n:]
		}
	}
	path := filepath.Join(t.TempDir(), "out.hevc")
	if err := os.WriteFile(path, annexB.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := decodeErrors(t, path); out != "" {
		t.Fatalf("ffprobe -v error: %s", out)
	}
	if probe := testpeer.ProbeFile(t, path); probe.VideoCodec != "hevc" {
		t.Fatalf("ffprobe finds %q, want hevc", probe.VideoCodec)
	}
}

// parseHVCC returns the parameter sets of an HEVCDecoderConfigurationRecord,
// checking its layout (readHVCC): VPS, SPS and PPS arrays, 4-byte NALU
// lengths.
func parseHVCC(b []byte) ([][]byte, error) {
	arrays, err := readHVCC(b)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, a := range arrays {
		out = append(out, a...)
	}
	return out, nil
}

func TestOpenErrors(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		switch r.URL.Path {
		case "/vp9.m3u8":
			w.Write([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS=\"vp09.00.10.08\"\nv.m3u8\n"))
		case "/garbage.m3u8":
			w.Write([]byte("<html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct {
		url  string
		want string
	}{
		{srv.URL + "/missing.m3u8?token=s3cret", "hls " + srv.URL + "/missing.m3u8?token=REDACTED: bad status code: 404"},
		{srv.URL + "/garbage.m3u8", "hls " + srv.URL + "/garbage.m3u8: "},
		{srv.URL + "/vp9.m3u8", "no variants with supported codecs"},
		{"http://169.254.169.254/latest.m3u8", "denied network"},
		{"http://user:hunter2@" + host + "/x.m3u8", "hls http://REDACTED@" + host + "/x.m3u8"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		src, err := Open(ctx, tt.url, Options{DialContext: netguard.New(nil).DialContext})
		cancel()
		if err == nil {
			src.Close()
			t.Errorf("%s: no error", tt.url)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %q, want it to contain %q and no credential", tt.url, err, tt.want)
		}
		if strings.Contains(tt.url, "169.254") && !errors.Is(err, netguard.ErrDenied) {
			t.Errorf("%s: error %v does not wrap netguard.ErrDenied", tt.url, err)
		}
	}
}

// testWriter sends log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
