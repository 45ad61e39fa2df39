// Package files opens the entries of a VOD playlist: MP4 and FLV files over
// http(s), or local files under the directories the operator allows.
package files

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/liverelay/liverelay/internal/flv"
	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/mp4"
	"github.com/liverelay/liverelay/internal/redact"
)

// Opener opens playlist entries.
type Opener struct {
	// Client fetches http(s) files; it must dial through the denied-network
	// guard.
	Client *http.Client
	// Roots are the directories file:// URLs may point into (--allow-file-root).
	Roots []string
	// DialContext opens the connections of HLS playlists and segments; it
	// must be the denied-network guard's.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// UnsupportedCodec is wrapped into codec errors (relay.ErrUnsupportedCodec).
	UnsupportedCodec error
}

// Open opens rawURL from the keyframe at or before start. The kind is taken
// from the path's extension: .flv is FLV, .m3u8 an HLS VOD playlist,
// anything else is read as MP4 (whose boxes say soon enough whether it is
// one).
func (o *Opener) Open(ctx context.Context, rawURL string, start time.Duration) (media.FileSource, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("file URL: %w", err)
	}
	ext := strings.ToLower(path.Ext(u.Path))
	switch u.Scheme {
	case "http", "https", "file":
	default:
		return nil, fmt.Errorf("file %s: scheme %q is not supported for files", redact.URL(rawURL), u.Scheme)
	}
	switch {
	case ext == ".flv":
		return o.openFLV(ctx, u, rawURL, start)
	case ext == ".m3u8" && u.Scheme != "file":
		return o.openHLS(ctx, rawURL, start)
	}
	src, err := mp4.Open(ctx, rawURL, start, mp4.Options{Client: o.Client, AllowFile: o.AllowFile})
	if errors.Is(err, mp4.ErrUnsupportedCodec) && o.UnsupportedCodec != nil {
		err = fmt.Errorf("%w: %w", o.UnsupportedCodec, err)
	}
	return src, err
}

func (o *Opener) openFLV(ctx context.Context, u *url.URL, rawURL string, start time.Duration) (media.FileSource, error) {
	if u.Scheme == "file" {
		p, err := o.localPath(u)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", redact.URL(rawURL), err)
		}
		return flv.OpenFile(f, start)
	}
	// The file is read from the start; ctx bounds only the open, the body
	// lives until Close.
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", redact.URL(rawURL), err)
	}
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := o.Client.Do(req)
		done <- result{resp, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		go func() {
			if r := <-done; r.resp != nil {
				r.resp.Body.Close()
			}
		}()
		return nil, fmt.Errorf("file %s: %w", redact.URL(rawURL), ctx.Err())
	}
	if res.err != nil {
		return nil, fmt.Errorf("file %s: %w", redact.URL(rawURL), flv.StripURLError(res.err))
	}
	if res.resp.StatusCode != http.StatusOK {
		res.resp.Body.Close()
		return nil, fmt.Errorf("file %s: HTTP %s", redact.URL(rawURL), res.resp.Status)
	}
	src, err := flv.OpenFile(res.resp.Body, start)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", redact.URL(rawURL), err)
	}
	return src, nil
}

// AllowFile refuses a local path outside the allowed roots. path is the
// real path (symlinks resolved) of the file.
func (o *Opener) AllowFile(p string) error {
	for _, root := range o.Roots {
		real, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(real, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return nil
		}
	}
	return fmt.Errorf("path %s is not under a directory allowed with --allow-file-root", p)
}

func (o *Opener) localPath(u *url.URL) (string, error) {
	real, err := filepath.EvalSymlinks(filepath.Clean(u.Path))
	if err != nil {
		return "", fmt.Errorf("file %s: %w", u.Path, err)
	}
	if err := o.AllowFile(real); err != nil {
		return "", err
	}
	return real, nil
}
