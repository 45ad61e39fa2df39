package auth

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

const goodSig = "8574ec4c93528a03868e670f3d2719626ba8dd0f541cff236d5fd86b117d89b4"

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		ak      string
		headers []string
		ok      bool
	}{
		{"sdk layout", "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=" + goodSig, "AK1", []string{"host", "x-sdk-date"}, true},
		{"no spaces", "SDK-HMAC-SHA256 Access=AK1,SignedHeaders=x-sdk-date,Signature=" + goodSig, "AK1", []string{"x-sdk-date"}, true},
		{"fields reordered", "SDK-HMAC-SHA256 Signature=" + goodSig + ", Access=AK1, SignedHeaders=x-sdk-date", "AK1", []string{"x-sdk-date"}, true},
		{"uppercase hex", "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + strings.ToUpper(goodSig), "AK1", []string{"x-sdk-date"}, true},
		{"other scheme", "SDK-HMAC-SHA512 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + goodSig, "", nil, false},
		{"scheme lowercase", "sdk-hmac-sha256 Access=AK1, SignedHeaders=x-sdk-date, Signature=" + goodSig, "", nil, false},
		{"empty", "", "", nil, false},
		{"missing signature", "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=x-sdk-date", "", nil, false},
		{"missing access", "SDK-HMAC-SHA256 SignedHeaders=x-sdk-date, Signature=" + goodSig, "", nil, false},
		{"empty access", "SDK-HMAC-SHA256 Access=, SignedHeaders=x-sdk-date, Signature=" + goodSig, "", nil, false},
		{"repeated access", "SDK-HMAC-SHA256 Access=A, Access=B, SignedHeaders=x-sdk-date, Signature=" + goodSig, "", nil, false},
		{"unknown field", "SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date, Signature=" + goodSig + ", Extra=1", "", nil, false},
		{"short signature", "SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date, Signature=abcd", "", nil, false},
		{"non-hex signature", "SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date, Signature=" + strings.Repeat("zz", 32), "", nil, false},
		{"uppercase header", "SDK-HMAC-SHA256 Access=A, SignedHeaders=Host;x-sdk-date, Signature=" + goodSig, "", nil, false},
		{"empty header name", "SDK-HMAC-SHA256 Access=A, SignedHeaders=host;;x-sdk-date, Signature=" + goodSig, "", nil, false},
		{"repeated header", "SDK-HMAC-SHA256 Access=A, SignedHeaders=host;host, Signature=" + goodSig, "", nil, false},
		{"header with space", "SDK-HMAC-SHA256 Access=A, SignedHeaders=ho st, Signature=" + goodSig, "", nil, false},
		{"field without =", "SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=" + goodSig + ", junk", "", nil, false},
		{"too long", "SDK-HMAC-SHA256 Access=" + strings.Repeat("A", 5000) + ", SignedHeaders=host, Signature=" + goodSig, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ak, headers, sig, err := ParseAuthorization(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if !tt.ok {
				return
			}
			if ak != tt.ak || !slices.Equal(headers, tt.headers) || len(sig) != 32 {
				t.Fatalf("got %q %q %x", ak, headers, sig)
			}
		})
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=" + goodSig)
	f.Add("SDK-HMAC-SHA256 Signature=" + goodSig + ",Access=X,SignedHeaders=a")
	f.Add("SDK-HMAC-SHA256 Access=A=B, SignedHeaders=x-sdk-date;content-type;user-agent, Signature=" + goodSig)
	f.Add("SDK-HMAC-SHA256 ")
	f.Add("SDK-HMAC-SHA256 Access=A,,SignedHeaders=a")
	f.Fuzz(func(t *testing.T, h string) {
		ak, headers, sig, err := ParseAuthorization(h)
		if err != nil {
			return
		}
		again := formatAuthorization(ak, headers, sig)
		ak2, headers2, sig2, err := ParseAuthorization(again)
		if err != nil {
			t.Fatalf("formatted %q does not parse: %v", again, err)
		}
		if ak2 != ak || !slices.Equal(headers2, headers) || !bytes.Equal(sig2, sig) {
			t.Fatalf("round trip of %q: %q %q %x, then %q %q %x", h, ak, headers, sig, ak2, headers2, sig2)
		}
		if formatAuthorization(ak2, headers2, sig2) != again {
			t.Fatalf("format is not stable for %q", h)
		}
	})
}

func TestNewAccessKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		ak, sk := NewAccessKey()
		if len(ak) != 20 || strings.Trim(ak, accessKeyAlphabet) != "" {
			t.Fatalf("access key %q", ak)
		}
		if len(sk) != 40 || strings.Trim(sk, secretKeyAlphabet) != "" {
			t.Fatalf("secret key of %d chars outside the alphabet", len(sk))
		}
		if seen[ak] || seen[sk] {
			t.Fatal("repeated key")
		}
		seen[ak], seen[sk] = true, true
	}
}
