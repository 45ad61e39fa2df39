package flv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/redact"
)

// HTTPOptions tune an HTTP-FLV source. The zero value is usable.
type HTTPOptions struct {
	// DialContext opens the TCP connections (the first and those of
	// redirects); nil means a net.Dialer. Give it a netguard.Guard's
	// DialContext: no proxy is ever used, so the dialer sees every address.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// ReadTimeout is the longest ReadPacket waits for a packet (and the
	// longest OpenHTTP waits for the FLV header once the response has
	// started). Default 10s.
	ReadTimeout time.Duration
}

const (
	defaultReadTimeout = 10 * time.Second
	// maxRedirects bounds the redirects followed to reach a stream.
	maxRedirects = 5
)

// OpenHTTP requests an HTTP-FLV live stream and returns it as a Source once
// the server has answered 200 and the body has started with an FLV header.
//
// ctx bounds and cancels the setup only; the Source outlives it. Errors name
// the URL redacted (redact.URL), never its credentials.
func OpenHTTP(ctx context.Context, rawURL string, opt HTTPOptions) (media.Source, error) {
	what := "http-flv " + redact.URL(rawURL)
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

	// The response body must outlive ctx: the request gets a context of its
	// own, cancelled by ctx only until the setup is over, and by Close.
	reqCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, cancel)
	fail := func(err error) (media.Source, error) {
		cancel()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}

	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail(errors.New("invalid request"))
	}
	req.Header.Set("User-Agent", "liverelay")
	resp, err := newHTTPClient(opt.DialContext).Do(req)
	if err != nil {
		return fail(StripURLError(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fail(fmt.Errorf("HTTP status %s", resp.Status))
	}
	src, err := NewLiveSource(&cancelBody{ReadCloser: resp.Body, cancel: cancel}, what, opt.ReadTimeout)
	if err != nil {
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			err = fmt.Errorf("%w (Content-Type %s)", err, ct)
		}
		return fail(err)
	}
	if !stop() {
		src.Close()
		return fail(errors.New("setup cancelled"))
	}
	return src, nil
}

// StripURLError returns the reason inside a *url.Error, which net/http
// returns with the whole URL, credentials included, in its message.
func StripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// newHTTPClient returns a client that dials only with dial and never through
// a proxy: a proxy would reach the target unchecked by the dialer.
func newHTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dial,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			// One long response per source: nothing to keep alive.
			DisableKeepAlives: true,
		},
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			return nil
		},
	}
}

// cancelBody cancels the request's context when the body is closed, first:
// that closes the connection, so a Read blocked in another goroutine
// returns and Close does not wait for it.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	b.cancel()
	return b.ReadCloser.Close()
}

// NewLiveSource reads a live FLV stream from body, which it owns: it reads
// the FLV header now (waiting at most readTimeout, default 10s) and returns
// a Source whose ReadPacket fails when no packet arrives for readTimeout.
// name prefixes every error (e.g. "http-flv " + a redacted URL).
//
// The Source passes on audio and video tags with a body and onMetaData data
// tags; their DTS is the tag timestamp unwrapped past 2^32 ms.
func NewLiveSource(body io.ReadCloser, name string, readTimeout time.Duration) (media.Source, error) {
	if readTimeout <= 0 {
		readTimeout = defaultReadTimeout
	}
	s := &liveSource{what: name, body: body, r: NewReader(body), timeout: readTimeout}
	s.timer = time.AfterFunc(readTimeout, func() {
		s.timedOut.Store(true)
		s.body.Close()
	})
	_, err := s.r.ReadHeader()
	if !s.timer.Stop() || err != nil {
		s.body.Close()
		if s.timedOut.Load() {
			return nil, fmt.Errorf("no FLV header within %v", readTimeout)
		}
		return nil, err
	}
	return s, nil
}

// liveSource is a media.Source over a live FLV byte stream.
type liveSource struct {
	what    string
	body    io.ReadCloser
	r       *Reader
	timeout time.Duration
	// timer closes the body when a read waits longer than timeout: closing
	// is the one way to interrupt a blocked read of any io.ReadCloser.
	timer    *time.Timer
	timedOut atomic.Bool
	closed   atomic.Bool

	haveTS bool
	lastTS int64 // last audio/video timestamp, ms, unwrapped
	err    error // sticky

	closeOnce sync.Once
	closeErr  error
}

// ReadPacket returns the next packet. Cancelling ctx closes the stream.
// Errors are sticky.
func (s *liveSource) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if s.err != nil {
		return nil, s.err
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { s.body.Close() })
		defer stop()
	}
	s.timer.Reset(s.timeout)
	defer s.timer.Stop()
	for {
		p, err := s.r.ReadTag()
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		switch p.Kind {
		case media.KindData:
			if !isOnMetaData(p.Body) {
				continue
			}
		default:
			if len(p.Body) == 0 {
				continue // some servers send empty tags; they carry nothing
			}
			if isEndOfSequence(p) {
				// The end of this source is not the end of the relayed
				// stream, which goes on with the next source.
				continue
			}
		}
		p.DTS = time.Duration(s.unwrap(p.Kind, uint32(p.DTS/time.Millisecond))) * time.Millisecond
		return p, nil
	}
}

// Buffered reports whether a tag may be read without waiting for the
// network (see Reader.Buffered).
func (s *liveSource) Buffered() bool { return s.err == nil && s.r.Buffered() }

func (s *liveSource) fail(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case s.timedOut.Load():
		err = fmt.Errorf("no media for %v", s.timeout)
	case s.closed.Load():
		err = net.ErrClosed
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("the server ended the stream: %w", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("the stream was cut in the middle of a tag: %w", err)
	}
	s.err = fmt.Errorf("%s: %w", s.what, err)
	return s.err
}

// unwrap reads a 32-bit timestamp as the value nearest to the last audio or
// video one (serial number arithmetic), so the clock keeps growing past
// 2^32 ms. Metadata does not move the reference: servers stamp it 0.
func (s *liveSource) unwrap(kind media.Kind, ts uint32) int64 {
	if !s.haveTS {
		if kind != media.KindData {
			s.haveTS, s.lastTS = true, int64(ts)
		}
		return int64(ts)
	}
	v := s.lastTS + int64(int32(ts-uint32(s.lastTS)))
	if kind != media.KindData {
		s.lastTS = v
	}
	return v
}

// Close closes the stream; a blocked ReadPacket returns.
func (s *liveSource) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.timer.Stop()
		s.closeErr = s.body.Close()
	})
	return s.closeErr
}

// isEndOfSequence reports an AVC/HEVC end-of-sequence video tag (legacy
// packet type 2, or enhanced-RTMP SequenceEnd).
func isEndOfSequence(p *media.Packet) bool {
	if p.Kind != media.KindVideo || len(p.Body) < 2 {
		return false
	}
	if p.Body[0]&0x80 != 0 {
		return p.Body[0]&0x0f == 2
	}
	codec := p.Body[0] & 0x0f
	return (codec == media.CodecIDH264 || codec == media.CodecIDH265) && p.Body[1] == 2
}

// onMetaData as an AMF0 string: marker, 16-bit length, bytes.
var onMetaData = []byte("\x02\x00\x0aonMetaData")

func isOnMetaData(body []byte) bool {
	return len(body) >= len(onMetaData) && string(body[:len(onMetaData)]) == string(onMetaData)
}
