package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/testpeer"
)

// startFFmpeg runs ffmpeg with args until the test ends or kill is called.
func startFFmpeg(t *testing.T, args ...string) (kill func()) {
	t.Helper()
	cmd := exec.Command("ffmpeg", append([]string{"-nostdin", "-v", "error"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	kill = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(kill)
	return kill
}

// An HTTP-FLV primary (ffmpeg serving FLV over HTTP) with an RTMP backup:
// the primary's server dies, the task fails over without dropping the
// destination, and switches back when it serves again.
func TestHTTPFLVSourceWithFailover(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	clip := testpeer.TestClip(t)
	testpeer.Publish(t, ng.RTMPURL("live", "backup"))
	port := testpeer.FreePort(t)
	flvURL := fmt.Sprintf("http://127.0.0.1:%d/live.flv", port)
	serveFLV := func() func() {
		return startFFmpeg(t, "-re", "-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "flv", "-listen", "1", flvURL)
	}
	kill := serveFLV()
	svc := startService(t)

	body := liveTask(flvURL, ng.RTMPURL("live", "dst"))
	body["backup_source_urls"] = []string{ng.RTMPURL("live", "backup")}
	id := svc.create(body)
	testpeer.WaitFor(t, 30*time.Second, "running on the HTTP-FLV primary", func() bool {
		info := svc.show(id)
		return info["run_state"] == "running" && info["on_backup"] == false
	})
	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "dst"), rec)
	time.Sleep(2 * time.Second)

	kill()
	testpeer.WaitFor(t, 20*time.Second, "on the backup", func() bool {
		info := svc.show(id)
		return info["on_backup"] == true && info["run_state"] == "running"
	})
	time.Sleep(2 * time.Second)
	serveFLV()
	testpeer.WaitFor(t, 40*time.Second, "back on the HTTP-FLV primary", func() bool {
		return svc.show(id)["on_backup"] == false
	})
	time.Sleep(2 * time.Second)
	r.Stop()
	p := checkRecording(t, rec, 6*time.Second)
	if gap := p.MaxGap("video"); gap > 5*time.Second {
		t.Fatalf("largest video gap %v", gap)
	}
	t.Logf("HTTP-FLV failover and back: largest video gap %v", p.MaxGap("video"))
}

// An HLS live source: ffmpeg's HLS muxer writes into a directory that nginx
// serves.
func TestHLSLiveSource(t *testing.T) {
	requirePeers(t)
	dir := t.TempDir()
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{HTTPRoot: dir})
	startFFmpeg(t, "-re", "-stream_loop", "-1", "-i", testpeer.TestClip(t), "-c", "copy",
		"-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments",
		filepath.Join(dir, "index.m3u8"))
	svc := startService(t)

	id := svc.create(liveTask(ng.HTTPURL("/index.m3u8"), ng.RTMPURL("live", "dst")))
	svc.waitState(id, "running", 40*time.Second)
	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "dst"), rec)
	time.Sleep(6 * time.Second)
	r.Stop()
	checkRecording(t, rec, 3*time.Second)
}
