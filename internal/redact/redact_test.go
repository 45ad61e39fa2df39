package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rtmp://127.0.0.1:1935/live/src", "rtmp://127.0.0.1:1935/live/src"},
		{"rtmp://user:pa55word@host/live/src", "rtmp://REDACTED@host/live/src"},
		{"rtmp://user@host/live/src", "rtmp://REDACTED@host/live/src"},
		{"rtmp://host/live/src?key=abc123&x=1", "rtmp://host/live/src?key=REDACTED&x=1"},
		{"rtmp://host/live/src?txSecret=f00&txTime=5F5E0FF", "rtmp://host/live/src?txSecret=REDACTED&txTime=5F5E0FF"},
		{"rtmps://host/app/s?auth_key=1-2-3&Sign=z&TOKEN=t&password=p&pwd=q", "rtmps://host/app/s?auth_key=REDACTED&Sign=REDACTED&TOKEN=REDACTED&password=REDACTED&pwd=REDACTED"},
		{"rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl-mnop", "rtmp://a.rtmp.youtube.com/live2/abcd...REDACTED"},
		{"rtmp://host/live/src#streamkey", "rtmp://host/live/src#REDACTED"},
		{"https://u:p@cdn.example/a/b.m3u8?sign=1&v=2", "https://REDACTED@cdn.example/a/b.m3u8?sign=REDACTED&v=2"},
		{"https://cdn.example/a/very-long-file-name.flv", "https://cdn.example/a/very-long-file-name.flv"},
		{"rtmp://host/live/src?key", "rtmp://host/live/src?key"},
		{"rtmp://host/live/src?k%65y=v", "rtmp://host/live/src?k%65y=REDACTED"},
		{"rtmp://host/live/src?", "rtmp://host/live/src?"},
		{"/relative/path?token=x", "/relative/path?token=REDACTED"},
		{"rtmp://u:p@host:%zz/x", "<unparsable URL>"},
		{"mailto:someone@example.com", "mailto:REDACTED"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestText(t *testing.T) {
	raw := "rtmp://bob:hunter22@host/live/abcdefghijkl?token=s3cr3t&x=1"
	got := Text(`Stream abcdefghijkl rejected for token s3cr3t (user bob, password hunter22)`, raw)
	for _, secret := range []string{"abcdefghijkl", "s3cr3t", "bob", "hunter22"} {
		if strings.Contains(got, secret) {
			t.Errorf("Text kept %q: %s", secret, got)
		}
	}
	if !strings.Contains(got, "rejected") {
		t.Errorf("Text lost the message: %s", got)
	}
}

func FuzzURL(f *testing.F) {
	f.Add("rtmp://user:pass@host:1935/app/streamkey-long?token=abc&x=y#frag")
	f.Add("https://h/p?a=b&c")
	f.Add("%zz")
	f.Fuzz(func(t *testing.T, raw string) {
		out := URL(raw)
		u := mustParse(raw)
		if u == nil || u.Opaque != "" {
			return
		}
		if u.User != nil {
			// The user information is never echoed: the authority starts with the placeholder.
			prefix := "//" + Placeholder + "@"
			if u.Scheme != "" {
				prefix = u.Scheme + ":" + prefix
			}
			if !strings.HasPrefix(out, prefix) {
				t.Fatalf("user information not redacted: %q -> %q", raw, out)
			}
		}
		// Every non-empty value of a secret-looking parameter is replaced.
		_, rawQuery, _ := strings.Cut(out, "?")
		rawQuery, _, _ = strings.Cut(rawQuery, "#")
		for _, p := range strings.Split(rawQuery, "&") {
			k, v, _ := strings.Cut(p, "=")
			if name, err := url.QueryUnescape(k); err == nil && IsSecretKey(name) && v != "" && v != Placeholder {
				t.Fatalf("secret parameter %q kept its value: %q -> %q", name, raw, out)
			}
		}
	})
}

func mustParse(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	return u
}
