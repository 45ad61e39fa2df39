package hls

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// FuzzParseMediaPlaylist reads arbitrary playlists at arbitrary bases.
// liveEdge must see a playlist as gohlslib does: it holds a reload until a
// segment after the last one gohlslib fetched is listed, comparing the URLs
// it parsed with those of gohlslib's requests. So, besides never
// panicking:
//   - every URI is absolute, and reads back as itself (requests are
//     compared by their URL's string), in the base's scheme and host when
//     the line names none; or it is no URL with a host at all, which
//     nothing can request;
//   - the target duration is 0 (not given) or whole seconds within 1s..1h,
//     and the poll interval within 100ms..1s;
//   - a playlist without #EXTINF is not media, one without
//     #EXT-X-ENDLIST not ended;
//   - where gohlslib's own parser reads a media playlist, ours agrees on
//     media, ended and the target duration, and lists exactly the URLs
//     gohlslib requests for its segments; where gohlslib reads a
//     multivariant playlist, ours is not media.
func FuzzParseMediaPlaylist(f *testing.F) {
	const live = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n" +
		"#EXTINF:2.000,\nseg7.ts\n#EXTINF:2.000,\n/abs/seg8.ts?x=1\n#EXTINF:2.0,\nhttps://cdn.example/seg9.ts\n"
	f.Add("http://127.0.0.1:8080/live/p.m3u8?token=t", []byte(live))
	f.Add("https://example.com/a/b/", []byte(live+"#EXT-X-ENDLIST\n"))
	f.Add("http://h/p.m3u8", []byte("#EXTM3U\r\n#EXT-X-TARGETDURATION:99999\r\n#EXT-X-PLAYLIST-TYPE:VOD\r\n#EXTINF:1,\r\n../s.ts\r\n#EXT-X-ENDLIST\r\n"))
	f.Add("http://h/p.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS=\"avc1.64001f\"\nv/p.m3u8\n"))
	f.Add("http://h/p.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.64001f\"\nv.m3u8\n#EXTINF:1,\n"))
	f.Add("http://h/p.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4,\n#EXT-X-BYTERANGE:100@0\ns.mp4\n#EXTINF:4,\n#EXT-X-BYTERANGE:100@100\ns.mp4\n"))
	f.Add("http://h/p.m3u8", []byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n//other.host/x%2Fy.ts#frag\n#EXTINF:1,\n?only=query\n"))

	f.Fuzz(func(t *testing.T, rawBase string, body []byte) {
		base, err := url.Parse(rawBase)
		if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
			return
		}
		// The base is a request's URL, as net/http has it.
		req, err := http.NewRequest(http.MethodGet, base.String(), nil)
		if err != nil {
			return
		}
		base = req.URL

		pl := parseMediaPlaylist(base, body)

		if pl.target < 0 || pl.target > time.Hour || pl.target%time.Second != 0 || (pl.target > 0 && pl.target < time.Second) {
			t.Fatalf("target duration %v", pl.target)
		}
		if p := pl.poll(); p < 100*time.Millisecond || p > time.Second {
			t.Fatalf("poll %v", p)
		}
		if pl.media && !bytes.Contains(body, []byte("#EXTINF")) {
			t.Fatal("media playlist without #EXTINF")
		}
		if pl.ended && !bytes.Contains(body, []byte("#EXT-X-ENDLIST")) {
			t.Fatal("ended playlist without #EXT-X-ENDLIST")
		}
		for _, s := range pl.uris {
			u, err := url.Parse(s)
			if err != nil || u.Host == "" {
				// A reference can resolve to what does not parse as a
				// URL ("//::") or has no host ("//:"): no request can be
				// made for it, and gohlslib fails when it reaches that
				// segment. It stays listed, so that the segment before it
				// is not taken for the last one.
				continue
			}
			if !u.IsAbs() {
				t.Fatalf("URI %q: not absolute", s)
			}
			if u.String() != s {
				t.Fatalf("URI %q reads back as %q", s, u.String())
			}
		}

		parsed, err := playlist.Unmarshal(body)
		if err != nil {
			return
		}
		m, ok := parsed.(*playlist.Media)
		if !ok {
			if pl.media {
				t.Fatal("gohlslib reads a multivariant playlist, we read media")
			}
			return
		}
		if !pl.media || pl.ended != m.Endlist {
			t.Fatalf("media %v ended %v; gohlslib reads %d segments, ended %v", pl.media, pl.ended, len(m.Segments), m.Endlist)
		}
		if want := time.Duration(min(m.TargetDuration, 3600)) * time.Second; pl.target != want {
			t.Fatalf("target duration %v, gohlslib reads %v", pl.target, want)
		}
		// What gohlslib requests for each segment (clientAbsoluteURL, then
		// http.NewRequest), as liveEdge sees it in RoundTrip.
		var want []string
		for _, seg := range m.Segments {
			ref, err := url.Parse(seg.URI)
			if err != nil {
				return // gohlslib fails at this segment
			}
			abs := base.ResolveReference(ref)
			r, err := http.NewRequest(http.MethodGet, abs.String(), nil)
			if err != nil || r.URL.Host == "" { // http.Transport refuses it
				return
			}
			want = append(want, r.URL.String())
			if ref.Scheme == "" && (abs.Scheme != base.Scheme || (ref.Host == "" && abs.Host != base.Host)) {
				t.Fatalf("%q at %q resolves to %q", seg.URI, base, abs)
			}
		}
		if strings.Join(pl.uris, "\n") != strings.Join(want, "\n") || len(pl.uris) != len(want) {
			t.Fatalf("URIs\n%q\ngohlslib requests\n%q", pl.uris, want)
		}
	})
}

// bodyTransport answers every request with one body, and records whether
// it was closed.
type bodyTransport struct {
	body   []byte
	closed bool
}

func (b *bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Body: &closeRecorder{Reader: bytes.NewReader(b.body), closed: &b.closed},
		ContentLength: int64(len(b.body)), Request: req}, nil
}

type closeRecorder struct {
	io.Reader
	closed *bool
}

func (c *closeRecorder) Close() error {
	*c.closed = true
	return nil
}

// FuzzLiveEdgeBody passes arbitrary responses through liveEdge: a segment
// (anything not starting with #EXTM3U after an optional byte order mark)
// reaches gohlslib byte for byte, a playlist without its byte order mark
// and with a matching Content-Length, cut at maxPlaylistSize+1 bytes
// (where gohlslib's own limit fails it); either way the server's body is
// closed.
func FuzzLiveEdgeBody(f *testing.F) {
	f.Add([]byte("\xef\xbb\xbf#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\ns0.ts\n"))
	f.Add([]byte("#EXTM3U\n#EXT-X-ENDLIST\n"))
	f.Add([]byte{0x47, 0x40, 0x00, 0x10, 0x00})
	f.Add([]byte("\xef\xbb\xbf#EXTM3"))
	f.Add([]byte("\xef\xbb\xbf\xef\xbb\xbf#EXTM3U\n"))

	f.Fuzz(func(t *testing.T, body []byte) {
		base := &bodyTransport{body: body}
		// No hold: the playlist's content is what is checked here.
		le := newLiveEdge(base, startDistance, 0)
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/live/p.m3u8", nil)
		resp, err := le.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !base.closed {
			t.Fatal("the server's body was not closed")
		}
		trimmed := bytes.TrimPrefix(body, []byte(bom))
		if !bytes.HasPrefix(trimmed, []byte("#EXTM3U")) {
			if !bytes.Equal(got, body) {
				t.Fatalf("segment of %d bytes reaches gohlslib as %d bytes", len(body), len(got))
			}
			return
		}
		want := bytes.TrimPrefix(body[:min(len(body), maxPlaylistSize+1)], []byte(bom))
		if !bytes.Equal(got, want) || resp.ContentLength != int64(len(want)) {
			t.Fatalf("playlist of %d bytes reaches gohlslib as %d bytes (Content-Length %d), want %d",
				len(body), len(got), resp.ContentLength, len(want))
		}
	})
}
