package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/netguard"
)

// The MPEG-TS seeds in testdata are small ffmpeg encodes of its test
// patterns (ffmpeg 5.1):
//
//	av.ts: ffmpeg -f lavfi -i testsrc=size=64x48:rate=25 -f lavfi -i sine=frequency=440:sample_rate=22050 -t 0.2 \
//	       -pix_fmt yuv420p -c:v libx264 -preset veryfast -bf 2 -g 4 -x264-params keyint=4:min-keyint=4:scenecut=0 \
//	       -c:a aac -b:a 24k -ac 1 -f mpegts -mpegts_flags +resend_headers av.ts
//	v.ts:  ffmpeg -f lavfi -i testsrc=size=64x48:rate=25 -t 0.12 -pix_fmt yuv420p -c:v libx264 -preset veryfast -bf 0 -g 2 -an -f mpegts v.ts
//	a.ts:  ffmpeg -f lavfi -i sine=frequency=440:sample_rate=22050 -t 0.1 -c:a aac -b:a 24k -ac 1 -f mpegts a.ts
//
//	seg0.ts, seg1.ts: the same with -t 0.32 -f hls -hls_time 0.16 -hls_playlist_type vod -hls_segment_filename 'seg%d.ts'
//
// av.ts holds 5 video frames (2 keyframes, B-frames) and 6 AAC frames;
// seg0.ts 4 and 3, seg1.ts 4 and 5.

// vodServer serves VOD playlists of segments set per playlist id, on
// 127.0.0.1: /ID/p.m3u8 lists /ID/s0.ts, /ID/s1.ts, ...
type vodServer struct {
	srv  *httptest.Server
	next atomic.Int64
	mu   sync.Mutex
	segs map[string][][]byte
}

func newVODServer() *vodServer {
	v := &vodServer{segs: map[string][][]byte{}}
	v.srv = httptest.NewServer(v)
	return v
}

// add serves segs under a new id and returns the playlist's URL and a
// function that stops serving them.
func (v *vodServer) add(segs ...[]byte) (string, func()) {
	id := strconv.FormatInt(v.next.Add(1), 10)
	v.mu.Lock()
	v.segs[id] = segs
	v.mu.Unlock()
	return v.srv.URL + "/" + id + "/p.m3u8", func() {
		v.mu.Lock()
		delete(v.segs, id)
		v.mu.Unlock()
	}
}

func (v *vodServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	v.mu.Lock()
	segs, ok := v.segs[id]
	v.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "p.m3u8" {
		fmt.Fprint(w, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n")
		for i := range segs {
			fmt.Fprintf(w, "#EXTINF:1.0,\ns%d.ts\n", i)
		}
		fmt.Fprint(w, "#EXT-X-ENDLIST\n")
		return
	}
	var i int
	if _, err := fmt.Sscanf(name, "s%d.ts", &i); err != nil || i < 0 || i >= len(segs) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "video/mp2t")
	w.Write(segs[i])
}

// playResult is what playing one playlist gave.
type playResult struct {
	pkts []media.Packet // copies
	err  error          // the error that ended it
	sent int64          // packets the converters handed to ReadPacket
	took time.Duration
}

// playVOD opens url as a source and reads it to its end, for at most
// limit, checking every packet as it comes. Close must end it promptly.
func playVOD(t *testing.T, rawURL string, limit time.Duration) playResult {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	src, err := Open(ctx, rawURL, Options{
		DialContext: netguard.New(nil).DialContext,
		ReadTimeout: limit,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return playResult{err: err, took: time.Since(start)}
	}
	var res playResult
	var chk flvChecker
	for {
		p, err := src.ReadPacket(ctx)
		if err != nil {
			res.err = err
			break
		}
		if p.Kind == media.KindData {
			t.Fatalf("packet %d: data message from an HLS source", len(res.pkts))
		}
		if _, err := chk.check(*p); err != nil {
			t.Fatalf("packet %d (kind %d, % x): %v", len(res.pkts), p.Kind, p.Body[:min(len(p.Body), 16)], err)
		}
		if p.Kind == media.KindVideo && p.VideoCodec() != "h264" {
			t.Fatalf("packet %d: video codec %s from MPEG-TS", len(res.pkts), p.VideoCodec())
		}
		res.pkts = append(res.pkts, media.Packet{Kind: p.Kind, DTS: p.DTS, Body: append([]byte(nil), p.Body...)})
	}
	closed := time.Now()
	src.Close()
	if d := time.Since(closed); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	res.sent = src.(*source).sent.Load()
	res.took = time.Since(start)
	return res
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// A VOD playlist plays to its last frame: every frame of every segment,
// then the end of the stream.
func TestVODPlaysEveryFrame(t *testing.T) {
	v := newVODServer()
	defer v.srv.Close()
	av := readTestdata(t, "av.ts")
	for _, tt := range []struct {
		name          string
		segs          [][]byte
		video, audio  int // frames
		videoSeq, aud bool
	}{
		{"av", [][]byte{av}, 5, 6, true, true},
		{"two segments", [][]byte{readTestdata(t, "seg0.ts"), readTestdata(t, "seg1.ts")}, 8, 8, true, true},
		{"video only", [][]byte{readTestdata(t, "v.ts")}, 3, 0, true, false},
		{"audio only", [][]byte{readTestdata(t, "a.ts")}, 0, 4, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, done := v.add(tt.segs...)
			defer done()
			res := playVOD(t, u, 5*time.Second)
			if !errors.Is(res.err, ErrEndOfStream) {
				t.Fatalf("after %d packets: %v, want the end of the stream", len(res.pkts), res.err)
			}
			if res.sent != int64(len(res.pkts)) {
				t.Errorf("%d packets converted, %d read", res.sent, len(res.pkts))
			}
			var chk flvChecker
			for _, p := range res.pkts {
				chk.check(p)
			}
			if chk.videoFrames != tt.video || chk.audioFrames != tt.audio || chk.videoHeader != tt.videoSeq || chk.audioHeader != tt.aud {
				t.Fatalf("%d video frames (header %v), %d audio frames (header %v); want %d (%v), %d (%v)",
					chk.videoFrames, chk.videoHeader, chk.audioFrames, chk.audioHeader, tt.video, tt.videoSeq, tt.audio, tt.aud)
			}
		})
	}
}

// FuzzSourceMPEGTS plays a VOD playlist whose segment is the fuzz input
// (cut in two segments at cut, when inside it) through Open and
// ReadPacket, gohlslib's MPEG-TS demuxer and our converters and merge,
// served over HTTP on 127.0.0.1 by one server per fuzzing process. Every
// input must end, with an error or the end of the stream, within a bounded
// time (gohlslib paces samples at their DTS: the limit cuts a stream whose
// timestamps leap); every packet must be a well-formed audio or video body
// (see flvChecker: sequence headers first, a keyframe first, AVCC lengths
// adding up, no parameter sets or delimiters in frames); and at the end of
// the stream every packet the converters produced must have been read.
func FuzzSourceMPEGTS(f *testing.F) {
	av, v, a := readTestdata(f, "av.ts"), readTestdata(f, "v.ts"), readTestdata(f, "a.ts")
	f.Add(av, uint16(0))
	seg0, seg1 := readTestdata(f, "seg0.ts"), readTestdata(f, "seg1.ts")
	f.Add(append(append([]byte(nil), seg0...), seg1...), uint16(len(seg0)))
	f.Add(v, uint16(0))
	f.Add(a, uint16(0))
	f.Add(av[:len(av)-188*3], uint16(0))
	f.Add(append(append([]byte(nil), v...), a...), uint16(len(v)))

	srv := newVODServer()
	f.Cleanup(srv.srv.Close)
	const limit = 2 * time.Second
	f.Fuzz(func(t *testing.T, seg []byte, cut uint16) {
		segs := [][]byte{seg}
		if c := int(cut); c > 0 && c < len(seg) {
			segs = [][]byte{seg[:c], seg[c:]}
		}
		u, done := srv.add(segs...)
		defer done()
		res := playVOD(t, u, limit)
		if res.err == nil {
			t.Fatal("no error")
		}
		if res.took > limit+time.Second {
			t.Fatalf("took %v (%v)", res.took, res.err)
		}
		if errors.Is(res.err, ErrEndOfStream) && res.sent != int64(len(res.pkts)) {
			t.Fatalf("end of stream after %d of the %d packets converted", len(res.pkts), res.sent)
		}
	})
}
