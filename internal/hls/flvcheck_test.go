package hls

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/liverelay/liverelay/internal/media"
)

// What the fuzz targets hold every packet of this package to: a well-formed
// FLV tag body of the kinds a source yields (H.264 or enhanced-RTMP H.265
// video, AAC audio), read with parsers of the test's own, not with the code
// under test.

// flvChecker follows the packets of one stream (or one converter) and
// checks each body, and the order of sequence headers and frames.
type flvChecker struct {
	videoHeader, audioHeader bool // a sequence header of the track went out
	videoFrames, audioFrames int
	videoCodec               string // of the first video packet
}

// frameInfo is what check read of a packet.
type frameInfo struct {
	config bool
	key    bool
	cts    int32
	nalus  [][]byte // of a video frame, or the parameter sets of a video config
	params [3][][]byte
	au     []byte // of an audio frame
	asc    []byte // of an audio config
}

func (c *flvChecker) check(p media.Packet) (frameInfo, error) {
	switch p.Kind {
	case media.KindVideo:
		fi, err := checkVideoBody(p.Body)
		if err != nil {
			return fi, err
		}
		codec := p.VideoCodec()
		if c.videoCodec == "" {
			c.videoCodec = codec
		} else if codec != c.videoCodec {
			return fi, fmt.Errorf("video codec %s after %s", codec, c.videoCodec)
		}
		if fi.config {
			c.videoHeader = true
			return fi, nil
		}
		if !c.videoHeader {
			return fi, errors.New("video frame before any video sequence header")
		}
		if c.videoFrames == 0 && !fi.key {
			return fi, errors.New("first video frame is not a keyframe")
		}
		c.videoFrames++
		return fi, nil
	case media.KindAudio:
		fi, err := checkAudioBody(p.Body)
		if err != nil {
			return fi, err
		}
		if fi.config {
			c.audioHeader = true
			return fi, nil
		}
		if !c.audioHeader {
			return fi, errors.New("audio frame before the AudioSpecificConfig")
		}
		c.audioFrames++
		return fi, nil
	}
	return frameInfo{}, fmt.Errorf("packet of kind %d", p.Kind)
}

// int24 reads a signed 24-bit big-endian value.
func int24(b []byte) int32 {
	return int32(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8) >> 8
}

// checkVideoBody reads a legacy H.264 or an enhanced-RTMP "hvc1" body.
func checkVideoBody(b []byte) (frameInfo, error) {
	var fi frameInfo
	if len(b) == 0 {
		return fi, errors.New("empty video body")
	}
	frameType := (b[0] >> 4) & 7
	if frameType != 1 && frameType != 2 {
		return fi, fmt.Errorf("frame type %d", frameType)
	}
	fi.key = frameType == 1
	hevc := b[0]&0x80 != 0
	var payload []byte
	if hevc {
		if len(b) < 5 || string(b[1:5]) != "hvc1" {
			return fi, fmt.Errorf("enhanced header % x: want FourCC hvc1", b[:min(len(b), 5)])
		}
		switch b[0] & 0x0f {
		case 0: // PacketTypeSequenceStart
			fi.config = true
			payload = b[5:]
		case 1: // PacketTypeCodedFrames
			if len(b) < 8 {
				return fi, errors.New("coded frames without composition time")
			}
			fi.cts = int24(b[5:8])
			payload = b[8:]
		default:
			return fi, fmt.Errorf("enhanced packet type %d", b[0]&0x0f)
		}
	} else {
		if b[0]&0x0f != media.CodecIDH264 {
			return fi, fmt.Errorf("codec id %d", b[0]&0x0f)
		}
		if len(b) < 5 {
			return fi, fmt.Errorf("AVC header of %d bytes", len(b))
		}
		switch b[1] {
		case 0:
			fi.config = true
			if int24(b[2:5]) != 0 {
				return fi, errors.New("sequence header with a composition time")
			}
		case 1:
			fi.cts = int24(b[2:5])
		default:
			return fi, fmt.Errorf("AVC packet type %d", b[1])
		}
		payload = b[5:]
	}

	if fi.config {
		if !fi.key {
			return fi, errors.New("sequence header not flagged as a key frame")
		}
		var err error
		if hevc {
			fi.params, err = readHVCC(payload)
		} else {
			fi.params[1], fi.params[2], err = readAVCC(payload)
		}
		return fi, err
	}

	nalus, err := splitAVCC(payload)
	if err != nil {
		return fi, err
	}
	if len(nalus) == 0 {
		return fi, errors.New("frame without NAL units")
	}
	hasKey := false
	for _, n := range nalus {
		switch k := testNALUKind(hevc, n); k {
		case "key":
			hasKey = true
		case "slice":
		default:
			return fi, fmt.Errorf("%s NAL unit (% x) inside a frame", k, n[:min(len(n), 2)])
		}
	}
	if hasKey != fi.key {
		return fi, fmt.Errorf("frame type %d with a keyframe NAL unit: %v", frameType, hasKey)
	}
	fi.nalus = nalus
	return fi, nil
}

// testNALUKind classifies a NAL unit by the specs' type numbers (H.264
// table 7-1, H.265 table 7-1): "key" (IDR; IRAP for H.265), "vps", "sps",
// "pps", "drop" (delimiters, filler, end of sequence or stream) or "slice"
// (everything else a frame keeps). nalu is not empty.
func testNALUKind(hevc bool, nalu []byte) string {
	if hevc {
		switch t := nalu[0] >> 1 & 0x3f; {
		case t >= 16 && t <= 21:
			return "key"
		case t == 32:
			return "vps"
		case t == 33:
			return "sps"
		case t == 34:
			return "pps"
		case t >= 35 && t <= 38:
			return "drop"
		}
		return "slice"
	}
	switch nalu[0] & 0x1f {
	case 5:
		return "key"
	case 7:
		return "sps"
	case 8:
		return "pps"
	case 9, 10, 11, 12:
		return "drop"
	}
	return "slice"
}

// splitAVCC splits NAL units with 4-byte lengths, which must add up to b
// exactly; none may be empty.
func splitAVCC(b []byte) ([][]byte, error) {
	var nalus [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%d bytes left, too few for a length", len(b))
		}
		n := binary.BigEndian.Uint32(b)
		if n == 0 || uint64(n) > uint64(len(b)-4) {
			return nil, fmt.Errorf("NAL unit length %d with %d bytes left", n, len(b)-4)
		}
		nalus = append(nalus, b[4:4+n])
		b = b[4+n:]
	}
	return nalus, nil
}

// readAVCC reads an AVCDecoderConfigurationRecord (ISO/IEC 14496-15
// 5.3.3.1): version 1, profile and level from the first SPS, 4-byte
// lengths, SPS and PPS arrays of their own NAL types, and nothing after them
// but the 4-byte extension of the high profiles.
func readAVCC(b []byte) (sps, pps [][]byte, err error) {
	if len(b) < 7 || b[0] != 1 {
		return nil, nil, fmt.Errorf("AVC record % x: not version 1", b[:min(len(b), 7)])
	}
	if b[4] != 0xff {
		return nil, nil, fmt.Errorf("AVC record: lengthSizeMinusOne byte %#x, want 0xff", b[4])
	}
	if b[5]&0xe0 != 0xe0 {
		return nil, nil, fmt.Errorf("AVC record: reserved bits of numOfSequenceParameterSets %#x", b[5])
	}
	profile := b[1:4]
	rest := b[6:]
	read := func(count int, typ byte) ([][]byte, error) {
		var out [][]byte
		for range count {
			if len(rest) < 2 {
				return nil, errors.New("AVC record: truncated length")
			}
			n := int(binary.BigEndian.Uint16(rest))
			if n == 0 || n > len(rest)-2 {
				return nil, fmt.Errorf("AVC record: parameter set length %d with %d bytes left", n, len(rest)-2)
			}
			if rest[2]&0x1f != typ {
				return nil, fmt.Errorf("AVC record: NAL type %d in the array of type %d", rest[2]&0x1f, typ)
			}
			out = append(out, rest[2:2+n])
			rest = rest[2+n:]
		}
		return out, nil
	}
	if sps, err = read(int(b[5]&0x1f), 7); err != nil {
		return nil, nil, err
	}
	if len(sps) == 0 {
		return nil, nil, errors.New("AVC record without SPS")
	}
	if len(sps[0]) < 4 || !bytes.Equal(sps[0][1:4], profile) {
		return nil, nil, fmt.Errorf("AVC record: profile % x, first SPS % x", profile, sps[0][:min(len(sps[0]), 4)])
	}
	if len(rest) < 1 {
		return nil, nil, errors.New("AVC record: no PPS count")
	}
	count := int(rest[0])
	rest = rest[1:]
	if pps, err = read(count, 8); err != nil {
		return nil, nil, err
	}
	if len(pps) == 0 {
		return nil, nil, errors.New("AVC record without PPS")
	}
	switch {
	case len(rest) == 0:
	case len(rest) == 4 && (profile[0] == 100 || profile[0] == 110 || profile[0] == 122 || profile[0] == 144):
		if rest[0]&0xfc != 0xfc || rest[1]&0xf8 != 0xf8 || rest[2]&0xf8 != 0xf8 || rest[3] != 0 {
			return nil, nil, fmt.Errorf("AVC record: extension % x", rest)
		}
	default:
		return nil, nil, fmt.Errorf("AVC record (profile %d): %d bytes after the PPS", profile[0], len(rest))
	}
	return sps, pps, nil
}

// readHVCC reads an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15
// 8.3.3.1) with 4-byte lengths and exactly three arrays, VPS, SPS and PPS,
// each of its own NAL type, filling the record to its end.
func readHVCC(b []byte) ([3][][]byte, error) {
	var arrays [3][][]byte
	if len(b) < 23 || b[0] != 1 {
		return arrays, errors.New("HEVC record: not a version 1 record")
	}
	if b[21]&3 != 3 {
		return arrays, fmt.Errorf("HEVC record: lengthSizeMinusOne %d", b[21]&3)
	}
	if b[22] != 3 {
		return arrays, fmt.Errorf("HEVC record: %d arrays", b[22])
	}
	rest := b[23:]
	for i, typ := range []byte{32, 33, 34} {
		if len(rest) < 3 {
			return arrays, errors.New("HEVC record: truncated array")
		}
		if rest[0]&0x3f != typ {
			return arrays, fmt.Errorf("HEVC record: array %d of NAL type %d", i, rest[0]&0x3f)
		}
		count := int(binary.BigEndian.Uint16(rest[1:]))
		rest = rest[3:]
		for range count {
			if len(rest) < 2 {
				return arrays, errors.New("HEVC record: truncated length")
			}
			n := int(binary.BigEndian.Uint16(rest))
			if n == 0 || n > len(rest)-2 {
				return arrays, fmt.Errorf("HEVC record: NAL unit length %d with %d bytes left", n, len(rest)-2)
			}
			if rest[2]>>1&0x3f != typ {
				return arrays, fmt.Errorf("HEVC record: NAL type %d in the array of type %d", rest[2]>>1&0x3f, typ)
			}
			arrays[i] = append(arrays[i], rest[2:2+n])
			rest = rest[2+n:]
		}
		if count == 0 {
			return arrays, fmt.Errorf("HEVC record: empty array of NAL type %d", typ)
		}
	}
	if len(rest) != 0 {
		return arrays, fmt.Errorf("HEVC record: %d bytes after the arrays", len(rest))
	}
	return arrays, nil
}

// checkAudioBody reads an AAC body: the AudioSpecificConfig, which must
// decode, or one non-empty access unit.
func checkAudioBody(b []byte) (frameInfo, error) {
	var fi frameInfo
	if len(b) < 2 {
		return fi, fmt.Errorf("audio body of %d bytes", len(b))
	}
	if b[0] != 0xaf {
		return fi, fmt.Errorf("audio header %#x, want 0xaf (AAC, 44 kHz, 16-bit, stereo)", b[0])
	}
	switch b[1] {
	case 0:
		fi.config = true
		fi.asc = b[2:]
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(fi.asc); err != nil {
			return fi, fmt.Errorf("AudioSpecificConfig % x: %v", fi.asc, err)
		}
	case 1:
		if len(b) == 2 {
			return fi, errors.New("empty AAC frame")
		}
		fi.au = b[2:]
	default:
		return fi, fmt.Errorf("AAC packet type %d", b[1])
	}
	return fi, nil
}
