// Package httprange reads a remote file with HTTP range requests, so that a
// player can jump to the parts it needs (an MP4's moov at the end, a seek
// point) without downloading the whole file.
//
// Every request carries a Range header and asks for the identity encoding.
// A server that answers a range request with the whole body (200) is refused
// rather than downloaded. The first response's validator (a strong ETag, or
// else Last-Modified) goes in If-Range on every later request, so a file
// replaced on the server while it is read is detected (ErrChanged) instead
// of being spliced from two versions.
//
// Errors never contain the URL as given: it may carry credentials. They
// name it redacted (see internal/redact).
package httprange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/liverelay/liverelay/internal/redact"
)

// Errors of a Reader, matched with errors.Is.
var (
	// ErrRangeNotSupported: the server answered a range request with the
	// whole file.
	ErrRangeNotSupported = errors.New("server does not support range requests")
	// ErrChanged: the file changed on the server since it was opened (other
	// size, other validator).
	ErrChanged = errors.New("file changed on the server")
	// ErrClosed: the Reader was closed.
	ErrClosed = errors.New("reader closed")
)

// StatusError is an HTTP response status other than the expected 206.
type StatusError struct {
	Code   int    // 404, 403, 503...
	Status string // as the server sent it: "404 Not Found"
	URL    string // redacted
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("GET %s: %s", e.URL, e.Status)
}

// Defaults of Options.
const (
	DefaultRequestTimeout = 30 * time.Second
	defaultRetries        = 2
)

// retryDelays are the pauses before the retries of a failed range read.
var retryDelays = [defaultRetries]time.Duration{100 * time.Millisecond, 500 * time.Millisecond}

// Reader reads one remote file by ranges. ReadRange may be called from
// several goroutines at once; Close cancels the requests in flight.
type Reader struct {
	client   *http.Client
	url      string // as given: used for requests only, never in errors
	redacted string
	size     int64
	ifRange  string // validator of the first response, or ""
	timeout  time.Duration

	closed context.Context
	close  context.CancelFunc
}

// Open requests the first headLen bytes of rawURL (fewer if the file is
// shorter) and returns a Reader for the file along with those bytes. The
// client must dial only where the caller allows (see internal/netguard);
// nil means http.DefaultClient. requestTimeout bounds each request, its
// body included (0 means DefaultRequestTimeout).
func Open(ctx context.Context, client *http.Client, rawURL string, headLen int, requestTimeout time.Duration) (*Reader, []byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if requestTimeout <= 0 {
		requestTimeout = DefaultRequestTimeout
	}
	if headLen <= 0 {
		headLen = 1
	}
	r := &Reader{client: client, url: rawURL, redacted: redact.URL(rawURL), timeout: requestTimeout}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("httprange: %s: not an http(s) URL", r.redacted)
	}
	r.closed, r.close = context.WithCancel(context.Background())

	head := make([]byte, headLen)
	n, err := r.fetch(ctx, head, 0, true)
	if err != nil {
		r.close()
		return nil, nil, err
	}
	return r, head[:n], nil
}

// Size returns the size of the file in bytes.
func (r *Reader) Size() int64 { return r.size }

// URL returns the file's URL, redacted.
func (r *Reader) URL() string { return r.redacted }

// ReadRange reads len(p) bytes at off, like io.ReaderAt: fewer bytes only
// with an error, io.EOF at the end of the file. A request that fails on
// the way (connection reset, body cut short, 5xx) is tried again twice.
func (r *Reader) ReadRange(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("httprange: negative offset %d", off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := p
	if rest := r.size - off; int64(len(want)) > rest {
		want = want[:rest]
	}
	var err error
	for attempt := 0; ; attempt++ {
		var n int
		n, err = r.fetch(ctx, want, off, false)
		if err == nil {
			if len(want) < len(p) {
				return n, io.EOF
			}
			return n, nil
		}
		if attempt >= defaultRetries || !retryable(err) {
			return n, err
		}
		t := time.NewTimer(retryDelays[attempt])
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, err
		case <-r.closed.Done():
			t.Stop()
			return 0, ErrClosed
		}
	}
}

// Close cancels the requests in flight; later reads fail with ErrClosed.
func (r *Reader) Close() error {
	r.close()
	return nil
}

// fetch does one request for len(p) bytes at off. The first request (open)
// learns the size and the validator; later ones check them.
func (r *Reader) fetch(ctx context.Context, p []byte, off int64, open bool) (int, error) {
	if r.closed.Err() != nil {
		return 0, ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	stop := context.AfterFunc(r.closed, cancel)
	defer stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return 0, fmt.Errorf("httprange: %s: %v", r.redacted, err)
	}
	end := off + int64(len(p)) - 1
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	// Without this the transport asks for gzip and would hand us
	// decompressed bytes at compressed offsets.
	req.Header.Set("Accept-Encoding", "identity")
	if !open && r.ifRange != "" {
		req.Header.Set("If-Range", r.ifRange)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, r.requestError(err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode == http.StatusOK && !open && r.ifRange != "":
		// If-Range did not match: the server sends the new file whole.
		return 0, fmt.Errorf("httprange: %s: %w", r.redacted, ErrChanged)
	case open && (resp.StatusCode == http.StatusRequestedRangeNotSatisfiable ||
		resp.StatusCode == http.StatusOK && resp.ContentLength == 0):
		// Only an empty file cannot satisfy bytes=0-; some servers say
		// so with an empty 200.
		return 0, fmt.Errorf("httprange: %s: empty file", r.redacted)
	case resp.StatusCode == http.StatusOK:
		return 0, fmt.Errorf("httprange: %s: %w", r.redacted, ErrRangeNotSupported)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return 0, fmt.Errorf("httprange: %s: %w (range %d-%d refused)", r.redacted, ErrChanged, off, end)
	default:
		return 0, &StatusError{Code: resp.StatusCode, Status: resp.Status, URL: r.redacted}
	}

	first, last, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return 0, fmt.Errorf("httprange: %s: %v", r.redacted, err)
	}
	if open {
		if total < 0 {
			return 0, fmt.Errorf("httprange: %s: server does not tell the file size", r.redacted)
		}
		r.size = total
		r.ifRange = validator(resp.Header)
		if end >= total {
			end = total - 1
			p = p[:total-off]
		}
	} else if total >= 0 && total != r.size {
		return 0, fmt.Errorf("httprange: %s: %w (size %d, was %d)", r.redacted, ErrChanged, total, r.size)
	}
	if first != off || last != end {
		return 0, fmt.Errorf("httprange: %s: asked for bytes %d-%d, got %d-%d", r.redacted, off, end, first, last)
	}
	n, err := io.ReadFull(resp.Body, p)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, r.requestError(err)
	}
	return n, nil
}

// requestError turns a transport error into one that does not quote the
// URL (*url.Error does) and that says closed when we closed.
func (r *Reader) requestError(err error) error {
	if r.closed.Err() != nil {
		return ErrClosed
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return &transientError{url: r.redacted, err: err}
}

// transientError is a failure of the transport (not an HTTP status), worth
// one more try.
type transientError struct {
	url string
	err error
}

func (e *transientError) Error() string { return "httprange: GET " + e.url + ": " + e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
		return false
	}
	var te *transientError
	if errors.As(err, &te) {
		return true
	}
	var se *StatusError
	return errors.As(err, &se) && se.Code >= 500
}

// validator returns what to put in If-Range: a strong ETag, else
// Last-Modified, else "" (no check).
func validator(h http.Header) string {
	if etag := h.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		return etag
	}
	return h.Get("Last-Modified")
}

// parseContentRange parses "bytes first-last/total"; total is -1 for "*".
func parseContentRange(s string) (first, last, total int64, err error) {
	spec, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	rng, tot, ok := strings.Cut(spec, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	total = -1
	var err3 error
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || (total >= 0 && last >= total) {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	return first, last, total, nil
}
