package hls

import (
	"bytes"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/liverelay/liverelay/internal/media"
)

// splitAUs turns fuzz bytes into access units of NAL units: 0xff ends an
// access unit; any other byte h starts a NAL unit of the n = h&0x7f bytes
// that follow (fewer at the end of the input). With h&0x80 set, those bytes
// repeat to n KiB: a short input can hold a NAL unit too big for a 16-bit
// length.
func splitAUs(data []byte) [][][]byte {
	var aus [][][]byte
	var au [][]byte
	for len(data) > 0 {
		h := data[0]
		data = data[1:]
		if h == 0xff {
			aus = append(aus, au)
			au = nil
			continue
		}
		n := int(h & 0x7f)
		nalu := bytes.Clone(data[:min(n, len(data))])
		data = data[len(nalu):]
		if h&0x80 != 0 && n > 0 {
			if len(nalu) == 0 {
				nalu = []byte{0}
			}
			nalu = bytes.Repeat(nalu, n*1024/len(nalu)+1)[:n*1024]
		}
		au = append(au, nalu)
	}
	return append(aus, au)
}

// joinAUs is the inverse of splitAUs for NAL units shorter than 128 bytes.
func joinAUs(aus ...[][]byte) []byte {
	var b []byte
	for i, au := range aus {
		if i > 0 {
			b = append(b, 0xff)
		}
		for _, n := range au {
			b = append(b, byte(len(n)))
			b = append(b, n...)
		}
	}
	return b
}

// floorMillis is ticks*1000/clock rounded down, exactly, and whether it is
// a time.Duration of whole milliseconds.
func floorMillis(ticks, clock int64) (time.Duration, bool) {
	num := new(big.Int).Mul(big.NewInt(ticks), big.NewInt(1000))
	q := new(big.Int).Div(num, big.NewInt(clock)) // Euclidean: the floor for clock > 0
	ns := new(big.Int).Mul(q, big.NewInt(int64(time.Millisecond)))
	if !ns.IsInt64() {
		return 0, false
	}
	return time.Duration(ns.Int64()), true
}

// inRange folds a tick count into ±50 years of a clock of clock Hz.
// gohlslib delivers no timestamp further from the stream's start (it paces
// samples at their DTS, and drops those before the start), and ±50 years
// keeps every sum of the converters within int64 and their milliseconds
// within time.Duration (±292 years) at any clock rate up to 2^32 Hz.
func inRange(ticks int64, clock uint32) int64 {
	return ticks % (50 * 365 * 86400 * int64(clock))
}

// Parameter sets and slices as x265 writes them for 64x48.
var (
	testVPS265 = []byte{0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x1e, 0x95, 0x94, 0x09}
	testSPS265 = []byte{0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x1e, 0xa0, 0x20, 0x83, 0x16, 0x59, 0x59, 0x52, 0x93, 0x0b, 0xc0, 0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10}
	testPPS265 = []byte{0x44, 0x01, 0xc0, 0x73, 0xc0, 0x89}
	idr265     = []byte{0x28, 0x01, 0xac, 0x76, 0xa1, 0x4d, 0x9a} // CRA, cut short
	trail265   = []byte{0x02, 0x01, 0xd0, 0x09, 0x78, 0x83, 0xb0, 0xac, 0x88, 0x0b, 0x56, 0xc0}
	aud265     = []byte{0x46, 0x01, 0x50}
)

// FuzzVideoConverter feeds access units of arbitrary NAL units, with
// arbitrary timestamps (within inRange) and clock rates, to a video converter (H.264 or
// H.265, parameter sets in-band or from an init segment) and checks every
// packet: a well-formed FLV body (header bytes, 4-byte lengths adding up to
// the body, a decoder configuration record that parses and holds the
// latest parameter sets), the frame's NAL units exactly those of the access
// unit less parameter sets and delimiters, the keyframe flag, DTS the
// floored milliseconds of the ticks, composition time PTS(ms)-DTS(ms)
// clamped to 24 bits; a sequence header before the first frame, a keyframe
// first, and no frame lost once started.
func FuzzVideoConverter(f *testing.F) {
	f.Add(false, uint32(90000), int64(3000), int64(0), int32(3000), false,
		joinAUs([][]byte{aud, nonIDR}, [][]byte{aud, testSPS, testPPS, sei, idr}, [][]byte{nonIDR}, [][]byte{testSPS, []byte{0x68, 0xee, 0x3c, 0x80}, idr}))
	f.Add(false, uint32(90000), int64(0), int64(0), int32(-3000), true,
		joinAUs([][]byte{testSPS, testPPS}, [][]byte{idr}, [][]byte{nonIDR, nonIDR}, [][]byte{}, [][]byte{{0x0c}}))
	f.Add(true, uint32(90000), int64(6000), int64(3000), int32(3000), false,
		joinAUs([][]byte{aud265, testVPS265, testSPS265, testPPS265, idr265}, [][]byte{trail265}, [][]byte{aud265, trail265}))
	f.Add(true, uint32(1000), int64(0), int64(0), int32(40), true,
		joinAUs([][]byte{testVPS265, testSPS265, testPPS265}, [][]byte{idr265}, [][]byte{trail265}))
	f.Add(false, uint32(1), int64(math.MaxInt64), int64(math.MinInt64), int32(1), false, joinAUs([][]byte{testSPS, testPPS, idr}))
	f.Add(false, uint32(90000), int64(0), int64(0), int32(0), false, []byte{0x85, 0x67, 0x64, 0x00, 0x0d, 0x01, 0x04, 0x68, 0xeb, 0xe3, 0xcb, 0x04, 0x65, 0x88, 0x84, 0x00})

	f.Fuzz(func(t *testing.T, hevc bool, clock uint32, pts, dts int64, step int32, fromInit bool, data []byte) {
		if clock == 0 {
			clock = 90000
		}
		aus := splitAUs(data)
		kinds := func(au [][]byte) (params [3][][]byte, frame [][]byte, key bool) {
			for _, n := range au {
				if len(n) == 0 {
					continue
				}
				switch k := testNALUKind(hevc, n); k {
				case "vps":
					params[0] = append(params[0], n)
				case "sps":
					params[1] = append(params[1], n)
				case "pps":
					params[2] = append(params[2], n)
				case "drop":
				default:
					key = key || k == "key"
					frame = append(frame, n)
				}
			}
			return params, frame, key
		}

		// The parameter sets the converter holds, as the test sees them.
		var cur [3][][]byte
		var c *videoConverter
		if fromInit && len(aus) > 0 {
			// fMP4: the first of each kind comes from the init segment.
			p, _, _ := kinds(aus[0])
			var init [3][]byte
			for i := range p {
				if len(p[i]) > 0 {
					init[i] = p[i][0]
					cur[i] = [][]byte{p[i][0]}
				}
			}
			c = newVideoConverter(int(clock), hevc, init[0], init[1], init[2])
			aus = aus[1:]
		} else {
			c = newVideoConverter(int(clock), hevc, nil, nil, nil)
		}

		var chk flvChecker
		started := false
		for i, au := range aus {
			d := inRange(dts+int64(i)*int64(step), clock)
			p := inRange(pts+int64(i)*int64(step), clock)
			params, frame, key := kinds(au)
			for k := range params {
				if len(params[k]) > 0 {
					cur[k] = params[k]
				}
			}
			outs, err := c.convert(p, d, au)
			if err != nil {
				if len(outs) != 0 {
					t.Fatalf("AU %d: %d packets with error %v", i, len(outs), err)
				}
				continue
			}
			if len(outs) == 0 || len(outs) > 2 {
				t.Fatalf("AU %d: %d packets", i, len(outs))
			}
			wantDTS, okDTS := floorMillis(d, int64(clock))
			ptsMS, okPTS := floorMillis(p, int64(clock))
			if !okDTS || !okPTS {
				t.Fatalf("AU %d: PTS %d or DTS %d ticks at %d Hz out of range", i, p, d, clock)
			}
			var gotFrame bool
			for j, o := range outs {
				if o.pkt.Kind != media.KindVideo {
					t.Fatalf("AU %d: packet of kind %d", i, o.pkt.Kind)
				}
				if o.pkt.DTS != wantDTS {
					t.Fatalf("AU %d: DTS %v for %d ticks at %d Hz, want %v", i, o.pkt.DTS, d, clock, wantDTS)
				}
				if o.pkt.Body == nil {
					if j != len(outs)-1 || o.config {
						t.Fatalf("AU %d: clock-only packet %d of %d (config %v)", i, j, len(outs), o.config)
					}
					continue
				}
				fi, err := chk.check(o.pkt)
				if err != nil {
					t.Fatalf("AU %d, packet %d (% x): %v", i, j, o.pkt.Body[:min(len(o.pkt.Body), 16)], err)
				}
				if fi.config != o.config || (fi.config && j != 0) {
					t.Fatalf("AU %d: packet %d is config %v, marked %v", i, j, fi.config, o.config)
				}
				if wantCodec := map[bool]string{false: "h264", true: "h265"}[hevc]; o.pkt.VideoCodec() != wantCodec {
					t.Fatalf("AU %d: codec %s", i, o.pkt.VideoCodec())
				}
				if fi.config {
					for k, name := range []string{"VPS", "SPS", "PPS"} {
						if (hevc || k > 0) && !equalNALUs(fi.params[k], cur[k]) {
							t.Fatalf("AU %d: record holds %s % x, want % x", i, name, fi.params[k], cur[k])
						}
					}
					if hevc {
						rbsp := h264.EmulationPreventionRemove(cur[1][0])
						if !bytes.Equal(o.pkt.Body[6:18], rbsp[3:15]) {
							t.Fatalf("AU %d: profile, tier and level % x, SPS has % x", i, o.pkt.Body[6:18], rbsp[3:15])
						}
					}
					continue
				}
				gotFrame = true
				if !equalNALUs(fi.nalus, frame) || fi.key != key {
					t.Fatalf("AU %d: frame (key %v) holds %d NAL units, want %d (key %v)", i, fi.key, len(fi.nalus), len(frame), key)
				}
				if want := min(max((ptsMS-wantDTS)/time.Millisecond, -1<<23), 1<<23-1); time.Duration(fi.cts) != want {
					t.Fatalf("AU %d: composition time %d for PTS %v DTS %v, want %d", i, fi.cts, ptsMS, wantDTS, want)
				}
				started = true
			}
			if !gotFrame && started && len(frame) > 0 {
				t.Fatalf("AU %d: %d NAL units after the first keyframe, and no frame", i, len(frame))
			}
		}
	})
}

// FuzzDecoderConfig builds decoder configuration records from arbitrary
// parameter sets (the three access units of splitAUs: VPS, SPS, PPS) and
// checks that each record, when one is made, parses and holds exactly the
// parameter sets given, and the profile of the first SPS.
func FuzzDecoderConfig(f *testing.F) {
	f.Add(false, joinAUs(nil, [][]byte{testSPS}, [][]byte{testPPS}))
	f.Add(false, joinAUs(nil, [][]byte{testSPS, {0x67, 0x42, 0xc0, 0x1e}}, [][]byte{testPPS, {0x68, 1}}))
	f.Add(true, joinAUs([][]byte{testVPS265}, [][]byte{testSPS265}, [][]byte{testPPS265}))
	f.Add(false, []byte{0xff, 0x84, 0x67, 0x4d, 0x00, 0x1f, 0xff, 0x02, 0x68, 0x01})

	f.Fuzz(func(t *testing.T, hevc bool, data []byte) {
		aus := splitAUs(data)
		for len(aus) < 3 {
			aus = append(aus, nil)
		}
		// The converter only calls these with non-empty NAL units of the
		// right types and at least one SPS and PPS (and VPS for H.265).
		var sets [3][][]byte
		for i, typ := range []string{"vps", "sps", "pps"} {
			for _, n := range aus[i] {
				if len(n) > 0 && testNALUKind(hevc, n) == typ {
					sets[i] = append(sets[i], n)
				}
			}
		}
		if len(sets[1]) == 0 || len(sets[2]) == 0 || (hevc && len(sets[0]) == 0) {
			return
		}
		if hevc {
			rec, err := hevcDecoderConfig(sets[0], sets[1], sets[2])
			if err != nil {
				return
			}
			arrays, err := readHVCC(rec)
			if err != nil {
				t.Fatalf("record % x: %v", rec[:min(len(rec), 32)], err)
			}
			if !equalNALUs(arrays[0], sets[0]) || !equalNALUs(arrays[1], sets[1]) || !equalNALUs(arrays[2], sets[2]) {
				t.Fatalf("record holds %d/%d/%d parameter sets, want %d/%d/%d",
					len(arrays[0]), len(arrays[1]), len(arrays[2]), len(sets[0]), len(sets[1]), len(sets[2]))
			}
			if rbsp := h264.EmulationPreventionRemove(sets[1][0]); !bytes.Equal(rec[1:13], rbsp[3:15]) {
				t.Fatalf("profile, tier and level % x, SPS has % x", rec[1:13], rbsp[3:15])
			}
			return
		}
		rec, err := avcDecoderConfig(sets[1], sets[2])
		if err != nil {
			return
		}
		sps, pps, err := readAVCC(rec)
		if err != nil {
			t.Fatalf("record % x: %v", rec[:min(len(rec), 32)], err)
		}
		if !equalNALUs(sps, sets[1]) || !equalNALUs(pps, sets[2]) {
			t.Fatalf("record holds %d SPS and %d PPS, want %d and %d", len(sps), len(pps), len(sets[1]), len(sets[2]))
		}
	})
}

// FuzzAudioConverter converts arbitrary AAC access units (groups of them as
// one PES packet each) with an arbitrary AudioSpecificConfig, clock rate
// and timestamp (within inRange): the config goes out first and once, each non-empty access unit
// becomes exactly one frame of its bytes, timed 1024 samples apart from the
// PES's PTS, floored to the millisecond.
func FuzzAudioConverter(f *testing.F) {
	f.Add([]byte{0x12, 0x10}, uint32(90000), int64(90000), int32(90000), joinAUs([][]byte{{1}, {2}, {3}}, [][]byte{{4}}))
	f.Add([]byte{0x11, 0x90}, uint32(48000), int64(-1), int32(1024), joinAUs([][]byte{{}, {0x21, 0x10}}, nil, [][]byte{{5, 6}}))
	f.Add([]byte{0x2b, 0x92, 0x08, 0x00}, uint32(1), int64(math.MaxInt64), int32(0), joinAUs([][]byte{{1}, {2}}))
	f.Add([]byte{0x17, 0x80, 0x01, 0x5f, 0x90}, uint32(90000), int64(0), int32(0), joinAUs([][]byte{{1}}))

	f.Fuzz(func(t *testing.T, ascBytes []byte, clock uint32, pts int64, step int32, data []byte) {
		if clock == 0 {
			clock = 90000
		}
		var cfg mpeg4audio.AudioSpecificConfig
		if err := cfg.Unmarshal(ascBytes); err != nil {
			return
		}
		c, err := newAudioConverter(int(clock), cfg)
		if err != nil {
			if cfg.SampleRate > 0 {
				if _, merr := cfg.Marshal(); merr == nil {
					t.Fatalf("config %+v refused: %v", cfg, err)
				}
			}
			return
		}
		var chk flvChecker
		configs := 0
		for i, aus := range splitAUs(data) {
			start := inRange(pts+int64(i)*int64(step), clock)
			outs := c.convert(start, aus)
			var frames [][]byte
			for _, au := range aus {
				if len(au) > 0 {
					frames = append(frames, au)
				}
			}
			var gotFrames [][]byte
			var last time.Duration
			for j, o := range outs {
				fi, err := chk.check(o.pkt)
				if err != nil {
					t.Fatalf("PES %d, packet %d (% x): %v", i, j, o.pkt.Body[:min(len(o.pkt.Body), 16)], err)
				}
				if fi.config != o.config {
					t.Fatalf("PES %d: packet %d is config %v, marked %v", i, j, fi.config, o.config)
				}
				if j > 0 && o.pkt.DTS < last {
					t.Fatalf("PES %d: DTS %v after %v", i, o.pkt.DTS, last)
				}
				last = o.pkt.DTS
				if fi.config {
					configs++
					var back mpeg4audio.AudioSpecificConfig
					if err := back.Unmarshal(fi.asc); err != nil || back.SampleRate != cfg.SampleRate ||
						back.Type != cfg.Type || back.ChannelConfig != cfg.ChannelConfig {
						t.Fatalf("config % x reads back as %+v (%v), want %+v", fi.asc, back, err, cfg)
					}
					continue
				}
				gotFrames = append(gotFrames, fi.au)
			}
			if !equalNALUs(gotFrames, frames) {
				t.Fatalf("PES %d: %d frames (%d bytes) out of %d non-empty access units (%d bytes)",
					i, len(gotFrames), len(bytes.Join(gotFrames, nil)), len(frames), len(bytes.Join(frames, nil)))
			}
			// Each frame at its access unit's place: the k-th access unit
			// (empty ones count) is k*1024 samples after the PTS.
			k := 0
			for idx, au := range aus {
				if len(au) == 0 {
					continue
				}
				ticks := new(big.Int).Mul(big.NewInt(int64(idx)*1024), big.NewInt(int64(clock)))
				ticks.Quo(ticks, big.NewInt(int64(cfg.SampleRate)))
				ticks.Add(ticks, big.NewInt(start))
				for outs[k].config {
					k++
				}
				want, ok := floorMillis(ticks.Int64(), int64(clock))
				if !ticks.IsInt64() || !ok {
					t.Fatalf("PES %d, AU %d: %v ticks at %d Hz out of range", i, idx, ticks, clock)
				}
				if outs[k].pkt.DTS != want {
					t.Fatalf("PES %d, AU %d: DTS %v, want %v", i, idx, outs[k].pkt.DTS, want)
				}
				k++
			}
		}
		if configs > 1 {
			t.Fatalf("%d AudioSpecificConfigs", configs)
		}
	})
}
