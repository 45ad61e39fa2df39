package callback

import (
	"encoding/json"
	"testing"
)

func TestBodyWithSeq(t *testing.T) {
	tests := []struct {
		name, payload, want string
		seq                 int64
		bad                 bool
	}{
		{name: "after event_time", seq: 7,
			payload: `{"event_id":"e","event":"TaskStart","event_time":"2026-11-25T10:00:00Z","project_id":"p","data":{"seq":1}}`,
			want:    `{"event_id":"e","event":"TaskStart","event_time":"2026-11-25T10:00:00Z","seq":7,"project_id":"p","data":{"seq":1}}`},
		{name: "event_time last, spaces kept", seq: 1,
			payload: "{ \"a\" : 1 , \"event_time\" : \"x\" }",
			want:    "{ \"a\" : 1 , \"event_time\" : \"x\",\"seq\":1 }"},
		{name: "no event_time", seq: 12, payload: `{"a":[1,{"b":2}]}`, want: `{"seq":12,"a":[1,{"b":2}]}`},
		{name: "empty object", seq: 3, payload: `{}`, want: `{"seq":3}`},
		{name: "already has seq", payload: `{"seq":1}`, bad: true},
		{name: "array", payload: `[1]`, bad: true},
		{name: "truncated", payload: `{"a":`, bad: true},
		{name: "trailing data", payload: `{"a":1} {}`, bad: true},
		{name: "empty", payload: ``, bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bodyWithSeq([]byte(tc.payload), tc.seq)
			if tc.bad {
				if err == nil {
					t.Fatalf("bodyWithSeq(%s) = %s, want an error", tc.payload, got)
				}
				return
			}
			if err != nil || string(got) != tc.want || !json.Valid(got) {
				t.Fatalf("bodyWithSeq(%s) = %s, %v; want %s", tc.payload, got, err, tc.want)
			}
		})
	}
}

func FuzzBodyWithSeq(f *testing.F) {
	f.Add([]byte(`{"event_time":"x","a":1}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a":"\u0000"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, err := bodyWithSeq(payload, 42)
		if err != nil {
			return
		}
		var v map[string]any
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("bodyWithSeq(%q) = %q, not JSON: %v", payload, got, err)
		}
		if v["seq"] != float64(42) {
			t.Fatalf("bodyWithSeq(%q) = %q: seq %v", payload, got, v["seq"])
		}
	})
}
