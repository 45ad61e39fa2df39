package hls

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// growingPlaylist serves /p.m3u8 listing segments 0..n-1 (n set by the
// test), with a byte order mark, and any /sN.ts.
type growingPlaylist struct {
	mu    sync.Mutex
	n     int
	ended bool
}

func (g *growingPlaylist) set(n int, ended bool) {
	g.mu.Lock()
	g.n, g.ended = n, ended
	g.mu.Unlock()
}

func (g *growingPlaylist) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, ".ts") {
		w.Write([]byte{0x47, 0, 0, 0, 0, 0, 0, 0})
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	fmt.Fprint(w, "\xef\xbb\xbf#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n")
	for i := range g.n {
		fmt.Fprintf(w, "#EXTINF:1.0,\ns%d.ts\n", i)
	}
	if g.ended {
		fmt.Fprint(w, "#EXT-X-ENDLIST\n")
	}
}

func TestLiveEdgeHoldsReloads(t *testing.T) {
	g := &growingPlaylist{n: 1}
	srv := httptest.NewServer(g)
	defer srv.Close()
	client := &http.Client{Transport: newLiveEdge(http.DefaultTransport, 3, 700*time.Millisecond)}
	get := func(path string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), time.Since(start)
	}

	// The first load waits until 3 segments are listed, and loses the BOM.
	time.AfterFunc(300*time.Millisecond, func() { g.set(3, false) })
	body, took := get("/p.m3u8")
	if !strings.HasPrefix(body, "#EXTM3U") || !strings.Contains(body, "s2.ts") || took < 250*time.Millisecond {
		t.Fatalf("first load after %v:\n%q", took, body)
	}
	// Nothing after the last segment fetched: the reload waits for s3.
	get("/s2.ts")
	time.AfterFunc(300*time.Millisecond, func() { g.set(4, false) })
	body, took = get("/p.m3u8")
	if !strings.Contains(body, "s3.ts") || took < 250*time.Millisecond {
		t.Fatalf("reload after %v:\n%q", took, body)
	}
	// A reload that lists a segment after the last one fetched is at once.
	get("/s2.ts")
	if _, took = get("/p.m3u8"); took > 200*time.Millisecond {
		t.Fatalf("reload with a next segment took %v", took)
	}
	// A playlist that stops growing is handed on after the hold.
	get("/s3.ts")
	body, took = get("/p.m3u8")
	if strings.Contains(body, "s4.ts") || took < 700*time.Millisecond || took > 2*time.Second {
		t.Fatalf("stalled reload after %v:\n%q", took, body)
	}
	// An ended playlist is never held.
	g.set(4, true)
	if _, took = get("/p.m3u8"); took > 200*time.Millisecond {
		t.Fatalf("ended playlist held for %v", took)
	}
}
