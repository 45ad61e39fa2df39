package auth

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The SDK-HMAC-SHA256 scheme, as the cloud's official SDKs sign requests
// (checked against huaweicloud-sdk-go-v3 v0.1.180 core/auth/signer, and the
// Python and Java cores). The canonical request is AWS-SigV4-like but signs
// with the SK directly, with no derived per-day key.
const (
	algorithm           = "SDK-HMAC-SHA256"
	dateFormat          = "20060102T150405Z"
	headerDate          = "X-Sdk-Date"
	headerProjectID     = "X-Project-Id"
	headerContentSHA256 = "X-Sdk-Content-Sha256"
	headerToken         = "X-Auth-Token"
	unsignedPayload     = "UNSIGNED-PAYLOAD"

	// maxSkew is how far X-Sdk-Date may be from the server clock, either way.
	maxSkew = 15 * time.Minute

	maxAuthorizationLen = 4096
	maxSignedHeaders    = 64
	maxAccessKeyLen     = 128
)

// ParseAuthorization splits an `SDK-HMAC-SHA256 Access=<AK>,
// SignedHeaders=<h1;h2>, Signature=<hex>` header value. Header names must be
// lowercase HTTP tokens without repeats (the SDKs lowercase them), and the
// signature must be a hex SHA-256 HMAC.
func ParseAuthorization(h string) (ak string, signedHeaders []string, sig []byte, err error) {
	if len(h) > maxAuthorizationLen {
		return "", nil, nil, errors.New("authorization header too long")
	}
	rest, ok := strings.CutPrefix(h, algorithm+" ")
	if !ok {
		return "", nil, nil, errors.New("authorization scheme is not " + algorithm)
	}
	var haveAK, haveHeaders, haveSig bool
	for part := range strings.SplitSeq(rest, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return "", nil, nil, errors.New("authorization field without '='")
		}
		switch name {
		case "Access":
			if haveAK {
				return "", nil, nil, errors.New("repeated Access")
			}
			if !validAccessKey(value) {
				return "", nil, nil, errors.New("malformed Access")
			}
			ak, haveAK = value, true
		case "SignedHeaders":
			if haveHeaders {
				return "", nil, nil, errors.New("repeated SignedHeaders")
			}
			signedHeaders, err = parseSignedHeaders(value)
			if err != nil {
				return "", nil, nil, err
			}
			haveHeaders = true
		case "Signature":
			if haveSig {
				return "", nil, nil, errors.New("repeated Signature")
			}
			sig, err = hex.DecodeString(value)
			if err != nil || len(sig) != sha256.Size {
				return "", nil, nil, errors.New("malformed Signature")
			}
			haveSig = true
		default:
			return "", nil, nil, fmt.Errorf("unknown authorization field %q", name)
		}
	}
	if !haveAK || !haveHeaders || !haveSig {
		return "", nil, nil, errors.New("authorization lacks Access, SignedHeaders or Signature")
	}
	return ak, signedHeaders, sig, nil
}

// formatAuthorization is the inverse of ParseAuthorization, in the SDKs'
// exact layout.
func formatAuthorization(ak string, signedHeaders []string, sig []byte) string {
	return algorithm + " Access=" + ak + ", SignedHeaders=" + strings.Join(signedHeaders, ";") +
		", Signature=" + hex.EncodeToString(sig)
}

func validAccessKey(ak string) bool {
	if ak == "" || len(ak) > maxAccessKeyLen {
		return false
	}
	for i := range len(ak) {
		if c := ak[i]; c <= ' ' || c >= 0x7f || c == ',' {
			return false
		}
	}
	return true
}

func parseSignedHeaders(v string) ([]string, error) {
	names := strings.Split(v, ";")
	if len(names) > maxSignedHeaders {
		return nil, errors.New("too many SignedHeaders")
	}
	for i, name := range names {
		if !lowerToken(name) {
			return nil, errors.New("malformed SignedHeaders")
		}
		if slices.Contains(names[:i], name) {
			return nil, errors.New("repeated header in SignedHeaders")
		}
	}
	return names, nil
}

// lowerToken reports whether s is a non-empty RFC 9110 token without
// uppercase letters.
func lowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// CanonicalRequest returns the canonical form of a request as the SDKs build
// it before hashing:
//
//	METHOD
//	/path/segments/          each segment of the decoded path escaped, '/' appended
//	a=1&b=x%20y              decoded pairs sorted by key then value, re-escaped
//	name:value               one line per signed header value, in SignedHeaders order
//	                         (blank line: the header block ends in a newline)
//	h1;h2                    SignedHeaders
//	hex(sha256(body))        or the X-Sdk-Content-Sha256 header's value when sent
//
// It returns "" when the query string is not valid URL encoding.
func CanonicalRequest(r *http.Request, body []byte, signedHeaders []string) string {
	cr, err := canonicalRequest(r, body, signedHeaders)
	if err != nil {
		return ""
	}
	return cr
}

func canonicalRequest(r *http.Request, body []byte, signedHeaders []string) (string, error) {
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r.URL.Path))
	b.WriteByte('\n')
	b.WriteString(query)
	b.WriteByte('\n')
	writeCanonicalHeaders(&b, r, signedHeaders)
	b.WriteByte('\n')
	b.WriteString(strings.Join(signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash(r, body))
	return b.String(), nil
}

// canonicalURI escapes each segment of the decoded path. The SDKs split the
// path they were given (Go: the path as set on the request; Python: the
// unquoted resource path) on '/', so a %2F in a segment is a separator here
// too.
func canonicalURI(path string) string {
	segments := strings.Split(path, "/")
	for i, s := range segments {
		segments[i] = sdkEscape(s)
	}
	u := strings.Join(segments, "/")
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// canonicalQuery decodes the raw query the way the API handlers will read it
// (url.QueryUnescape, so '+' is a space) and re-encodes it in the SDKs' form:
// pairs sorted by decoded key, then by decoded value, each part escaped with
// sdkEscape, a key without '=' standing for an empty value.
func canonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	type pair struct{ k, v string }
	var pairs []pair
	for piece := range strings.SplitSeq(raw, "&") {
		if piece == "" {
			continue
		}
		k, v, _ := strings.Cut(piece, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return "", fmt.Errorf("query key: %w", err)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return "", fmt.Errorf("query value: %w", err)
		}
		pairs = append(pairs, pair{dk, dv})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		return cmp.Or(strings.Compare(a.k, b.k), strings.Compare(a.v, b.v))
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(sdkEscape(p.k))
		b.WriteByte('=')
		b.WriteString(sdkEscape(p.v))
	}
	return b.String(), nil
}

// writeCanonicalHeaders writes "name:value\n" for every value of every
// signed header, values sorted then trimmed (the Go SDK's order). A signed
// header the request lacks contributes no line, as in the Go SDK. "host" is
// the request's Host, which net/http keeps out of r.Header.
func writeCanonicalHeaders(b *strings.Builder, r *http.Request, signedHeaders []string) {
	for _, name := range signedHeaders {
		var values []string
		if name == "host" {
			values = []string{requestHost(r)}
		} else {
			values = slices.Clone(r.Header.Values(name))
			slices.Sort(values)
		}
		for _, v := range values {
			b.WriteString(name)
			b.WriteByte(':')
			b.WriteString(strings.TrimSpace(v))
			b.WriteByte('\n')
		}
	}
}

func requestHost(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	return r.URL.Host
}

// payloadHash is what the SDKs put last in the canonical request: the value
// of X-Sdk-Content-Sha256 when the request carries one (the Go SDK sends
// UNSIGNED-PAYLOAD there for bodies that are not JSON), else the body's hash.
// The verifier decides separately whether such a header is acceptable.
func payloadHash(r *http.Request, body []byte) string {
	if v := r.Header.Values(headerContentSHA256); len(v) > 0 {
		return v[0]
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// stringToSign is the text the SK signs; date is X-Sdk-Date as sent.
func stringToSign(date, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return algorithm + "\n" + date + "\n" + hex.EncodeToString(sum[:])
}

func signString(sk []byte, s string) []byte {
	mac := hmac.New(sha256.New, sk)
	mac.Write([]byte(s))
	return mac.Sum(nil)
}

// sdkEscape percent-encodes every byte outside A-Z a-z 0-9 - _ . ~ with
// uppercase hex, byte by byte (so UTF-8 text is encoded per byte). This is
// the SDKs' escape for path segments, query keys and query values alike;
// unlike url.QueryEscape, a space is %20, never '+'.
func sdkEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// Sign signs r for the SDK-HMAC-SHA256 scheme, for our tests and tooling: it
// sets X-Sdk-Date to now and Authorization, signing host, x-sdk-date, and
// content-type and x-project-id when r has them. body must be what r will
// send. Sign leaves r without Authorization when its query string is not
// valid URL encoding (the server would refuse it anyway).
func Sign(r *http.Request, body []byte, ak, sk string, now time.Time) {
	date := now.UTC().Format(dateFormat)
	r.Header.Set(headerDate, date)
	names := []string{"host", "x-sdk-date"}
	if len(r.Header.Values("Content-Type")) > 0 {
		names = append(names, "content-type")
	}
	if len(r.Header.Values(headerProjectID)) > 0 {
		names = append(names, "x-project-id")
	}
	slices.Sort(names)
	cr, err := canonicalRequest(r, body, names)
	if err != nil {
		r.Header.Del("Authorization")
		return
	}
	sig := signString([]byte(sk), stringToSign(date, cr))
	r.Header.Set("Authorization", formatAuthorization(ak, names, sig))
}
