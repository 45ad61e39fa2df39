package hls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/liverelay/liverelay/internal/media"
)

// Access units become FLV tag bodies here.
//
// Video frames carry their slices and SEI as AVCC (4-byte lengths). SPS, PPS
// (and VPS), access unit delimiters and filler data are dropped from frames:
// the parameter sets travel in the sequence header, sent before the first
// keyframe and again whenever they change, which is what FLV demuxers and
// RTMP servers read them from; copies inside frames would only add bytes,
// and a stale in-band copy next to a newer header confuses some decoders.
//
// Timestamps come in the track's clock (90 kHz for MPEG-TS, the track's
// timescale for fMP4), already relative to the stream's start. They become
// whole milliseconds by floor division of the exact tick count, each on its
// own, so nothing accumulates: there is no drift however long the stream.
// The composition time is PTS(ms) - DTS(ms), so DTS + composition time is
// the PTS a player computes.

// ticksToMillis converts ticks of a clock of clockRate Hz to milliseconds,
// rounding down, without overflow wherever the result fits an int64: for
// any int64 tick count at 1000 Hz or more.
func ticksToMillis(ticks, clockRate int64) int64 {
	q, r := ticks/clockRate, ticks%clockRate
	if r < 0 {
		q--
		r += clockRate
	}
	return q*1000 + r*1000/clockRate
}

func millis(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// compositionTime clamps PTS - DTS to the signed 24 bits FLV gives it.
func compositionTime(ptsMS, dtsMS int64) int32 {
	return int32(min(max(ptsMS-dtsMS, -1<<23), 1<<23-1))
}

func putInt24(b []byte, v int32) {
	b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v)
}

// out is one converted packet. A packet with a nil Body only moves its
// track's clock (a frame dropped while waiting for a keyframe), so the
// merge knows the track has got that far.
type out struct {
	pkt    media.Packet
	config bool
}

// videoConverter turns H.264 or H.265 access units into FLV video bodies.
// It is used by one goroutine at a time.
type videoConverter struct {
	clockRate int64
	hevc      bool

	// parameter sets: the current ones, and whether they were sent
	vps, sps, pps [][]byte
	sent          bool
	started       bool // a keyframe has gone out
}

func newVideoConverter(clockRate int, hevc bool, vps, sps, pps []byte) *videoConverter {
	c := &videoConverter{clockRate: int64(clockRate), hevc: hevc}
	if len(vps) > 0 {
		c.vps = [][]byte{bytes.Clone(vps)}
	}
	if len(sps) > 0 {
		c.sps = [][]byte{bytes.Clone(sps)}
	}
	if len(pps) > 0 {
		c.pps = [][]byte{bytes.Clone(pps)}
	}
	return c
}

// NAL unit kinds the converter cares about.
type naluKind int

const (
	naluSlice naluKind = iota // and everything else kept in frames
	naluKeySlice
	naluVPS
	naluSPS
	naluPPS
	naluDrop // delimiters, filler, end of sequence/stream
)

func (c *videoConverter) kind(nalu []byte) naluKind {
	if c.hevc {
		switch typ := h265.NALUType((nalu[0] >> 1) & 0x3f); {
		case typ >= h265.NALUType_BLA_W_LP && typ <= h265.NALUType_CRA_NUT:
			return naluKeySlice
		case typ == h265.NALUType_VPS_NUT:
			return naluVPS
		case typ == h265.NALUType_SPS_NUT:
			return naluSPS
		case typ == h265.NALUType_PPS_NUT:
			return naluPPS
		case typ == h265.NALUType_AUD_NUT, typ == h265.NALUType_EOS_NUT, typ == h265.NALUType_EOB_NUT, typ == h265.NALUType_FD_NUT:
			return naluDrop
		}
		return naluSlice
	}
	switch h264.NALUType(nalu[0] & 0x1f) {
	case h264.NALUTypeIDR:
		return naluKeySlice
	case h264.NALUTypeSPS:
		return naluSPS
	case h264.NALUTypePPS:
		return naluPPS
	case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData, h264.NALUTypeEndOfSequence, h264.NALUTypeEndOfStream:
		return naluDrop
	}
	return naluSlice
}

// convert returns the packets for one access unit: the sequence header
// first when the parameter sets are new, then the frame. Frames before the
// first keyframe, or before parameter sets are known, are dropped (a
// clock-only out). Errors are for parameter sets that cannot be described.
func (c *videoConverter) convert(pts, dts int64, au [][]byte) ([]out, error) {
	dtsMS := ticksToMillis(dts, c.clockRate)
	cts := compositionTime(ticksToMillis(pts, c.clockRate), dtsMS)

	var vps, sps, pps [][]byte
	key := false
	size := 0
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch c.kind(nalu) {
		case naluVPS:
			vps = append(vps, nalu)
		case naluSPS:
			sps = append(sps, nalu)
		case naluPPS:
			pps = append(pps, nalu)
		case naluDrop:
		case naluKeySlice:
			key = true
			size += 4 + len(nalu)
		default:
			size += 4 + len(nalu)
		}
	}

	var res []out
	changed := false
	for _, upd := range []struct {
		cur *[][]byte
		in  [][]byte
	}{{&c.vps, vps}, {&c.sps, sps}, {&c.pps, pps}} {
		if len(upd.in) > 0 && !equalNALUs(*upd.cur, upd.in) {
			*upd.cur = cloneNALUs(upd.in)
			changed = true
		}
	}
	haveParams := len(c.sps) > 0 && len(c.pps) > 0 && (!c.hevc || len(c.vps) > 0)
	if haveParams && (changed || !c.sent) && (key || c.started) {
		body, err := c.sequenceHeader()
		if err != nil {
			return nil, err
		}
		res = append(res, out{pkt: media.Packet{Kind: media.KindVideo, DTS: millis(dtsMS), Body: body}, config: true})
		c.sent = true
	}

	if size == 0 || !c.sent || (!c.started && !key) {
		return append(res, out{pkt: media.Packet{Kind: media.KindVideo, DTS: millis(dtsMS)}}), nil
	}
	c.started = true

	frameType := byte(2) // inter frame
	if key {
		frameType = 1
	}
	var body []byte
	if c.hevc {
		// Enhanced RTMP: frame type, PacketTypeCodedFrames, FourCC,
		// composition time.
		body = make([]byte, 8, 8+size)
		body[0] = 0x80 | frameType<<4 | 1
		copy(body[1:5], "hvc1")
		putInt24(body[5:8], cts)
	} else {
		body = make([]byte, 5, 5+size)
		body[0] = frameType<<4 | media.CodecIDH264
		body[1] = 1 // AVC NALU
		putInt24(body[2:5], cts)
	}
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch c.kind(nalu) {
		case naluSlice, naluKeySlice:
			body = binary.BigEndian.AppendUint32(body, uint32(len(nalu)))
			body = append(body, nalu...)
		}
	}
	return append(res, out{pkt: media.Packet{Kind: media.KindVideo, DTS: millis(dtsMS), Body: body}}), nil
}

func (c *videoConverter) sequenceHeader() ([]byte, error) {
	if c.hevc {
		rec, err := hevcDecoderConfig(c.vps, c.sps, c.pps)
		if err != nil {
			return nil, err
		}
		// Enhanced RTMP: key frame, PacketTypeSequenceStart, FourCC.
		return append([]byte{0x80 | 1<<4 | 0, 'h', 'v', 'c', '1'}, rec...), nil
	}
	rec, err := avcDecoderConfig(c.sps, c.pps)
	if err != nil {
		return nil, err
	}
	return append([]byte{1<<4 | media.CodecIDH264, 0, 0, 0, 0}, rec...), nil
}

// avcDecoderConfig builds an AVCDecoderConfigurationRecord (ISO/IEC
// 14496-15, 5.3.3.1) with 4-byte NALU lengths.
func avcDecoderConfig(spss, ppss [][]byte) ([]byte, error) {
	sps := spss[0]
	if len(sps) < 4 {
		return nil, errors.New("h264: SPS too short")
	}
	if len(spss) > 31 || len(ppss) > 255 {
		return nil, errors.New("h264: too many parameter sets")
	}
	if err := checkLen16(spss, ppss); err != nil {
		return nil, fmt.Errorf("h264: %w", err)
	}
	b := []byte{1, sps[1], sps[2], sps[3], 0xfc | 3, 0xe0 | byte(len(spss))}
	for _, s := range spss {
		b = appendLen16(b, s)
	}
	b = append(b, byte(len(ppss)))
	for _, p := range ppss {
		b = appendLen16(b, p)
	}
	// High profiles carry chroma format and bit depths too; a record
	// without them is still read by every decoder, so a SPS we cannot parse
	// only loses the extension.
	switch sps[1] {
	case 100, 110, 122, 144:
		var s h264.SPS
		if err := s.Unmarshal(sps); err == nil {
			b = append(b, 0xfc|byte(s.ChromaFormatIdc&3), 0xf8|byte(s.BitDepthLumaMinus8&7), 0xf8|byte(s.BitDepthChromaMinus8&7), 0)
		}
	}
	return b, nil
}

// hevcDecoderConfig builds an HEVCDecoderConfigurationRecord (ISO/IEC
// 14496-15, 8.3.3.1) with 4-byte NALU lengths.
func hevcDecoderConfig(vpss, spss, ppss [][]byte) ([]byte, error) {
	if err := checkLen16(vpss, spss, ppss); err != nil {
		return nil, fmt.Errorf("h265: %w", err)
	}
	var s h265.SPS
	if err := s.Unmarshal(spss[0]); err != nil {
		return nil, fmt.Errorf("h265: SPS: %w", err)
	}
	// The 12 bytes of general profile, tier and level follow the NAL header
	// (2 bytes) and one byte of VPS id, sub-layer count and nesting flag.
	rbsp := h264.EmulationPreventionRemove(spss[0])
	if len(rbsp) < 15 {
		return nil, errors.New("h265: SPS too short")
	}
	b := append([]byte{1}, rbsp[3:15]...)
	b = append(b,
		0xf0, 0x00, // min_spatial_segmentation_idc 0
		0xfc,                           // parallelismType unknown
		0xfc|byte(s.ChromaFormatIdc&3), // chroma_format_idc
		0xf8|byte(s.BitDepthLumaMinus8&7),
		0xf8|byte(s.BitDepthChromaMinus8&7),
		0, 0, // avgFrameRate unknown
	)
	nesting := byte(0)
	if s.TemporalIDNestingFlag {
		nesting = 1
	}
	// constantFrameRate 0, numTemporalLayers, temporalIdNested, 4-byte lengths
	b = append(b, (s.MaxSubLayersMinus1+1)&7<<3|nesting<<2|3)
	b = append(b, 3)
	for _, arr := range []struct {
		typ   h265.NALUType
		nalus [][]byte
	}{{h265.NALUType_VPS_NUT, vpss}, {h265.NALUType_SPS_NUT, spss}, {h265.NALUType_PPS_NUT, ppss}} {
		if len(arr.nalus) > 0xffff {
			return nil, errors.New("h265: too many parameter sets")
		}
		b = append(b, 0x80|byte(arr.typ)) // array_completeness: all in the record
		b = binary.BigEndian.AppendUint16(b, uint16(len(arr.nalus)))
		for _, n := range arr.nalus {
			b = appendLen16(b, n)
		}
	}
	return b, nil
}

// checkLen16 refuses parameter sets whose length does not fit the 16 bits
// a decoder configuration record gives it.
func checkLen16(lists ...[][]byte) error {
	for _, l := range lists {
		for _, n := range l {
			if len(n) > 0xffff {
				return fmt.Errorf("parameter set of %d bytes, too long for a decoder configuration record", len(n))
			}
		}
	}
	return nil
}

func appendLen16(b, nalu []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(nalu)))
	return append(b, nalu...)
}

func equalNALUs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func cloneNALUs(in [][]byte) [][]byte {
	out := make([][]byte, len(in))
	for i, n := range in {
		out[i] = bytes.Clone(n)
	}
	return out
}

// aacHeader is the FLV audio header byte of AAC: format 10, and the rate,
// size and channel bits every muxer sets for AAC (44 kHz, 16-bit, stereo),
// which decoders ignore in favour of the AudioSpecificConfig.
const aacHeader = media.SoundFormatAAC<<4 | 3<<2 | 1<<1 | 1

// audioConverter turns MPEG-4 audio (AAC) access units into FLV audio
// bodies. It is used by one goroutine at a time.
type audioConverter struct {
	clockRate  int64
	sampleRate int64
	config     []byte // AudioSpecificConfig
	sent       bool
}

func newAudioConverter(clockRate int, cfg mpeg4audio.AudioSpecificConfig) (*audioConverter, error) {
	if cfg.SampleRate <= 0 {
		return nil, fmt.Errorf("aac: invalid sample rate %d", cfg.SampleRate)
	}
	asc, err := cfg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("aac: AudioSpecificConfig: %w", err)
	}
	return &audioConverter{clockRate: int64(clockRate), sampleRate: int64(cfg.SampleRate), config: asc}, nil
}

// convert returns the packets for the access units of one PES packet or
// fMP4 sample, which start at pts: the AudioSpecificConfig first, once, then
// one packet per access unit, each 1024 samples after the previous one,
// timed from pts by exact integer arithmetic.
func (c *audioConverter) convert(pts int64, aus [][]byte) []out {
	var res []out
	for i, au := range aus {
		dts := pts + int64(i)*mpeg4audio.SamplesPerAccessUnit*c.clockRate/c.sampleRate
		at := millis(ticksToMillis(dts, c.clockRate))
		if !c.sent {
			res = append(res, out{pkt: media.Packet{Kind: media.KindAudio, DTS: at, Body: append([]byte{aacHeader, 0}, c.config...)}, config: true})
			c.sent = true
		}
		if len(au) == 0 {
			continue
		}
		body := make([]byte, 2+len(au))
		body[0], body[1] = aacHeader, 1
		copy(body[2:], au)
		res = append(res, out{pkt: media.Packet{Kind: media.KindAudio, DTS: at, Body: body}})
	}
	return res
}
