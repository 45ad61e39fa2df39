package hls

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// liveEdge is an http.RoundTripper that shields gohlslib from reaching the
// live edge of a playlist too early.
//
// gohlslib reloads a media playlist exactly when it wants the next segment,
// and fails for good ("next segment not found or not ready yet") when the
// reload does not list it yet. Starting three segments from the edge, its
// slack is whatever was left of the segment in progress when it started:
// often nothing, and a publisher that writes two segments in a burst, or a
// CDN a little late, then kills the source. So when a reload lists nothing
// after the last segment fetched from it, liveEdge polls the playlist (a
// quarter of the target duration apart) and answers with the first version
// that does, or with the last one after maxHold (then gohlslib fails, as
// it should for a stream that stopped). Likewise the first load of a media
// playlist waits until it lists minSegments, which gohlslib needs to start.
// This is the "blocking reload" a player does, in front of a library that
// does not.
//
// Responses that start with #EXTM3U (after an optional byte order mark,
// which liveEdge removes) are playlists; everything else fetched with GET
// is a segment.
type liveEdge struct {
	base        http.RoundTripper
	minSegments int
	maxHold     time.Duration

	mu        sync.Mutex
	playlists map[string]*playlistState // by playlist URL
}

type playlistState struct {
	uris []string // segment URLs of the latest version, absolute
	last string   // the last of them fetched, "" before the first
}

// maxPlaylistSize bounds a playlist read into memory (gohlslib's own limit).
const maxPlaylistSize = 1 << 20

func newLiveEdge(base http.RoundTripper, minSegments int, maxHold time.Duration) *liveEdge {
	return &liveEdge{base: base, minSegments: minSegments, maxHold: maxHold, playlists: map[string]*playlistState{}}
}

func (l *liveEdge) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet ||
		(resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent) {
		return resp, err
	}
	br := bufio.NewReaderSize(resp.Body, 512)
	head, _ := br.Peek(len(bom) + 7)
	if !isPlaylist(head) {
		l.segmentFetched(req.URL.String())
		resp.Body = readCloser{br, resp.Body}
		return resp, nil
	}
	body, err := readPlaylist(br, resp.Body)
	if err != nil {
		return nil, err
	}
	pl := parseMediaPlaylist(req.URL, body)
	start := time.Now()
	for l.mustWait(req.URL.String(), pl) && time.Since(start) < l.maxHold {
		select {
		case <-time.After(pl.poll()):
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		r2, err := l.base.RoundTrip(req.Clone(req.Context()))
		if err != nil {
			if req.Context().Err() != nil {
				return nil, err
			}
			continue // keep the version we have; the hold bounds the retries
		}
		if r2.StatusCode != http.StatusOK {
			r2.Body.Close()
			continue
		}
		b2, err := readPlaylist(r2.Body, r2.Body)
		if err != nil {
			continue
		}
		resp, body = r2, b2
		pl = parseMediaPlaylist(req.URL, body)
	}
	l.playlistLoaded(req.URL.String(), pl)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// mustWait reports whether pl is not worth handing to gohlslib yet.
func (l *liveEdge) mustWait(plURL string, pl mediaPlaylist) bool {
	if !pl.media || pl.ended {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.playlists[plURL]
	if st == nil || st.last == "" {
		return len(pl.uris) < l.minSegments
	}
	for i, u := range pl.uris {
		if u == st.last {
			return i == len(pl.uris)-1 // nothing after the last segment fetched
		}
	}
	return false // fell out of the window: gohlslib decides
}

func (l *liveEdge) playlistLoaded(plURL string, pl mediaPlaylist) {
	if !pl.media {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.playlists[plURL]
	if st == nil {
		st = &playlistState{}
		l.playlists[plURL] = st
	}
	st.uris = pl.uris
}

func (l *liveEdge) segmentFetched(u string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, st := range l.playlists {
		for _, s := range st.uris {
			if s == u {
				st.last = u
				return
			}
		}
	}
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// base transport.
func (l *liveEdge) CloseIdleConnections() {
	if c, ok := l.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// bom is the UTF-8 byte order mark some servers put before #EXTM3U, which
// gohlslib does not accept: playlists reach it without.
const bom = "\xef\xbb\xbf"

func isPlaylist(head []byte) bool {
	return bytes.HasPrefix(bytes.TrimPrefix(head, []byte(bom)), []byte("#EXTM3U"))
}

func readPlaylist(r io.Reader, c io.Closer) ([]byte, error) {
	defer c.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxPlaylistSize+1))
	return bytes.TrimPrefix(b, []byte(bom)), err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// mediaPlaylist is what liveEdge reads of a playlist.
type mediaPlaylist struct {
	media  bool // has segments (#EXTINF:, before any #EXT-X-STREAM-INF:)
	ended  bool // #EXT-X-ENDLIST
	target time.Duration
	uris   []string // absolute
}

func parseMediaPlaylist(base *url.URL, body []byte) mediaPlaylist {
	var pl mediaPlaylist
	variants := false // an #EXT-X-STREAM-INF came first: multivariant
	for line := range strings.Lines(string(body)) {
		// A line as gohlslib reads it, so that a URI is the one it
		// requests: up to "\n", less one "\r" before it (an unended last
		// line keeps its "\r"), nothing else trimmed.
		if l, ok := strings.CutSuffix(line, "\n"); ok {
			line = strings.TrimSuffix(l, "\r")
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			variants = variants || !pl.media
		case strings.HasPrefix(line, "#EXTINF:"):
			// gohlslib's test too: whichever of the two comes first.
			pl.media = !variants
		case line == "#EXT-X-ENDLIST":
			pl.ended = true
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			// A decimal integer, but some servers write "6.0", which
			// gohlslib reads as 6.
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:"), ".")
			if s, err := strconv.Atoi(v); err == nil && s > 0 {
				pl.target = time.Duration(min(s, 3600)) * time.Second
			}
		case strings.HasPrefix(line, "#"):
		default:
			if u, err := base.Parse(line); err == nil {
				pl.uris = append(pl.uris, requestURL(u))
			}
		}
	}
	return pl
}

// requestURL is u as RoundTrip sees it in the request gohlslib makes for
// it: http.NewRequest parses the string again and drops an empty port
// ("http://host:/s.ts"). A URL no request can be made for stays as it is.
func requestURL(u *url.URL) string {
	if r, err := http.NewRequest(http.MethodGet, u.String(), nil); err == nil {
		return r.URL.String()
	}
	return u.String()
}

// poll is the pause between two reloads of an unchanged playlist.
func (pl mediaPlaylist) poll() time.Duration {
	return min(max(pl.target/4, 100*time.Millisecond), time.Second)
}
