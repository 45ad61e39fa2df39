package sqlite

import (
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzStringList checks the fast path of listFromJSON against encoding/json:
// whatever plainList accepts, json.Unmarshal decodes to the same list, and
// every list of valid UTF-8 that listJSON writes reads back as it was.
func FuzzStringList(f *testing.F) {
	for _, s := range []string{
		`[]`, `[""]`, `["a"]`, `["rtmp://h/live/s","rtmp://h/live/s2"]`, `["a\"b"]`, `["\u0026"]`,
		`["a",]`, `[,"a"]`, `["a""b"]`, `["a" ,"b"]`, `["`, `[""`, `"a"`, `["é","\n"]`, "[\"\xff\"]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, ok := plainList(s); ok {
			var want []string
			if err := json.Unmarshal([]byte(s), &want); err != nil {
				t.Fatalf("plainList accepted %q, which is not JSON: %v", s, err)
			}
			if len(want) == 0 {
				want = nil
			}
			if !slices.Equal(got, want) || (got == nil) != (want == nil) {
				t.Fatalf("plainList(%q) = %q, encoding/json: %q", s, got, want)
			}
		}
		// The same bytes as the elements of a list: written, then read
		// (JSON holds valid UTF-8 only: json.Marshal replaces the rest).
		if !utf8.ValidString(s) {
			return
		}
		list := []string{s, "", s + "x"}
		got, err := listFromJSON("c", listJSON(list))
		if err != nil || !slices.Equal(got, list) {
			t.Fatalf("listFromJSON(listJSON(%q)) = %q, %v", list, got, err)
		}
	})
}
