package flv

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// header builds an FLV header with PreviousTagSize0.
func header(audio, video bool) []byte {
	flags := byte(0)
	if audio {
		flags |= 0x04
	}
	if video {
		flags |= 0x01
	}
	return []byte{'F', 'L', 'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0}
}

// tag builds one FLV tag with its PreviousTagSize.
func tag(typ byte, ts uint32, body []byte) []byte {
	n := len(body)
	b := []byte{typ, byte(n >> 16), byte(n >> 8), byte(n), byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24), 0, 0, 0}
	b = append(b, body...)
	size := uint32(tagHeaderSize + n)
	return append(b, byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var (
	avcSeq   = []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1}
	avcKey   = []byte{0x17, 1, 0, 0, 0x21, 0, 0, 0, 2, 0x65, 0x88}
	aacSeq   = []byte{0xaf, 0, 0x12, 0x10}
	aacFrame = []byte{0xaf, 1, 0x21, 0x10, 0x04}
	metadata = append([]byte("\x02\x00\x0aonMetaData"), 0x08, 0, 0, 0, 0, 0, 0, 9)
)

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    Header
		wantErr error // matched with errors.Is; nil with errText means any error
		errText bool
	}{
		{name: "audio and video", in: header(true, true), want: Header{Version: 1, HasAudio: true, HasVideo: true}},
		{name: "video only", in: header(false, true), want: Header{Version: 1, HasVideo: true}},
		{name: "empty", in: nil, wantErr: io.EOF},
		{name: "truncated header", in: []byte("FLV\x01\x05\x00\x00"), wantErr: io.ErrUnexpectedEOF},
		{name: "missing PreviousTagSize0", in: header(true, true)[:11], wantErr: io.ErrUnexpectedEOF},
		{name: "bad signature", in: []byte("FLX\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"), wantErr: ErrNotFLV},
		{name: "html", in: []byte("<!DOCTYPE html><html>"), wantErr: ErrNotFLV},
		{name: "data offset too small", in: []byte("FLV\x01\x05\x00\x00\x00\x05\x00\x00\x00\x00"), errText: true},
		{name: "data offset huge", in: []byte("FLV\x01\x05\xff\xff\xff\xff\x00\x00\x00\x00"), errText: true},
		{
			name: "padding after header",
			in:   []byte("FLV\x01\x05\x00\x00\x00\x0bxx\x00\x00\x00\x00"),
			want: Header{Version: 1, HasAudio: true, HasVideo: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := NewReader(bytes.NewReader(tt.in)).ReadHeader()
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			case tt.errText:
				if err == nil {
					t.Fatal("no error")
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if h != tt.want {
					t.Fatalf("header = %+v, want %+v", h, tt.want)
				}
			}
		})
	}
}

func TestReadTag(t *testing.T) {
	type want struct {
		kind media.Kind
		dts  time.Duration
		body []byte
	}
	tests := []struct {
		name     string
		in       []byte
		maxSize  int
		want     []want
		wantErr  error // after the wanted tags; io.EOF for a clean end
		anyError bool
	}{
		{
			name:    "three kinds",
			in:      cat(tag(18, 0, metadata), tag(9, 0, avcSeq), tag(8, 0, aacSeq), tag(9, 40, avcKey)),
			want:    []want{{media.KindData, 0, metadata}, {media.KindVideo, 0, avcSeq}, {media.KindAudio, 0, aacSeq}, {media.KindVideo, 40 * time.Millisecond, avcKey}},
			wantErr: io.EOF,
		},
		{
			name:    "extended timestamp",
			in:      cat(tag(9, 0x01234567, avcKey), tag(8, 0xffffffff, aacFrame), tag(8, 0x00ffffff, aacFrame), tag(8, 0x01000000, aacFrame)),
			want:    []want{{media.KindVideo, 0x01234567 * time.Millisecond, avcKey}, {media.KindAudio, 0xffffffff * time.Millisecond, aacFrame}, {media.KindAudio, 0x00ffffff * time.Millisecond, aacFrame}, {media.KindAudio, 0x01000000 * time.Millisecond, aacFrame}},
			wantErr: io.EOF,
		},
		{
			name:    "other types skipped",
			in:      cat(tag(15, 5, []byte("amf3")), tag(0x1f, 6, bytes.Repeat([]byte{1}, 1000)), tag(8, 7, aacFrame)),
			want:    []want{{media.KindAudio, 7 * time.Millisecond, aacFrame}},
			wantErr: io.EOF,
		},
		{
			name:    "empty body",
			in:      tag(9, 1, nil),
			want:    []want{{media.KindVideo, time.Millisecond, []byte{}}},
			wantErr: io.EOF,
		},
		{name: "empty input", in: nil, wantErr: io.EOF},
		{name: "truncated tag header", in: tag(9, 0, avcKey)[:7], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated body", in: tag(9, 0, avcKey)[:14], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated previous tag size", in: tag(9, 0, avcKey)[:tagHeaderSize+len(avcKey)+2], wantErr: io.ErrUnexpectedEOF},
		{name: "truncated skipped tag", in: tag(15, 0, []byte("abcdef"))[:14], wantErr: io.ErrUnexpectedEOF},
		{name: "oversized tag", in: tag(9, 0, make([]byte, 101)), maxSize: 100, wantErr: ErrTagTooLarge},
		{
			name:    "oversized by default",
			in:      []byte{9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3},
			wantErr: ErrTagTooLarge,
		},
		{
			name:    "tag at the limit",
			in:      tag(9, 0, make([]byte, 100)),
			maxSize: 100,
			want:    []want{{media.KindVideo, 0, make([]byte, 100)}},
			wantErr: io.EOF,
		},
		{name: "encrypted tag", in: tag(9|0x20, 0, avcKey), anyError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.in))
			r.MaxTagSize = tt.maxSize
			for i, w := range tt.want {
				p, err := r.ReadTag()
				if err != nil {
					t.Fatalf("tag %d: %v", i, err)
				}
				if p.Kind != w.kind || p.DTS != w.dts || !bytes.Equal(p.Body, w.body) {
					t.Fatalf("tag %d = {%d %v % x}, want {%d %v % x}", i, p.Kind, p.DTS, p.Body, w.kind, w.dts, w.body)
				}
			}
			p, err := r.ReadTag()
			if p != nil {
				t.Fatalf("extra packet %+v", p)
			}
			switch {
			case tt.anyError:
				if err == nil {
					t.Fatal("no error")
				}
			case tt.wantErr == io.EOF:
				if err != io.EOF {
					t.Fatalf("err = %v, want io.EOF itself", err)
				}
			default:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
}

// A header that claims a large tag must not make the reader allocate that
// much before the bytes arrive.
func TestReadTagLyingSizeAllocatesLittle(t *testing.T) {
	in := []byte{9, 0x7f, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3}
	r := NewReader(bytes.NewReader(in))
	r.MaxTagSize = 1<<24 - 1
	if _, err := r.ReadTag(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if c := cap(r.buf); c > 1<<20 {
		t.Fatalf("buffer grew to %d bytes for a 3-byte body", c)
	}
}

// The body buffer is reused: a packet is valid until the next call.
func TestReadTagReusesBuffer(t *testing.T) {
	r := NewReader(bytes.NewReader(cat(tag(9, 0, avcKey), tag(9, 1, []byte{0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41}))))
	p1, err := r.ReadTag()
	if err != nil {
		t.Fatal(err)
	}
	b1 := p1.Body
	p2, err := r.ReadTag()
	if err != nil {
		t.Fatal(err)
	}
	if &b1[0] != &p2.Body[0] {
		t.Fatal("second tag got a new buffer")
	}
}

// ffmpegFLV writes a short FLV file with ffmpeg (H.264 with B-frames and
// AAC) and returns its path and bytes.
func ffmpegFLV(t testing.TB) (string, []byte) {
	t.Helper()
	testpeer.RequireTools(t, "ffmpeg")
	path := filepath.Join(t.TempDir(), "small.flv")
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10",
		"-f", "lavfi", "-i", "sine=sample_rate=22050",
		"-t", "1", "-c:v", "libx264", "-g", "5", "-bf", "2", "-c:a", "aac", "-f", "flv", "-y", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, b
}

// A file written by ffmpeg reads to its clean end, with what ffmpeg puts
// in: onMetaData, then the sequence headers, then frames in DTS order.
func TestReadFFmpegFile(t *testing.T) {
	path, data := ffmpegFLV(t)
	r := NewReader(bytes.NewReader(data))
	h, err := r.ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	if !h.HasAudio || !h.HasVideo {
		t.Fatalf("header %+v: want audio and video", h)
	}
	var kinds []media.Kind
	last := map[media.Kind]time.Duration{}
	var keyframes, videoFrames, audioFrames int
	for {
		p, err := r.ReadTag()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d tags: %v", len(kinds), err)
		}
		kinds = append(kinds, p.Kind)
		if p.DTS < last[p.Kind] {
			t.Fatalf("%v DTS went back: %v after %v", p.Kind, p.DTS, last[p.Kind])
		}
		last[p.Kind] = p.DTS
		switch {
		case p.IsSequenceHeader(), p.IsMetadata():
		case isEndOfSequence(p):
			// ffmpeg ends the file with one; ffprobe does not count it.
		case p.Kind == media.KindVideo:
			videoFrames++
			if p.IsVideoKeyframe() {
				keyframes++
			}
		case p.Kind == media.KindAudio:
			audioFrames++
		}
	}
	if len(kinds) < 3 || kinds[0] != media.KindData {
		t.Fatalf("tags %v: want onMetaData first", kinds)
	}
	probe := testpeer.ProbeFile(t, path)
	if videoFrames != probe.Count("video") || keyframes != probe.Keyframes("video") || audioFrames != probe.Count("audio") {
		t.Fatalf("video frames %d (keyframes %d), audio frames %d; ffprobe counts %d (%d), %d",
			videoFrames, keyframes, audioFrames, probe.Count("video"), probe.Keyframes("video"), probe.Count("audio"))
	}
	if videoFrames < 10 || keyframes < 2 {
		t.Fatalf("video frames %d (keyframes %d): want at least 10 (2)", videoFrames, keyframes)
	}
}

// FuzzReadTag reads a whole FLV stream (header and tags) or, when the input
// does not start with "FLV", bare tags. Nothing may panic, and every packet
// is of a kept type and within the size limit.
func FuzzReadTag(f *testing.F) {
	f.Add(cat(tag(18, 0, metadata), tag(9, 0, avcSeq), tag(8, 0, aacSeq), tag(9, 40, avcKey)))
	f.Add(cat(header(true, true), tag(9, 0x01234567, avcKey), tag(15, 1, []byte("x")), tag(8, 0xffffffff, aacFrame)))
	f.Add([]byte{9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("FLV\x01\x05\x00\x00\x00\x0bxx\x00\x00\x00\x00"))
	// Real tags: the start of a file ffmpeg wrote (header, onMetaData,
	// sequence headers, the first frames), and the same tags alone.
	_, real := ffmpegFLV(f)
	r := NewReader(bytes.NewReader(real))
	if _, err := r.ReadHeader(); err != nil {
		f.Fatal(err)
	}
	var tags [][]byte
	for range 6 {
		p, err := r.ReadTag()
		if err != nil {
			f.Fatal(err)
		}
		tags = append(tags, tag(byte(p.Kind), uint32(p.DTS/time.Millisecond), p.Body))
	}
	f.Add(cat(append([][]byte{header(true, true)}, tags...)...))
	f.Add(cat(tags...))

	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		r := NewReader(bytes.NewReader(data))
		r.MaxTagSize = limit
		if bytes.HasPrefix(data, []byte("FLV")) {
			if _, err := r.ReadHeader(); err != nil {
				return
			}
		}
		for i := 0; ; i++ {
			p, err := r.ReadTag()
			if err != nil {
				if p != nil {
					t.Fatal("packet with an error")
				}
				return
			}
			if i > len(data)/tagHeaderSize {
				t.Fatalf("%d tags from %d bytes", i+1, len(data))
			}
			switch p.Kind {
			case media.KindAudio, media.KindVideo, media.KindData:
			default:
				t.Fatalf("kind %d returned", p.Kind)
			}
			if len(p.Body) > limit {
				t.Fatalf("body of %d bytes over the %d limit", len(p.Body), limit)
			}
		}
	})
}

// Buffered says whether tags read from the network wait to be parsed.
func TestReaderBuffered(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr)
	go func() {
		pw.Write(cat(header(true, true), tag(8, 0, []byte{0xaf, 1, 1}), tag(9, 0, []byte{0x17, 1, 0, 0, 0, 1})))
		pw.Write(tag(8, 23, []byte{0xaf, 1, 2}))
		pw.Close()
	}()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	want := []bool{true, false, false} // after each tag: what is left of the first write, then nothing
	for i, w := range want {
		if _, err := r.ReadTag(); err != nil {
			t.Fatalf("tag %d: %v", i, err)
		}
		if got := r.Buffered(); got != w {
			t.Fatalf("after tag %d: Buffered() = %v, want %v", i, got, w)
		}
	}
	if NewReader(bytes.NewReader(nil)).Buffered() {
		t.Fatal("a reader that does its own buffering reports bytes it cannot see")
	}
}
