package flv

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
)

// stallServer serves an FLV header and tags, then holds the connection open
// without sending anything until the client goes away.
func stallServer(t *testing.T, tags ...[]byte) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/x-flv")
		w.Write(header(true, true))
		for _, tg := range tags {
			w.Write(tg)
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestOpenHTTPStallTimesOut(t *testing.T) {
	srv := stallServer(t, tag(18, 0, metadata), tag(9, 0, avcSeq), tag(8, 0, aacSeq), tag(9, 0, avcKey))
	const timeout = 400 * time.Millisecond
	src, err := OpenHTTP(context.Background(), srv.URL+"/live.flv", HTTPOptions{ReadTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for i := range 4 {
		if _, err := src.ReadPacket(context.Background()); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	start := time.Now()
	_, err = src.ReadPacket(context.Background())
	elapsed := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "no media for 400ms") {
		t.Fatalf("err = %v, want a no-media timeout", err)
	}
	if elapsed < timeout || elapsed > timeout+time.Second {
		t.Fatalf("timed out after %v, want about %v", elapsed, timeout)
	}
	if _, err2 := src.ReadPacket(context.Background()); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second error %v, want the sticky %v", err2, err)
	}
}

// ctx bounds the setup only: the relay cancels it as soon as Open returns.
func TestOpenHTTPOutlivesSetupContext(t *testing.T) {
	srv := stallServer(t, tag(9, 0, avcSeq), tag(9, 0, avcKey))
	ctx, cancel := context.WithCancel(context.Background())
	src, err := OpenHTTP(ctx, srv.URL+"/live.flv", HTTPOptions{ReadTimeout: 2 * time.Second})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	time.Sleep(50 * time.Millisecond)
	for i := range 2 {
		if _, err := src.ReadPacket(context.Background()); err != nil {
			t.Fatalf("packet %d after the setup context ended: %v", i, err)
		}
	}
}

func TestReadPacketContextCancel(t *testing.T) {
	srv := stallServer(t)
	src, err := OpenHTTP(context.Background(), srv.URL+"/live.flv", HTTPOptions{ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = src.ReadPacket(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("ReadPacket returned %v after the context ended", d)
	}
}

func TestCloseUnblocksReadPacket(t *testing.T) {
	srv := stallServer(t)
	src, err := OpenHTTP(context.Background(), srv.URL+"/live.flv", HTTPOptions{ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, func() { src.Close() })
	done := make(chan error, 1)
	go func() {
		_, err := src.ReadPacket(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("no error after Close")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("ReadPacket still blocked after Close")
	}
}

func TestOpenHTTPErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/html.flv":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<!DOCTYPE html><html><body>not here</body></html>")
		case "/short.flv":
			w.Write([]byte("FLV"))
		case "/redirect.flv":
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		url  string
		want []string
	}{
		{srv.URL + "/missing.flv", []string{"http-flv " + srv.URL + "/missing.flv", "HTTP status 404"}},
		{srv.URL + "/html.flv", []string{"not an FLV stream", "Content-Type text/html"}},
		{srv.URL + "/short.flv", []string{"unexpected EOF"}},
		{srv.URL + "/redirect.flv", []string{"more than 5 redirects"}},
		{"http://user:hunter2@" + host + "/missing.flv?token=s3cret", []string{"REDACTED", "404"}},
		{"ftp://" + host + "/x.flv", []string{"unsupported scheme"}},
	}
	for _, tt := range tests {
		src, err := OpenHTTP(context.Background(), tt.url, HTTPOptions{ReadTimeout: time.Second})
		if err == nil {
			src.Close()
			t.Errorf("%s: no error", tt.url)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", tt.url, err, w)
			}
		}
		for _, secret := range []string{"hunter2", "s3cret"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error %q leaks a credential", tt.url, err)
			}
		}
	}
}

// The live source unwraps 32-bit timestamps, drops what a relay must not
// pass on, and ends with an error naming the stream.
func TestLiveSourcePackets(t *testing.T) {
	other := []byte("\x02\x00\x0c|RtmpSample\x01\x01")
	eos := []byte{0x17, 2, 0, 0, 0}
	in := cat(header(true, true),
		tag(18, 0, metadata),
		tag(18, 0, other),
		tag(9, 0xfffffff0, avcSeq),
		tag(9, 0xfffffff0, avcKey),
		tag(8, 0xfffffff5, nil),
		tag(18, 0, metadata), // stamped 0 mid-stream: must not move the clock
		tag(8, 0x00000010, aacFrame),
		tag(9, 0x00000020, eos),
	)
	src, err := NewLiveSource(io.NopCloser(strings.NewReader(string(in))), "test", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		kind media.Kind
		dts  time.Duration
	}
	want := []got{
		{media.KindData, 0},
		{media.KindVideo, 0xfffffff0 * time.Millisecond},
		{media.KindVideo, 0xfffffff0 * time.Millisecond},
		{media.KindData, -1}, // any DTS: the relay stamps metadata itself
		{media.KindAudio, (1<<32 + 0x10) * time.Millisecond},
	}
	for i, w := range want {
		p, err := src.ReadPacket(context.Background())
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.Kind != w.kind || (w.dts >= 0 && p.DTS != w.dts) {
			t.Fatalf("packet %d = %d at %v, want %d at %v", i, p.Kind, p.DTS, w.kind, w.dts)
		}
	}
	_, err = src.ReadPacket(context.Background())
	if !errors.Is(err, io.EOF) || !strings.HasPrefix(err.Error(), "test: ") {
		t.Fatalf("err = %v, want io.EOF prefixed with the name", err)
	}
}
