package media

import "encoding/binary"

// WithInbandParams returns an H.264 keyframe body with the SPS and PPS of an
// AVC sequence header prepended as NAL units, or nil when either packet is
// not legacy-FLV H.264 or the record cannot be read.
//
// Decoders re-read a sequence header that changes mid-stream, but stream
// parsers (ffmpeg's among them) keep the first one; parameter sets in the
// keyframe itself make a switch between files with different encodings
// readable by both.
func WithInbandParams(seqHeader, keyframe []byte) []byte {
	const hdr = 5 // frame type/codec, AVC packet type, composition time
	if len(seqHeader) < hdr+6 || len(keyframe) < hdr ||
		seqHeader[0]&0x0f != CodecIDH264 || seqHeader[1] != 0 ||
		keyframe[0]&0x0f != CodecIDH264 || keyframe[1] != 1 {
		return nil
	}
	rec := seqHeader[hdr:]
	lengthSize := int(rec[4]&0x03) + 1
	var nalus [][]byte
	pos := 5
	for _, countMask := range []byte{0x1f, 0xff} {
		if pos >= len(rec) {
			return nil
		}
		n := int(rec[pos] & countMask)
		pos++
		for i := 0; i < n; i++ {
			if pos+2 > len(rec) {
				return nil
			}
			l := int(binary.BigEndian.Uint16(rec[pos:]))
			pos += 2
			if pos+l > len(rec) || l == 0 {
				return nil
			}
			nalus = append(nalus, rec[pos:pos+l])
			pos += l
		}
	}
	if len(nalus) == 0 {
		return nil
	}
	out := make([]byte, 0, len(keyframe)+64)
	out = append(out, keyframe[:hdr]...)
	for _, n := range nalus {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(n)))
		out = append(out, l[4-lengthSize:]...)
		out = append(out, n...)
	}
	return append(out, keyframe[hdr:]...)
}
