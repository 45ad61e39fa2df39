package flv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"

	"github.com/liverelay/liverelay/internal/media"
)

// maxSkipBuffer bounds the GOP kept while skipping to a start position.
const maxSkipBuffer = 32 << 20

// fileSource plays an FLV file (one entry of a VOD playlist) from the
// keyframe at or before a start position.
type fileSource struct {
	body     io.ReadCloser
	r        *Reader
	duration time.Duration
	queue    []*media.Packet // packets to hand out before reading on
	cur      media.Packet
}

// OpenFile reads an FLV file from body (an HTTP response body or a local
// file), starting at the keyframe at or before start. FLV files carry no
// index a reader can rely on, so the file is read from its beginning and the
// part before that keyframe is skipped (codec configuration and metadata are
// kept). ReadPacket returns io.EOF at the end, and an error wrapping
// media.ErrFileEndEarly when the file stops inside a tag.
func OpenFile(body io.ReadCloser, start time.Duration) (media.FileSource, error) {
	s := &fileSource{body: body, r: NewReader(body)}
	hdr, err := s.r.ReadHeader()
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("flv file: %w", endEarly(err))
	}
	if err := s.skipTo(start, hdr.HasVideo); err != nil {
		body.Close()
		return nil, err
	}
	return s, nil
}

// skipTo reads up to start, keeping configuration, metadata and the GOP
// that contains start. Without video (by the header's flags), playback
// starts at the first frame at or after start.
func (s *fileSource) skipTo(start time.Duration, hasVideo bool) error {
	var config, gop []*media.Packet // gop: from the last keyframe read
	gopBytes := 0
	for {
		p, err := s.r.ReadTag()
		if errors.Is(err, io.EOF) {
			s.queue = config // nothing at or after start: the file ends now
			return nil
		}
		if err != nil {
			return fmt.Errorf("flv file: %w", endEarly(err))
		}
		cp := &media.Packet{Kind: p.Kind, DTS: p.DTS, Body: append([]byte(nil), p.Body...)}
		if p.IsMetadata() || p.IsSequenceHeader() {
			if d := metadataDuration(p); d > 0 {
				s.duration = d
			}
			config = append(config, cp)
			continue
		}
		switch {
		case !hasVideo && p.DTS >= start:
			s.queue = append(config, cp)
			return nil
		case p.IsVideoKeyframe() && p.DTS == start:
			s.queue = append(config, cp)
			return nil
		case p.IsVideoKeyframe() && p.DTS > start:
			s.queue = append(append(config, gop...), cp)
			return nil
		case p.IsVideoKeyframe():
			gop, gopBytes = append(gop[:0], cp), len(cp.Body)
		case gop != nil:
			gop = append(gop, cp)
			gopBytes += len(cp.Body)
			if gopBytes > maxSkipBuffer {
				gop, gopBytes = nil, 0 // a GOP this long: start at the next keyframe
			}
		}
	}
}

func (s *fileSource) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(s.queue) > 0 {
		p := s.queue[0]
		s.queue = s.queue[1:]
		return p, nil
	}
	p, err := s.r.ReadTag()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("flv file: %w", endEarly(err))
	}
	return p, nil
}

func (s *fileSource) Duration() time.Duration { return s.duration }
func (s *fileSource) Close() error            { return s.body.Close() }

// endEarly marks a file cut inside a header or a tag as ended early.
func endEarly(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", media.ErrFileEndEarly, err)
	}
	return err
}

// metadataDuration reads "duration" (seconds) from an onMetaData packet.
func metadataDuration(p *media.Packet) time.Duration {
	if !p.IsMetadata() {
		return 0
	}
	data, err := amf0.Unmarshal(p.Body)
	if err != nil {
		return 0
	}
	for _, item := range data {
		var v any
		var ok bool
		switch m := item.(type) {
		case amf0.ECMAArray:
			v, ok = amf0.Object(m).Get("duration")
		case amf0.Object:
			v, ok = m.Get("duration")
		}
		if f, isNum := v.(float64); ok && isNum && f > 0 && f < 1e9 {
			return time.Duration(f * float64(time.Second))
		}
	}
	return 0
}
