package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/netguard"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// startFFmpegHTTPFLV makes ffmpeg serve the test clip, looped in real time,
// as HTTP-FLV to one client at url. It is killed when the test ends.
func startFFmpegHTTPFLV(t *testing.T) (url string, cmd *exec.Cmd, done chan struct{}) {
	t.Helper()
	clip := testpeer.TestClip(t)
	url = fmt.Sprintf("http://127.0.0.1:%d/live.flv", testpeer.FreePort(t))
	var out bytes.Buffer
	cmd = exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-re", "-stream_loop", "-1", "-i", clip, "-t", "60", "-c", "copy",
		"-f", "flv", "-listen", "1", url)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ffmpeg: %v", err)
	}
	done = make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return url, cmd, done
}

// checkLive reads packets for d and checks them: sequence headers before
// the frames of their track, H.264 and AAC, DTS never going back within a
// track, a keyframe first and keyframes flagged (the clip has one every 2s).
func checkLive(t *testing.T, src media.Source, d time.Duration) {
	t.Helper()
	seq := map[media.Kind]bool{}
	last := map[media.Kind]time.Duration{}
	frames := map[media.Kind]int{}
	keyframes := 0
	var first, end time.Duration
	deadline := time.Now().Add(d)
	for i := 0; time.Now().Before(deadline); i++ {
		p, err := src.ReadPacket(context.Background())
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.IsMetadata() {
			continue
		}
		if f, ok := last[p.Kind]; ok && p.DTS < f {
			t.Fatalf("packet %d (%d): DTS %v after %v", i, p.Kind, p.DTS, f)
		}
		last[p.Kind] = p.DTS
		if p.IsSequenceHeader() {
			seq[p.Kind] = true
			continue
		}
		if !seq[p.Kind] {
			t.Fatalf("packet %d (%d) before its sequence header", i, p.Kind)
		}
		if frames[media.KindVideo]+frames[media.KindAudio] == 0 {
			first = p.DTS
		}
		end = p.DTS
		switch p.Kind {
		case media.KindVideo:
			if p.VideoCodec() != "h264" {
				t.Fatalf("video codec %s", p.VideoCodec())
			}
			if frames[p.Kind] == 0 && !p.IsVideoKeyframe() {
				t.Fatal("first video frame is not a keyframe")
			}
			if p.IsVideoKeyframe() {
				keyframes++
			}
		case media.KindAudio:
			if p.AudioCodec() != "aac" {
				t.Fatalf("audio codec %s", p.AudioCodec())
			}
		}
		frames[p.Kind]++
	}
	span := end - first
	t.Logf("%d video frames (%d keyframes), %d audio frames over %v", frames[media.KindVideo], keyframes, frames[media.KindAudio], span)
	if span < d/2 || frames[media.KindVideo] < int(span.Seconds()*25) || frames[media.KindAudio] < int(span.Seconds()*38) {
		t.Fatalf("too little media over %v", span)
	}
	if keyframes < int(span/(2*time.Second)) {
		t.Fatalf("%d keyframes over %v, want one every 2s", keyframes, span)
	}
}

func TestHTTPFLVFromFFmpeg(t *testing.T) {
	url, cmd, done := startFFmpegHTTPFLV(t)
	const readTimeout = 2 * time.Second
	var src media.Source
	testpeer.WaitFor(t, 10*time.Second, "ffmpeg's HTTP-FLV server", func() bool {
		var err error
		src, err = Open(context.Background(), url, Options{Guard: netguard.New(nil), ReadTimeout: readTimeout, DialTimeout: 5 * time.Second})
		return err == nil
	})
	defer src.Close()
	checkLive(t, src, 3*time.Second)

	cmd.Process.Kill()
	<-done
	start := time.Now()
	for {
		if _, err := src.ReadPacket(context.Background()); err != nil {
			t.Logf("after %v: %v", time.Since(start), err)
			break
		}
		if time.Since(start) > readTimeout+time.Second {
			t.Fatal("still reading after ffmpeg died")
		}
	}
}

// hlsVOD cuts the test clip into a short HLS VOD playlist (no encoding).
func hlsVOD(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-i", testpeer.TestClip(t), "-t", "6", "-c", "copy", "-f", "hls", "-hls_time", "2",
		"-hls_playlist_type", "vod", filepath.Join(dir, "p.m3u8")).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	return dir
}

// An URL that does not say its type is sniffed from the answer.
func TestOpenSniffsAmbiguousURL(t *testing.T) {
	clip, err := os.ReadFile(testpeer.TestClip(t))
	if err != nil {
		t.Fatal(err)
	}
	vod := hlsVOD(t)
	playlist, err := os.ReadFile(filepath.Join(vod, "p.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	serve := func(path, contentType string, body []byte) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if contentType != "" {
				w.Header().Set("Content-Type", contentType)
			}
			w.Write(body)
		})
	}
	serve("/flv-by-type", "video/x-flv", clip)
	serve("/flv-by-body", "application/octet-stream", clip)
	serve("/hls-by-type", "application/vnd.apple.mpegurl", playlist)
	serve("/hls-by-type2", "Audio/MPEGURL; charset=utf-8", playlist)
	serve("/hls-by-body", "text/plain", append([]byte("\xef\xbb\xbf"), playlist...))
	serve("/page", "text/html", []byte("<!DOCTYPE html><html>hello</html>"))
	serve("/binary", "application/octet-stream", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	mux.Handle("/", http.FileServer(http.Dir(vod))) // the segments
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tt := range []struct {
		path    string
		want    string // "flv", "hls" or the error
		wantErr string
	}{
		{path: "/flv-by-type", want: "flv"},
		{path: "/flv-by-body", want: "flv"},
		{path: "/hls-by-type", want: "hls"},
		{path: "/hls-by-type2", want: "hls"},
		{path: "/hls-by-body", want: "hls"},
		{path: "/page", wantErr: "source " + srv.URL + "/page: cannot tell the stream type: Content-Type text/html"},
		{path: "/binary", wantErr: "cannot tell the stream type: Content-Type application/octet-stream"},
		{path: "/missing", wantErr: "HTTP status 404"},
	} {
		t.Run(tt.path[1:], func(t *testing.T) {
			src, err := Open(context.Background(), srv.URL+tt.path, Options{Guard: netguard.New(nil), ReadTimeout: 3 * time.Second, DialTimeout: 5 * time.Second})
			if tt.wantErr != "" {
				if err == nil {
					src.Close()
					t.Fatal("no error")
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			// FLV starts with onMetaData, our HLS with the video sequence
			// header; both then carry H.264.
			p, err := src.ReadPacket(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got := "hls"
			if p.IsMetadata() {
				got = "flv"
			}
			if got != tt.want {
				t.Fatalf("opened as %s, want %s", got, tt.want)
			}
			for range 5 {
				if p, err = src.ReadPacket(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestOpenRefusesDeniedNetworks(t *testing.T) {
	guard := netguard.New(nil)
	for _, u := range []string{
		"rtmp://169.254.169.254/live/stream",
		"rtmps://169.254.169.254/live/stream",
		"http://169.254.169.254/live.flv",
		"https://169.254.169.254/live.m3u8",
		"http://user:hunter2@169.254.169.254/latest/meta-data?token=s3cret",
		"http://[fe80::1]/x",
	} {
		src, err := Open(context.Background(), u, Options{Guard: guard, DialTimeout: 5 * time.Second})
		if err == nil {
			src.Close()
			t.Errorf("%s: opened", u)
			continue
		}
		if !errors.Is(err, netguard.ErrDenied) {
			t.Errorf("%s: error %v, want netguard.ErrDenied", u, err)
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %q leaks a credential", u, err)
		}
	}
}

// The dialer checks every connection, those of redirects too.
func TestOpenRefusesRedirectToDeniedNetwork(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254"+r.URL.Path, http.StatusFound)
	}))
	defer srv.Close()
	for _, path := range []string{"/live.flv", "/live.m3u8", "/live"} {
		src, err := Open(context.Background(), srv.URL+path, Options{Guard: netguard.New(nil), DialTimeout: 5 * time.Second})
		if err == nil {
			src.Close()
			t.Errorf("%s: opened", path)
			continue
		}
		if !errors.Is(err, netguard.ErrDenied) {
			t.Errorf("%s: error %v, want netguard.ErrDenied", path, err)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"srt://127.0.0.1:9000", `unsupported scheme "srt"`},
		{"file:///etc/passwd", `unsupported scheme "file"`},
		{"http:///x.flv", "no host"},
		{"http://127.0.0.1:%zz/", "invalid URL"},
	} {
		src, err := Open(context.Background(), tt.url, Options{})
		if err == nil {
			src.Close()
			t.Errorf("%s: opened", tt.url)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %q, want %q", tt.url, err, tt.want)
		}
	}
}

func TestSchemes(t *testing.T) {
	if got := Schemes(); !slices.Equal(got, []string{"rtmp", "rtmps", "http", "https"}) {
		t.Fatalf("Schemes() = %v", got)
	}
}
