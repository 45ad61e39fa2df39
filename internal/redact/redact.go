// Package redact removes credentials from URLs before they reach an error
// string, a log line or an API response.
package redact

import (
	"net/url"
	"strings"
)

// Placeholder replaces every redacted value.
const Placeholder = "REDACTED"

// secretKeyParts are substrings of query keys whose values are credentials:
// key, streamkey, token, access_token, sign, signature, txSecret, wsSecret,
// auth_key, password, passwd, pwd...
var secretKeyParts = []string{"key", "token", "sign", "sig", "auth", "secret", "pass", "pwd", "credential", "session"}

// IsSecretKey reports whether the values of a query parameter with this name
// are treated as credentials.
func IsSecretKey(name string) bool {
	name = strings.ToLower(name)
	for _, part := range secretKeyParts {
		if strings.Contains(name, part) {
			return true
		}
	}
	return false
}

// URL returns rawURL with its credentials replaced by [Placeholder]:
//   - the user information (user:password@), whole;
//   - the values of query parameters whose names look secret ([IsSecretKey]);
//   - for rtmp and rtmps URLs, the stream name (last path segment) beyond its
//     first 4 characters when it is longer than 8: platforms (YouTube, Twitch,
//     Facebook...) use it as the stream key;
//   - the fragment (some clients carry the stream key there).
//
// A string that does not parse as a URL is not echoed at all.
func URL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<unparsable URL>"
	}
	if u.Opaque != "" {
		// scheme:opaque has no structure we know; it may hide anything.
		return u.Scheme + ":" + Placeholder
	}

	r := *u
	if r.User != nil {
		r.User = url.User(Placeholder)
	}
	if s := strings.ToLower(u.Scheme); s == "rtmp" || s == "rtmps" {
		if p := maskLastSegment(u.Path); p != u.Path {
			r.Path, r.RawPath = p, ""
		}
	}
	r.RawQuery = query(u.RawQuery)
	if r.Fragment != "" {
		r.Fragment, r.RawFragment = Placeholder, ""
	}
	return r.String()
}

// maskLastSegment keeps the first 4 characters of a long last path segment.
func maskLastSegment(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return path
	}
	seg := []rune(path[i+1:])
	if len(seg) <= 8 {
		return path
	}
	return path[:i+1] + string(seg[:4]) + "..." + Placeholder
}

// query redacts secret values in a raw query string, keeping the order and
// the encoding of everything else.
func query(raw string) string {
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, v, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && v != "" && IsSecretKey(name) {
			parts[i] = k + "=" + Placeholder
		}
	}
	return strings.Join(parts, "&")
}

// Text replaces every occurrence of the secret parts of rawURL (user
// information, secret query values, the masked stream name) inside s. It is
// for text that echoes parts of a URL, such as a server's error description.
func Text(s, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return s
	}
	var secrets []string
	if u.User != nil {
		secrets = append(secrets, u.User.Username())
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
	}
	for k, vs := range u.Query() {
		if IsSecretKey(k) {
			secrets = append(secrets, vs...)
		}
	}
	if s := strings.ToLower(u.Scheme); s == "rtmp" || s == "rtmps" {
		if i := strings.LastIndexByte(u.Path, '/'); i >= 0 && len(u.Path)-i-1 > 8 {
			secrets = append(secrets, u.Path[i+1:])
		}
	}
	if u.Fragment != "" {
		secrets = append(secrets, u.Fragment)
	}
	for _, sec := range secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, Placeholder)
		}
	}
	return s
}
