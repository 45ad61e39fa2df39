package mp4

import (
	"bytes"
	"context"
	"encoding/binary"
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

// clipArgs encode 6 s of 640x360 30 fps H.264 with B-frames (a keyframe
// every 30 frames, nowhere else) and 44.1 kHz AAC: small and quick to
// encode, and with the edit lists B-frames and AAC priming bring.
var clipArgs = []string{
	"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
	"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
	"-t", "6", "-map", "0:v", "-map", "1:a",
	"-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "30", "-keyint_min", "30",
	"-sc_threshold", "0", "-pix_fmt", "yuv420p",
	"-c:a", "aac", "-b:a", "64k",
}

// ffmpeg runs ffmpeg with args and fails the test with its output if it
// fails or prints anything at the error level.
func ffmpeg(t testing.TB, args ...string) {
	t.Helper()
	testpeer.RequireTools(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-y"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("ffmpeg %q: %v\n%s", args, err, out)
	}
}

// encode writes an MP4 made with clipArgs plus extra into dir.
func encode(t testing.TB, dir, name string, extra ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	args := append(append(append([]string{}, clipArgs...), extra...), path)
	ffmpeg(t, args...)
	return path
}

// readAll reads src to its end, copying each packet, and returns the
// packets and the error that ended the reading (io.EOF at a clean end).
func readAll(t testing.TB, src media.Source) ([]media.Packet, error) {
	t.Helper()
	var out []media.Packet
	for {
		p, err := src.ReadPacket(context.Background())
		if err != nil {
			return out, err
		}
		out = append(out, media.Packet{Kind: p.Kind, DTS: p.DTS, Body: append([]byte(nil), p.Body...)})
		if len(out) > 1_000_000 {
			t.Fatal("endless source")
		}
	}
}

func mustReadAll(t testing.TB, src media.Source) []media.Packet {
	t.Helper()
	pkts, err := readAll(t, src)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v after %d packets, want io.EOF", err, len(pkts))
	}
	return pkts
}

// frames returns the packets of one kind that are not sequence headers.
func frames(pkts []media.Packet, kind media.Kind) []media.Packet {
	var out []media.Packet
	for _, p := range pkts {
		if p.Kind == kind && !p.IsSequenceHeader() {
			out = append(out, p)
		}
	}
	return out
}

// cts returns the composition time of a video frame.
func cts(p media.Packet) time.Duration {
	v := int32(uint32(p.Body[2])<<16|uint32(p.Body[3])<<8|uint32(p.Body[4])) << 8 >> 8
	return time.Duration(v) * time.Millisecond
}

// writeFLV writes packets as an FLV file, timestamps shifted so the first
// is 0 (FLV has no negative times).
func writeFLV(t testing.TB, path string, pkts []media.Packet) {
	t.Helper()
	var b bytes.Buffer
	b.Write([]byte{'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0})
	base := pkts[0].DTS
	for _, p := range pkts {
		base = min(base, p.DTS)
	}
	for _, p := range pkts {
		ts := uint32((p.DTS - base).Milliseconds())
		n := len(p.Body)
		b.Write([]byte{byte(p.Kind), byte(n >> 16), byte(n >> 8), byte(n),
			byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24), 0, 0, 0})
		b.Write(p.Body)
		binary.Write(&b, binary.BigEndian, uint32(11+n))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// within fails the test unless got is within tol of want.
func within(t testing.TB, what string, got, want, tol time.Duration) {
	t.Helper()
	if d := got - want; d > tol || d < -tol {
		t.Errorf("%s = %v, want %v ± %v", what, got, want, tol)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
