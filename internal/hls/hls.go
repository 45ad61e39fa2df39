// Package hls reads a live HLS stream (MPEG-TS or fMP4 segments) with
// gohlslib and yields it as FLV tag bodies: H.264 (and H.265, as enhanced
// RTMP "hvc1") video and AAC audio, with their sequence headers, in DTS
// order across the two tracks.
package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/redact"
)

// Options tune a source. The zero value is usable.
type Options struct {
	// DialContext opens every TCP connection (playlists, segments,
	// redirects); nil means a net.Dialer. Give it a netguard.Guard's
	// DialContext: no proxy is ever used, so the dialer sees every address.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// ReadTimeout is the longest ReadPacket waits for a packet: a playlist
	// that stops growing, or a server that stops answering, fails the
	// source after it. Default 10s.
	ReadTimeout time.Duration
	// Logger receives downloads (debug) and decode errors (warn); nil
	// means slog.Default(). URLs in it are redacted.
	Logger *slog.Logger
}

const (
	defaultReadTimeout = 10 * time.Second
	// mergeWait bounds how long a packet waits for the other track.
	mergeWait = time.Second
	// mergeLen bounds the packets held by the merge.
	mergeLen = 512
	// inboxSize is the channel between gohlslib's goroutines and ReadPacket.
	inboxSize = 64
	// decodeLogEvery rate-limits decode error logs.
	decodeLogEvery = 10 * time.Second
	maxRedirects   = 5
	// startDistance is where gohlslib starts, in segments from the live
	// edge (its default); a playlist must list that many to start.
	startDistance = 3
)

// ErrEndOfStream is returned (wrapped) when the playlist ends
// (EXT-X-ENDLIST) and every segment was played.
var ErrEndOfStream = gohlslib.ErrClientEOS

// Open starts reading the live HLS stream at rawURL (a multivariant or a
// media playlist) and returns it as a Source once its tracks are known.
// gohlslib starts three segments from the live edge and releases samples at
// their real-time pace.
//
// ctx bounds and cancels the setup only; the Source outlives it. Errors name
// the URL redacted (redact.URL), never its credentials.
func Open(ctx context.Context, rawURL string, opt Options) (media.Source, error) {
	what := "hls " + redact.URL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: invalid URL: %v", what, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%s: unsupported scheme %q (want http or https)", what, u.Scheme)
	}
	if opt.ReadTimeout <= 0 {
		opt.ReadTimeout = defaultReadTimeout
	}
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}

	httpClient := newHTTPClient(opt.DialContext, opt.ReadTimeout)
	s := &source{
		what:    what,
		rawURL:  rawURL,
		timeout: opt.ReadTimeout,
		log:     log.With("source", redact.URL(rawURL)),
		http:    httpClient,
		inbox:   make(chan item, inboxSize),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		m:       merger{maxWait: mergeWait, maxLen: mergeLen},
	}
	tracksSet := make(chan error, 1)
	s.client = &gohlslib.Client{
		URI:           rawURL,
		StartDistance: startDistance,
		HTTPClient:    httpClient,
		OnRequest: func(r *http.Request) {
			r.Header.Set("User-Agent", "liverelay")
		},
		OnTracks: func(tracks []*gohlslib.Track) error {
			err := s.setTracks(tracks)
			tracksSet <- err
			return err
		},
		OnDownloadPrimaryPlaylist: func(u string) { s.log.Debug("hls: download playlist", "url", redact.URL(u)) },
		OnDownloadStreamPlaylist:  func(u string) { s.log.Debug("hls: download media playlist", "url", redact.URL(u)) },
		OnDownloadSegment:         func(u string) { s.log.Debug("hls: download segment", "url", redact.URL(u)) },
		OnDownloadPart:            func(u string) { s.log.Debug("hls: download part", "url", redact.URL(u)) },
		OnDecodeError:             s.onDecodeError,
	}
	if err := s.client.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, s.scrub(err))
	}
	go func() {
		s.clientErr = s.client.Wait2()
		close(s.done)
	}()

	select {
	case err := <-tracksSet:
		if err == nil {
			return s, nil
		}
		s.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	case <-s.done:
		s.Close()
		return nil, fmt.Errorf("%s: %w", what, s.scrub(s.clientErr))
	case <-ctx.Done():
		s.Close()
		return nil, fmt.Errorf("%s: %w (no playable playlist yet)", what, ctx.Err())
	}
}

// newHTTPClient returns a client that dials only with dial and never through
// a proxy: a proxy would reach the target unchecked by the dialer. Cookies
// are kept, as players do: some CDNs set them on the playlist. Playlist
// reloads wait at the live edge (see liveEdge) for at most hold.
func newHTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), hold time.Duration) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar: jar,
		Transport: newLiveEdge(&http.Transport{
			Proxy:                 nil,
			DialContext:           dial,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 15 * time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       30 * time.Second,
		}, startDistance, hold),
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			return nil
		},
	}
}

// source is a live HLS stream as a media.Source.
type source struct {
	what    string
	rawURL  string
	timeout time.Duration
	log     *slog.Logger
	http    *http.Client
	client  *gohlslib.Client

	// inbox carries converted packets from gohlslib's track goroutines.
	inbox   chan item
	closing chan struct{} // closed by Close: senders stop
	done    chan struct{} // closed when the client has stopped
	// clientErr is why the client stopped; read after done is closed.
	clientErr error

	m   merger // owned by ReadPacket
	pkt media.Packet
	err error // sticky

	lastDecodeLog atomic.Int64 // unix nanoseconds
	decodeErrors  atomic.Int64
	// sent counts the packets with a body put in the inbox; tests compare
	// it with what ReadPacket returned.
	sent atomic.Int64

	closeOnce sync.Once
}

// setTracks picks the first H.264/H.265 video track and the first AAC
// track, and subscribes to them. It is called by gohlslib once, before any
// data. A stream whose video or audio is in another codec is refused,
// naming the codec, rather than relayed without it.
func (s *source) setTracks(tracks []*gohlslib.Track) error {
	var video, audio *gohlslib.Track
	var unsupported []string
	for _, t := range tracks {
		switch c := t.Codec.(type) {
		case *codecs.H264, *codecs.H265:
			if video == nil {
				video = t
			}
		case *codecs.MPEG4Audio:
			if audio == nil {
				audio = t
			}
		case *codecs.KLV:
			// metadata, not media
		default:
			unsupported = append(unsupported, codecName(c))
		}
	}
	if len(unsupported) > 0 && (video == nil || audio == nil) {
		return fmt.Errorf("unsupported codec %s (supported: H264, H265, AAC)", strings.Join(unsupported, ", "))
	}
	if video == nil && audio == nil {
		return errors.New("no video or audio track")
	}
	for _, t := range tracks {
		if t.ClockRate <= 0 {
			return fmt.Errorf("track %s: invalid clock rate %d", codecName(t.Codec), t.ClockRate)
		}
	}

	if video != nil {
		var conv *videoConverter
		switch c := video.Codec.(type) {
		case *codecs.H264:
			conv = newVideoConverter(video.ClockRate, false, nil, c.SPS, c.PPS)
		case *codecs.H265:
			conv = newVideoConverter(video.ClockRate, true, c.VPS, c.SPS, c.PPS)
		}
		s.m.active[trackVideo] = true
		s.client.OnDataH26x(video, func(pts, dts int64, au [][]byte) {
			outs, err := conv.convert(pts, dts, au)
			if err != nil {
				s.onDecodeError(err)
				return
			}
			s.send(trackVideo, outs)
		})
	}
	if audio != nil {
		conv, err := newAudioConverter(audio.ClockRate, audio.Codec.(*codecs.MPEG4Audio).Config)
		if err != nil {
			return err
		}
		s.m.active[trackAudio] = true
		s.client.OnDataMPEG4Audio(audio, func(pts int64, aus [][]byte) {
			s.send(trackAudio, conv.convert(pts, aus))
		})
	}
	return nil
}

func codecName(c codecs.Codec) string {
	switch c.(type) {
	case *codecs.H264:
		return "H264"
	case *codecs.H265:
		return "H265"
	case *codecs.MPEG4Audio:
		return "AAC"
	case *codecs.AV1:
		return "AV1"
	case *codecs.VP9:
		return "VP9"
	case *codecs.Opus:
		return "Opus"
	case *codecs.FLAC:
		return "FLAC"
	case *codecs.KLV:
		return "KLV"
	}
	return fmt.Sprintf("%T", c)
}

// send hands converted packets to ReadPacket. It blocks while the inbox is
// full, which paces gohlslib, and gives up when the source is closed.
func (s *source) send(track int, outs []out) {
	now := time.Now()
	for _, o := range outs {
		select {
		case s.inbox <- item{track: track, out: o, arrive: now}:
			if o.pkt.Body != nil {
				s.sent.Add(1)
			}
		case <-s.closing:
			return
		}
	}
}

// onDecodeError logs a damaged sample or packet, at most once per
// decodeLogEvery with the count in between: a broken stream must not flood
// the log. gohlslib skips the data and goes on.
func (s *source) onDecodeError(err error) {
	n := s.decodeErrors.Add(1)
	now := time.Now().UnixNano()
	last := s.lastDecodeLog.Load()
	if now-last < int64(decodeLogEvery) || !s.lastDecodeLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("hls: decode error", "err", redact.Text(err.Error(), s.rawURL), "errors_so_far", n)
}

// ReadPacket returns the next packet in DTS order. It fails when no packet
// comes for ReadTimeout, when the stream ends (wrapping ErrEndOfStream) or
// fails, or when ctx ends. The packets converted before the stream ended
// or failed are all returned first. Errors are sticky.
func (s *source) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if s.err != nil {
		return nil, s.err
	}
	noMedia := time.NewTimer(s.timeout)
	defer noMedia.Stop()
	merge := time.NewTimer(time.Hour)
	defer merge.Stop()
	for {
		now := time.Now()
		if p, ok := s.m.pop(now); ok {
			s.pkt = p
			return &s.pkt, nil
		}
		if s.m.finished {
			return nil, s.fail(s.endError())
		}
		mergeC := (<-chan time.Time)(nil)
		if dl, ok := s.m.deadline(); ok {
			merge.Reset(dl.Sub(now))
			mergeC = merge.C
		}
		select {
		case it := <-s.inbox:
			s.m.push(it.track, it.out, it.arrive)
		case <-mergeC:
		case <-noMedia.C:
			return nil, s.fail(fmt.Errorf("no media for %v", s.timeout))
		case <-s.done:
			// gohlslib has stopped, its goroutines with it: what the inbox
			// holds is all that will come. It goes out, and what the merge
			// holds, before the reason.
			for len(s.inbox) > 0 {
				it := <-s.inbox
				s.m.push(it.track, it.out, it.arrive)
			}
			s.m.finish()
		case <-s.closing:
			return nil, s.fail(net.ErrClosed)
		case <-ctx.Done():
			return nil, s.fail(ctx.Err())
		}
	}
}

// Buffered reports whether ReadPacket has a packet to return without
// waiting (the relay's reader batches what is buffered). It moves what the
// inbox holds into the merge first, so it is called from the goroutine that
// calls ReadPacket.
func (s *source) Buffered() bool {
	if s.err != nil {
		return false
	}
	for drained := false; !drained; {
		select {
		case it := <-s.inbox:
			s.m.push(it.track, it.out, it.arrive)
		default:
			drained = true
		}
	}
	return s.m.canPop(time.Now())
}

// endError says why the client stopped; called once it has.
func (s *source) endError() error {
	err := s.scrub(s.clientErr)
	switch {
	case errors.Is(err, gohlslib.ErrClientEOS):
		err = fmt.Errorf("the playlist ended: %w", err)
	case strings.Contains(err.Error(), "next segment not found"):
		// liveEdge held the reload for ReadTimeout in vain.
		err = fmt.Errorf("the playlist stopped growing: no new segment for %v (%w)", s.timeout, err)
	}
	return err
}

func (s *source) fail(err error) error {
	s.err = fmt.Errorf("%s: %w", s.what, err)
	return s.err
}

// scrub removes URLs from gohlslib's errors: net/http puts the whole URL of
// a playlist or segment, credentials included, in its *url.Error.
func (s *source) scrub(err error) error {
	if err == nil {
		return errors.New("stopped")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, redact.URL(ue.URL), ue.Err)
	}
	if msg := redact.Text(err.Error(), s.rawURL); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// Close stops the client and its downloads. It may be called from any
// goroutine; a blocked ReadPacket returns.
func (s *source) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.client.Close()
		s.http.CloseIdleConnections()
	})
	return nil
}
