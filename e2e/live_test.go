package e2e

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/testpeer"
)

func requirePeers(t *testing.T) {
	t.Helper()
	testpeer.RequireTools(t, "nginx", "ffmpeg", "ffprobe")
}

// liveTask is the body of a PullLivePushLive task from src to dst.
func liveTask(src, dst string) map[string]any {
	return map[string]any{
		"source_type":     "PullLivePushLive",
		"source_urls":     []string{src},
		"destination_url": dst,
	}
}

// checkRecording probes a recording of the destination: H.264 and AAC,
// timestamps that never go backwards, and at least minDur of media.
func checkRecording(t *testing.T, path string, minDur time.Duration) testpeer.Probe {
	t.Helper()
	p := testpeer.ProbeFile(t, path)
	if p.VideoCodec != "h264" || p.AudioCodec != "aac" {
		t.Fatalf("destination codecs = %q/%q, want h264/aac", p.VideoCodec, p.AudioCodec)
	}
	for _, st := range []string{"video", "audio"} {
		if n := p.Backwards(st); n != 0 {
			t.Fatalf("%s timestamps went backwards %d times", st, n)
		}
	}
	if p.Duration < minDur {
		t.Fatalf("destination recording lasts %v, want at least %v", p.Duration, minDur)
	}
	return p
}

func TestLiveRelayRTMPToRTMP(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	svc := startService(t)

	id := svc.create(liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst")))
	svc.waitState(id, "running", 30*time.Second)

	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "dst"), rec)
	time.Sleep(6 * time.Second)
	r.Stop()
	p := checkRecording(t, rec, 4*time.Second)
	if !p.Packets[firstVideo(p)].Keyframe {
		t.Fatal("the first video packet at the destination is not a keyframe")
	}

	info := svc.show(id)
	for _, k := range []string{"bytes_out", "frames_out", "bitrate_bps", "fps"} {
		if num(info, k) <= 0 {
			t.Errorf("%s = %v, want > 0 (info %v)", k, info[k], info)
		}
	}
	if info["started_at"] == nil || info["last_heartbeat"] == nil {
		t.Errorf("started_at/last_heartbeat missing: %v", info)
	}
	if info["current_source_url"] != ng.RTMPURL("live", "src") {
		t.Errorf("current_source_url = %v", info["current_source_url"])
	}
}

func firstVideo(p testpeer.Probe) int {
	for i, pk := range p.Packets {
		if pk.Stream == "video" {
			return i
		}
	}
	return 0
}

func TestLiveRelaySurvivesSourceRestart(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	pub := testpeer.Publish(t, ng.RTMPURL("live", "src"))
	svc := startService(t)

	id := svc.create(liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst")))
	svc.waitState(id, "running", 30*time.Second)
	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "dst"), rec)
	time.Sleep(3 * time.Second)

	pub.Kill()
	info := svc.waitState(id, "recovering", 15*time.Second)
	if le, _ := info["last_error"].(map[string]any); le == nil || le["message"] == "" {
		t.Fatalf("recovering without last_error: %v", info)
	}
	// The destination publisher stays while the source is away.
	if n := ng.Publishers(t, "live", "dst"); n != 1 {
		t.Fatalf("destination publishers while the source is down = %d, want 1", n)
	}
	time.Sleep(2 * time.Second)
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	info = svc.waitState(id, "running", 30*time.Second)
	if num(info, "reconnects") < 1 {
		t.Errorf("reconnects = %v, want >= 1", info["reconnects"])
	}
	time.Sleep(4 * time.Second)
	r.Stop()

	// One recording session across the outage, media after it, and
	// timestamps that kept going forward.
	p := checkRecording(t, rec, 8*time.Second)
	if gap := p.MaxGap("video"); gap > 30*time.Second {
		t.Fatalf("largest video gap %v", gap)
	}
}

func TestKill9RestartResumesTask(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	svc := startService(t)

	id := svc.create(liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst")))
	svc.waitState(id, "running", 30*time.Second)
	svc.kill9()
	testpeer.WaitFor(t, 20*time.Second, "destination publisher gone after kill -9", func() bool {
		return ng.Publishers(t, "live", "dst") == 0
	})

	svc.start() // same data directory, no API call
	svc.waitState(id, "running", 30*time.Second)
	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "dst"), rec)
	time.Sleep(4 * time.Second)
	r.Stop()
	checkRecording(t, rec, 2*time.Second)
}

func TestPauseEnableDelete(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	svc := startService(t)

	id := svc.create(liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst")))
	svc.waitState(id, "running", 30*time.Second)
	testpeer.WaitFor(t, 10*time.Second, "destination publishing", func() bool {
		return ng.Publishers(t, "live", "dst") == 1
	})

	svc.modify(map[string]any{"task_id": id, "status": "pause"})
	info := svc.waitState(id, "paused", 10*time.Second)
	if info["status"] != "pause" || info["exit_reason"] != "paused" {
		t.Fatalf("after pause: status %v exit_reason %v", info["status"], info["exit_reason"])
	}
	testpeer.WaitFor(t, 10*time.Second, "destination publisher gone after pause", func() bool {
		return ng.Publishers(t, "live", "dst") == 0
	})

	svc.modify(map[string]any{"task_id": id, "status": "enable"})
	svc.waitState(id, "running", 30*time.Second)
	testpeer.WaitFor(t, 10*time.Second, "destination publishing again after enable", func() bool {
		return ng.Publishers(t, "live", "dst") == 1
	})

	status, out := svc.do(http.MethodDelete, taskPath+"?task_id="+id, nil)
	if status != http.StatusOK || out["task_id"] != id {
		t.Fatalf("delete: %d %v", status, out)
	}
	testpeer.WaitFor(t, 10*time.Second, "destination publisher gone after delete", func() bool {
		return ng.Publishers(t, "live", "dst") == 0
	})
	if info := svc.show(id); info != nil {
		t.Fatalf("deleted task still listed: %v", info)
	}
	// A second later (the same signed request within one second is a
	// replay, refused with 401).
	time.Sleep(1100 * time.Millisecond)
	status, out = svc.do(http.MethodDelete, taskPath+"?task_id="+id, nil)
	if status != http.StatusNotFound || out["error_code"] == "" {
		t.Fatalf("second delete: %d %v, want 404 with the error shape", status, out)
	}
}

func TestStartAndEndTime(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	svc := startService(t)

	// Times have one-second precision: start two seconds ahead, end after
	// a short window.
	start := time.Now().Add(3 * time.Second).Truncate(time.Second)
	end := start.Add(8 * time.Second)
	body := liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst"))
	body["start_time"], body["end_time"] = utc(start), utc(end)
	id := svc.create(body)

	if info := svc.show(id); info["run_state"] != "waiting" {
		t.Fatalf("before start_time: run_state %v, want waiting", info["run_state"])
	}
	if n := ng.Publishers(t, "live", "dst"); n != 0 {
		t.Fatalf("publishing before start_time")
	}
	svc.waitState(id, "running", 30*time.Second)
	if time.Now().Before(start) {
		t.Fatalf("running before start_time %v", start)
	}
	info := svc.waitState(id, "finished", 30*time.Second)
	if info["exit_reason"] != "end_time_reached" {
		t.Fatalf("exit_reason = %v, want end_time_reached", info["exit_reason"])
	}
	if time.Now().Before(end) {
		t.Fatalf("finished before end_time %v", end)
	}
	testpeer.WaitFor(t, 10*time.Second, "destination publisher gone at end_time", func() bool {
		return ng.Publishers(t, "live", "dst") == 0
	})
}
