package task

import (
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// checkSourceURL checks one source or backup URL for the given source type.
// field is its path, like "source_urls[2]".
func (r *Rules) checkSourceURL(field, sourceType, raw string) error {
	schemes := vodSourceSchemes
	if sourceType == PullLivePushLive {
		schemes = r.liveSchemes()
	}
	u, err := parseURL(field, raw)
	if err != nil {
		return err
	}
	if u.Scheme == "" {
		return fieldErr(field, "%s must be an absolute URL with a scheme (supported for %s: %s)", field, sourceType, strings.Join(schemes, ", "))
	}
	if !slices.ContainsFunc(schemes, func(s string) bool { return strings.EqualFold(s, u.Scheme) }) {
		return fieldErr(field, "%s: scheme %q is not supported for %s (supported: %s)", field, u.Scheme, sourceType, strings.Join(schemes, ", "))
	}
	if u.Scheme == "file" {
		return r.checkFileURL(field, u)
	}
	return checkHost(field, u)
}

// checkFileURL allows a file:// URL only under one of AllowFileRoots. The
// check is on the decoded path, so "%2e%2e" is caught with "..". Symbolic
// links cannot be seen without I/O: the roots are the operator's to keep
// free of links that lead out.
func (r *Rules) checkFileURL(field string, u *url.URL) error {
	if u.Host != "" && u.Host != "localhost" {
		return fieldErr(field, "%s: a file:// URL must not name a host", field)
	}
	p := u.Path
	if u.Opaque != "" || !strings.HasPrefix(p, "/") {
		return fieldErr(field, "%s: a file:// URL must hold an absolute path", field)
	}
	if strings.ContainsFunc(p, unicode.IsControl) {
		return fieldErr(field, "%s must not contain control characters", field)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return fieldErr(field, `%s must not contain ".." in its path`, field)
	}
	if len(r.AllowFileRoots) == 0 {
		return fieldErr(field, "%s: file:// sources are not allowed on this server (the operator allows directories with --allow-file-root)", field)
	}
	p = path.Clean(p)
	for _, root := range r.AllowFileRoots {
		root = path.Clean(root)
		if root == "/" || p == root || strings.HasPrefix(p, root+"/") {
			return nil
		}
	}
	return fieldErr(field, "%s: file path %q is not under a directory allowed with --allow-file-root", field, p)
}

// checkDestinationURL checks an rtmp:// or rtmps:// URL to publish to:
// a host, and a path /app[/more]/stream with no empty segment.
func checkDestinationURL(field, raw string) error {
	u, err := parseURL(field, raw)
	if err != nil {
		return err
	}
	if u.Scheme != "rtmp" && u.Scheme != "rtmps" {
		return fieldErr(field, "%s must be an rtmp:// or rtmps:// URL", field)
	}
	if err := checkHost(field, u); err != nil {
		return err
	}
	if strings.Contains(raw, "#") {
		return fieldErr(field, `%s must not contain "#"`, field)
	}
	segments := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(segments) < 2 || slices.Contains(segments, "") {
		return fieldErr(field, "%s must have a path /{app}/{stream}", field)
	}
	return nil
}

// normaliseCallbackURL checks callback_url and returns it as stored. A bare
// "host[:port]/path", which the API's own example uses, gets "http://".
func normaliseCallbackURL(raw string) (string, error) {
	const field = "callback_url"
	if raw == "" {
		return "", nil
	}
	bare := !hasSchemePrefix(raw)
	s := raw
	if bare {
		s = "http://" + raw
	}
	u, err := parseURL(field, s)
	if err != nil {
		return "", err
	}
	if bare && u.User != nil {
		return "", fieldErr(field, "callback_url must be an http:// or https:// URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fieldErr(field, "callback_url: scheme %q is not supported (supported: http, https)", u.Scheme)
	}
	if err := checkHost(field, u); err != nil {
		return "", err
	}
	return s, nil
}

// hasSchemePrefix reports whether s starts with "scheme://".
func hasSchemePrefix(s string) bool {
	i := strings.Index(s, "://")
	if i <= 0 {
		return false
	}
	for j, c := range s[:i] {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		other := c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
		if !letter && (j == 0 || !other) {
			return false
		}
	}
	return true
}

// parseURL applies the rules every URL field shares: present, at most
// maxURLLen characters, no spaces or control characters, parseable.
func parseURL(field, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fieldErr(field, "%s must not be empty", field)
	}
	if err := checkLen(field, raw, maxURLLen); err != nil {
		return nil, err
	}
	if strings.ContainsFunc(raw, isSpaceOrControl) {
		return nil, fieldErr(field, "%s must not contain spaces or control characters", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fieldErr(field, "%s is not a valid URL", field)
	}
	return u, nil
}

func checkHost(field string, u *url.URL) error {
	if u.Hostname() == "" {
		return fieldErr(field, "%s must have a host", field)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fieldErr(field, "%s has an invalid port %q", field, p)
		}
	}
	return nil
}

func isSpaceOrControl(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }

// DestinationKey identifies the stream a destination URL publishes to, for
// the rule "one enabled task per destination": scheme and host lowercased,
// the default port made explicit (rtmp 1935, rtmps 443), and the decoded
// path kept as is (stream names are case-sensitive). User info, query (push
// arguments such as a stream key) and fragment are dropped: two URLs that
// differ only there still push the same stream. A URL that does not parse
// with a host is returned unchanged; validated tasks never have one.
func DestinationKey(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return rawURL
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "rtmp":
			port = "1935"
		case "rtmps":
			port = "443"
		}
	} else if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n) // "01935" is 1935
	}
	host := strings.ToLower(u.Hostname())
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + u.Path
}

// OutboundURLs returns the URLs the task will connect to on the user's
// behalf, for the caller's denied-network check: sources, backups, then the
// callback URL. file:// sources are left out, as they reach no network.
func (t *Task) OutboundURLs() []string {
	var out []string
	for _, u := range slices.Concat(t.SourceURLs, t.BackupSourceURLs, []string{t.CallbackURL}) {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err == nil && strings.EqualFold(p.Scheme, "file") {
			continue
		}
		out = append(out, u)
	}
	return out
}
