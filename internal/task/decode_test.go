package task

import (
	"testing"
)

func TestDecodeCreate(t *testing.T) {
	for _, c := range []struct {
		name  string
		body  string
		field string
		msg   string
		check func(t *testing.T, req *CreateRequest)
	}{
		{name: "seed example", body: seedExample, check: func(t *testing.T, req *CreateRequest) {
			if req.Region == nil || *req.Region != "cn-north-4" || req.SourceType != PullLivePushLive || len(req.SourceURLs) != 1 ||
				req.CallbackURL != "callback.example.com" || len(req.CallbackEvents) != 3 || req.VodStartVideoIndex != nil {
				t.Fatalf("%+v", req)
			}
		}},
		{name: "not JSON", body: `{"source_type": `, field: "", msg: "request body is not valid JSON: "},
		{name: "empty body", body: ``, field: "", msg: "request body is not valid JSON"},
		{name: "trailing data", body: `{} {}`, field: "", msg: "request body is not valid JSON"},
		{name: "array body", body: `[]`, field: "", msg: "request body must be a JSON object"},
		{name: "string body", body: `"x"`, field: "", msg: "request body must be a JSON object"},
		{name: "null body", body: `null`, field: "", msg: "request body must be a JSON object"},
		{name: "empty object", body: `{}`},
		{name: "unknown fields ignored", body: `{"source_type":"PullLivePushLive","future_field":{"a":[1,2]},"Source_Type":5}`, check: func(t *testing.T, req *CreateRequest) {
			if req.SourceType != PullLivePushLive {
				t.Fatal(req.SourceType)
			}
		}},
		{name: "null is absent", body: `{"region":null,"source_urls":null,"vod_start_video_index":null,"vod_loop_time":null}`, check: func(t *testing.T, req *CreateRequest) {
			if req.Region != nil || req.SourceURLs != nil || req.VodStartVideoIndex != nil || req.VodLoopTime != nil {
				t.Fatalf("%+v", req)
			}
		}},
		{name: "string of wrong type", body: `{"region": 4}`, field: "region", msg: "region must be a string"},
		{name: "string given an array", body: `{"callback_url": ["a"]}`, field: "callback_url", msg: "callback_url must be a string"},
		{name: "array of wrong type", body: `{"source_urls": "rtmp://h/live/s"}`, field: "source_urls", msg: "source_urls must be an array of strings"},
		{name: "array element of wrong type", body: `{"source_urls": ["rtmp://h/live/s", 1]}`, field: "source_urls[1]", msg: "source_urls must be an array of strings"},
		{name: "array element null", body: `{"callback_events": ["TaskStart", null]}`, field: "callback_events[1]", msg: "callback_events must be an array of strings"},
		{name: "integer", body: `{"vod_start_video_index": 7, "vod_start_video_time": 0}`, check: func(t *testing.T, req *CreateRequest) {
			if req.VodStartVideoIndex == nil || *req.VodStartVideoIndex != 7 || req.VodStartVideoTime == nil || *req.VodStartVideoTime != 0 {
				t.Fatalf("%+v", req)
			}
		}},
		{name: "integer as fraction", body: `{"vod_start_video_index": 1.5}`, field: "vod_start_video_index", msg: "vod_start_video_index must be an integer"},
		{name: "integer as exponent", body: `{"vod_start_video_time": 1e3}`, field: "vod_start_video_time", msg: "vod_start_video_time must be an integer"},
		{name: "integer as string", body: `{"vod_start_video_index": "1"}`, field: "vod_start_video_index", msg: "vod_start_video_index must be an integer"},
		{name: "integer overflowing int64", body: `{"vod_start_video_time": 99999999999999999999}`, field: "vod_start_video_time", msg: "vod_start_video_time must be between 0 and 2147483647"},
		{name: "loop time string", body: `{"vod_loop_time": "4"}`, check: func(t *testing.T, req *CreateRequest) {
			if req.VodLoopTime == nil || *req.VodLoopTime != "4" {
				t.Fatalf("%v", req.VodLoopTime)
			}
		}},
		{name: "loop time number", body: `{"vod_loop_time": -1}`, check: func(t *testing.T, req *CreateRequest) {
			if req.VodLoopTime == nil || *req.VodLoopTime != "-1" {
				t.Fatalf("%v", req.VodLoopTime)
			}
		}},
		{name: "loop time bool", body: `{"vod_loop_time": true}`, field: "vod_loop_time", msg: "vod_loop_time must be a string or a number"},
		{name: "first bad field wins, in API order", body: `{"callback_url": 1, "source_type": 2}`, field: "source_type", msg: "source_type must be a string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := DecodeCreate([]byte(c.body))
			checkErr(t, err, c.field, c.msg)
			if err == nil && req == nil {
				t.Fatal("nil request without error")
			}
			if err == nil && c.check != nil {
				c.check(t, req)
			}
		})
	}
}

func TestDecodeModify(t *testing.T) {
	for _, c := range []struct {
		name  string
		body  string
		field string
		msg   string
		check func(t *testing.T, req *ModifyRequest)
	}{
		{name: "task_id only", body: `{"task_id":"t1"}`, check: func(t *testing.T, req *ModifyRequest) {
			if req.TaskID != "t1" || req.Status != nil || req.SourceURLs != nil || req.CallbackEvents != nil || req.Region != nil {
				t.Fatalf("%+v", req)
			}
		}},
		{name: "task_id missing", body: `{"status":"pause"}`, field: "task_id", msg: "task_id is required"},
		{name: "task_id empty", body: `{"task_id":""}`, field: "task_id", msg: "task_id is required"},
		{name: "task_id number", body: `{"task_id":12}`, field: "task_id", msg: "task_id must be a string"},
		{name: "not JSON", body: `task_id=t1`, field: "", msg: "request body is not valid JSON"},
		{name: "empty arrays are present", body: `{"task_id":"t1","source_urls":[],"callback_events":[]}`, check: func(t *testing.T, req *ModifyRequest) {
			if req.SourceURLs == nil || len(*req.SourceURLs) != 0 || req.CallbackEvents == nil {
				t.Fatalf("%+v", req)
			}
		}},
		{name: "null arrays are absent", body: `{"task_id":"t1","source_urls":null}`, check: func(t *testing.T, req *ModifyRequest) {
			if req.SourceURLs != nil {
				t.Fatalf("%+v", req)
			}
		}},
		{name: "fixed fields decoded", body: `{"task_id":"t1","region":"r","backup_source_urls":["x"],"callback_url":"c"}`, check: func(t *testing.T, req *ModifyRequest) {
			if *req.Region != "r" || len(*req.BackupSourceURLs) != 1 || *req.CallbackURL != "c" {
				t.Fatalf("%+v", req)
			}
		}},
		{name: "status of wrong type", body: `{"task_id":"t1","status":true}`, field: "status", msg: "status must be a string"},
		{name: "index as fraction", body: `{"task_id":"t1","vod_start_video_index":0.5}`, field: "vod_start_video_index", msg: "must be an integer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := DecodeModify([]byte(c.body))
			checkErr(t, err, c.field, c.msg)
			if err == nil && c.check != nil {
				c.check(t, req)
			}
		})
	}
}

func TestFieldErrorMessage(t *testing.T) {
	err := error(&FieldError{Field: "end_time", Msg: "end_time must be later than start_time"})
	if err.Error() != "end_time must be later than start_time" {
		t.Fatal(err.Error())
	}
}
