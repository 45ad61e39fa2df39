// Package source opens a live source by its URL: RTMP(S) play, HTTP-FLV or
// HLS, the last two told apart by the path's extension or, when the URL does
// not say, by the server's answer. Every connection goes through the
// Guard's dialer.
package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/liverelay/liverelay/internal/flv"
	"github.com/liverelay/liverelay/internal/hls"
	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/netguard"
	"github.com/liverelay/liverelay/internal/redact"
	"github.com/liverelay/liverelay/internal/rtmp"
)

// Options tune Open. The zero value is usable (but unguarded).
type Options struct {
	// Guard checks every address dialled, redirects included; nil means a
	// plain dialer (tests, trusted setups).
	Guard *netguard.Guard
	// ReadTimeout is how long a source may deliver nothing before
	// ReadPacket fails; 0 means each protocol's default (10s).
	ReadTimeout time.Duration
	// DialTimeout bounds the whole of Open (connect, handshake, first
	// answer), in addition to ctx; 0 means ctx alone.
	DialTimeout time.Duration
	// Logger receives what protocols log (HLS downloads and decode
	// errors); nil means slog.Default().
	Logger *slog.Logger
}

// Schemes returns the URL schemes Open supports for live sources.
func Schemes() []string { return []string{"rtmp", "rtmps", "http", "https"} }

// Open opens the live source at rawURL:
//   - rtmp, rtmps: RTMP play;
//   - http, https with a path ending in .flv: HTTP-FLV; in .m3u8: HLS;
//   - other http, https: one GET, and the answer decides: Content-Type
//     video/x-flv or a body starting with the FLV signature is HTTP-FLV
//     (read from that response), an HLS Content-Type or a body starting with
//     #EXTM3U is HLS; anything else is an error naming the Content-Type.
//
// ctx bounds and cancels the opening only; the Source outlives it. Errors
// name the URL redacted (redact.URL), never its credentials.
func Open(ctx context.Context, rawURL string, opt Options) (media.Source, error) {
	what := "source " + redact.URL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: invalid URL: %v", what, err)
	}
	if opt.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opt.DialTimeout)
		defer cancel()
	}
	dial := (&net.Dialer{}).DialContext
	if opt.Guard != nil {
		dial = opt.Guard.DialContext
	}

	switch strings.ToLower(u.Scheme) {
	case "rtmp", "rtmps":
		c, err := rtmp.Play(ctx, rawURL, rtmp.Options{DialContext: dial, ReadTimeout: opt.ReadTimeout})
		if err != nil {
			return nil, err // never a typed nil in the interface
		}
		return c, nil
	case "http", "https":
	default:
		return nil, fmt.Errorf("%s: unsupported scheme %q (supported for live sources: %s)", what, u.Scheme, strings.Join(Schemes(), ", "))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: URL has no host", what)
	}
	path := strings.ToLower(u.Path)
	switch {
	case strings.HasSuffix(path, ".flv"):
		return flv.OpenHTTP(ctx, rawURL, flv.HTTPOptions{DialContext: dial, ReadTimeout: opt.ReadTimeout})
	case strings.HasSuffix(path, ".m3u8"):
		return openHLS(ctx, rawURL, dial, opt)
	}
	return sniff(ctx, u, rawURL, what, dial, opt)
}

func openHLS(ctx context.Context, rawURL string, dial func(context.Context, string, string) (net.Conn, error), opt Options) (media.Source, error) {
	return hls.Open(ctx, rawURL, hls.Options{DialContext: dial, ReadTimeout: opt.ReadTimeout, Logger: opt.Logger})
}

// streamType is what a response turned out to carry.
type streamType int

const (
	unknownType streamType = iota
	flvType
	hlsType
)

// byContentType reads the media type of a Content-Type header.
func byContentType(mediaType string) streamType {
	switch mediaType {
	case "video/x-flv", "video/flv":
		return flvType
	case "application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl":
		return hlsType
	}
	return unknownType
}

// byBody reads the first bytes of a body: the FLV signature, or #EXTM3U
// after an optional byte order mark.
func byBody(head []byte) streamType {
	switch {
	case bytes.HasPrefix(head, []byte("FLV")):
		return flvType
	case bytes.HasPrefix(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), []byte("#EXTM3U")):
		return hlsType
	}
	return unknownType
}

// sniff makes one GET and decides from the answer. An FLV stream is read
// from that very response; an HLS playlist is left to gohlslib, which loads
// it again.
func sniff(ctx context.Context, u *url.URL, rawURL, what string, dial func(context.Context, string, string) (net.Conn, error), opt Options) (media.Source, error) {
	// As in flv.OpenHTTP: the response body must outlive ctx.
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
	resp, err := newHTTPClient(dial).Do(req)
	if err != nil {
		return fail(flv.StripURLError(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fail(fmt.Errorf("HTTP status %s", resp.Status))
	}

	contentType := resp.Header.Get("Content-Type")
	mediaType, _, _ := mime.ParseMediaType(contentType)
	br := bufio.NewReaderSize(resp.Body, 32<<10)
	typ := byContentType(strings.ToLower(mediaType))
	if typ == unknownType {
		// Three bytes tell FLV: a live server may send its header and then
		// wait for a keyframe. A playlist is read whole anyway.
		head, _ := br.Peek(3)
		if typ = byBody(head); typ == unknownType {
			head, _ = br.Peek(10)
			typ = byBody(head)
		}
	}

	switch typ {
	case flvType:
		body := &readCloser{Reader: br, close: func() error { cancel(); return resp.Body.Close() }}
		src, err := flv.NewLiveSource(body, "http-flv "+redact.URL(rawURL), opt.ReadTimeout)
		if err != nil {
			return fail(err)
		}
		if !stop() {
			src.Close()
			return fail(errors.New("setup cancelled"))
		}
		return src, nil
	case hlsType:
		resp.Body.Close()
		stop()
		cancel()
		return openHLS(ctx, rawURL, dial, opt)
	}
	resp.Body.Close()
	if contentType == "" {
		contentType = "missing"
	}
	return fail(fmt.Errorf("cannot tell the stream type: Content-Type %s", contentType))
}

// readCloser reads through a buffer and closes the response under it,
// cancelling the request first so that a blocked read returns at once.
type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// newHTTPClient returns a client that dials only with dial and never through
// a proxy: a proxy would reach the target unchecked by the dialer.
func newHTTPClient(dial func(context.Context, string, string) (net.Conn, error)) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dial,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			DisableKeepAlives:   true,
		},
		CheckRedirect: func(_ *http.Request, via []*http.Request) error {
			if len(via) > 5 {
				return errors.New("more than 5 redirects")
			}
			return nil
		},
	}
}
