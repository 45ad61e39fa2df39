package task

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
)

// modifyNow is the clock when tasks are modified: an hour after creation.
var modifyNow = testNow.Add(time.Hour)

func storedLive(t testing.TB) *Task {
	t.Helper()
	task := mustCreate(t, testRules(), seedExample)
	task.ID, task.ProjectID, task.CreateTime = "live-1", "p1", testNow
	return task
}

func storedVOD(t testing.TB) *Task {
	t.Helper()
	task, err := createFrom(t, testRules(), edit(t, vodExample, map[string]any{
		"backup_source_urls":    []string{"rtmp://b.example.com/live/bak"},
		"vod_start_video_index": 2,
		"callback_events":       []string{"TaskStart", "VodSourceFileFinish"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	task.ID, task.ProjectID, task.CreateTime = "vod-1", "p1", testNow
	return task
}

type modifyCase struct {
	name    string
	vod     bool           // modify storedVOD, else storedLive
	set     map[string]any // body fields besides task_id
	field   string
	msg     string
	changed []string // checked on success
	check   func(t *testing.T, next *Task)
}

func runModifyCases(t *testing.T, cases []modifyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cur := storedLive(t)
			if c.vod {
				cur = storedVOD(t)
			}
			before := cur.clone()
			fields := map[string]any{"task_id": cur.ID}
			for k, v := range c.set {
				fields[k] = v
			}
			body, err := json.Marshal(fields)
			if err != nil {
				t.Fatal(err)
			}
			req, err := DecodeModify(body)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			rules := testRules()
			rules.Now = modifyNow
			next, changed, err := rules.ApplyModify(cur, req)
			if !reflect.DeepEqual(cur, before) {
				t.Fatalf("ApplyModify changed the stored task:\n%+v\n%+v", cur, before)
			}
			checkErr(t, err, c.field, c.msg)
			if err != nil {
				if next != nil || changed != nil {
					t.Fatal("results besides the error")
				}
				return
			}
			if !slices.Equal(changed, c.changed) || changed == nil {
				t.Fatalf("changed = %q, want %q", changed, c.changed)
			}
			if next.Generation != cur.Generation+1 || !next.UpdateTime.Equal(modifyNow) {
				t.Fatalf("generation %d update %v", next.Generation, next.UpdateTime)
			}
			if next.ID != cur.ID || next.Destination != cur.Destination || next.DestinationKey != cur.DestinationKey || !next.CreateTime.Equal(cur.CreateTime) {
				t.Fatalf("identity or destination changed: %+v", next)
			}
			if c.check != nil {
				c.check(t, next)
			}
		})
	}
}

func TestModifyNothing(t *testing.T) {
	runModifyCases(t, []modifyCase{
		{name: "task_id only", changed: []string{}},
		{name: "same values sent back", vod: true, set: map[string]any{
			"status": "enable", "source_urls": []string{"https://media.example.com/a.mp4", "https://media.example.com/b.mp4", "https://media.example.com/c.flv"},
			"vod_loop_time": 3, "vod_start_video_index": 2, "end_time": "2030-05-20T18:00:00Z",
			"callback_events": []string{"VodSourceFileFinish", "TaskStart", "TaskStart"},
		}, changed: []string{}},
	})
}

func TestModifyStatus(t *testing.T) {
	runModifyCases(t, []modifyCase{
		{name: "pause", set: map[string]any{"status": "pause"}, changed: []string{"status"}, check: func(t *testing.T, next *Task) {
			if next.Status != StatusPause {
				t.Fatal(next.Status)
			}
		}},
		{name: "unknown", set: map[string]any{"status": "stop"}, field: "status", msg: "status must be pause or enable"},
		{name: "empty", set: map[string]any{"status": ""}, field: "status", msg: "status must be pause or enable"},
	})
}

func TestModifySources(t *testing.T) {
	two := []string{"https://media.example.com/x.mp4", "https://media.example.com/y.mp4"}
	runModifyCases(t, []modifyCase{
		{name: "live new source", set: map[string]any{"source_urls": []string{"rtmps://other.example.com/live/s"}}, changed: []string{"source_urls"},
			check: wantStrings("source_urls", sourceURLs, []string{"rtmps://other.example.com/live/s"})},
		{name: "live two sources", set: map[string]any{"source_urls": []string{"rtmp://a/live/s", "rtmp://b/live/s"}}, field: "source_urls", msg: "source_urls must contain exactly 1 URL for PullLivePushLive"},
		{name: "live http source", set: map[string]any{"source_urls": []string{"http://a/live/s"}}, field: "source_urls[0]", msg: `scheme "http" is not supported for PullLivePushLive`},
		{name: "vod new list with index", vod: true, set: map[string]any{"source_urls": two, "vod_start_video_index": 1, "vod_refresh_type": RefreshFromBreak},
			changed: []string{"source_urls", "vod_refresh_type", "vod_start_video_index"}, check: func(t *testing.T, next *Task) {
				wantStrings("source_urls", sourceURLs, two)(t, next)
				wantInt("index", startIndex, 1)(t, next)
				wantString("vod_refresh_type", refreshType, RefreshFromBreak)(t, next)
			}},
		{name: "vod list shorter than stored index", vod: true, set: map[string]any{"source_urls": two}, field: "vod_start_video_index", msg: "vod_start_video_index must be between 0 and 1"},
		{name: "vod empty list", vod: true, set: map[string]any{"source_urls": []string{}}, field: "source_urls", msg: "source_urls must contain 1 to 30 URLs"},
		{name: "vod file outside roots", vod: true, set: map[string]any{"source_urls": []string{"file:///etc/passwd"}, "vod_start_video_index": 0}, field: "source_urls[0]", msg: "--allow-file-root"},
	})
}

func TestModifyVOD(t *testing.T) {
	runModifyCases(t, []modifyCase{
		{name: "loop", vod: true, set: map[string]any{"vod_loop_time": "5"}, changed: []string{"vod_loop_time"}, check: wantInt("vod_loop_time", loopTime, 5)},
		{name: "loop forever as number", vod: true, set: map[string]any{"vod_loop_time": -1}, changed: []string{"vod_loop_time"}, check: wantInt("vod_loop_time", loopTime, LoopForever)},
		{name: "loop empty keeps", vod: true, set: map[string]any{"vod_loop_time": ""}, changed: []string{}, check: wantInt("vod_loop_time", loopTime, 3)},
		{name: "loop 0", vod: true, set: map[string]any{"vod_loop_time": "0"}, field: "vod_loop_time", msg: "vod_loop_time must be"},
		{name: "loop on live", set: map[string]any{"vod_loop_time": "5"}, field: "vod_loop_time", msg: "vod_loop_time is only valid when source_type is PullVodPushLive"},
		{name: "refresh continue_from_file_start", vod: true, set: map[string]any{"vod_refresh_type": RefreshFromFileStart}, changed: []string{"vod_refresh_type"},
			check: wantString("vod_refresh_type", refreshType, RefreshFromFileStart)},
		{name: "refresh unknown", vod: true, set: map[string]any{"vod_refresh_type": "resume"}, field: "vod_refresh_type", msg: "vod_refresh_type must be"},
		{name: "refresh on live", set: map[string]any{"vod_refresh_type": RefreshImmediate}, field: "vod_refresh_type", msg: "only valid when source_type is PullVodPushLive"},
		{name: "index", vod: true, set: map[string]any{"vod_start_video_index": 0}, changed: []string{"vod_start_video_index"}, check: wantInt("index", startIndex, 0)},
		{name: "index past the list", vod: true, set: map[string]any{"vod_start_video_index": 3}, field: "vod_start_video_index", msg: "vod_start_video_index must be between 0 and 2"},
		{name: "index on live", set: map[string]any{"vod_start_video_index": 0}, field: "vod_start_video_index", msg: "only valid when source_type is PullVodPushLive"},
		{name: "offset", vod: true, set: map[string]any{"vod_start_video_time": 42}, changed: []string{"vod_start_video_time"}, check: wantInt("offset", startOffset, 42)},
		{name: "offset negative", vod: true, set: map[string]any{"vod_start_video_time": -5}, field: "vod_start_video_time", msg: "vod_start_video_time must be between 0 and 2147483647"},
		{name: "offset on live", set: map[string]any{"vod_start_video_time": 1}, field: "vod_start_video_time", msg: "only valid"},
	})
}

func TestModifyTimes(t *testing.T) {
	runModifyCases(t, []modifyCase{
		{name: "later end", set: map[string]any{"end_time": "2030-05-20T00:00:00+02:00"}, changed: []string{"end_time"},
			check: wantTimes(at("2030-05-19T18:00:00Z"), at("2030-05-19T22:00:00Z"))},
		{name: "new start", set: map[string]any{"start_time": "2030-05-19T19:00:00Z"}, changed: []string{"start_time"},
			check: wantTimes(at("2030-05-19T19:00:00Z"), at("2030-05-19T21:00:00Z"))},
		{name: "empty strings keep", set: map[string]any{"start_time": "", "end_time": ""}, changed: []string{}},
		{name: "end before start", set: map[string]any{"end_time": "2030-05-19T17:00:00Z"}, field: "end_time", msg: "end_time must be later than start_time"},
		{name: "start after end", set: map[string]any{"start_time": "2030-05-19T22:00:00Z"}, field: "end_time", msg: "end_time must be later than start_time"},
		{name: "end in the past", set: map[string]any{"start_time": "2030-05-19T10:00:00Z", "end_time": "2030-05-19T12:30:00Z"}, field: "end_time", msg: "end_time must be in the future"},
		{name: "window exceeded", set: map[string]any{"end_time": "2030-05-26T18:00:01Z"}, field: "end_time", msg: "end_time must be at most 7 days after start_time"},
		{name: "bad format", set: map[string]any{"end_time": "2030-05-19"}, field: "end_time", msg: "end_time must be a time like"},
	})
}

func TestModifyTimesNotRecheckedWhenUntouched(t *testing.T) {
	cur := storedLive(t)
	rules := testRules()
	rules.Now = cur.EndTime.Add(time.Hour) // the task is over
	next, changed, err := rules.ApplyModify(cur, &ModifyRequest{TaskID: cur.ID, Status: new(StatusPause)})
	if err != nil || next.Status != StatusPause || !slices.Equal(changed, []string{"status"}) {
		t.Fatalf("pause after the end: %v %v", err, changed)
	}
	_, _, err = rules.ApplyModify(cur, &ModifyRequest{TaskID: cur.ID, StartTime: new("2030-05-19T18:30:00Z")})
	checkErr(t, err, "end_time", "end_time must be in the future")
}

func TestModifyCallbackEvents(t *testing.T) {
	runModifyCases(t, []modifyCase{
		{name: "subset", set: map[string]any{"callback_events": []string{"TaskAlarm"}}, changed: []string{"callback_events"},
			check: wantStrings("callback_events", events, []string{EventTaskAlarm})},
		{name: "empty means all", set: map[string]any{"callback_events": []string{}}, changed: []string{"callback_events"},
			check: wantStrings("callback_events", events, []string{})},
		{name: "unknown", set: map[string]any{"callback_events": []string{"Foo"}}, field: "callback_events[0]", msg: `callback_events: unknown event "Foo"`},
		{name: "vod event on live", set: map[string]any{"callback_events": []string{"ResetTaskConfig"}}, field: "callback_events[0]", msg: "only available when source_type is PullVodPushLive"},
		{name: "vod event on vod", vod: true, set: map[string]any{"callback_events": []string{"ResetTaskConfig"}}, changed: []string{"callback_events"},
			check: wantStrings("callback_events", events, []string{EventResetTaskConfig})},
	})
}

func TestModifyFixedFields(t *testing.T) {
	runModifyCases(t, []modifyCase{
		{name: "all fixed fields sent unchanged", set: map[string]any{
			"region": "cn-north-4", "source_type": "PullLivePushLive", "domain": "PUBLISH.example.huawei.com", "app_name": "live",
			"stream_name": "test", "push_args": "?arg1=value1", "destination_url": "", "callback_url": "callback.example.com",
			"backup_source_type": "PullLivePushLive", "backup_source_urls": []string{"rtmp://play.example.huawei.com/live/stream1_bak"},
		}, changed: []string{}},
		{name: "fixed fields null", set: map[string]any{"region": nil, "domain": nil, "callback_url": nil}, changed: []string{}},
		{name: "region", set: map[string]any{"region": "ap-southeast-1"}, field: "region", msg: "region cannot be changed"},
		{name: "region empty", set: map[string]any{"region": ""}, field: "region", msg: "region cannot be changed"},
		{name: "source_type", set: map[string]any{"source_type": PullVodPushLive}, field: "source_type", msg: "source_type cannot be changed"},
		{name: "domain", set: map[string]any{"domain": "sg.example.com"}, field: "domain", msg: "domain cannot be changed"},
		{name: "app_name", set: map[string]any{"app_name": "live2"}, field: "app_name", msg: "app_name cannot be changed"},
		{name: "stream_name", set: map[string]any{"stream_name": "Test"}, field: "stream_name", msg: "stream_name cannot be changed"},
		{name: "push_args", set: map[string]any{"push_args": ""}, field: "push_args", msg: "push_args cannot be changed"},
		{name: "destination_url", set: map[string]any{"destination_url": "rtmp://h/live/s"}, field: "destination_url", msg: "destination_url cannot be changed"},
		{name: "destination_url same", vod: true, set: map[string]any{"destination_url": "rtmp://ingest.example.com/live/channel1"}, changed: []string{}},
		{name: "destination_url on vod", vod: true, set: map[string]any{"destination_url": "rtmp://ingest.example.com/live/channel2"}, field: "destination_url", msg: "destination_url cannot be changed"},
		{name: "callback_url", set: map[string]any{"callback_url": "https://callback.example.com"}, field: "callback_url", msg: "callback_url cannot be changed"},
		{name: "callback_url invalid", set: map[string]any{"callback_url": "ftp://x"}, field: "callback_url", msg: "callback_url cannot be changed"},
		{name: "backup_source_type", set: map[string]any{"backup_source_type": PullVodPushLive}, field: "backup_source_type", msg: "backup_source_type cannot be changed"},
		{name: "backup_source_type empty with stored urls", set: map[string]any{"backup_source_type": ""}, changed: []string{}},
		{name: "backup_source_urls", set: map[string]any{"backup_source_urls": []string{"rtmp://x/live/y"}}, field: "backup_source_urls", msg: "backup_source_urls cannot be changed"},
		{name: "backup_source_urls removed", set: map[string]any{"backup_source_urls": []string{}}, field: "backup_source_urls", msg: "backup_source_urls cannot be changed"},
	})
}
