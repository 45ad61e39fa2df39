package task

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"
)

func addCreateSeeds(f *testing.F) {
	f.Add([]byte(seedExample))
	f.Add([]byte(vodExample))
	for _, set := range []map[string]any{
		{"source_urls": []string{"file:///srv/media/a.mp4", "file:///srv/media/../x"}, "vod_start_video_index": 1},
		{"vod_loop_time": 1.5, "vod_start_video_time": 2147483648},
		{"callback_url": "hooks.example.com:8080/cb", "callback_events": []string{"TaskAlarm", "TaskAlarm"}},
		{"start_time": "2030-05-20T02:00:00+08:00", "end_time": absent},
		{"destination_url": "rtmps://[::1]:443/app/more/s?x=1", "push_args": "?k=v"},
	} {
		f.Add(edit(f, vodExample, set))
	}
	f.Add(edit(f, seedExample, map[string]any{"region": nil, "domain": "sg.example.com", "backup_source_type": PullVodPushLive}))
	f.Add([]byte(`{"source_type":"PullLivePushLive","source_urls":[null]}`))
	f.Add([]byte(`[1,{"a":`))
}

// checkTaskInvariants holds for every task validation lets through.
func checkTaskInvariants(t *testing.T, rules *Rules, task *Task) {
	t.Helper()
	switch {
	case !task.StartTime.Before(task.EndTime):
		t.Fatalf("start %v not before end %v", task.StartTime, task.EndTime)
	case task.EndTime.Sub(task.StartTime) > rules.maxWindow():
		t.Fatalf("window %v too long", task.EndTime.Sub(task.StartTime))
	case task.StartTime.Location() != time.UTC || task.StartTime.Nanosecond() != 0 || task.EndTime.Nanosecond() != 0:
		t.Fatalf("times not UTC seconds: %v %v", task.StartTime, task.EndTime)
	case len(task.SourceURLs) < 1:
		t.Fatal("no source")
	case task.SourceType == PullLivePushLive && len(task.SourceURLs) != 1:
		t.Fatalf("live task with %d sources", len(task.SourceURLs))
	case task.Destination == "" || task.DestinationKey == "":
		t.Fatal("no destination")
	case checkDestinationURL("destination", task.Destination) != nil:
		t.Fatalf("invalid destination %q", task.Destination)
	case task.VodLoopTime != LoopForever && task.VodLoopTime < 1:
		t.Fatalf("vod_loop_time %d", task.VodLoopTime)
	case task.VodStartVideoIndex < 0 || task.VodStartVideoIndex >= len(task.SourceURLs):
		t.Fatalf("index %d of %d", task.VodStartVideoIndex, len(task.SourceURLs))
	case task.VodStartVideoTime < 0:
		t.Fatalf("offset %d", task.VodStartVideoTime)
	case !slices.Contains(rules.regions(), task.Region):
		t.Fatalf("region %q", task.Region)
	case task.BackupSourceType == "" && len(task.BackupSourceURLs) != 0:
		t.Fatal("backup URLs without a type")
	case task.Status != StatusEnable && task.Status != StatusPause:
		t.Fatalf("status %q", task.Status)
	}
	for _, e := range task.CallbackEvents {
		if !slices.Contains(AllEvents, e) || (!task.IsVOD() && slices.Contains(VODOnlyEvents, e)) {
			t.Fatalf("event %q on %s", e, task.SourceType)
		}
	}
	_ = task.OutboundURLs()
}

func checkFieldError(t *testing.T, err error) {
	t.Helper()
	if fe, ok := errors.AsType[*FieldError](err); !ok || fe.Msg == "" {
		t.Fatalf("error %T %v is not a *FieldError with a message", err, err)
	}
}

func FuzzDecodeCreate(f *testing.F) {
	addCreateSeeds(f)
	rules := testRules()
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeCreate(body)
		if err != nil {
			checkFieldError(t, err)
			return
		}
		task, err := rules.NewTask(req)
		if err != nil {
			checkFieldError(t, err)
			return
		}
		checkTaskInvariants(t, rules, task)
		if task.Status != StatusEnable || task.Generation != 1 {
			t.Fatalf("status %q generation %d", task.Status, task.Generation)
		}
	})
}

func FuzzDecodeModify(f *testing.F) {
	f.Add([]byte(`{"task_id":"t","status":"pause"}`))
	f.Add([]byte(`{"task_id":"t","source_urls":["https://m.example.com/x.mp4"],"vod_start_video_index":0,"vod_refresh_type":"continue_from_break_point"}`))
	f.Add([]byte(`{"task_id":"t","end_time":"2030-05-21T00:00:00+08:00","vod_loop_time":7}`))
	f.Add([]byte(`{"task_id":"t","callback_events":["TaskExit","ResetTaskConfig"],"callback_url":"callback.example.com"}`))
	f.Add([]byte(`{"task_id":"t","backup_source_urls":[],"region":"cn-north-4","push_args":"?arg1=value1"}`))
	f.Add([]byte(`{"task_id":"t","source_urls":["rtmp://h/live/s"],"start_time":"2030-05-19T13:00:00Z"}`))
	f.Add([]byte(`{"task_id":1}`))
	rules := testRules()
	rules.Now = modifyNow
	stored := []*Task{storedLive(f), storedVOD(f)}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeModify(body)
		if err != nil {
			checkFieldError(t, err)
			return
		}
		if req.TaskID == "" {
			t.Fatal("decoded without task_id")
		}
		for _, cur := range stored {
			before := cur.clone()
			next, changed, err := rules.ApplyModify(cur, req)
			if !reflect.DeepEqual(cur, before) {
				t.Fatal("ApplyModify changed the stored task")
			}
			if err != nil {
				checkFieldError(t, err)
				continue
			}
			checkTaskInvariants(t, rules, next)
			if next.Generation != cur.Generation+1 || next.Destination != cur.Destination || next.SourceType != cur.SourceType ||
				next.Region != cur.Region || next.CallbackURL != cur.CallbackURL || !slices.Equal(next.BackupSourceURLs, cur.BackupSourceURLs) {
				t.Fatalf("fixed field changed: %+v", next)
			}
			if len(changed) == 0 && !reflect.DeepEqual(withoutVersion(next), withoutVersion(cur)) {
				t.Fatalf("task changed but changed is empty:\n%+v\n%+v", next, cur)
			}
		}
	})
}

// withoutVersion is t without the fields every modify bumps, and with an
// empty event list in one spelling.
func withoutVersion(t *Task) Task {
	c := *t.clone()
	c.Generation, c.UpdateTime = 0, time.Time{}
	if len(c.CallbackEvents) == 0 {
		c.CallbackEvents = nil
	}
	return c
}
