package hls

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/liverelay/liverelay/internal/media"
)

func TestTicksToMillis(t *testing.T) {
	tests := []struct {
		ticks, clock, want int64
	}{
		{0, 90000, 0},
		{90, 90000, 1},
		{89, 90000, 0},
		{-1, 90000, -1}, // floor, not truncation toward zero
		{-90, 90000, -1},
		{-91, 90000, -2},
		{1024, 44100, 23},
		{44100 * 3600 * 24 * 365, 44100, 1000 * 3600 * 24 * 365},
		// No overflow where ticks*1000 would overflow int64.
		{math.MaxInt64, 90000, math.MaxInt64/90000*1000 + (math.MaxInt64%90000)*1000/90000},
	}
	for _, tt := range tests {
		if got := ticksToMillis(tt.ticks, tt.clock); got != tt.want {
			t.Errorf("ticksToMillis(%d, %d) = %d, want %d", tt.ticks, tt.clock, got, tt.want)
		}
	}
	// A day of 90 kHz frames at 30 fps lands on the exact millisecond
	// every 3 frames: no drift.
	const frame = 3000
	for i := int64(0); i < 30*86400; i += 3 {
		if got := ticksToMillis(i*frame, 90000); got != i*100/3 {
			t.Fatalf("frame %d at %d ms, want %d", i, got, i*100/3)
		}
	}
}

func TestCompositionTime(t *testing.T) {
	for _, tt := range []struct{ pts, dts, want int64 }{
		{100, 100, 0}, {166, 100, 66}, {100, 166, -66}, {1 << 30, 0, 1<<23 - 1}, {0, 1 << 30, -1 << 23},
	} {
		if got := compositionTime(tt.pts, tt.dts); int64(got) != tt.want {
			t.Errorf("compositionTime(%d, %d) = %d, want %d", tt.pts, tt.dts, got, tt.want)
		}
	}
	b := make([]byte, 3)
	putInt24(b, -66)
	if v := int32(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8) >> 8; v != -66 {
		t.Fatalf("putInt24(-66) reads back %d", v)
	}
}

// An SPS (High profile, 320x240) and PPS as x264 writes them.
var (
	testSPS = []byte{0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60}
	testPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	aud     = []byte{0x09, 0xf0}
	idr     = []byte{0x65, 0x88, 0x84, 0x00}
	nonIDR  = []byte{0x41, 0x9a, 0x02}
	sei     = []byte{0x06, 0x05, 0x01, 0x00}
)

func avcc(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

func TestAVCDecoderConfig(t *testing.T) {
	rec, err := avcDecoderConfig([][]byte{testSPS}, [][]byte{testPPS})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 0x64, 0x00, 0x0d, 0xff, 0xe1}
	want = append(want, 0, byte(len(testSPS)))
	want = append(want, testSPS...)
	want = append(want, 1, 0, byte(len(testPPS)))
	want = append(want, testPPS...)
	want = append(want, 0xfd, 0xf8, 0xf8, 0) // High: 4:2:0, 8-bit
	if !bytes.Equal(rec, want) {
		t.Fatalf("record\n% x\nwant\n% x", rec, want)
	}
}

func TestVideoConverterH264(t *testing.T) {
	c := newVideoConverter(90000, false, nil, nil, nil)
	step := func(pts, dts int64, au ...[]byte) []out {
		t.Helper()
		outs, err := c.convert(pts, dts, au)
		if err != nil {
			t.Fatal(err)
		}
		return outs
	}
	// A frame before the first keyframe only moves the clock.
	outs := step(3000, 0, aud, nonIDR)
	if len(outs) != 1 || outs[0].pkt.Body != nil || outs[0].pkt.DTS != 0 {
		t.Fatalf("frame before keyframe: %+v", outs)
	}
	// The keyframe brings the sequence header, then the frame without
	// AUD, SPS, PPS, with composition time 66 ms (6000 ticks is 66.6).
	outs = step(9000, 3000, aud, testSPS, testPPS, sei, idr)
	if len(outs) != 2 || !outs[0].config || outs[1].config {
		t.Fatalf("keyframe: %+v", outs)
	}
	seq, frame := outs[0].pkt, outs[1].pkt
	if !seq.IsSequenceHeader() || seq.VideoCodec() != "h264" || seq.DTS != 33*time.Millisecond {
		t.Fatalf("sequence header %+v", seq)
	}
	wantFrame := append([]byte{0x17, 1, 0, 0, 67}, avcc(sei, idr)...)
	if !bytes.Equal(frame.Body, wantFrame) || frame.DTS != 33*time.Millisecond || !frame.IsVideoKeyframe() {
		t.Fatalf("frame % x at %v, want % x at 33ms", frame.Body, frame.DTS, wantFrame)
	}
	// The same parameter sets again: no new header.
	outs = step(12000, 6000, testSPS, testPPS, idr)
	if len(outs) != 1 || outs[0].config {
		t.Fatalf("repeated SPS/PPS: %+v", outs)
	}
	// An inter frame with a negative composition time.
	outs = step(6000, 9000, nonIDR)
	if len(outs) != 1 || !bytes.Equal(outs[0].pkt.Body, append([]byte{0x27, 1, 0xff, 0xff, 0xde}, avcc(nonIDR)...)) {
		t.Fatalf("inter frame: % x", outs[0].pkt.Body)
	}
	// New PPS: a new header before the frame.
	pps2 := []byte{0x68, 0xee, 0x3c, 0x80}
	outs = step(15000, 15000, pps2, idr)
	if len(outs) != 2 || !outs[0].config {
		t.Fatalf("changed PPS: %+v", outs)
	}
	if !bytes.Contains(outs[0].pkt.Body, pps2) || !bytes.Contains(outs[0].pkt.Body, testSPS) {
		t.Fatalf("new header % x lacks the new PPS or the kept SPS", outs[0].pkt.Body)
	}
}

// fMP4 tracks know their parameter sets from the init segment.
func TestVideoConverterParamsFromInit(t *testing.T) {
	c := newVideoConverter(90000, false, nil, testSPS, testPPS)
	outs, err := c.convert(0, 0, [][]byte{idr})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || !outs[0].pkt.IsSequenceHeader() || !outs[1].pkt.IsVideoKeyframe() {
		t.Fatalf("outs %+v", outs)
	}
}

func TestAudioConverter(t *testing.T) {
	cfg := mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 44100, ChannelCount: 2, ChannelConfig: 2}
	c, err := newAudioConverter(90000, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// One PES with three access units starting at 1 s.
	outs := c.convert(90000, [][]byte{{1}, {2}, {3}})
	if len(outs) != 4 || !outs[0].config {
		t.Fatalf("outs %+v", outs)
	}
	if !bytes.Equal(outs[0].pkt.Body, []byte{0xaf, 0, 0x12, 0x10}) || !outs[0].pkt.IsSequenceHeader() {
		t.Fatalf("AudioSpecificConfig packet % x", outs[0].pkt.Body)
	}
	for i, want := range []time.Duration{1000, 1023, 1046} { // 1024/44100 s = 23.2 ms
		p := outs[i+1].pkt
		if p.DTS != want*time.Millisecond || !bytes.Equal(p.Body, []byte{0xaf, 1, byte(i + 1)}) || p.AudioCodec() != "aac" {
			t.Fatalf("AU %d: % x at %v, want at %vms", i, p.Body, p.DTS, want)
		}
	}
	if outs := c.convert(180000, [][]byte{{4}}); len(outs) != 1 {
		t.Fatalf("config sent twice: %+v", outs)
	}
}

func TestMerger(t *testing.T) {
	t0 := time.Now()
	m := merger{active: [2]bool{true, true}, maxWait: time.Second, maxLen: 4}
	pkt := func(kind media.Kind, ms int, config bool) out {
		body := []byte{byte(ms)}
		if config {
			body = append(body, 'c')
		}
		return out{pkt: media.Packet{Kind: kind, DTS: time.Duration(ms) * time.Millisecond, Body: body}, config: config}
	}
	var bodies [][]byte
	popAll := func(now time.Time) (got []time.Duration) {
		for {
			p, ok := m.pop(now)
			if !ok {
				return got
			}
			got = append(got, p.DTS/time.Millisecond)
			bodies = append(bodies, p.Body)
		}
	}
	m.push(trackVideo, pkt(media.KindVideo, 0, true), t0)
	m.push(trackVideo, pkt(media.KindVideo, 0, false), t0)
	m.push(trackVideo, pkt(media.KindVideo, 33, false), t0)
	if got := popAll(t0); len(got) != 0 {
		t.Fatalf("released %v before audio was seen", got)
	}
	m.push(trackAudio, pkt(media.KindAudio, 10, false), t0)
	m.push(trackAudio, pkt(media.KindAudio, 10, true), t0)
	// Video has reached 33: everything up to there goes, the audio config
	// before the audio frame of the same DTS.
	got := popAll(t0)
	if len(got) != 4 || got[0] != 0 || got[1] != 0 || got[2] != 10 || got[3] != 10 {
		t.Fatalf("released %v, want [0 0 10 10]", got)
	}
	if len(bodies[0]) != 2 || len(bodies[2]) != 2 {
		t.Fatalf("bodies %q: want each sequence header before the frame of the same DTS", bodies)
	}
	if p, _ := m.pop(t0); p.Body != nil {
		t.Fatalf("video at 33 released before audio reached 33")
	}
	// A clock-only packet moves the track without output.
	m.push(trackAudio, out{pkt: media.Packet{Kind: media.KindAudio, DTS: 40 * time.Millisecond}}, t0)
	if got := popAll(t0); len(got) != 1 || got[0] != 33 {
		t.Fatalf("released %v, want [33]", got)
	}
	// A silent track holds packets for maxWait only.
	m.push(trackVideo, pkt(media.KindVideo, 133, false), t0)
	if got := popAll(t0.Add(999 * time.Millisecond)); len(got) != 0 {
		t.Fatalf("released %v before maxWait", got)
	}
	if dl, ok := m.deadline(); !ok || !dl.Equal(t0.Add(time.Second)) {
		t.Fatalf("deadline %v %v", dl, ok)
	}
	if got := popAll(t0.Add(time.Second)); len(got) != 1 || got[0] != 133 {
		t.Fatalf("released %v at maxWait, want [133]", got)
	}
	// And at most maxLen packets.
	for i := range 5 {
		m.push(trackVideo, pkt(media.KindVideo, 200+i, false), t0)
	}
	if got := popAll(t0); len(got) != 1 || got[0] != 200 {
		t.Fatalf("released %v past maxLen, want [200]", got)
	}
	// Audio reaches 202: what is up to there goes; 203 and 204 wait for
	// audio until the tracks end, then go at once, in order.
	m.push(trackAudio, pkt(media.KindAudio, 202, false), t0)
	if got := popAll(t0); len(got) != 3 || got[0] != 201 || got[1] != 202 || got[2] != 202 {
		t.Fatalf("released %v, want [201 202 202]", got)
	}
	m.finish()
	if got := popAll(t0); len(got) != 2 || got[0] != 203 || got[1] != 204 {
		t.Fatalf("released %v after the end, want [203 204]", got)
	}
}
