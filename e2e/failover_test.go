package e2e

import (
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/testpeer"
)

// The primary's publisher dies while a backup publishes: the destination
// keeps one RTMP session, timestamps never go back, the largest video gap
// stays under the detection time plus one GOP; when the primary returns
// the task switches back.
func TestFailoverToBackupAndBack(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	primary := testpeer.Publish(t, ng.RTMPURL("live", "primary"))
	testpeer.Publish(t, ng.RTMPURL("live", "backup"))
	svc := startService(t)

	body := liveTask(ng.RTMPURL("live", "primary"), ng.RTMPURL("live", "dst"))
	body["backup_source_type"] = "PullLivePushLive"
	body["backup_source_urls"] = []string{ng.RTMPURL("live", "backup")}
	id := svc.create(body)
	svc.waitState(id, "running", 30*time.Second)

	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "dst"), rec)
	time.Sleep(3 * time.Second)

	primary.Kill()
	var info map[string]any
	testpeer.WaitFor(t, 20*time.Second, "task on its backup", func() bool {
		info = svc.show(id)
		return info["on_backup"] == true && info["run_state"] == "running"
	})
	if info["current_source_url"] != ng.RTMPURL("live", "backup") || num(info, "failovers") < 1 {
		t.Fatalf("on backup: current_source_url %v failovers %v", info["current_source_url"], info["failovers"])
	}
	time.Sleep(3 * time.Second)
	if n := ng.Publishers(t, "live", "dst"); n != 1 {
		t.Fatalf("destination publishers during failover = %d, want 1", n)
	}

	testpeer.Publish(t, ng.RTMPURL("live", "primary"))
	testpeer.WaitFor(t, 40*time.Second, "task back on its primary", func() bool {
		info = svc.show(id)
		return info["on_backup"] == false && info["current_source_url"] == ng.RTMPURL("live", "primary")
	})
	time.Sleep(3 * time.Second)
	r.Stop()

	p := checkRecording(t, rec, 10*time.Second)
	// Detection (3 s without media, or at once on an unpublish notice)
	// plus one GOP of the source (2 s).
	if gap := p.MaxGap("video"); gap > 5*time.Second {
		t.Fatalf("largest video gap at the destination %v, want < 5s", gap)
	}
	t.Logf("largest video gap across failover and switch-back: %v", p.MaxGap("video"))
}

// The destination server goes away and comes back: the task redials and the
// stream continues.
func TestDestinationRestart(t *testing.T) {
	requirePeers(t)
	src := testpeer.StartNginx(t, testpeer.NginxOptions{})
	dst := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, src.RTMPURL("live", "src"))
	svc := startService(t)

	id := svc.create(liveTask(src.RTMPURL("live", "src"), dst.RTMPURL("live", "dst")))
	svc.waitState(id, "running", 30*time.Second)
	dst.Stop()
	info := svc.waitState(id, "recovering", 20*time.Second)
	if le, _ := info["last_error"].(map[string]any); le == nil || le["code"] != "DESTINATION_FAILED" {
		t.Fatalf("last_error while the destination is down: %v", info["last_error"])
	}
	dst.Restart(t)
	info = svc.waitState(id, "running", 40*time.Second)
	if num(info, "reconnects") < 1 {
		t.Fatalf("reconnects = %v, want >= 1", info["reconnects"])
	}
	testpeer.WaitFor(t, 10*time.Second, "destination publishing again", func() bool {
		return dst.Publishers(t, "live", "dst") == 1
	})
	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, dst.RTMPURL("live", "dst"), rec)
	time.Sleep(4 * time.Second)
	r.Stop()
	checkRecording(t, rec, 2*time.Second)
}

// A source that sends garbage and one with a codec we cannot carry: the
// task is recovering with an error naming the problem, the service does not
// crash, and another task relays on untouched.
func TestGarbageAndUnsupportedSources(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "good"))

	// A TCP server that answers every connection with junk.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				junk := make([]byte, 4096)
				for i := range junk {
					junk[i] = byte(i*7 + 3)
				}
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				for j := 0; j < 50; j++ {
					if _, err := c.Write(junk); err != nil {
						return
					}
				}
			}()
		}
	}()

	// Sorenson H.263 in FLV: a codec the destinations of a relay cannot take.
	sorenson := exec.Command("ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15",
		"-c:v", "flv1", "-an", "-f", "flv", ng.RTMPURL("live", "h263"))
	if err := sorenson.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sorenson.Process.Kill(); _ = sorenson.Wait() }()

	svc := startService(t)
	good := svc.create(liveTask(ng.RTMPURL("live", "good"), ng.RTMPURL("live", "goodout")))
	garbage := svc.create(liveTask("rtmp://"+ln.Addr().String()+"/live/x", ng.RTMPURL("live", "garbageout")))
	h263 := svc.create(liveTask(ng.RTMPURL("live", "h263"), ng.RTMPURL("live", "h263out")))

	for id, code := range map[string]string{garbage: "SOURCE_UNAVAILABLE", h263: "UNSUPPORTED_CODEC"} {
		var info map[string]any
		testpeer.WaitFor(t, 30*time.Second, "task "+id+" recovering with "+code, func() bool {
			info = svc.show(id)
			le, _ := info["last_error"].(map[string]any)
			return info["run_state"] == "recovering" && le != nil && le["code"] == code
		})
		t.Logf("%s: %v", code, info["last_error"])
	}
	svc.waitState(good, "running", 30*time.Second)
	rec := filepath.Join(t.TempDir(), "good.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "goodout"), rec)
	time.Sleep(3 * time.Second)
	r.Stop()
	checkRecording(t, rec, time.Second)
	resp, err := http.Get(svc.url("/healthz"))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after bad sources: %v %v", resp, err)
	}
	resp.Body.Close()
}
