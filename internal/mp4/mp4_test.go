package mp4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mp4ff "github.com/Eyevinn/mp4ff/mp4"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// TestPlayOverHTTP plays both layouts of the same clip from nginx and checks
// every packet against what ffprobe reads in the file.
func TestPlayOverHTTP(t *testing.T) {
	dir := t.TempDir()
	end := encode(t, dir, "end.mp4")
	ffmpeg(t, "-i", end, "-c", "copy", "-movflags", "+faststart", filepath.Join(dir, "start.mp4"))
	if err := os.WriteFile(filepath.Join(dir, "empty.mp4"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ngx := testpeer.StartNginx(t, testpeer.NginxOptions{HTTPRoot: dir})
	for name, want := range map[string]string{"empty.mp4": "empty file", "missing.mp4": "404 Not Found"} {
		if _, err := Open(context.Background(), ngx.HTTPURL("/"+name), 0, Options{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, want)
		}
	}

	for _, name := range []string{"start.mp4", "end.mp4"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			probe := testpeer.ProbeFile(t, path)
			src, err := Open(context.Background(), ngx.HTTPURL("/"+name), 0, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			pkts := mustReadAll(t, src)
			checkAgainstProbe(t, pkts, probe)
			within(t, "Duration()", src.Duration(), probe.Duration, 50*time.Millisecond)

			flv := filepath.Join(t.TempDir(), "out.flv")
			writeFLV(t, flv, pkts)
			checkFLV(t, flv, probe)
		})
	}
}

// checkAgainstProbe compares what we read with ffprobe's packets of the
// same file: headers, counts, sizes, keyframes, DTS and composition times.
func checkAgainstProbe(t *testing.T, pkts []media.Packet, probe testpeer.Probe) {
	t.Helper()
	if len(pkts) < 2 || !pkts[0].IsSequenceHeader() || pkts[0].Kind != media.KindVideo ||
		!pkts[1].IsSequenceHeader() || pkts[1].Kind != media.KindAudio {
		t.Fatalf("first packets are not the video and audio sequence headers")
	}
	if b := pkts[0].Body; b[0] != 0x17 || b[5] != 1 || b[9]&3 != 3 {
		t.Errorf("video sequence header % x...: want 17 00 00 00 00 + avcC (version 1, 4-byte lengths)", b[:10])
	}
	if b := pkts[1].Body; len(b) < 4 || b[0] != 0xaf || b[1] != 0 {
		t.Errorf("audio sequence header % x: want af 00 + AudioSpecificConfig", b)
	}
	for i, p := range pkts[2:] {
		if p.IsSequenceHeader() {
			t.Errorf("packet %d: another sequence header", i+2)
		}
		if p.DTS < pkts[i+1].DTS {
			t.Errorf("packet %d: DTS %v after %v", i+2, p.DTS, pkts[i+1].DTS)
		}
	}

	video, audio := frames(pkts, media.KindVideo), frames(pkts, media.KindAudio)
	pv, pa := probe.Stream("video"), probe.Stream("audio")
	if len(video) != len(pv) || len(audio) != len(pa) {
		t.Fatalf("got %d video and %d audio frames, ffprobe counts %d and %d", len(video), len(audio), len(pv), len(pa))
	}
	if !video[0].IsVideoKeyframe() {
		t.Error("first video frame is not a keyframe")
	}
	for i, p := range video {
		want := pv[i]
		if i > 0 && p.DTS <= video[i-1].DTS {
			t.Errorf("video %d: DTS %v after %v: not strictly increasing", i, p.DTS, video[i-1].DTS)
		}
		if p.Body[1] != 1 || p.IsVideoKeyframe() != want.Keyframe || len(p.Body)-5 != want.Size {
			t.Errorf("video %d: type %d key %v size %d, ffprobe: key %v size %d",
				i, p.Body[1], p.IsVideoKeyframe(), len(p.Body)-5, want.Keyframe, want.Size)
		}
		within(t, fmt.Sprintf("video %d DTS", i), p.DTS, want.DTS, time.Millisecond)
		within(t, fmt.Sprintf("video %d PTS-DTS", i), cts(p), want.PTS-want.DTS, time.Millisecond)
	}
	for i, p := range audio {
		want := pa[i]
		if i > 0 && p.DTS < audio[i-1].DTS {
			t.Errorf("audio %d: DTS %v after %v", i, p.DTS, audio[i-1].DTS)
		}
		if p.Body[0] != 0xaf || p.Body[1] != 1 || len(p.Body)-2 != want.Size {
			t.Errorf("audio %d: header % x size %d, ffprobe size %d", i, p.Body[:2], len(p.Body)-2, want.Size)
		}
		within(t, fmt.Sprintf("audio %d DTS", i), p.DTS, want.DTS, time.Millisecond)
	}
}

// checkFLV proves the bodies are valid FLV: ffmpeg decodes the file without
// a single error, and ffprobe finds the same streams and duration.
func checkFLV(t *testing.T, flv string, mp4Probe testpeer.Probe) {
	t.Helper()
	ffmpeg(t, "-xerror", "-i", flv, "-f", "null", "-")
	probe := testpeer.ProbeFile(t, flv)
	if probe.VideoCodec != "h264" || probe.AudioCodec != "aac" {
		t.Errorf("FLV codecs %q/%q, want h264/aac", probe.VideoCodec, probe.AudioCodec)
	}
	if probe.Count("video") != mp4Probe.Count("video") || probe.Count("audio") != mp4Probe.Count("audio") {
		t.Errorf("FLV has %d/%d packets, the MP4 %d/%d", probe.Count("video"), probe.Count("audio"),
			mp4Probe.Count("video"), mp4Probe.Count("audio"))
	}
	within(t, "FLV video span", probe.Span("video"), mp4Probe.Span("video"), 2*time.Millisecond)
	within(t, "FLV duration", probe.Duration, mp4Probe.Duration, 100*time.Millisecond)
}

// rangeLog serves a file like a static server and records the requests.
type rangeLog struct {
	mu      sync.Mutex
	ranges  []string
	fetched int64
}

func (l *rangeLog) serve(data []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.ranges = append(l.ranges, r.Header.Get("Range"))
		l.mu.Unlock()
		http.ServeContent(&countingWriter{ResponseWriter: w, log: l}, r, "clip.mp4", time.Unix(1700000000, 0), bytes.NewReader(data))
	})
}

func (l *rangeLog) snapshot() ([]string, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ranges...), l.fetched
}

// countingWriter counts the bytes as they are written: the client cannot
// see a byte before it is counted.
type countingWriter struct {
	http.ResponseWriter
	log *rangeLog
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.log.mu.Lock()
	w.log.fetched += int64(len(p))
	w.log.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

// TestRangeRequests checks that the moov at the end of a file is reached
// with ranges, not by downloading what comes before it, and that playing
// the whole file fetches each byte about once.
func TestRangeRequests(t *testing.T) {
	// A bigger picture than the other tests, so that the file is several
	// read-ahead windows long.
	path := encode(t, t.TempDir(), "end.mp4", "-s", "1280x720")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	var log rangeLog
	srv := httptest.NewServer(log.serve(data))
	defer srv.Close()

	src, err := Open(context.Background(), srv.URL+"/clip.mp4", 0, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var frame *media.Packet
	for frame == nil || frame.IsSequenceHeader() {
		if frame, err = src.ReadPacket(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ranges, fetched := log.snapshot()
	t.Logf("file %d bytes; before the first frame: %d bytes in %q", size, fetched, ranges)
	if fetched > size/4 {
		t.Errorf("fetched %d of %d bytes before the first frame", fetched, size)
	}
	mustReadAll(t, src)
	ranges, fetched = log.snapshot()
	for _, r := range ranges {
		var first, last int64
		if _, err := fmt.Sscanf(r, "bytes=%d-%d", &first, &last); err != nil {
			t.Errorf("request with Range %q, want bytes=first-last", r)
		} else if first == 0 && last >= size-1 {
			t.Errorf("range %q covers the whole file", r)
		}
	}
	if fetched > size+size/10 {
		t.Errorf("fetched %d bytes in %d requests to play a file of %d", fetched, len(ranges), size)
	}
	t.Logf("whole file: %d requests, %d bytes", len(ranges), fetched)
}

// TestStartOffset starts at 3.5 s of a file with a keyframe every second:
// playback starts at the keyframe shown at 3.0 s.
func TestStartOffset(t *testing.T) {
	path := encode(t, t.TempDir(), "clip.mp4")
	probe := testpeer.ProbeFile(t, path)
	var key testpeer.ProbePacket
	for _, p := range probe.Stream("video") {
		if p.Keyframe && p.PTS <= 3500*time.Millisecond {
			key = p
		}
	}
	if key.PTS != 3*time.Second {
		t.Fatalf("ffprobe: last keyframe by 3.5 s at %v, want 3 s (encoding changed?)", key.PTS)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	src, err := openReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), 3500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	pkts := mustReadAll(t, src)
	video, audio := frames(pkts, media.KindVideo), frames(pkts, media.KindAudio)
	if !video[0].IsVideoKeyframe() {
		t.Error("first video frame is not a keyframe")
	}
	within(t, "first video DTS", video[0].DTS, key.DTS, time.Millisecond)
	within(t, "first video PTS", video[0].DTS+cts(video[0]), 3*time.Second, time.Millisecond)
	if d := audio[0].DTS - video[0].DTS; d < 0 || d > 24*time.Millisecond {
		t.Errorf("first audio DTS %v, first video DTS %v: want audio from the video on, within one frame", audio[0].DTS, video[0].DTS)
	}
	if pkts[0].DTS != video[0].DTS || pkts[1].DTS != video[0].DTS {
		t.Errorf("sequence headers at %v, %v; want the first DTS %v", pkts[0].DTS, pkts[1].DTS, video[0].DTS)
	}
	wantVideo := 0
	for _, p := range probe.Stream("video") {
		if p.DTS >= key.DTS {
			wantVideo++
		}
	}
	if len(video) != wantVideo {
		t.Errorf("got %d video frames from the keyframe on, ffprobe has %d", len(video), wantVideo)
	}

	for _, start := range []time.Duration{src.Duration(), src.Duration() + time.Hour} {
		src, err := openReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), start)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := src.ReadPacket(context.Background()); !errors.Is(err, io.EOF) {
			t.Errorf("start %v (the end): got %v, %v; want io.EOF", start, p, err)
		}
	}
	// In the last GOP: its keyframe, at 5 s.
	src, err = openReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), src.Duration()-time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	video = frames(mustReadAll(t, src), media.KindVideo)
	within(t, "last GOP's first PTS", video[0].DTS+cts(video[0]), 5*time.Second, time.Millisecond)
}

// TestEditLists checks that tracks are placed on the presentation timeline
// as ffprobe places them: B-frame delay and AAC priming (edits with a media
// time), and a track that starts late (an empty edit).
func TestEditLists(t *testing.T) {
	dir := t.TempDir()
	// Audio that starts 0.5 s after the video: an empty edit first.
	late := filepath.Join(dir, "late.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-itsoffset", "0.5", "-f", "lavfi", "-i", "sine",
		"-t", "3", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2",
		"-c:a", "aac", late)
	// And video that starts 0.5 s after the audio.
	lateVideo := filepath.Join(dir, "late-video.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine",
		"-t", "3", "-map", "0:v", "-map", "1:a", "-vf", "setpts=PTS+0.5/TB", "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2",
		"-c:a", "aac", lateVideo)
	cases := map[string]string{
		"media time":       encode(t, dir, "bframes.mp4"),
		"empty edit":       late,
		"empty video edit": lateVideo,
	}

	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			elst := readElst(t, path)
			t.Logf("edit lists: %v", elst)
			switch name {
			case "media time":
				if elst["vide"][0].MediaTime <= 0 || elst["soun"][0].MediaTime <= 0 {
					t.Fatalf("want edits with a media time > 0 in both tracks, got %v", elst)
				}
			case "empty edit":
				if e := elst["soun"]; len(e) < 2 || e[0].MediaTime != -1 {
					t.Fatalf("want an empty edit first in the audio track, got %v", elst)
				}
			case "empty video edit":
				if e := elst["vide"]; len(e) < 2 || e[0].MediaTime != -1 {
					t.Fatalf("want an empty edit first in the video track, got %v", elst)
				}
			}
			probe := testpeer.ProbeFile(t, path)
			src, err := Open(context.Background(), "file://"+path, 0, Options{AllowFile: func(string) error { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			pkts := mustReadAll(t, src)
			video, audio := frames(pkts, media.KindVideo), frames(pkts, media.KindAudio)
			pv, pa := probe.Stream("video"), probe.Stream("audio")
			if len(video) != len(pv) || len(audio) != len(pa) {
				t.Errorf("got %d video and %d audio frames, ffprobe counts %d and %d", len(video), len(audio), len(pv), len(pa))
			}
			within(t, "first video PTS", video[0].DTS+cts(video[0]), pv[0].PTS, time.Millisecond)
			within(t, "first video DTS", video[0].DTS, pv[0].DTS, time.Millisecond)
			within(t, "first audio PTS", audio[0].DTS, pa[0].PTS, time.Millisecond)
			within(t, "last audio PTS", audio[len(audio)-1].DTS, pa[len(pa)-1].PTS, time.Millisecond)
			within(t, "Duration()", src.Duration(), probe.Duration, 50*time.Millisecond)
		})
	}
}

// readElst returns the edit lists of a file's tracks by handler type.
func readElst(t *testing.T, path string) map[string][]mp4ff.ElstEntry {
	t.Helper()
	f, err := mp4ff.ReadMP4File(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]mp4ff.ElstEntry{}
	for _, trak := range f.Moov.Traks {
		if trak.Edts != nil && len(trak.Edts.Elst) > 0 {
			out[trak.Mdia.Hdlr.HandlerType] = trak.Edts.Elst[0].Entries
		}
	}
	return out
}

// TestH265 plays an HEVC file and decodes what it read: the hvcC record's
// parameter sets and the frames, as an Annex B stream.
func TestH265(t *testing.T) {
	testpeer.RequireTools(t, "ffmpeg")
	if out, _ := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output(); !bytes.Contains(out, []byte("libx265")) {
		t.Fatal("this ffmpeg has no libx265 encoder")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "hevc.mp4")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-f", "lavfi", "-i", "sine",
		"-t", "2", "-map", "0:v", "-map", "1:a", "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "log-level=error:bframes=2:keyint=30", "-tag:v", "hvc1", "-c:a", "aac", path)
	probe := testpeer.ProbeFile(t, path)

	src, err := Open(context.Background(), "file://"+path, 0, Options{AllowFile: func(string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	pkts := mustReadAll(t, src)
	seq := pkts[0]
	if seq.Kind != media.KindVideo || !bytes.Equal(seq.Body[:5], []byte{0x1c, 0, 0, 0, 0}) || seq.VideoCodec() != "h265" {
		t.Fatalf("first packet % x..., want the HEVC sequence header 1c 00 00 00 00", seq.Body[:8])
	}
	rec, err := decodeHvcC(seq.Body[5:])
	if err != nil {
		t.Fatal(err)
	}
	video := frames(pkts, media.KindVideo)
	if len(video) != probe.Count("video") || len(frames(pkts, media.KindAudio)) != probe.Count("audio") {
		t.Errorf("got %d video frames, ffprobe counts %d", len(video), probe.Count("video"))
	}

	// Annex B: parameter sets, then every NAL unit of every frame.
	var annexB bytes.Buffer
	startCode := []byte{0, 0, 0, 1}
	for _, ps := range rec {
		annexB.Write(startCode)
		annexB.Write(ps)
	}
	for i, p := range video {
		if (p.Body[0]&0x0f) != media.CodecIDH265 || p.Body[1] != 1 {
			t.Fatalf("frame %d: header % x", i, p.Body[:5])
		}
		for b := p.Body[5:]; len(b) > 0; {
			n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
			if n > len(b)-4 {
				t.Fatalf("frame %d: NAL unit of %d bytes in %d", i, n, len(b)-4)
			}
			annexB.Write(startCode)
			annexB.Write(b[4 : 4+n])
			b = b[4+n:]
		}
	}
	es := filepath.Join(dir, "out.hevc")
	if err := os.WriteFile(es, annexB.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ffmpeg(t, "-xerror", "-f", "hevc", "-i", es, "-f", "null", "-")
	if n := testpeer.ProbeFile(t, es).Count("video"); n != len(video) {
		t.Errorf("the Annex B stream has %d frames, want %d", n, len(video))
	}
}

// decodeHvcC returns the parameter sets of an HEVC decoder configuration
// record.
func decodeHvcC(b []byte) ([][]byte, error) {
	if len(b) < 23 || b[0] != 1 {
		return nil, fmt.Errorf("hvcC % x: not a version 1 record", b)
	}
	var out [][]byte
	pos, arrays := 23, int(b[22])
	for range arrays {
		if pos+3 > len(b) {
			return nil, errors.New("hvcC cut short")
		}
		n := int(b[pos+1])<<8 | int(b[pos+2])
		pos += 3
		for range n {
			if pos+2 > len(b) {
				return nil, errors.New("hvcC cut short")
			}
			l := int(b[pos])<<8 | int(b[pos+1])
			if pos+2+l > len(b) {
				return nil, errors.New("hvcC cut short")
			}
			out = append(out, b[pos+2:pos+2+l])
			pos += 2 + l
		}
	}
	if len(out) < 3 {
		return nil, fmt.Errorf("hvcC has %d parameter sets, want VPS, SPS, PPS", len(out))
	}
	return out, nil
}

// TestFaults: what goes wrong at open, and in the middle of a file.
func TestFaults(t *testing.T) {
	dir := t.TempDir()
	path := encode(t, dir, "clip.mp4", "-movflags", "+faststart")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("http status", func(t *testing.T) {
		for _, code := range []int{404, 403, 500, 503} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no", code)
			}))
			_, err := Open(context.Background(), srv.URL+"/a.mp4?token=s3cret", 0, Options{})
			srv.Close()
			if err == nil {
				t.Fatalf("%d: Open succeeded", code)
			}
			msg := err.Error()
			if !strings.Contains(msg, fmt.Sprint(code)) || !strings.Contains(msg, "/a.mp4?token=REDACTED") || strings.Contains(msg, "s3cret") {
				t.Errorf("%d: error %q should name the status and the redacted URL", code, msg)
			}
		}
	})

	t.Run("no range support", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(data)
		}))
		defer srv.Close()
		_, err := Open(context.Background(), srv.URL+"/a.mp4", 0, Options{})
		if err == nil || !strings.Contains(err.Error(), "range") {
			t.Errorf("got %v, want an error about range requests", err)
		}
	})

	t.Run("truncated in mdat", func(t *testing.T) {
		cut := data[:len(data)*6/10]
		var log rangeLog
		srv := httptest.NewServer(log.serve(cut))
		defer srv.Close()
		src, err := Open(context.Background(), srv.URL+"/cut.mp4", 0, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		if d := src.Duration(); d < 5*time.Second {
			t.Errorf("Duration() = %v: the moov's, want about 6 s", d)
		}
		pkts, err := readAll(t, src)
		if !errors.Is(err, media.ErrFileEndEarly) {
			t.Fatalf("read: %v, want ErrFileEndEarly", err)
		}
		if v := frames(pkts, media.KindVideo); len(v) < 60 {
			t.Errorf("got %d video frames before the end, want the ones the file has", len(v))
		}
		t.Log(err)
	})

	t.Run("moov at end missing", func(t *testing.T) {
		end := encode(t, dir, "end.mp4")
		endData, err := os.ReadFile(end)
		if err != nil {
			t.Fatal(err)
		}
		cut := endData[:len(endData)-100]
		_, err = openReaderAt(context.Background(), bytes.NewReader(cut), int64(len(cut)), 0)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("got %v, want ErrCorrupt", err)
		}
	})

	t.Run("random bytes", func(t *testing.T) {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i*7919 + i>>8*31)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "x.mp4", time.Time{}, bytes.NewReader(b))
		}))
		defer srv.Close()
		if _, err := Open(context.Background(), srv.URL+"/x.mp4", 0, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("got %v, want ErrCorrupt", err)
		}
	})

	t.Run("unsupported codec", func(t *testing.T) {
		ac3 := filepath.Join(dir, "ac3.mp4")
		ffmpeg(t, "-i", path, "-c:v", "copy", "-c:a", "ac3", ac3)
		acData, err := os.ReadFile(ac3)
		if err != nil {
			t.Fatal(err)
		}
		_, err = openReaderAt(context.Background(), bytes.NewReader(acData), int64(len(acData)), 0)
		var uc *UnsupportedCodecError
		if !errors.As(err, &uc) || uc.Codec != "ac3" || !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("got %v, want an UnsupportedCodecError naming ac3", err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		src, err := openReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), 0)
		if err != nil {
			t.Fatal(err)
		}
		src.Close()
		if _, err := src.ReadPacket(context.Background()); !errors.Is(err, ErrClosed) {
			t.Errorf("ReadPacket after Close: %v, want ErrClosed", err)
		}
	})

	t.Run("close cancels a stalled read", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") {
				<-r.Context().Done() // a server that stops answering
				return
			}
			http.ServeContent(w, r, "a.mp4", time.Time{}, bytes.NewReader(data))
		}))
		defer srv.Close()
		src, err := Open(context.Background(), srv.URL+"/a.mp4", 0, Options{})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := readAll(t, src)
			done <- err
		}()
		time.Sleep(200 * time.Millisecond)
		src.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("read ended with %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not stop the read")
		}
	})
}

// TestFileURLs checks that file:// paths are read only where AllowFile
// lets them, symbolic links resolved.
func TestFileURLs(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	path := encode(t, outside, "clip.mp4")
	inside := filepath.Join(root, "clip.mp4")
	if err := os.Rename(path, inside); err != nil {
		t.Fatal(err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		t.Fatal(err)
	}
	allow := func(p string) error {
		if !strings.HasPrefix(p, realRoot+string(filepath.Separator)) {
			return fmt.Errorf("%s is not under an allowed root", p)
		}
		return nil
	}
	if _, err := Open(context.Background(), "file://"+inside, 0, Options{}); err == nil {
		t.Error("file:// opened without AllowFile")
	}
	src, err := Open(context.Background(), "file://"+inside, 0, Options{AllowFile: allow})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(frames(mustReadAll(t, src), media.KindVideo)); n != 180 {
		t.Errorf("got %d video frames, want 180", n)
	}
	src.Close()

	// A link inside the root to a file outside it.
	secret := filepath.Join(outside, "secret.mp4")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link.mp4")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), "file://"+link, 0, Options{AllowFile: allow}); err == nil || !strings.Contains(err.Error(), "not under") {
		t.Errorf("link out of the root: %v, want refused", err)
	}
	if _, err := Open(context.Background(), "file:relative.mp4", 0, Options{AllowFile: allow}); err == nil {
		t.Error("a relative file URL opened")
	}
}
