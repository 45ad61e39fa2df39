package rtmp

import (
	"net/url"
	"testing"
)

func TestSplitURL(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		tcURL, app, stream string
		wantErr            bool
	}{
		{in: "rtmp://127.0.0.1:1935/live/src", tcURL: "rtmp://127.0.0.1:1935/live", app: "live", stream: "src"},
		{in: "rtmp://host/live/src", tcURL: "rtmp://host/live", app: "live", stream: "src"},
		{in: "rtmps://host:443/live/src", tcURL: "rtmps://host:443/live", app: "live", stream: "src"},
		{in: "rtmp://host/live/key?sign=abc&t=1", tcURL: "rtmp://host/live", app: "live", stream: "key?sign=abc&t=1"},
		{in: "rtmp://host/app/inst/stream", tcURL: "rtmp://host/app/inst", app: "app/inst", stream: "stream"},
		{in: "rtmp://user:pw@host/live/src", tcURL: "rtmp://host/live", app: "live", stream: "src"},
		{in: "rtmp://[::1]:1935/live/src", tcURL: "rtmp://[::1]:1935/live", app: "live", stream: "src"},
		{in: "rtmp://a.rtmp.youtube.com/live2/xxxx-yyyy-zzzz", tcURL: "rtmp://a.rtmp.youtube.com/live2", app: "live2", stream: "xxxx-yyyy-zzzz"},
		{in: "rtmp://host", wantErr: true},
		{in: "rtmp://host/", wantErr: true},
		{in: "rtmp://host/live", wantErr: true},
		{in: "rtmp://host/live/", wantErr: true},
		{in: "rtmp://host//src", wantErr: true},
		{in: "rtmp://host/live?key=1", wantErr: true},
	} {
		u, err := url.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		tcURL, app, stream, err := SplitURL(u)
		if tc.wantErr {
			if err == nil {
				t.Errorf("SplitURL(%q) = %q, %q, %q; want an error", tc.in, tcURL, app, stream)
			}
			continue
		}
		if err != nil {
			t.Errorf("SplitURL(%q): %v", tc.in, err)
			continue
		}
		if tcURL != tc.tcURL || app != tc.app || stream != tc.stream {
			t.Errorf("SplitURL(%q) = %q, %q, %q; want %q, %q, %q", tc.in, tcURL, app, stream, tc.tcURL, tc.app, tc.stream)
		}
	}
}
