package files

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/liverelay/liverelay/internal/hls"
	"github.com/liverelay/liverelay/internal/media"
)

// hlsFile plays an HLS VOD playlist (#EXT-X-ENDLIST) as one playlist entry:
// the end of the playlist is the end of the file. Playback starts at the
// first keyframe at or after start (segments are read in order; the
// keyframe before start would mean reading its whole segment again).
type hlsFile struct {
	src   media.Source
	start time.Duration
	base  time.Duration
	begun bool
}

func (o *Opener) openHLS(ctx context.Context, rawURL string, start time.Duration) (media.FileSource, error) {
	src, err := hls.Open(ctx, rawURL, hls.Options{DialContext: o.DialContext})
	if err != nil {
		return nil, err
	}
	return &hlsFile{src: src, start: start}, nil
}

func (f *hlsFile) ReadPacket(ctx context.Context) (*media.Packet, error) {
	for {
		p, err := f.src.ReadPacket(ctx)
		if errors.Is(err, hls.ErrEndOfStream) {
			return nil, io.EOF
		}
		if err != nil {
			return nil, err
		}
		if f.begun || p.IsSequenceHeader() || p.IsMetadata() {
			return p, nil
		}
		// The stream's clock starts wherever the encoder put it: positions
		// count from its first frame.
		if f.base == 0 {
			f.base = p.DTS
		}
		if p.IsVideoKeyframe() && p.DTS-f.base >= f.start {
			f.begun = true
			return p, nil
		}
	}
}

// Duration is not known without summing the playlist; 0 says so.
func (f *hlsFile) Duration() time.Duration { return 0 }
func (f *hlsFile) Close() error            { return f.src.Close() }
