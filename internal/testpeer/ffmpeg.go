package testpeer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// clipArgs encode the test clip: 10 s of 720p30 H.264 (libx264 veryfast,
// 2 Mb/s, a keyframe every 60 frames and nowhere else) and AAC 44.1 kHz
// stereo, in FLV.
var clipArgs = []string{
	"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
	"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
	"-t", "10", "-map", "0:v", "-map", "1:a",
	"-c:v", "libx264", "-preset", "veryfast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M",
	"-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
	"-c:a", "aac", "-ac", "2", "-ar", "44100", "-b:a", "128k",
	"-f", "flv",
}

var clip struct {
	once sync.Once
	path string
	err  error
}

// TestClip returns the path of the test clip (see clipArgs). It is encoded
// once per machine, into os.TempDir()/liverelay-testclip-<hash of the
// arguments>.flv, so publishing it costs no encoding CPU.
func TestClip(t testing.TB) string {
	t.Helper()
	RequireTools(t, "ffmpeg")
	clip.once.Do(func() {
		sum := sha256.Sum256([]byte(strings.Join(clipArgs, "\x00")))
		path := filepath.Join(os.TempDir(), "liverelay-testclip-"+hex.EncodeToString(sum[:6])+".flv")
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			clip.path = path
			return
		}
		clip.path, clip.err = encodeClip(path)
	})
	if clip.err != nil {
		t.Fatalf("testpeer: test clip: %v", clip.err)
	}
	return clip.path
}

// encodeClip writes the clip beside path and renames it into place, so
// concurrent test binaries never read half a file.
func encodeClip(path string) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	ffmpeg, err := lookTool("ffmpeg")
	if err != nil {
		return "", err
	}
	args := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, clipArgs...)
	p, err := startProc(ffmpeg, append(args, tmp.Name())...)
	if err != nil {
		return "", err
	}
	<-p.Done()
	if p.Err() != nil {
		return "", fmt.Errorf("ffmpeg: %v: %s", p.Err(), p.Output())
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// Publish publishes the test clip to rtmpURL in a loop, in real time, without
// re-encoding (ffmpeg -re -stream_loop -1 -c copy). The publisher is killed
// when the test ends; Stop or Kill it earlier to end the stream.
func Publish(t testing.TB, rtmpURL string) *Proc {
	t.Helper()
	clipPath := TestClip(t)
	p := startTool(t, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
		"-re", "-stream_loop", "-1", "-i", clipPath, "-c", "copy", "-f", "flv", rtmpURL)
	t.Cleanup(p.Kill)
	return p
}

// Record copies the stream at rtmpURL into the FLV file outPath. Stop
// finalises the file. The recorder also ends by itself, file finalised, once
// the stream has stopped for long: it tolerates holes of 3 s (rw_timeout)
// and ends about 9 s after data stops (ffmpeg waits once per protocol layer).
// It is killed when the test ends.
func Record(t testing.TB, rtmpURL, outPath string) *Proc {
	t.Helper()
	p := startTool(t, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
		"-rw_timeout", "3000000", "-i", rtmpURL, "-c", "copy", "-f", "flv", "-y", outPath)
	t.Cleanup(p.Kill)
	return p
}
