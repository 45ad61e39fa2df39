package callback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of a callback request.
const (
	// SignatureHeader carries Sign's value when a signing key is set.
	SignatureHeader = "X-Liverelay-Signature"
	// EventIDHeader repeats the body's event_id, so a receiver can drop a
	// duplicate before it parses the body.
	EventIDHeader = "X-Liverelay-Event-Id"
)

// Errors of Verify, checked with errors.Is.
var (
	ErrNoSignature        = errors.New("callback: no signature")
	ErrMalformedSignature = errors.New("callback: malformed signature header")
	ErrSignatureMismatch  = errors.New("callback: signature does not match")
	ErrSignatureExpired   = errors.New("callback: signature time outside the tolerance")
)

// Sign returns the X-Liverelay-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>". Binding the
// time into the MAC lets a receiver refuse a replayed old request.
func Sign(key, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(signature(key, ts, body))
}

func signature(key []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a signature header made by Sign against the raw body as
// received: one of its v1 values must be the MAC of the header's t and the
// body under key, and t must be within tolerance of now (tolerance <= 0
// skips the time check). Parts other than t and v1 are ignored, so that a
// later scheme can be added beside v1.
func Verify(key, body []byte, header string, now time.Time, tolerance time.Duration) error {
	header = strings.TrimSpace(header)
	if header == "" {
		return ErrNoSignature
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformedSignature
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrMalformedSignature
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrMalformedSignature
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrMalformedSignature
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return ErrMalformedSignature
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformedSignature
	}
	want := signature(key, ts, body)
	match := false
	for _, sig := range sigs {
		match = hmac.Equal(sig, want) || match
	}
	if !match {
		return ErrSignatureMismatch
	}
	if tolerance > 0 {
		if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
			return ErrSignatureExpired
		}
	}
	return nil
}
