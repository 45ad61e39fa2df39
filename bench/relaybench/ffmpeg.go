package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// clipArgs encode the source clip: 720p30 H.264 (libx264 veryfast, 2 Mb/s
// capped, a keyframe every 60 frames and only there) and AAC 128 kb/s, in
// FLV: about 2.2 Mb/s in all.
func clipArgs(seconds int) []string {
	return []string{
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", fmt.Sprint(seconds), "-map", "0:v", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "4M",
		"-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-ac", "2", "-ar", "44100", "-b:a", "128k",
		"-f", "flv",
	}
}

// clipGOP is the clip's keyframe interval: 60 frames at 30 fps.
const clipGOP = 2 * time.Second

// sourceClip returns the clip, encoding it once per machine into the
// temporary directory (write, then rename: a concurrent run never reads half
// a file).
func sourceClip(ctx context.Context, ps *procs, seconds int) (string, error) {
	args := clipArgs(seconds)
	sum := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	path := filepath.Join(os.TempDir(), "liverelay-benchclip-"+hex.EncodeToString(sum[:6])+".flv")
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path, nil
	}
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return "", fmt.Errorf("ffmpeg not found (apt-get install ffmpeg): %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	full := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...)
	p, err := ps.start("ffmpeg encode", nil, ffmpeg, append(full, tmp.Name())...)
	if err != nil {
		return "", err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		return "", ctx.Err()
	case <-time.After(5 * time.Minute):
		p.kill()
		return "", fmt.Errorf("encoding the clip took more than 5 minutes")
	}
	if p.err != nil {
		return "", fmt.Errorf("encode clip: %v: %s", p.err, p.output())
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// publish pushes the clip to url in a loop, in real time, without encoding.
func publish(ps *procs, clip, url string) (*proc, error) {
	return ps.start("ffmpeg publish", nil, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-re", "-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "flv", url)
}

// ffmpegRelay is the per-task ffmpeg that liverelay replaces:
// ffmpeg [inputArgs] -i rtmp://src -c copy -f flv rtmp://dst.
func ffmpegRelay(ps *procs, src, dst string, inputArgs ...string) (*proc, error) {
	args := []string{"-nostdin", "-hide_banner", "-loglevel", "error"}
	args = append(append(args, inputArgs...), "-i", src, "-c", "copy", "-f", "flv", dst)
	return ps.start("ffmpeg relay", nil, "ffmpeg", args...)
}

// serveFLV serves the clip in a loop, in real time, as HTTP-FLV at url
// (http://127.0.0.1:PORT/live.flv): ffmpeg's HTTP server, which takes one
// client and exits when it leaves.
func serveFLV(ps *procs, clip, url string) (*proc, error) {
	return ps.start("ffmpeg serve flv", nil, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-re", "-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "flv", "-listen", "1", url)
}

// publishHLS writes the clip in a loop, in real time, as a live HLS
// playlist (dir/index.m3u8, six segments listed, older ones deleted).
// -hls_time 1 asks for 1 s segments, but a copied stream is cut only at its
// keyframes: the segments are one GOP of the clip.
func publishHLS(ps *procs, clip, dir string) (*proc, error) {
	return ps.start("ffmpeg publish hls", nil, "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-re", "-stream_loop", "-1", "-i", clip, "-c", "copy",
		"-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments",
		filepath.Join(dir, "index.m3u8"))
}
