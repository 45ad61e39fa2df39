package rtmp

import (
	"errors"
	"net/url"
	"strings"
)

// SplitURL maps rtmp://host[:port]/app[/more]/stream?args to what RTMP
// servers expect in connect and play/publish: app is the path up to the last
// segment, stream is the last segment plus the query (servers read keys and
// signatures from there), and tcURL is scheme://host[:port]/app, without user
// information.
//
// It fails when the path has no app or no stream.
func SplitURL(u *url.URL) (tcURL, app, stream string, err error) {
	path := strings.TrimPrefix(u.Path, "/")
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		if path == "" {
			return "", "", "", errors.New("URL has no app and no stream name (want scheme://host/app/stream)")
		}
		return "", "", "", errors.New("URL has no stream name (want scheme://host/app/stream)")
	}
	app, stream = path[:i], path[i+1:]
	if strings.Trim(app, "/") == "" {
		return "", "", "", errors.New("URL has no app (want scheme://host/app/stream)")
	}
	if stream == "" {
		return "", "", "", errors.New("URL has no stream name (want scheme://host/app/stream)")
	}
	if u.RawQuery != "" {
		stream += "?" + u.RawQuery
	}
	tcURL = u.Scheme + "://" + u.Host + "/" + app
	return tcURL, app, stream, nil
}
