package httprange

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 31 / 7)
	}
	return b
}

// fileServer serves data like a static file server, ETag included, and
// records the requests' headers.
type fileServer struct {
	mu      sync.Mutex
	data    []byte
	etag    string
	headers []http.Header
}

func (s *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.headers = append(s.headers, r.Header.Clone())
	data, etag := s.data, s.etag
	s.mu.Unlock()
	w.Header().Set("ETag", etag)
	http.ServeContent(w, r, "f.mp4", time.Time{}, bytes.NewReader(data))
}

func (s *fileServer) replace(data []byte, etag string) {
	s.mu.Lock()
	s.data, s.etag = data, etag
	s.mu.Unlock()
}

func TestReadRanges(t *testing.T) {
	data := content(100_000)
	fs := &fileServer{data: data, etag: `"v1"`}
	srv := httptest.NewServer(fs)
	defer srv.Close()

	r, head, err := Open(context.Background(), nil, srv.URL+"/f.mp4", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(data)) || !bytes.Equal(head, data[:1000]) {
		t.Fatalf("size %d, head % x...; want %d and the first 1000 bytes", r.Size(), head[:8], len(data))
	}
	p := make([]byte, 500)
	if n, err := r.ReadRange(context.Background(), p, 5000); n != 500 || err != nil || !bytes.Equal(p, data[5000:5500]) {
		t.Errorf("ReadRange at 5000: %d, %v", n, err)
	}
	if n, err := r.ReadRange(context.Background(), p, int64(len(data))-100); n != 100 || !errors.Is(err, io.EOF) ||
		!bytes.Equal(p[:100], data[len(data)-100:]) {
		t.Errorf("ReadRange across the end: %d, %v; want 100, io.EOF", n, err)
	}
	if n, err := r.ReadRange(context.Background(), p, int64(len(data))); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadRange at the end: %d, %v; want 0, io.EOF", n, err)
	}
	for i, h := range fs.headers {
		if !strings.HasPrefix(h.Get("Range"), "bytes=") || h.Get("Accept-Encoding") != "identity" {
			t.Errorf("request %d: Range %q, Accept-Encoding %q", i, h.Get("Range"), h.Get("Accept-Encoding"))
		}
		if i > 0 && h.Get("If-Range") != `"v1"` {
			t.Errorf("request %d: If-Range %q, want the first ETag", i, h.Get("If-Range"))
		}
	}

	// The file is replaced on the server: same size, new content.
	fs.replace(content(100_000)[1:], `"v2"`)
	if _, err := r.ReadRange(context.Background(), p, 0); !errors.Is(err, ErrChanged) {
		t.Errorf("after a change: %v, want ErrChanged", err)
	}
}

func TestSmallFile(t *testing.T) {
	data := content(10)
	srv := httptest.NewServer(&fileServer{data: data})
	defer srv.Close()
	r, head, err := Open(context.Background(), nil, srv.URL, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != 10 || !bytes.Equal(head, data) {
		t.Errorf("size %d head % x, want 10 and the file", r.Size(), head)
	}

	empty := httptest.NewServer(&fileServer{})
	defer empty.Close()
	if _, _, err := Open(context.Background(), nil, empty.URL, 1000, 0); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, code := range []int{403, 404, 500} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", code)
		}))
		_, _, err := Open(context.Background(), nil, srv.URL+"/f.mp4?sign=abc123&x=1", 1000, 0)
		srv.Close()
		var se *StatusError
		if !errors.As(err, &se) || se.Code != code {
			t.Fatalf("%d: got %v, want a StatusError", code, err)
		}
		if msg := err.Error(); strings.Contains(msg, "abc123") || !strings.Contains(msg, "sign=REDACTED&x=1") {
			t.Errorf("%d: %q should carry the URL redacted", code, msg)
		}
	}

	whole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(content(5000))
	}))
	defer whole.Close()
	if _, _, err := Open(context.Background(), nil, whole.URL, 1000, 0); !errors.Is(err, ErrRangeNotSupported) {
		t.Errorf("server ignoring Range: %v, want ErrRangeNotSupported", err)
	}

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	_, _, err := Open(context.Background(), nil, down.URL+"/?token=abc123", 1000, 0)
	if err == nil || strings.Contains(err.Error(), "abc123") {
		t.Errorf("refused connection: %v; want an error without the secret", err)
	}
	if _, _, err := Open(context.Background(), nil, "ftp://h/f", 1000, 0); err == nil {
		t.Error("ftp URL accepted")
	}
}

// TestRetry: a range whose body is cut short, or that gets a 503, is tried
// again.
func TestRetry(t *testing.T) {
	data := content(50_000)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n := calls.Add(1); n {
		case 2: // cut short: promise more than is sent
			w.Header().Set("Content-Range", "bytes 1000-1999/50000")
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[1000:1500])
			return
		case 3:
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	r, _, err := Open(context.Background(), nil, srv.URL, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1000)
	if n, err := r.ReadRange(context.Background(), p, 1000); n != 1000 || err != nil || !bytes.Equal(p, data[1000:2000]) {
		t.Errorf("ReadRange: %d, %v after %d requests", n, err, calls.Load())
	}
	if calls.Load() != 4 {
		t.Errorf("%d requests, want 4 (open, cut, 503, good)", calls.Load())
	}
}

func TestCloseCancels(t *testing.T) {
	data := content(50_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("Range"), "bytes=0-") {
			http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
			return
		}
		<-r.Context().Done()
	}))
	defer srv.Close()
	r, _, err := Open(context.Background(), nil, srv.URL, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.ReadRange(context.Background(), make([]byte, 10), 1000)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("read ended with %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the read")
	}
	if _, err := r.ReadRange(context.Background(), make([]byte, 10), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
}

func TestParseContentRange(t *testing.T) {
	for _, c := range []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/1000", 0, 99, 1000, true},
		{"bytes 5-5/*", 5, 5, -1, true},
		{"bytes 10-5/1000", 0, 0, 0, false},
		{"bytes 0-1000/1000", 0, 0, 0, false},
		{"bytes */1000", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		first, last, total, err := parseContentRange(c.in)
		if (err == nil) != c.ok || (c.ok && (first != c.first || last != c.last || total != c.total)) {
			t.Errorf("%q: %d %d %d %v", c.in, first, last, total, err)
		}
	}
}
