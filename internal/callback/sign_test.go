package callback

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignKnownVector(t *testing.T) {
	key := []byte("whsec_test")
	body := []byte(`{"event":"TaskStart","seq":1}`)
	at := time.Unix(1795600800, 999e6) // fractions of a second are dropped
	// Computed independently: HMAC-SHA256 of "1795600800." + body.
	m := hmac.New(sha256.New, key)
	m.Write([]byte("1795600800." + string(body)))
	want := "t=1795600800,v1=" + hex.EncodeToString(m.Sum(nil))
	if got := Sign(key, body, at); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	key := []byte("key-1")
	body := []byte(`{"event_id":"e1","seq":3}`)
	at := time.Unix(1795600800, 0)
	good := Sign(key, body, at)
	other := Sign([]byte("key-0"), body, at)
	tests := []struct {
		name   string
		key    []byte
		body   string
		header string
		now    time.Time
		tol    time.Duration
		want   error
	}{
		{name: "good", header: good, now: at, tol: time.Minute},
		{name: "good within tolerance late", header: good, now: at.Add(5 * time.Minute), tol: 5 * time.Minute},
		{name: "good within tolerance early", header: good, now: at.Add(-5 * time.Minute), tol: 5 * time.Minute},
		{name: "no time check", header: good, now: at.Add(1000 * time.Hour)},
		{name: "spaces and unknown parts", header: " v0=zz , " + strings.ReplaceAll(good, ",", " , ") + ",v2=abc", now: at, tol: time.Minute},
		{name: "rotation: one of two v1 matches", header: other + "," + good[strings.Index(good, "v1="):], now: at, tol: time.Minute},
		{name: "too old", header: good, now: at.Add(5*time.Minute + time.Second), tol: 5 * time.Minute, want: ErrSignatureExpired},
		{name: "from the future", header: good, now: at.Add(-5*time.Minute - time.Second), tol: 5 * time.Minute, want: ErrSignatureExpired},
		{name: "other key", header: other, now: at, tol: time.Minute, want: ErrSignatureMismatch},
		{name: "verified with another key", key: []byte("key-2"), header: good, now: at, want: ErrSignatureMismatch},
		{name: "body changed", body: `{"event_id":"e1","seq":4}`, header: good, now: at, want: ErrSignatureMismatch},
		{name: "time changed", header: strings.Replace(good, "t=1795600800", "t=1795600801", 1), now: at, want: ErrSignatureMismatch},
		{name: "empty", header: "", want: ErrNoSignature},
		{name: "blank", header: "  ", want: ErrNoSignature},
		{name: "no v1", header: "t=1795600800", want: ErrMalformedSignature},
		{name: "no t", header: good[strings.Index(good, "v1="):], want: ErrMalformedSignature},
		{name: "two t", header: "t=1," + good, want: ErrMalformedSignature},
		{name: "signed t", header: strings.Replace(good, "t=", "t=+", 1), want: ErrMalformedSignature},
		{name: "t not a number", header: strings.Replace(good, "t=1795600800", "t=17956008x0", 1), want: ErrMalformedSignature},
		{name: "t overflows", header: strings.Replace(good, "t=1795600800", "t=99999999999999999999", 1), want: ErrMalformedSignature},
		{name: "v1 not hex", header: "t=1795600800,v1=zz", want: ErrMalformedSignature},
		{name: "v1 short", header: "t=1795600800,v1=abcd", want: ErrMalformedSignature},
		{name: "part without =", header: good + ",junk", want: ErrMalformedSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, b := key, body
			if tc.key != nil {
				k = tc.key
			}
			if tc.body != "" {
				b = []byte(tc.body)
			}
			err := Verify(k, b, tc.header, tc.now, tc.tol)
			if tc.want == nil && err != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Verify(%q) = %v, want %v", tc.header, err, tc.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	key := []byte("fuzz-key")
	at := time.Unix(1795600800, 0)
	f.Add([]byte(`{"seq":1}`), Sign(key, []byte(`{"seq":1}`), at))
	f.Add([]byte(""), "t=1,v1=00")
	f.Add([]byte("x"), "t=,v1=,=,,")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		if Verify(key, body, header, at, time.Hour) == nil {
			// Accepted: the header holds the MAC of its own t and the body.
			var ts string
			for p := range strings.SplitSeq(header, ",") {
				if k, v, _ := strings.Cut(strings.TrimSpace(p), "="); k == "t" {
					ts = v
				}
			}
			mac := hex.EncodeToString(signature(key, ts, body))
			if !strings.Contains(strings.ToLower(header), "v1="+mac) {
				t.Fatalf("Verify accepted %q for body %q", header, body)
			}
		}
		// Whatever the header was, a fresh signature verifies.
		if err := Verify(key, body, Sign(key, body, at), at, time.Hour); err != nil {
			t.Fatalf("Verify(Sign) = %v", err)
		}
	})
}
