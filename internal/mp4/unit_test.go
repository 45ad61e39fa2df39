package mp4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"reflect"
	"testing"
	"time"

	mp4ff "github.com/Eyevinn/mp4ff/mp4"

	"github.com/liverelay/liverelay/internal/media"
)

func TestTicksToMs(t *testing.T) {
	for _, c := range []struct {
		ticks     int64
		timescale uint32
		want      int64
	}{
		{0, 1000, 0},
		{1, 3, 333},
		{2, 3, 667},
		{1, 2000, 1}, // halves round up
		{-1, 2000, 0},
		{-3, 2000, -1},
		{-1024, 15360, -67},
		{-1024, 44100, -23},
		{90000 * 3600 * 10, 90000, 3600 * 10 * 1000},
		{int64(tickLimit(math.MaxUint32)), 1 << 30, 1 << 30 * 1000},
	} {
		if got := ticksToMs(c.ticks, c.timescale); got != c.want {
			t.Errorf("ticksToMs(%d, %d) = %d, want %d", c.ticks, c.timescale, got, c.want)
		}
	}
	for _, ts := range []uint32{1, 3, 1000, 15360, 44100, 90000, 1 << 31} {
		prev := ticksToMs(-5000, ts)
		for tick := int64(-4999); tick < 5000; tick++ {
			ms := ticksToMs(tick, ts)
			if ms < prev {
				t.Fatalf("timescale %d: %d ticks = %d ms, after %d ms", ts, tick, ms, prev)
			}
			prev = ms
		}
	}
}

func TestMulDiv(t *testing.T) {
	for _, c := range []struct {
		t        int64
		num, den uint64
		want     int64
	}{
		{7, 1, 2, 3},
		{-7, 1, 2, -4}, // toward minus infinity
		{-8, 1, 2, -4},
		{1 << 62, 1 << 32, 1 << 32, 1 << 62},
		{1 << 62, 4, 1, math.MaxInt64},
		{-(1 << 62), 4, 1, math.MinInt64},
		{int64(3500 * time.Millisecond), 15360, uint64(time.Second), 53760},
	} {
		if got := mulDiv(c.t, c.num, c.den); got != c.want {
			t.Errorf("mulDiv(%d, %d, %d) = %d, want %d", c.t, c.num, c.den, got, c.want)
		}
	}
}

func TestAppendLength4(t *testing.T) {
	got, err := appendLength4([]byte{9}, []byte{0, 2, 0xa, 0xb, 0, 1, 0xc}, 2)
	if want := []byte{9, 0, 0, 0, 2, 0xa, 0xb, 0, 0, 0, 1, 0xc}; err != nil || !bytes.Equal(got, want) {
		t.Errorf("got % x, %v; want % x", got, err, want)
	}
	got, err = appendLength4(nil, []byte{3, 0xa, 0xb, 0xc}, 1)
	if want := []byte{0, 0, 0, 3, 0xa, 0xb, 0xc}; err != nil || !bytes.Equal(got, want) {
		t.Errorf("got % x, %v; want % x", got, err, want)
	}
	for _, bad := range [][]byte{{0, 5, 1}, {0}} {
		if _, err := appendLength4(nil, bad, 2); !errors.Is(err, ErrCorrupt) {
			t.Errorf("% x: got %v, want ErrCorrupt", bad, err)
		}
	}
}

// expanded is a sample table expanded the obvious way, one entry per
// sample: the oracle the cursor is checked against.
type expanded struct {
	dts, cto []int64
	offset   []uint64
	size     []uint32
	sync     []bool
}

func expand(stbl *mp4ff.StblBox, count uint32) expanded {
	var e expanded
	var dts int64
	for i, n := range stbl.Stts.SampleCount {
		for range n {
			e.dts = append(e.dts, dts)
			dts += int64(stbl.Stts.SampleTimeDelta[i])
		}
	}
	e.cto = make([]int64, len(e.dts))
	if c := stbl.Ctts; c != nil {
		for i, off := range c.SampleOffset {
			for n := c.EndSampleNr[i]; n < c.EndSampleNr[i+1] && int(n) < len(e.cto); n++ {
				e.cto[n] = int64(off)
			}
		}
	}
	var chunks []uint64
	if stbl.Co64 != nil {
		chunks = stbl.Co64.ChunkOffset
	} else {
		for _, o := range stbl.Stco.ChunkOffset {
			chunks = append(chunks, uint64(o))
		}
	}
	n := 0
	for c := range chunks {
		perChunk := uint32(0)
		for _, entry := range stbl.Stsc.Entries {
			if int(entry.FirstChunk) <= c+1 {
				perChunk = entry.SamplesPerChunk
			}
		}
		off := chunks[c]
		for range perChunk {
			size := stbl.Stsz.SampleUniformSize
			if size == 0 && n < len(stbl.Stsz.SampleSize) {
				size = stbl.Stsz.SampleSize[n]
			}
			e.offset = append(e.offset, off)
			e.size = append(e.size, size)
			off += uint64(size)
			n++
		}
	}
	e.sync = make([]bool, count)
	for i := range e.sync {
		e.sync[i] = stbl.Stss == nil
	}
	if stbl.Stss != nil {
		for _, s := range stbl.Stss.SampleNumber {
			if int(s-1) < len(e.sync) {
				e.sync[s-1] = true
			}
		}
	}
	return e
}

// checkCursor walks a table with advance and with cursorAt, and compares
// both with the expanded table.
func checkCursor(t *testing.T, stbl *mp4ff.StblBox) {
	t.Helper()
	tab, err := newSampleTable(stbl, tickLimit(1000), false)
	if err != nil {
		t.Fatal(err)
	}
	want := expand(stbl, tab.count)
	c := tab.cursorAt(0)
	for n := uint32(0); n < tab.count; n++ {
		at := tab.cursorAt(n)
		for _, got := range []*cursor{&c, &at} {
			if got.n != n || got.dts != want.dts[n] || got.cto() != want.cto[n] || got.offset != want.offset[n] ||
				got.size() != want.size[n] || got.isSync() != want.sync[n] {
				t.Fatalf("sample %d: cursor n %d dts %d cto %d offset %d size %d sync %v; want dts %d cto %d offset %d size %d sync %v",
					n, got.n, got.dts, got.cto(), got.offset, got.size(), got.isSync(),
					want.dts[n], want.cto[n], want.offset[n], want.size[n], want.sync[n])
			}
		}
		if !reflect.DeepEqual(c, at) {
			t.Fatalf("sample %d: advance gives %+v, cursorAt %+v", n, c, at)
		}
		c.advance()
	}
	end := tab.cursorAt(tab.count)
	if !c.done() || !end.done() {
		t.Error("cursor not done after the last sample")
	}
}

func TestCursor(t *testing.T) {
	t.Run("edge cases", func(t *testing.T) {
		checkCursor(t, &mp4ff.StblBox{
			// An empty stts entry, deltas that change.
			Stts: &mp4ff.SttsBox{SampleCount: []uint32{3, 0, 4, 5}, SampleTimeDelta: []uint32{10, 99, 20, 7}},
			// Negative offsets (version 1), a gap at the end.
			Ctts: &mp4ff.CttsBox{EndSampleNr: []uint32{0, 2, 5, 9}, SampleOffset: []int32{20, -10, 0}},
			// Chunks 3-4 hold no sample.
			Stsc: &mp4ff.StscBox{Entries: []mp4ff.StscEntry{
				{FirstChunk: 1, SamplesPerChunk: 2}, {FirstChunk: 3, SamplesPerChunk: 0}, {FirstChunk: 5, SamplesPerChunk: 3},
			}},
			Stsz: &mp4ff.StszBox{SampleNumber: 12, SampleSize: []uint32{5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
			Co64: &mp4ff.Co64Box{ChunkOffset: []uint64{1000, 2000, 3000, 4000, 1 << 40, 6000, 7000}},
			Stss: &mp4ff.StssBox{SampleNumber: []uint32{1, 5, 12}},
		})
	})
	t.Run("uniform size", func(t *testing.T) {
		checkCursor(t, &mp4ff.StblBox{
			Stts: &mp4ff.SttsBox{SampleCount: []uint32{10}, SampleTimeDelta: []uint32{1024}},
			Stsc: &mp4ff.StscBox{Entries: []mp4ff.StscEntry{{FirstChunk: 1, SamplesPerChunk: 4}}},
			Stsz: &mp4ff.StszBox{SampleNumber: 10, SampleUniformSize: 100},
			Stco: &mp4ff.StcoBox{ChunkOffset: []uint32{8, 800, 1600}},
		})
	})
	t.Run("ffmpeg file", func(t *testing.T) {
		path := encode(t, t.TempDir(), "clip.mp4")
		f, err := mp4ff.ReadMP4File(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, trak := range f.Moov.Traks {
			checkCursor(t, trak.Mdia.Minf.Stbl)
		}
	})
}

// box builds a box.
func box(typ string, payload ...[]byte) []byte {
	b := bytes.Join(payload, nil)
	return append(binary.BigEndian.AppendUint32(nil, uint32(8+len(b))), append([]byte(typ), b...)...)
}

func u32s(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// tinyMP4 is a hand-made MP4 with one H.264 track of two samples whose NAL
// units have 2-byte lengths, composition offsets of version 1 (one
// negative), an edit list, and a udta box mp4ff would have to decode. The
// mdat comes before the moov.
func tinyMP4() (file []byte, wantBodies [][]byte) {
	samples := [][]byte{{0, 2, 0x65, 0xaa}, {0, 3, 0x41, 0xbb, 0xcc, 0, 1, 0x41}}
	ftyp := box("ftyp", []byte("isom"), u32s(512), []byte("isomavc1"))
	mdat := box("mdat", samples...)
	mdatPayload := uint32(len(ftyp) + 8)

	avcC := []byte{1, 0x42, 0xc0, 0x1e, 0xfc | 1, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1, 0, 2, 0x68, 0xce}
	avc1 := box("avc1", make([]byte, 6), []byte{0, 1}, make([]byte, 16), []byte{0, 64, 0, 48},
		u32s(0x480000, 0x480000, 0), []byte{0, 1}, make([]byte, 32), []byte{0, 0x18, 0xff, 0xff}, box("avcC", avcC))
	stbl := box("stbl",
		box("stsd", u32s(0, 1), avc1),
		box("stts", u32s(0, 1, 2, 40)),
		box("ctts", u32s(1<<24, 2, 1, 80, 1, uint32(0xffffffd8))), // +80, -40
		box("stsc", u32s(0, 1, 1, 2, 1)),
		box("stsz", u32s(0, 0, 2, uint32(len(samples[0])), uint32(len(samples[1])))),
		box("stco", u32s(0, 1, mdatPayload)),
		box("stss", u32s(0, 1, 1)),
	)
	minf := box("minf", box("vmhd", u32s(1, 0, 0)), stbl)
	mdia := box("mdia",
		box("mdhd", u32s(0, 0, 0, 1000, 80), []byte{0x55, 0xc4, 0, 0}),
		box("hdlr", u32s(0, 0), []byte("vide"), make([]byte, 12), []byte{0}),
		minf)
	tkhd := box("tkhd", u32s(3, 0, 0, 1, 0, 80), make([]byte, 60))
	edts := box("edts", box("elst", u32s(0, 1, 80, 40, 1<<16)))
	trak := box("trak", tkhd, edts, mdia, box("udta", []byte("garbage that is no box")))
	mvhd := box("mvhd", u32s(0, 0, 0, 1000, 80, 1<<16), []byte{1, 0}, make([]byte, 10), make([]byte, 36), make([]byte, 24), u32s(2))
	moov := box("moov", mvhd, trak)

	// Sample 1: DTS 0 - 40 (media time 40) = -40 ms, PTS = 40 ms.
	// Sample 2: DTS 0 ms, PTS -40 ms.
	wantBodies = [][]byte{
		{0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1, 0, 2, 0x68, 0xce},
		{0x17, 1, 0, 0, 80, 0, 0, 0, 2, 0x65, 0xaa},
		{0x27, 1, 0xff, 0xff, 0xd8, 0, 0, 0, 3, 0x41, 0xbb, 0xcc, 0, 0, 0, 1, 0x41},
	}
	return bytes.Join([][]byte{ftyp, mdat, moov}, nil), wantBodies
}

func TestTinyFile(t *testing.T) {
	file, want := tinyMP4()
	src, err := openReaderAt(context.Background(), bytes.NewReader(file), int64(len(file)), 0)
	if err != nil {
		t.Fatal(err)
	}
	pkts := mustReadAll(t, src)
	if len(pkts) != len(want) {
		t.Fatalf("got %d packets, want %d", len(pkts), len(want))
	}
	wantDTS := []time.Duration{-40 * time.Millisecond, -40 * time.Millisecond, 0}
	for i, p := range pkts {
		if p.Kind != media.KindVideo || p.DTS != wantDTS[i] || !bytes.Equal(p.Body, want[i]) {
			t.Errorf("packet %d: %v % x; want DTS %v, body % x", i, p.DTS, p.Body, wantDTS[i], want[i])
		}
	}
	if d := src.Duration(); d != 80*time.Millisecond {
		t.Errorf("Duration() = %v, want 80ms (the edit list's)", d)
	}
}

func TestPrepareMoov(t *testing.T) {
	file, _ := tinyMP4()
	moov := file[bytes.Index(file, []byte("moov"))-4:]
	recs := prepareMoov(moov)
	if len(recs) != 1 || recs[0].lengthSize != 2 || recs[0].record[4] != 0xff {
		t.Fatalf("got %+v, want one avcC with length size 2, patched to 4", recs)
	}
	if !bytes.Contains(moov, []byte{0xfc | 3, 0xe1}) || bytes.Contains(moov, []byte("udta")) {
		t.Error("the moov was not patched for mp4ff")
	}
}

// TestTruncatedEverywhere cuts a real file at many places: every cut is an
// error or an early end, never a panic or a hang.
func TestTruncatedEverywhere(t *testing.T) {
	path := encode(t, t.TempDir(), "clip.mp4", "-t", "1", "-movflags", "+faststart")
	data := readFile(t, path)
	for cut := 0; cut < len(data); cut += 1 + cut/8 {
		b := data[:cut]
		src, err := openReaderAt(context.Background(), bytes.NewReader(b), int64(len(b)), 0)
		if err != nil {
			continue
		}
		if _, err := readAll(t, src); !errors.Is(err, media.ErrFileEndEarly) && !errors.Is(err, io.EOF) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
}
