package testpeer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNginxPublishRecordProbe(t *testing.T) {
	RequireTools(t, "nginx", "ffmpeg", "ffprobe")
	n := StartNginx(t, NginxOptions{})
	if n.Publishers(t, "live", "src") != 0 {
		t.Fatal("publisher before publishing")
	}

	pub := Publish(t, n.RTMPURL("live", "src"))
	WaitFor(t, 10*time.Second, "ffmpeg to publish live/src", func() bool {
		return n.Publishers(t, "live", "src") == 1
	})

	out := filepath.Join(t.TempDir(), "rec.flv")
	rec := Record(t, n.RTMPURL("live", "src"), out)
	WaitFor(t, 10*time.Second, "the recording to start", func() bool {
		st, err := os.Stat(out)
		return err == nil && st.Size() > 0
	})
	WaitFor(t, 10*time.Second, "a player in /stat", func() bool { return n.Players(t, "live", "src") == 1 })
	time.Sleep(3 * time.Second)
	rec.Stop() // ffmpeg exits with status 255 after SIGINT, its file finalised
	if !rec.Exited() {
		t.Fatal("recorder still running after Stop")
	}

	p := ProbeFile(t, out)
	if p.VideoCodec != "h264" || p.AudioCodec != "aac" {
		t.Fatalf("codecs %q, %q; want h264, aac", p.VideoCodec, p.AudioCodec)
	}
	// About 3 s: 90 video frames and 130 AAC frames, give or take the
	// wait for the first keyframe.
	if v, a := p.Count("video"), p.Count("audio"); v < 40 || a < 60 {
		t.Errorf("recorded %d video and %d audio packets; want at least 40 and 60", v, a)
	}
	if k := p.Keyframes("video"); k < 1 {
		t.Errorf("no keyframe recorded")
	}
	if b := p.Backwards("video") + p.Backwards("audio"); b != 0 {
		t.Errorf("%d DTS steps backwards", b)
	}
	if g := p.MaxGap("video"); g > 200*time.Millisecond {
		t.Errorf("video gap of %v", g)
	}

	pub.Kill()
	WaitFor(t, 5*time.Second, "the publisher to leave /stat", func() bool {
		return n.Publishers(t, "live", "src") == 0
	})
}

func TestNginxRestartKeepsPorts(t *testing.T) {
	RequireTools(t, "nginx")
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello, range"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := StartNginx(t, NginxOptions{HTTPRoot: root})
	rtmpPort, httpPort := n.RTMPPort, n.HTTPPort

	if body, err := n.get("/hello.txt"); err != nil || body != "hello, range" {
		t.Fatalf("GET /hello.txt = %q, %v", body, err)
	}

	n.Stop()
	if portOpen(rtmpPort) {
		t.Fatal("RTMP port still open after Stop")
	}
	n.Restart(t)
	if n.RTMPPort != rtmpPort || n.HTTPPort != httpPort || !portOpen(rtmpPort) {
		t.Fatalf("after Restart: ports %d, %d (open %v); want %d, %d", n.RTMPPort, n.HTTPPort, portOpen(n.RTMPPort), rtmpPort, httpPort)
	}
	if !strings.Contains(n.ErrorLog(), "nginx/") {
		t.Errorf("error log does not show the start:\n%s", n.ErrorLog())
	}
}

func TestParseProbe(t *testing.T) {
	out := `{"packets":[
	{"codec_type":"video","stream_index":0,"pts_time":"0.067000","dts_time":"0.000000","size":"1000","flags":"K__"},
	{"codec_type":"audio","stream_index":1,"pts_time":"0.000000","dts_time":"0.000000","size":"300","flags":"K__"},
	{"codec_type":"video","stream_index":0,"pts_time":"0.167000","dts_time":"0.033000","size":"200","flags":"___"},
	{"codec_type":"video","stream_index":0,"pts_time":"0.100000","dts_time":"0.500000","size":"200","flags":"___"},
	{"codec_type":"video","stream_index":0,"pts_time":"0.133000","dts_time":"0.100000","size":"200","flags":"___"}
	],"streams":[{"index":0,"codec_type":"video","codec_name":"h264"},{"index":1,"codec_type":"audio","codec_name":"aac"}],
	"format":{"duration":"10.010000"}}`
	p, err := parseProbe([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if p.VideoCodec != "h264" || p.AudioCodec != "aac" || p.Duration != 10010*time.Millisecond {
		t.Fatalf("got %+v", p)
	}
	if p.Count("video") != 4 || p.Keyframes("video") != 1 || p.Packets[0].PTS != 67*time.Millisecond || p.Packets[0].Size != 1000 {
		t.Fatalf("packets %+v", p.Packets)
	}
	if g := p.MaxGap("video"); g != 467*time.Millisecond {
		t.Errorf("MaxGap = %v", g)
	}
	if b := p.Backwards("video"); b != 1 {
		t.Errorf("Backwards = %d", b)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 5}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if got := b.String(); got != "cdefg" {
		t.Fatalf("got %q", got)
	}
}
