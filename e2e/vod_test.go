package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/testpeer"
)

var (
	vodFilesOnce sync.Once
	vodFilesDir  string
	vodFilesErr  error
)

// vodFiles makes, once per test binary, three short files of different
// kinds: MP4 with moov first, MP4 with moov at the end and B-frames, FLV.
func vodFiles(t *testing.T) string {
	t.Helper()
	testpeer.RequireTools(t, "ffmpeg", "ffprobe")
	vodFilesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "liverelay-vod-files")
		if err != nil {
			vodFilesErr = err
			return
		}
		common := []string{"-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"}
		enc := []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2"}
		jobs := [][]string{
			append(append(append([]string{}, common...), enc...), "-t", "3", "-bf", "0", "-movflags", "+faststart", filepath.Join(dir, "a.mp4")),
			append(append(append([]string{}, common...), enc...), "-t", "2", "-bf", "2", filepath.Join(dir, "b.mp4")),
			append(append(append([]string{}, common...), enc...), "-t", "2", "-bf", "0", "-f", "flv", filepath.Join(dir, "c.flv")),
		}
		for _, args := range jobs {
			if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
				vodFilesErr = fmt.Errorf("ffmpeg %v: %v\n%s", args, err, out)
				return
			}
		}
		// An HLS VOD playlist (#EXT-X-ENDLIST) of 1-second segments.
		if err := os.Mkdir(filepath.Join(dir, "hls"), 0o755); err != nil {
			vodFilesErr = err
			return
		}
		hlsArgs := append(append(append([]string{}, common...), enc...), "-t", "3", "-bf", "0",
			"-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", filepath.Join(dir, "hls", "index.m3u8"))
		if out, err := exec.Command("ffmpeg", hlsArgs...).CombinedOutput(); err != nil {
			vodFilesErr = fmt.Errorf("ffmpeg hls: %v\n%s", err, out)
			return
		}
		// A corrupt file: the first 40 KiB of a.mp4 with the rest cut off,
		// and bytes that are no media at all.
		a, _ := os.ReadFile(filepath.Join(dir, "a.mp4"))
		_ = os.WriteFile(filepath.Join(dir, "truncated.mp4"), a[:len(a)/3], 0o644)
		_ = os.WriteFile(filepath.Join(dir, "junk.mp4"), []byte("this is not a video file at all"), 0o644)
		vodFilesDir = dir
	})
	if vodFilesErr != nil {
		t.Fatal(vodFilesErr)
	}
	return vodFilesDir
}

func vodTask(files []string, dst string, loops string) map[string]any {
	return map[string]any{
		"source_type":     "PullVodPushLive",
		"source_urls":     files,
		"destination_url": dst,
		"vod_loop_time":   loops,
	}
}

func TestVODPlaylistTwoRounds(t *testing.T) {
	requirePeers(t)
	dir := vodFiles(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{HTTPRoot: dir})
	svc := startService(t)

	files := []string{ng.HTTPURL("/a.mp4"), ng.HTTPURL("/b.mp4"), ng.HTTPURL("/c.flv")}
	rec := filepath.Join(t.TempDir(), "dst.flv")
	// Record from the first publish to the end; ffmpeg ends its recording
	// when the publisher goes, so one recording is one RTMP session.
	id := svc.create(vodTask(files, ng.RTMPURL("live", "vod"), "2"))
	testpeer.WaitFor(t, 20*time.Second, "destination publishing", func() bool {
		return ng.Publishers(t, "live", "vod") == 1
	})
	r := testpeer.Record(t, ng.RTMPURL("live", "vod"), rec)
	info := svc.waitState(id, "finished", 60*time.Second)
	if info["exit_reason"] != "loops_done" || num(info, "loops_done") != 2 {
		t.Fatalf("final state: exit_reason %v loops_done %v", info["exit_reason"], info["loops_done"])
	}
	// The publisher is gone: the recorder ends by itself (and finalises
	// the file) once its read timeout passes.
	select {
	case <-r.Done():
	case <-time.After(30 * time.Second):
		r.Stop()
	}
	// Every switch between differently encoded files must be readable by
	// a stream parser: the recorder (ffmpeg) prints nothing.
	for _, line := range strings.Split(strings.TrimSpace(r.Output()), "\n") {
		// The read timeout that ended the recording is the only line allowed.
		if line != "" && !strings.HasSuffix(line, "Input/output error") {
			t.Fatalf("the recorder complained about the stream:\n%s", r.Output())
		}
	}

	p := checkRecording(t, rec, 12*time.Second)
	// 7 s of files, twice: 14 s, within one GOP (1 s), minus what the
	// recorder missed before it started (it joined at the first keyframe).
	if span := p.Span("video"); span < 12500*time.Millisecond || span > 15*time.Second {
		t.Fatalf("recording spans %v, want about 14 s", span)
	}
	if gap := p.MaxGap("video"); gap > 67*time.Millisecond {
		t.Fatalf("largest video gap %v at a file switch, want at most two frame durations", gap)
	}
	t.Logf("recording: %v video, largest video gap %v, largest audio gap %v", p.Span("video"), p.MaxGap("video"), p.MaxGap("audio"))
}

func TestVODStartIndexAndTime(t *testing.T) {
	requirePeers(t)
	dir := vodFiles(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{HTTPRoot: dir})
	svc := startService(t)

	body := vodTask([]string{ng.HTTPURL("/b.mp4"), ng.HTTPURL("/a.mp4")}, ng.RTMPURL("live", "vod"), "1")
	body["vod_start_video_index"] = 1
	body["vod_start_video_time"] = 1
	start := time.Now()
	id := svc.create(body)
	info := svc.waitState(id, "finished", 30*time.Second)
	took := time.Since(start)
	// a.mp4 from 1 s: 2 s of media, paced at real time.
	if took < 1500*time.Millisecond || took > 6*time.Second {
		t.Fatalf("played in %v, want about 2 s (the last 2 s of a.mp4 only)", took)
	}
	if num(info, "current_index") != 1 {
		t.Fatalf("current_index = %v, want 1", info["current_index"])
	}
}

func TestVODSkipsUnreadableFiles(t *testing.T) {
	requirePeers(t)
	dir := vodFiles(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{HTTPRoot: dir})
	svc := startService(t)

	files := []string{ng.HTTPURL("/missing.mp4"), ng.HTTPURL("/junk.mp4"), ng.HTTPURL("/c.flv")}
	id := svc.create(vodTask(files, ng.RTMPURL("live", "vod"), "1"))
	info := svc.waitState(id, "finished", 30*time.Second)
	if le, _ := info["last_error"].(map[string]any); le == nil {
		t.Fatalf("no last_error after unreadable files: %v", info)
	}
	if num(info, "frames_out") < 50 {
		t.Fatalf("frames_out = %v: c.flv did not play", info["frames_out"])
	}
}

func TestVODResumesAfterKill9(t *testing.T) {
	requirePeers(t)
	dir := vodFiles(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{HTTPRoot: dir})
	svc := startService(t)

	id := svc.create(vodTask([]string{ng.HTTPURL("/a.mp4"), ng.HTTPURL("/b.mp4")}, ng.RTMPURL("live", "vod"), "-1"))
	var before map[string]any
	testpeer.WaitFor(t, 30*time.Second, "playing the second file", func() bool {
		before = svc.show(id)
		return num(before, "current_index") == 1 && num(before, "current_offset_ms") >= 500
	})
	time.Sleep(300 * time.Millisecond)
	before = svc.show(id)
	svc.kill9()
	svc.start()
	var after map[string]any
	testpeer.WaitFor(t, 30*time.Second, "playing again after restart", func() bool {
		after = svc.show(id)
		return after["run_state"] == "running" && after["started_at"] != before["started_at"]
	})
	if num(after, "current_index") != 1 {
		t.Fatalf("after restart: current_index %v, want 1 (it was %v at %vms)", after["current_index"], before["current_index"], before["current_offset_ms"])
	}
	// It continues within 2 s of where it was (the stored position is at
	// most a second old, and playback restarts at the keyframe before it).
	if d := num(after, "current_offset_ms") - num(before, "current_offset_ms"); d < -2000 {
		t.Fatalf("after restart at %vms, was at %vms", after["current_offset_ms"], before["current_offset_ms"])
	}
}

func TestVODHLSPlaylistThenFLV(t *testing.T) {
	requirePeers(t)
	dir := vodFiles(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{HTTPRoot: dir})
	svc := startService(t)

	start := time.Now()
	id := svc.create(vodTask([]string{ng.HTTPURL("/hls/index.m3u8"), ng.HTTPURL("/c.flv")}, ng.RTMPURL("live", "vod"), "1"))
	info := svc.waitState(id, "finished", 40*time.Second)
	took := time.Since(start)
	// 3 s of HLS and 2 s of FLV, paced: 30 fps video and audio frames.
	if num(info, "frames_out") < 250 {
		t.Fatalf("frames_out = %v, want the HLS playlist and the FLV file played", info["frames_out"])
	}
	if took < 4*time.Second {
		t.Fatalf("played 5 s of media in %v: not paced", took)
	}
	if info["last_error"] != nil {
		t.Fatalf("last_error %v", info["last_error"])
	}
}
