package api

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/liverelay/liverelay/internal/redact"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

func TestWithoutCredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"rtmp://127.0.0.1/live/stream", "rtmp://127.0.0.1/live/stream"},
		// The stream name, the user name and odd encodings stay as stored.
		{"rtmp://a.example.com:1935/live2/abcd-efgh-ijkl-mnop", "rtmp://a.example.com:1935/live2/abcd-efgh-ijkl-mnop"},
		{"rtmp://alice@h/app/s%2Fx?a=b&c", "rtmp://alice@h/app/s%2Fx?a=b&c"},
		{"rtmp://alice:s3cr%40t@h/app/s", "rtmp://alice:REDACTED@h/app/s"},
		{"rtmp://alice:@h/app/s", "rtmp://alice:REDACTED@h/app/s"},
		{"http://u:p@ss@h:8080/a/b.flv", "http://u:REDACTED@h:8080/a/b.flv"},
		{"rtmp://h/app/s?txSecret=abc&txTime=5F&wsSecret=&Token=x", "rtmp://h/app/s?txSecret=REDACTED&txTime=5F&wsSecret=&Token=REDACTED"},
		{"https://cb.example.com/hook?sign=xyz&id=7&access%5Ftoken=q#frag", "https://cb.example.com/hook?sign=REDACTED&id=7&access%5Ftoken=REDACTED#frag"},
		{"http://u:pw@h/p?x=1@2&auth_key=k#f@g", "http://u:REDACTED@h/p?x=1@2&auth_key=REDACTED#f@g"},
		{"file:///srv/media/a.mp4", "file:///srv/media/a.mp4"},
		{"http://[::1]:8080/a.m3u8?key=v", "http://[::1]:8080/a.m3u8?key=REDACTED"},
		{"rtmp://h:badport:x/app", "<unparsable URL>"},
	}
	for _, tc := range tests {
		if got := withoutCredentials(tc.in); got != tc.want {
			t.Errorf("withoutCredentials(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestQueryWithoutCredentials(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"vhost=a&key=s3cret", "vhost=a&key=REDACTED"},
		{"a=1&&b&streamkey=", "a=1&&b&streamkey="},
		{"PASSWORD=x%20y&user=bob", "PASSWORD=REDACTED&user=bob"},
	}
	for _, tc := range tests {
		if got := queryWithoutCredentials(tc.in); got != tc.want {
			t.Errorf("queryWithoutCredentials(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTaskInfoHidesCredentials(t *testing.T) {
	secrets := []string{"pw-src", "tok-src", "pw-backup", "sig-dest", "args-key", "cb-sign", "run-pw"}
	v := &store.TaskView{
		Task: task.Task{
			ID:               "t1",
			SourceType:       task.PullLivePushLive,
			SourceURLs:       []string{"rtmp://u:pw-src@127.0.0.1/live/src?token=tok-src"},
			BackupSourceURLs: []string{"rtmp://b:pw-backup@127.0.0.1/live/backup"},
			DestinationURL:   "rtmp://127.0.0.1/live/dst?sign=sig-dest",
			PushArgs:         "key=args-key&vhost=v",
			CallbackURL:      "http://cb.example.com/hook?signature=cb-sign",
		},
		State: task.RunState{CurrentSourceURL: "rtmp://u:run-pw@127.0.0.1/live/src"},
	}
	stored := v.Task.SourceURLs[0]
	raw, err := json.Marshal(newTaskInfo(v))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if strings.Contains(string(raw), s) {
			t.Errorf("task info holds the secret %q: %s", s, raw)
		}
	}
	for _, kept := range []string{
		`"source_urls":["rtmp://u:REDACTED@127.0.0.1/live/src?token=REDACTED"]`,
		`"backup_source_urls":["rtmp://b:REDACTED@127.0.0.1/live/backup"]`,
		`"destination_url":"rtmp://127.0.0.1/live/dst?sign=REDACTED"`,
		`"push_args":"key=REDACTED\u0026vhost=v"`,
		`"callback_url":"http://cb.example.com/hook?signature=REDACTED"`,
		`"current_source_url":"rtmp://u:REDACTED@127.0.0.1/live/src"`,
	} {
		if !strings.Contains(string(raw), kept) {
			t.Errorf("task info lacks %s: %s", kept, raw)
		}
	}
	if v.Task.SourceURLs[0] != stored {
		t.Errorf("newTaskInfo changed the task it was given: %q", v.Task.SourceURLs[0])
	}
}

// FuzzWithoutCredentials checks, for any URL that parses, that the result
// parses to the same URL but for the password and the secret query values.
func FuzzWithoutCredentials(f *testing.F) {
	for _, s := range []string{
		"rtmp://u:p@h:1935/app/stream?key=k&a=b#frag",
		"http://u:p@ss@h/p?x=1@2&auth_key=k#f@g",
		"https://h/a%2Fb?sign=&sign=x&token",
		"//u:p@h/x",
		"file:///srv/a.mp4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		got := withoutCredentials(raw)
		g, err := url.Parse(got)
		if err != nil {
			t.Fatalf("withoutCredentials(%q) = %q, which does not parse: %v", raw, got, err)
		}
		if _, had := u.User.Password(); had {
			if p, _ := g.User.Password(); p != redact.Placeholder {
				t.Fatalf("withoutCredentials(%q) = %q: password %q", raw, got, p)
			}
		} else if g.User.String() != u.User.String() {
			t.Fatalf("withoutCredentials(%q) = %q: user information changed", raw, got)
		}
		if g.User.Username() != u.User.Username() || g.Scheme != u.Scheme || g.Host != u.Host ||
			g.EscapedPath() != u.EscapedPath() || g.Opaque != u.Opaque || g.EscapedFragment() != u.EscapedFragment() {
			t.Fatalf("withoutCredentials(%q) = %q: more than the credentials changed", raw, got)
		}
		uq, gq := u.Query(), g.Query()
		if len(uq) != len(gq) {
			t.Fatalf("withoutCredentials(%q) = %q: query parameters changed", raw, got)
		}
		for k, vs := range gq {
			for i, v := range vs {
				want := uq[k][i]
				if redact.IsSecretKey(k) && want != "" {
					want = redact.Placeholder
				}
				if v != want {
					t.Fatalf("withoutCredentials(%q) = %q: %s=%q, want %q", raw, got, k, v, want)
				}
			}
		}
	})
}
