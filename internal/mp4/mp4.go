// Package mp4 plays an MP4 file (moov at the start or at the end) as a
// media.FileSource: the codec configurations first, then the samples of its
// first H.264/H.265 track and its first AAC track, interleaved in decode
// order, as FLV tag bodies. Files are read over HTTP(S) with range requests
// (internal/httprange), never downloaded whole, or from a local file.
//
// mp4ff decodes the moov; the top-level walk to find it, the sample tables'
// cursors and the codec configuration records are ours (see DESIGN.md for
// why: mp4ff's sample reader panics past the first sample, and its record
// decoders refuse NALU lengths other than 4 bytes).
//
// # Timestamps
//
// Each track's decode times come from stts in ticks of its timescale, and
// stay integers until they become milliseconds, rounded to the nearest (a
// monotonic function: a track's timestamps never go backwards). The edit
// list places each track on the file's presentation timeline: leading
// empty edits delay the track, and the first edit's media time m is shown
// at 0, so PTS = DTS + CTO - m (+ delay). Decode times may therefore start
// slightly below 0 (B-frame delay, AAC priming), exactly as ffprobe reports
// them; the composition time in each video tag is PTS - DTS, each rounded
// to the millisecond first. Later edits (cuts) are not applied.
//
// # Start offset
//
// Playback starts at the video keyframe whose presentation time is at or
// before start (the first keyframe if start is before it), and audio at
// its first frame decoded at or after that keyframe; from start 0, audio
// starts at its first frame, even if the video starts later. Timestamps
// stay those of the file: the first packets of a file opened at 3.5 s carry
// about 3 s. A start at or beyond Duration gives io.EOF at the first
// ReadPacket, with no packet at all, as a file played to its end would: the
// playlist moves on.
//
// # Memory
//
// Bounded by the file's moov (its sample tables, kept as the moov codes
// them, never expanded into a struct per sample: 4 bytes a sample for stsz,
// 8 a video sample for ctts with B-frames, a few bytes a chunk) plus one
// read-ahead window of 512 KiB per track and the current sample. Nothing
// else grows with the length of the file.
package mp4

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liverelay/liverelay/internal/httprange"
	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/redact"
)

// Options configure Open.
type Options struct {
	// Client fetches http(s) URLs. It must dial through the network guard
	// (netguard.Guard.DialContext, with a nil Transport.Proxy); the caller
	// builds it. nil means a client with a plain dialer and no proxy.
	Client *http.Client
	// AllowFile decides whether a file:// path may be read: it returns an
	// error when the path is not under an allowed root. It receives the
	// file's real path (absolute, symbolic links resolved, so that a link
	// cannot lead out of a root): compare it with the roots' real paths.
	// nil refuses every file:// URL.
	AllowFile func(path string) error
}

// Errors of Open and ReadPacket, besides media.ErrFileEndEarly and io.EOF.
var (
	// ErrUnsupportedCodec matches every *UnsupportedCodecError.
	ErrUnsupportedCodec = errors.New("unsupported codec")
	// ErrCorrupt: the file is not a well-formed MP4.
	ErrCorrupt = errors.New("corrupt MP4")
	// ErrClosed: ReadPacket after Close.
	ErrClosed = errors.New("mp4: source closed")
)

// UnsupportedCodecError names the codec of a track that cannot be played
// (no supported track of that kind in the file).
type UnsupportedCodecError struct {
	Codec string // "ac3", "av1", "mp3", ...
}

func (e *UnsupportedCodecError) Error() string { return "unsupported codec " + e.Codec }

// Is makes errors.Is(err, ErrUnsupportedCodec) true.
func (e *UnsupportedCodecError) Is(target error) bool { return target == ErrUnsupportedCodec }

// defaultClient serves callers that pass no client (tests, tools).
var defaultClient = &http.Client{Transport: &http.Transport{
	Proxy:                 nil,
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	ForceAttemptHTTP2:     true,
	MaxIdleConnsPerHost:   4,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: 15 * time.Second,
}}

// Open opens the MP4 file at rawURL (http, https or file) and positions it
// at start (see the package documentation). It reads the file's header and
// moov, with ctx bounding that work only; errors name the URL redacted.
// HTTP servers must support range requests.
func Open(ctx context.Context, rawURL string, start time.Duration, opt Options) (media.FileSource, error) {
	redacted := redact.URL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("mp4: %s: invalid URL", redacted)
	}
	var src byteSource
	var head []byte
	switch u.Scheme {
	case "http", "https":
		client := opt.Client
		if client == nil {
			client = defaultClient
		}
		hr, h, err := httprange.Open(ctx, client, rawURL, headSize, 0)
		if err != nil {
			return nil, fmt.Errorf("mp4: %w", err)
		}
		src, head = hr, h
	case "file":
		src, err = openFile(u, opt.AllowFile)
		if err != nil {
			return nil, fmt.Errorf("mp4: %s: %w", redacted, err)
		}
	default:
		return nil, fmt.Errorf("mp4: %s: scheme %q not supported", redacted, u.Scheme)
	}
	s, err := newSource(ctx, src, head, start)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("mp4: %s: %w", redacted, err)
	}
	return s, nil
}

func openFile(u *url.URL, allow func(string) error) (byteSource, error) {
	if allow == nil {
		return nil, errors.New("file:// URLs are not allowed")
	}
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !filepath.IsAbs(u.Path) {
		return nil, errors.New("a file URL needs an absolute path: file:///path/to/file.mp4")
	}
	path, err := filepath.EvalSymlinks(filepath.Clean(u.Path))
	if err != nil {
		return nil, err
	}
	if err := allow(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, errors.New("not a regular file")
	}
	return &readerAtSource{ra: f, size: st.Size(), close: f.Close}, nil
}

// openReaderAt plays size bytes of ra: Open without the transport, for
// tests and fuzzing.
func openReaderAt(ctx context.Context, ra io.ReaderAt, size int64, start time.Duration) (*source, error) {
	return newSource(ctx, &readerAtSource{ra: ra, size: size}, nil, start)
}

// source is the media.FileSource of one open file.
type source struct {
	src      byteSource
	reader   *windowReader
	tracks   []*track // video first
	duration time.Duration

	startMs     int64 // DTS of the sequence headers
	headersSent int
	eof         bool

	pkt     media.Packet
	body    []byte // reused: a packet is valid until the next ReadPacket
	scratch []byte

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

func newSource(ctx context.Context, src byteSource, head []byte, start time.Duration) (*source, error) {
	r := newWindowReader(src, head)
	moov, err := findMoov(ctx, r)
	if err != nil {
		return nil, err
	}
	r.release(scanSlot)
	records := prepareMoov(moov)
	m, err := decodeMoov(moov)
	if err != nil {
		return nil, err
	}
	tracks, err := buildTracks(m, records)
	if err != nil {
		return nil, err
	}
	s := &source{src: src, reader: r, tracks: tracks}
	for _, t := range tracks {
		s.duration = max(s.duration, t.duration)
	}
	if s.duration == 0 && m.Mvhd.Duration != 0 && m.Mvhd.Duration < tickLimit(m.Mvhd.Timescale) {
		s.duration = ticksToDuration(int64(m.Mvhd.Duration), m.Mvhd.Timescale)
	}
	s.seek(start)
	return s, nil
}

// seek positions every track for playing from start.
func (s *source) seek(start time.Duration) {
	start = max(start, 0)
	if s.duration > 0 && start >= s.duration {
		s.eof = true
		return
	}
	lead := s.tracks[0]
	if lead.kind == media.KindVideo {
		lead.cur = lead.table.cursorAt(keyframeAt(lead, start))
	} else {
		n := lead.table.firstAtOrAfter(durationToTicks(start, lead.timescale) - lead.shift + 1)
		lead.cur = lead.table.cursorAt(max(n, 1) - 1)
	}
	if lead.cur.done() {
		s.eof = true
		return
	}
	for _, t := range s.tracks[1:] {
		if start == 0 {
			// The whole file: audio before the first video frame too.
			t.cur = t.table.cursorAt(0)
			continue
		}
		// The first sample at or after the lead's first, rounding the
		// lead's time up into this track's ticks.
		from := -mulDiv(-lead.outDTS(), uint64(t.timescale), uint64(lead.timescale))
		t.cur = t.table.cursorAt(t.table.firstAtOrAfter(from - t.shift))
	}
	s.startMs = ticksToMs(lead.outDTS(), lead.timescale)
	for _, t := range s.tracks[1:] {
		if !t.cur.done() {
			s.startMs = min(s.startMs, ticksToMs(t.outDTS(), t.timescale))
		}
	}
}

// keyframeAt returns the last sync sample presented at or before start, or
// the first sync sample.
func keyframeAt(t *track, start time.Duration) uint32 {
	tab := t.table
	at := durationToTicks(start, t.timescale) // on the output timeline
	// A frame is decoded before it is presented: look back from the last
	// frame decoded by start.
	n := max(tab.firstAtOrAfter(at-t.shift+1), 1) - 1
	k, ok := tab.syncAtOrBefore(n)
	if !ok {
		return tab.firstSync()
	}
	for {
		c := tab.cursorAt(k)
		if c.dts+c.cto()+t.shift <= at || k == 0 {
			return k
		}
		prev, ok := tab.syncAtOrBefore(k - 1)
		if !ok {
			return k
		}
		k = prev
	}
}

// Duration returns the presentation duration of the played tracks.
func (s *source) Duration() time.Duration { return s.duration }

// ReadPacket returns the sequence headers (video, then audio), then the
// samples in decode order, then io.EOF.
func (s *source) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.eof {
		return nil, io.EOF
	}
	if s.headersSent < len(s.tracks) {
		t := s.tracks[s.headersSent]
		s.headersSent++
		s.pkt = media.Packet{Kind: t.kind, DTS: msDuration(s.startMs), Body: t.seqHeader}
		return &s.pkt, nil
	}
	var next *track
	var nextMs int64
	for _, t := range s.tracks {
		if t.cur.done() {
			continue
		}
		if ms := ticksToMs(t.outDTS(), t.timescale); next == nil || ms < nextMs {
			next, nextMs = t, ms
		}
	}
	if next == nil {
		s.eof = true
		return nil, io.EOF
	}
	if err := s.readSample(ctx, next, nextMs); err != nil {
		if s.closed.Load() {
			return nil, ErrClosed
		}
		return nil, err
	}
	next.cur.advance()
	return &s.pkt, nil
}

// readSample makes s.pkt from the sample under t's cursor.
func (s *source) readSample(ctx context.Context, t *track, dtsMs int64) error {
	c := &t.cur
	size := int(c.size())
	if fileSize := uint64(s.reader.size); c.offset > fileSize || uint64(size) > fileSize-c.offset {
		// Before any allocation: the tables may claim anything.
		return fmt.Errorf("%w: sample %d of the %s track (%d bytes at offset %d) lies past the end of the file (%d bytes)",
			media.ErrFileEndEarly, c.n, kindName(t.kind), size, c.offset, fileSize)
	}
	if t.kind == media.KindVideo {
		cts := ticksToMs(t.outDTS()+c.cto(), t.timescale) - dtsMs
		cts = min(max(cts, -1<<23), 1<<23-1) // signed 24 bits
		frameType, codecID := byte(2), byte(media.CodecIDH264)
		if c.isSync() {
			frameType = 1
		}
		if t.codec == codecH265 {
			codecID = media.CodecIDH265
		}
		s.body = append(s.body[:0], frameType<<4|codecID, 1, byte(cts>>16), byte(cts>>8), byte(cts))
	} else {
		s.body = append(s.body[:0], 0xaf, 1) // AAC raw frame
	}
	hdrLen := len(s.body)
	if t.kind == media.KindVideo && t.lengthSize != 4 {
		s.scratch = grow(s.scratch, size)
		if err := s.reader.readAt(ctx, t.slot, s.scratch, c.offset); err != nil {
			return err
		}
		var err error
		if s.body, err = appendLength4(s.body, s.scratch, t.lengthSize); err != nil {
			return err
		}
	} else {
		s.body = grow(s.body, hdrLen+size)
		if err := s.reader.readAt(ctx, t.slot, s.body[hdrLen:], c.offset); err != nil {
			return err
		}
	}
	s.pkt = media.Packet{Kind: t.kind, DTS: msDuration(dtsMs), Body: s.body}
	return nil
}

// Close stops the requests in flight and releases the file.
func (s *source) Close() error {
	s.closed.Store(true)
	s.closeOnce.Do(func() { s.closeErr = s.src.Close() })
	return s.closeErr
}

// appendLength4 appends the NAL units of sample, prefixed with lengthSize
// bytes each, to dst with 4-byte prefixes.
func appendLength4(dst, sample []byte, lengthSize int) ([]byte, error) {
	for len(sample) > 0 {
		if len(sample) < lengthSize {
			return nil, fmt.Errorf("%w: NAL unit length cut short", ErrCorrupt)
		}
		var n int
		for _, b := range sample[:lengthSize] {
			n = n<<8 | int(b)
		}
		sample = sample[lengthSize:]
		if n > len(sample) {
			return nil, fmt.Errorf("%w: NAL unit of %d bytes in %d", ErrCorrupt, n, len(sample))
		}
		dst = append(dst, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
		dst = append(dst, sample[:n]...)
		sample = sample[n:]
	}
	return dst, nil
}

// grow returns b resized to n bytes, reusing its array when it can.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		nb := make([]byte, n)
		copy(nb, b)
		return nb
	}
	return b[:n]
}

func kindName(k media.Kind) string {
	if k == media.KindVideo {
		return "video"
	}
	return "audio"
}
