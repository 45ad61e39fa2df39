// Package media defines the unit every source yields and every sink writes: an
// FLV tag / RTMP message body with its kind and timestamps. Payload bytes pass
// through untouched; only timestamps are rewritten.
package media

import (
	"context"
	"errors"
	"time"
)

// Kind is the FLV tag type / RTMP message type of a packet.
type Kind uint8

// Kinds, numbered as FLV and RTMP number them.
const (
	KindAudio Kind = 8
	KindVideo Kind = 9
	KindData  Kind = 18 // AMF0 data (onMetaData)
)

// Packet is one audio, video or data message.
//
// Body is the FLV tag body, identical to the RTMP message body: for video,
// the legacy header (frame type, codec id, AVC packet type, composition
// time) or the enhanced-RTMP header, then the payload; for audio, the sound
// format byte, then the AAC packet type, then the payload.
//
// The relay never changes Body; it only sets DTS. PTS offsets live inside
// Body (composition time) and need no rewriting.
type Packet struct {
	Kind Kind
	DTS  time.Duration
	Body []byte
}

// Video codec ids of the legacy FLV header.
const (
	CodecIDH264 = 7
	CodecIDH265 = 12 // widespread unofficial id
)

// Audio sound formats of the FLV header.
const (
	SoundFormatMP3 = 2
	SoundFormatAAC = 10
)

// IsVideoKeyframe reports whether a video packet starts a GOP (or is a codec
// configuration, which is also flagged as a key frame by every muxer).
func (p *Packet) IsVideoKeyframe() bool {
	if p.Kind != KindVideo || len(p.Body) == 0 {
		return false
	}
	// Legacy and enhanced headers both keep the frame type in bits 4-6.
	return (p.Body[0]>>4)&0x7 == 1
}

// IsSequenceHeader reports whether the packet carries codec configuration
// (AVC/HEVC decoder configuration record, AAC AudioSpecificConfig).
func (p *Packet) IsSequenceHeader() bool {
	if len(p.Body) < 2 {
		return false
	}
	switch p.Kind {
	case KindVideo:
		if p.Body[0]&0x80 != 0 { // enhanced RTMP: packet type in the low nibble
			return p.Body[0]&0x0f == 0
		}
		codec := p.Body[0] & 0x0f
		return (codec == CodecIDH264 || codec == CodecIDH265) && p.Body[1] == 0
	case KindAudio:
		return p.Body[0]>>4 == SoundFormatAAC && p.Body[1] == 0
	}
	return false
}

// IsMetadata reports whether the packet is an AMF0 data message.
func (p *Packet) IsMetadata() bool { return p.Kind == KindData }

// VideoCodec names the video codec of a packet ("h264", "h265", "av1",
// "vp9", or "unknown(N)").
func (p *Packet) VideoCodec() string {
	if p.Kind != KindVideo || len(p.Body) == 0 {
		return ""
	}
	if p.Body[0]&0x80 != 0 {
		if len(p.Body) < 5 {
			return "unknown"
		}
		switch string(p.Body[1:5]) {
		case "avc1":
			return "h264"
		case "hvc1":
			return "h265"
		case "av01":
			return "av1"
		case "vp09":
			return "vp9"
		}
		return "fourcc(" + string(p.Body[1:5]) + ")"
	}
	switch p.Body[0] & 0x0f {
	case CodecIDH264:
		return "h264"
	case CodecIDH265:
		return "h265"
	case 2:
		return "sorenson_h263"
	case 4:
		return "vp6"
	}
	return "unknown"
}

// AudioCodec names the audio codec of a packet ("aac", "mp3", ...).
func (p *Packet) AudioCodec() string {
	if p.Kind != KindAudio || len(p.Body) == 0 {
		return ""
	}
	switch p.Body[0] >> 4 {
	case SoundFormatAAC:
		return "aac"
	case SoundFormatMP3:
		return "mp3"
	case 9:
		return "enhanced"
	case 7:
		return "g711a"
	case 8:
		return "g711u"
	case 11:
		return "speex"
	}
	return "unknown"
}

// Source yields packets from one origin (an RTMP stream, an HTTP-FLV stream,
// a file). ReadPacket blocks until a packet arrives, ctx is done, or the
// source fails; the returned Packet is valid until the next call.
type Source interface {
	ReadPacket(ctx context.Context) (*Packet, error)
	Close() error
}

// Sink writes packets to a destination. WritePacket may buffer (it keeps no
// reference to p or its body); Flush sends what is buffered. Writing must
// honour a write deadline so a stalled destination surfaces as an error.
type Sink interface {
	WritePacket(p *Packet) error
	Flush() error
	BytesWritten() uint64
	Close() error
}

// FileSource is a Source over a finite file (one entry of a VOD playlist).
// ReadPacket returns io.EOF at the clean end of the file, and an error
// wrapping ErrFileEndEarly when the file stops before its announced end
// (truncated download, short file).
type FileSource interface {
	Source
	// Duration is the media duration of the whole file, 0 when unknown.
	Duration() time.Duration
}

// ErrFileEndEarly marks a file that ended before its announced duration.
var ErrFileEndEarly = errors.New("file ended early")
