package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// testNow is the clock of every test: the seed example's day, moved into
// the future, at noon.
var testNow = time.Date(2030, 5, 19, 12, 0, 0, 0, time.UTC)

func testRules() *Rules {
	return &Rules{
		Now:           testNow,
		MaxWindow:     7 * 24 * time.Hour,
		Regions:       []string{"cn-north-4", "ap-southeast-1"},
		DefaultRegion: "cn-north-4",
		Domains: map[string]Domain{
			"publish.example.huawei.com": {Name: "publish.example.huawei.com", Region: "cn-north-4", Ingest: "rtmp://127.0.0.1:1935"},
			"sg.example.com":             {Name: "sg.example.com", Region: "ap-southeast-1", Ingest: "rtmps://ingest.sg.example.com/"},
		},
		AllowFileRoots:     []string{"/srv/media"},
		LiveSourceSchemes:  []string{"rtmp", "rtmps"},
		VODSupported:       true,
		VODBackupSupported: true,
	}
}

// seedExample is the seed document's example request, its 2018 times moved
// to 2030.
const seedExample = `{
"region" : "cn-north-4",
"source_type" : "PullLivePushLive",
"source_urls" : [ "rtmp://play.example.huawei.com/live/stream1" ],
"domain" : "publish.example.huawei.com",
"app_name" : "live",
"stream_name" : "test",
"start_time" : "2030-05-19T18:00:00Z",
"end_time" : "2030-05-19T21:00:00Z",
"push_args" : "arg1=value1",
"callback_events" : [ "TaskStart", "TaskExit", "TaskAlarm" ],
"callback_url" : "callback.example.com",
"backup_source_type" : "PullLivePushLive",
"backup_source_urls" : [ "rtmp://play.example.huawei.com/live/stream1_bak" ]
}`

// vodExample is a VOD create body using the destination_url form.
const vodExample = `{
"source_type" : "PullVodPushLive",
"source_urls" : [ "https://media.example.com/a.mp4", "https://media.example.com/b.mp4", "https://media.example.com/c.flv" ],
"destination_url" : "rtmp://ingest.example.com/live/channel1",
"start_time" : "2030-05-19T18:00:00Z",
"end_time" : "2030-05-20T18:00:00Z",
"vod_loop_time" : "3",
"callback_url" : "https://hooks.example.com/liverelay"
}`

// absent, as a value in a body edit, removes the field.
const absent = "\x00absent"

func mustObject(t testing.TB, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// edit returns body with the fields of set replaced (or removed, for
// absent).
func edit(t testing.TB, body string, set map[string]any) []byte {
	t.Helper()
	m := maps.Clone(mustObject(t, body))
	for k, v := range set {
		if v == absent {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func createFrom(t testing.TB, rules *Rules, body []byte) (*Task, error) {
	t.Helper()
	req, err := DecodeCreate(body)
	if err != nil {
		return nil, err
	}
	return rules.NewTask(req)
}

func mustCreate(t testing.TB, rules *Rules, body string) *Task {
	t.Helper()
	task, err := createFrom(t, rules, []byte(body))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return task
}

// checkErr asserts the outcome of a call: no error when field and msg are
// both empty, else a *FieldError with exactly that Field and a message
// containing msg.
func checkErr(t *testing.T, err error, field, msg string) {
	t.Helper()
	if field == "" && msg == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v (%#v)", err, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want field %q, message containing %q", field, msg)
	}
	fe, ok := errors.AsType[*FieldError](err)
	if !ok {
		t.Fatalf("error %T %v is not a *FieldError", err, err)
	}
	if fe.Field != field || !strings.Contains(fe.Error(), msg) {
		t.Fatalf("error field %q message %q; want field %q, message containing %q", fe.Field, fe.Msg, field, msg)
	}
}

func urls(n int, format string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}
