package task

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSeedExampleAccepted(t *testing.T) {
	got := mustCreate(t, testRules(), seedExample)
	want := &Task{
		Region:           "cn-north-4",
		SourceType:       PullLivePushLive,
		SourceURLs:       []string{"rtmp://play.example.huawei.com/live/stream1"},
		Domain:           "publish.example.huawei.com",
		AppName:          "live",
		StreamName:       "test",
		PushArgs:         "arg1=value1",
		Destination:      "rtmp://127.0.0.1:1935/live/test?arg1=value1",
		DestinationKey:   "rtmp://127.0.0.1:1935/live/test",
		StartTime:        time.Date(2030, 5, 19, 18, 0, 0, 0, time.UTC),
		EndTime:          time.Date(2030, 5, 19, 21, 0, 0, 0, time.UTC),
		VodLoopTime:      LoopForever,
		VodRefreshType:   RefreshImmediate,
		BackupSourceType: PullLivePushLive,
		BackupSourceURLs: []string{"rtmp://play.example.huawei.com/live/stream1_bak"},
		CallbackEvents:   []string{EventTaskStart, EventTaskExit, EventTaskAlarm},
		CallbackURL:      "http://callback.example.com",
		Status:           StatusEnable,
		UpdateTime:       testNow,
		Generation:       1,
	}
	if diff := taskDiff(got, want); diff != "" {
		t.Fatal(diff)
	}
}

// taskDiff names the first fields that differ, "" when none do.
func taskDiff(got, want *Task) string {
	var d []string
	check := func(name string, same bool, g, w any) {
		if !same {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", name, fmt.Sprint(g), fmt.Sprint(w)))
		}
	}
	check("Region", got.Region == want.Region, got.Region, want.Region)
	check("SourceType", got.SourceType == want.SourceType, got.SourceType, want.SourceType)
	check("SourceURLs", slices.Equal(got.SourceURLs, want.SourceURLs), got.SourceURLs, want.SourceURLs)
	check("Domain", got.Domain == want.Domain, got.Domain, want.Domain)
	check("AppName", got.AppName == want.AppName, got.AppName, want.AppName)
	check("StreamName", got.StreamName == want.StreamName, got.StreamName, want.StreamName)
	check("PushArgs", got.PushArgs == want.PushArgs, got.PushArgs, want.PushArgs)
	check("DestinationURL", got.DestinationURL == want.DestinationURL, got.DestinationURL, want.DestinationURL)
	check("Destination", got.Destination == want.Destination, got.Destination, want.Destination)
	check("DestinationKey", got.DestinationKey == want.DestinationKey, got.DestinationKey, want.DestinationKey)
	check("StartTime", got.StartTime.Equal(want.StartTime) && got.StartTime.Location() == time.UTC, got.StartTime, want.StartTime)
	check("EndTime", got.EndTime.Equal(want.EndTime) && got.EndTime.Location() == time.UTC, got.EndTime, want.EndTime)
	check("VodLoopTime", got.VodLoopTime == want.VodLoopTime, got.VodLoopTime, want.VodLoopTime)
	check("VodRefreshType", got.VodRefreshType == want.VodRefreshType, got.VodRefreshType, want.VodRefreshType)
	check("VodStartVideoIndex", got.VodStartVideoIndex == want.VodStartVideoIndex, got.VodStartVideoIndex, want.VodStartVideoIndex)
	check("VodStartVideoTime", got.VodStartVideoTime == want.VodStartVideoTime, got.VodStartVideoTime, want.VodStartVideoTime)
	check("BackupSourceType", got.BackupSourceType == want.BackupSourceType, got.BackupSourceType, want.BackupSourceType)
	check("BackupSourceURLs", slices.Equal(got.BackupSourceURLs, want.BackupSourceURLs), got.BackupSourceURLs, want.BackupSourceURLs)
	check("CallbackEvents", slices.Equal(got.CallbackEvents, want.CallbackEvents), got.CallbackEvents, want.CallbackEvents)
	check("CallbackURL", got.CallbackURL == want.CallbackURL, got.CallbackURL, want.CallbackURL)
	check("Status", got.Status == want.Status, got.Status, want.Status)
	check("UpdateTime", got.UpdateTime.Equal(want.UpdateTime), got.UpdateTime, want.UpdateTime)
	check("Generation", got.Generation == want.Generation, got.Generation, want.Generation)
	check("ID/ProjectID/CreateTime unset", got.ID == "" && got.ProjectID == "" && got.CreateTime.IsZero(), got.ID, "")
	return strings.Join(d, "\n")
}

type createCase struct {
	name  string
	base  string         // seedExample when empty
	set   map[string]any // fields to replace; absent removes one
	rules func(*Rules)   // adjusts testRules()
	field string         // wanted FieldError.Field; with msg both "", success
	msg   string         // substring of the wanted message
	check func(t *testing.T, got *Task)
}

func runCreateCases(t *testing.T, cases []createCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := c.base
			if base == "" {
				base = seedExample
			}
			rules := testRules()
			if c.rules != nil {
				c.rules(rules)
			}
			got, err := createFrom(t, rules, edit(t, base, c.set))
			checkErr(t, err, c.field, c.msg)
			if err == nil && c.check != nil {
				c.check(t, got)
			}
		})
	}
}

func wantString(name string, get func(*Task) string, want string) func(*testing.T, *Task) {
	return func(t *testing.T, got *Task) {
		t.Helper()
		if g := get(got); g != want {
			t.Fatalf("%s = %q, want %q", name, g, want)
		}
	}
}

func wantInt(name string, get func(*Task) int, want int) func(*testing.T, *Task) {
	return func(t *testing.T, got *Task) {
		t.Helper()
		if g := get(got); g != want {
			t.Fatalf("%s = %d, want %d", name, g, want)
		}
	}
}

func wantStrings(name string, get func(*Task) []string, want []string) func(*testing.T, *Task) {
	return func(t *testing.T, got *Task) {
		t.Helper()
		g := get(got)
		if !slices.Equal(g, want) || (want != nil && g == nil) {
			t.Fatalf("%s = %q, want %q", name, g, want)
		}
	}
}

func wantTimes(start, end time.Time) func(*testing.T, *Task) {
	return func(t *testing.T, got *Task) {
		t.Helper()
		if !got.StartTime.Equal(start) || !got.EndTime.Equal(end) ||
			got.StartTime.Location() != time.UTC || got.EndTime.Location() != time.UTC {
			t.Fatalf("times = %v .. %v, want %v .. %v (UTC)", got.StartTime, got.EndTime, start, end)
		}
	}
}

func region(t *Task) string         { return t.Region }
func destination(t *Task) string    { return t.Destination }
func loopTime(t *Task) int          { return t.VodLoopTime }
func refreshType(t *Task) string    { return t.VodRefreshType }
func backupType(t *Task) string     { return t.BackupSourceType }
func events(t *Task) []string       { return t.CallbackEvents }
func callbackURL(t *Task) string    { return t.CallbackURL }
func sourceURLs(t *Task) []string   { return t.SourceURLs }
func backupURLs(t *Task) []string   { return t.BackupSourceURLs }
func startIndex(t *Task) int        { return t.VodStartVideoIndex }
func startOffset(t *Task) int       { return t.VodStartVideoTime }
func destinationKey(t *Task) string { return t.DestinationKey }

func at(s string) time.Time {
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestCreateRegion(t *testing.T) {
	sg := map[string]any{"region": "ap-southeast-1", "domain": "sg.example.com"}
	runCreateCases(t, []createCase{
		{name: "given", check: wantString("region", region, "cn-north-4")},
		{name: "absent defaults to project region", set: map[string]any{"region": absent}, check: wantString("region", region, "cn-north-4")},
		{name: "null defaults to project region", set: map[string]any{"region": nil}, check: wantString("region", region, "cn-north-4")},
		{name: "empty", set: map[string]any{"region": ""}, field: "region", msg: "region must be 1 to 64 characters"},
		{name: "65 chars", set: map[string]any{"region": strings.Repeat("r", 65)}, field: "region", msg: "region must be 1 to 64 characters"},
		{name: "other known region with its domain", set: sg, check: wantString("destination", destination, "rtmps://ingest.sg.example.com/live/test?arg1=value1")},
		{name: "unknown region", set: map[string]any{"region": "eu-west-0"}, field: "region", msg: `region "eu-west-0" is not served by this server`},
		{name: "domain in another region", set: map[string]any{"region": "ap-southeast-1"}, field: "region",
			msg: `region "ap-southeast-1" does not match the region of domain "publish.example.huawei.com" (cn-north-4)`},
		{name: "no Regions list means the default region only", rules: func(r *Rules) { r.Regions = nil }, check: wantString("region", region, "cn-north-4")},
	})
}

func TestCreateSourceType(t *testing.T) {
	runCreateCases(t, []createCase{
		{name: "live", check: wantString("source_type", func(t *Task) string { return t.SourceType }, PullLivePushLive)},
		{name: "vod", base: vodExample, check: wantString("source_type", func(t *Task) string { return t.SourceType }, PullVodPushLive)},
		{name: "missing", set: map[string]any{"source_type": absent}, field: "source_type", msg: "source_type is required"},
		{name: "unknown", set: map[string]any{"source_type": "PushLive"}, field: "source_type", msg: "source_type must be PullLivePushLive or PullVodPushLive"},
		{name: "vod not supported", base: vodExample, rules: func(r *Rules) { r.VODSupported = false },
			field: "source_type", msg: "source_type PullVodPushLive is not supported by this server yet"},
	})
}

func TestCreateSourceURLs(t *testing.T) {
	long := "https://media.example.com/" + strings.Repeat("a", 2048-len("https://media.example.com/"))
	runCreateCases(t, []createCase{
		{name: "live exactly one", check: wantStrings("source_urls", sourceURLs, []string{"rtmp://play.example.huawei.com/live/stream1"})},
		{name: "live missing", set: map[string]any{"source_urls": absent}, field: "source_urls", msg: "source_urls must contain exactly 1 URL for PullLivePushLive"},
		{name: "live two", set: map[string]any{"source_urls": []string{"rtmp://a/live/s", "rtmp://b/live/s"}},
			field: "source_urls", msg: "source_urls must contain exactly 1 URL for PullLivePushLive"},
		{name: "vod 30", base: vodExample, set: map[string]any{"source_urls": urls(30, "https://m.example.com/%d.mp4")},
			check: func(t *testing.T, got *Task) {
				if len(got.SourceURLs) != 30 {
					t.Fatalf("len = %d", len(got.SourceURLs))
				}
			}},
		{name: "vod 31", base: vodExample, set: map[string]any{"source_urls": urls(31, "https://m.example.com/%d.mp4")},
			field: "source_urls", msg: "source_urls must contain 1 to 30 URLs for PullVodPushLive"},
		{name: "vod empty list", base: vodExample, set: map[string]any{"source_urls": []string{}},
			field: "source_urls", msg: "source_urls must contain 1 to 30 URLs for PullVodPushLive"},
		{name: "empty url", base: vodExample, set: map[string]any{"source_urls": []string{"https://m.example.com/a.mp4", ""}},
			field: "source_urls[1]", msg: "source_urls[1] must not be empty"},
		{name: "2048 chars", base: vodExample, set: map[string]any{"source_urls": []string{long}}},
		{name: "2049 chars", base: vodExample, set: map[string]any{"source_urls": []string{long + "a"}},
			field: "source_urls[0]", msg: "source_urls[0] must be at most 2048 characters"},
		{name: "unparseable", set: map[string]any{"source_urls": []string{"rtmp://[::1/live/s"}}, field: "source_urls[0]", msg: "source_urls[0] is not a valid URL"},
		{name: "relative", set: map[string]any{"source_urls": []string{"play.example.com/live/s"}}, field: "source_urls[0]", msg: "source_urls[0] must be an absolute URL"},
		{name: "no host", set: map[string]any{"source_urls": []string{"rtmp:///live/s"}}, field: "source_urls[0]", msg: "source_urls[0] must have a host"},
		{name: "bad port", set: map[string]any{"source_urls": []string{"rtmp://h:0/live/s"}}, field: "source_urls[0]", msg: `invalid port "0"`},
		{name: "spaces", set: map[string]any{"source_urls": []string{"rtmp://h/live/my stream"}}, field: "source_urls[0]", msg: "must not contain spaces"},
		{name: "live rtmps", set: map[string]any{"source_urls": []string{"rtmps://h:8443/live/s"}}},
		{name: "live http refused", set: map[string]any{"source_urls": []string{"http://h/live/s.flv"}}, field: "source_urls[0]",
			msg: `source_urls[0]: scheme "http" is not supported for PullLivePushLive (supported: rtmp, rtmps)`},
		{name: "live http when the server allows it", set: map[string]any{"source_urls": []string{"http://h/live/s.flv"}},
			rules: func(r *Rules) { r.LiveSourceSchemes = []string{"rtmp", "rtmps", "http", "https"} }},
		{name: "vod http", base: vodExample, set: map[string]any{"source_urls": []string{"http://m.example.com/a.mp4"}}},
		{name: "vod rtmp refused", base: vodExample, set: map[string]any{"source_urls": []string{"rtmp://h/live/s"}}, field: "source_urls[0]",
			msg: `source_urls[0]: scheme "rtmp" is not supported for PullVodPushLive (supported: http, https, file)`},
		{name: "vod file under root", base: vodExample, set: map[string]any{"source_urls": []string{"file:///srv/media/show/a.mp4"}},
			check: wantStrings("source_urls", sourceURLs, []string{"file:///srv/media/show/a.mp4"})},
		{name: "vod file outside roots", base: vodExample, set: map[string]any{"source_urls": []string{"file:///etc/passwd"}},
			field: "source_urls[0]", msg: `file path "/etc/passwd" is not under a directory allowed with --allow-file-root`},
		{name: "vod file sibling of root", base: vodExample, set: map[string]any{"source_urls": []string{"file:///srv/media2/a.mp4"}},
			field: "source_urls[0]", msg: "--allow-file-root"},
		{name: "vod file dot-dot escape", base: vodExample, set: map[string]any{"source_urls": []string{"file:///srv/media/../../etc/passwd"}},
			field: "source_urls[0]", msg: `must not contain ".."`},
		{name: "vod file encoded dot-dot escape", base: vodExample, set: map[string]any{"source_urls": []string{"file:///srv/media/%2e%2e/secret"}},
			field: "source_urls[0]", msg: `must not contain ".."`},
		{name: "vod file with a host", base: vodExample, set: map[string]any{"source_urls": []string{"file://nas/srv/media/a.mp4"}},
			field: "source_urls[0]", msg: "must not name a host"},
		{name: "vod file when no roots", base: vodExample, rules: func(r *Rules) { r.AllowFileRoots = nil },
			set: map[string]any{"source_urls": []string{"file:///srv/media/a.mp4"}}, field: "source_urls[0]", msg: "--allow-file-root"},
	})
}

func TestCreateDestination(t *testing.T) {
	noDomain := map[string]any{"domain": absent, "app_name": absent, "stream_name": absent, "push_args": absent}
	withURL := func(u string, extra ...any) map[string]any {
		m := map[string]any{"destination_url": u}
		for k, v := range noDomain {
			m[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i].(string)] = extra[i+1]
		}
		return m
	}
	runCreateCases(t, []createCase{
		{name: "domain form", check: wantString("destination", destination, "rtmp://127.0.0.1:1935/live/test?arg1=value1")},
		{name: "domain form without push_args", set: map[string]any{"push_args": absent}, check: wantString("destination", destination, "rtmp://127.0.0.1:1935/live/test")},
		{name: "push_args leading ? tolerated", set: map[string]any{"push_args": "?arg1=value1"}, check: wantString("destination", destination, "rtmp://127.0.0.1:1935/live/test?arg1=value1")},
		{name: "push_args with a space", set: map[string]any{"push_args": "a=b c"}, field: "push_args", msg: "push_args must not contain"},
		{name: "push_args 2049", set: map[string]any{"push_args": strings.Repeat("a", 2049)}, field: "push_args", msg: "push_args must be at most 2048 characters"},
		{name: "domain case-insensitive", set: map[string]any{"domain": "Publish.Example.Huawei.com"}, check: wantString("destination", destination, "rtmp://127.0.0.1:1935/live/test?arg1=value1")},
		{name: "unknown domain", set: map[string]any{"domain": "other.example.com"}, field: "domain", msg: `domain "other.example.com" is not an ingest domain of this server`},
		{name: "domain 256", set: map[string]any{"domain": strings.Repeat("d", 256)}, field: "domain", msg: "domain must be at most 255 characters"},
		{name: "app_name 128", set: map[string]any{"app_name": strings.Repeat("a", 128)}, check: func(t *testing.T, got *Task) {
			if got.AppName != strings.Repeat("a", 128) {
				t.Fatal(got.AppName)
			}
		}},
		{name: "app_name 129", set: map[string]any{"app_name": strings.Repeat("a", 129)}, field: "app_name", msg: "app_name must be at most 128 characters"},
		{name: "stream_name 512", set: map[string]any{"stream_name": strings.Repeat("s", 512)}},
		{name: "stream_name 513", set: map[string]any{"stream_name": strings.Repeat("s", 513)}, field: "stream_name", msg: "stream_name must be at most 512 characters"},
		{name: "app_name with slash", set: map[string]any{"app_name": "live/x"}, field: "app_name", msg: `app_name must not contain "/"`},
		{name: "stream_name with query", set: map[string]any{"stream_name": "s?k=v"}, field: "stream_name", msg: `stream_name must not contain "/", "?"`},
		{name: "domain without app_name", set: map[string]any{"app_name": absent}, field: "app_name", msg: "app_name is required when the destination is given as domain"},
		{name: "domain without stream_name", set: map[string]any{"stream_name": ""}, field: "stream_name", msg: "stream_name is required"},
		{name: "app and stream without domain", set: map[string]any{"domain": absent}, field: "domain", msg: "domain is required"},
		{name: "neither form", set: noDomain, field: "destination_url", msg: "a destination is required"},
		{name: "destination_url", set: withURL("rtmp://Ingest.Example.com/live/s1"), check: func(t *testing.T, got *Task) {
			wantString("destination", destination, "rtmp://Ingest.Example.com/live/s1")(t, got)
			wantString("key", destinationKey, "rtmp://ingest.example.com:1935/live/s1")(t, got)
		}},
		{name: "destination_url rtmps multi-level app", set: withURL("rtmps://h/app/more/s1"), check: wantString("key", destinationKey, "rtmps://h:443/app/more/s1")},
		{name: "destination_url with push_args", set: withURL("rtmp://h/live/s1", "push_args", "k=v"), check: wantString("destination", destination, "rtmp://h/live/s1?k=v")},
		{name: "destination_url with query and push_args", set: withURL("rtmp://h/live/s1?a=1", "push_args", "?k=v"), check: wantString("destination", destination, "rtmp://h/live/s1?a=1&k=v")},
		{name: "destination_url and domain", set: map[string]any{"destination_url": "rtmp://h/live/s1"}, field: "destination_url", msg: "destination_url cannot be combined with domain, app_name or stream_name"},
		{name: "destination_url and stream_name only", set: withURL("rtmp://h/live/s1", "stream_name", "x"), field: "destination_url", msg: "cannot be combined"},
		{name: "destination_url http", set: withURL("http://h/live/s1"), field: "destination_url", msg: "destination_url must be an rtmp:// or rtmps:// URL"},
		{name: "destination_url no host", set: withURL("rtmp:///live/s1"), field: "destination_url", msg: "destination_url must have a host"},
		{name: "destination_url no stream", set: withURL("rtmp://h/live"), field: "destination_url", msg: "destination_url must have a path /{app}/{stream}"},
		{name: "destination_url empty stream", set: withURL("rtmp://h/live/"), field: "destination_url", msg: "must have a path /{app}/{stream}"},
		{name: "destination_url fragment", set: withURL("rtmp://h/live/s#x"), field: "destination_url", msg: `must not contain "#"`},
		{name: "destination_url 2049", set: withURL("rtmp://h/live/" + strings.Repeat("s", 2049-len("rtmp://h/live/"))), field: "destination_url", msg: "destination_url must be at most 2048 characters"},
		{name: "bad ingest in configuration", rules: func(r *Rules) {
			r.Domains["publish.example.huawei.com"] = Domain{Name: "publish.example.huawei.com", Region: "cn-north-4", Ingest: "http://x"}
		}, field: "domain", msg: "no usable ingest URL"},
	})
}

func TestCreateTimes(t *testing.T) {
	now := testNow
	runCreateCases(t, []createCase{
		{name: "given", check: wantTimes(at("2030-05-19T18:00:00Z"), at("2030-05-19T21:00:00Z"))},
		{name: "defaults", set: map[string]any{"start_time": absent, "end_time": absent}, check: wantTimes(now, now.Add(7*24*time.Hour))},
		{name: "empty strings are defaults", set: map[string]any{"start_time": "", "end_time": ""}, check: wantTimes(now, now.Add(7*24*time.Hour))},
		{name: "end defaults to start + window", set: map[string]any{"end_time": absent}, check: wantTimes(at("2030-05-19T18:00:00Z"), at("2030-05-26T18:00:00Z"))},
		{name: "offset normalised to UTC", set: map[string]any{"start_time": "2030-05-20T02:00:00+08:00", "end_time": "2030-05-19T16:00:00-05:00"},
			check: wantTimes(at("2030-05-19T18:00:00Z"), at("2030-05-19T21:00:00Z"))},
		{name: "fraction truncated", set: map[string]any{"start_time": "2030-05-19T18:00:00.999Z"}, check: wantTimes(at("2030-05-19T18:00:00Z"), at("2030-05-19T21:00:00Z"))},
		{name: "bad start format", set: map[string]any{"start_time": "2030-05-19 18:00:00"}, field: "start_time", msg: `start_time must be a time like "2006-01-02T15:04:05Z"`},
		{name: "bad end format", set: map[string]any{"end_time": "tomorrow"}, field: "end_time", msg: "end_time must be a time like"},
		{name: "end before start", set: map[string]any{"end_time": "2030-05-19T17:00:00Z"}, field: "end_time", msg: "end_time must be later than start_time"},
		{name: "end equals start", set: map[string]any{"end_time": "2030-05-19T18:00:00Z"}, field: "end_time", msg: "end_time must be later than start_time"},
		{name: "start in the past, end in the future", set: map[string]any{"start_time": "2030-05-19T06:00:00Z"}, check: wantTimes(at("2030-05-19T06:00:00Z"), at("2030-05-19T21:00:00Z"))},
		{name: "end in the past", set: map[string]any{"start_time": "2030-05-19T06:00:00Z", "end_time": "2030-05-19T12:00:00Z"}, field: "end_time", msg: "end_time must be in the future"},
		{name: "exactly the window", set: map[string]any{"end_time": "2030-05-26T18:00:00Z"}, check: wantTimes(at("2030-05-19T18:00:00Z"), at("2030-05-26T18:00:00Z"))},
		{name: "window plus a second", set: map[string]any{"end_time": "2030-05-26T18:00:01Z"}, field: "end_time", msg: "end_time must be at most 7 days after start_time"},
		{name: "server window", rules: func(r *Rules) { r.MaxWindow = 2 * time.Hour }, field: "end_time", msg: "end_time must be at most 2 hours after start_time"},
		{name: "zero MaxWindow means 7 days", rules: func(r *Rules) { r.MaxWindow = 0 }, set: map[string]any{"end_time": absent}, check: wantTimes(at("2030-05-19T18:00:00Z"), at("2030-05-26T18:00:00Z"))},
	})
}

func TestCreateVOD(t *testing.T) {
	runCreateCases(t, []createCase{
		// vod_loop_time
		{name: "loop N", base: vodExample, check: wantInt("vod_loop_time", loopTime, 3)},
		{name: "loop absent", base: vodExample, set: map[string]any{"vod_loop_time": absent}, check: wantInt("vod_loop_time", loopTime, LoopForever)},
		{name: "loop empty", base: vodExample, set: map[string]any{"vod_loop_time": ""}, check: wantInt("vod_loop_time", loopTime, LoopForever)},
		{name: "loop -1", base: vodExample, set: map[string]any{"vod_loop_time": "-1"}, check: wantInt("vod_loop_time", loopTime, LoopForever)},
		{name: "loop as number", base: vodExample, set: map[string]any{"vod_loop_time": 5}, check: wantInt("vod_loop_time", loopTime, 5)},
		{name: "loop -1 as number", base: vodExample, set: map[string]any{"vod_loop_time": -1}, check: wantInt("vod_loop_time", loopTime, LoopForever)},
		{name: "loop 0", base: vodExample, set: map[string]any{"vod_loop_time": "0"}, field: "vod_loop_time", msg: `vod_loop_time must be "-1" (loop until end_time) or an integer N >= 1`},
		{name: "loop abc", base: vodExample, set: map[string]any{"vod_loop_time": "abc"}, field: "vod_loop_time", msg: `got "abc"`},
		{name: "loop 1.5", base: vodExample, set: map[string]any{"vod_loop_time": "1.5"}, field: "vod_loop_time", msg: "vod_loop_time must be"},
		{name: "loop 1.5 as number", base: vodExample, set: map[string]any{"vod_loop_time": 1.5}, field: "vod_loop_time", msg: "vod_loop_time must be"},
		{name: "loop -2", base: vodExample, set: map[string]any{"vod_loop_time": "-2"}, field: "vod_loop_time", msg: "vod_loop_time must be"},
		{name: "loop +2", base: vodExample, set: map[string]any{"vod_loop_time": "+2"}, field: "vod_loop_time", msg: "vod_loop_time must be"},
		{name: "loop on live", set: map[string]any{"vod_loop_time": "3"}, field: "vod_loop_time", msg: "vod_loop_time is only valid when source_type is PullVodPushLive"},
		{name: "empty loop on live", set: map[string]any{"vod_loop_time": ""}},

		// vod_refresh_type
		{name: "refresh default", base: vodExample, check: wantString("vod_refresh_type", refreshType, RefreshImmediate)},
		{name: "refresh immediate", base: vodExample, set: map[string]any{"vod_refresh_type": RefreshImmediate}, check: wantString("vod_refresh_type", refreshType, RefreshImmediate)},
		{name: "refresh continue on create", base: vodExample, set: map[string]any{"vod_refresh_type": RefreshFromBreak},
			field: "vod_refresh_type", msg: "vod_refresh_type continue_from_break_point is only valid for modify"},
		{name: "refresh unknown", base: vodExample, set: map[string]any{"vod_refresh_type": "later"}, field: "vod_refresh_type", msg: "vod_refresh_type must be immediate_new_source"},
		{name: "refresh on live", set: map[string]any{"vod_refresh_type": RefreshImmediate}, field: "vod_refresh_type", msg: "vod_refresh_type is only valid when source_type is PullVodPushLive"},

		// vod_start_video_index
		{name: "index last", base: vodExample, set: map[string]any{"vod_start_video_index": 2}, check: wantInt("index", startIndex, 2)},
		{name: "index past the list", base: vodExample, set: map[string]any{"vod_start_video_index": 3}, field: "vod_start_video_index", msg: "vod_start_video_index must be between 0 and 2"},
		{name: "index negative", base: vodExample, set: map[string]any{"vod_start_video_index": -1}, field: "vod_start_video_index", msg: "between 0 and 2"},
		{name: "index 2^31", base: vodExample, set: map[string]any{"vod_start_video_index": int64(2147483648)}, field: "vod_start_video_index", msg: "between 0 and 2"},
		{name: "index on live", set: map[string]any{"vod_start_video_index": 0}, field: "vod_start_video_index", msg: "vod_start_video_index is only valid when source_type is PullVodPushLive"},

		// vod_start_video_time
		{name: "offset", base: vodExample, set: map[string]any{"vod_start_video_time": 90}, check: wantInt("offset", startOffset, 90)},
		{name: "offset max", base: vodExample, set: map[string]any{"vod_start_video_time": 2147483647}, check: wantInt("offset", startOffset, 2147483647)},
		{name: "offset negative", base: vodExample, set: map[string]any{"vod_start_video_time": -1}, field: "vod_start_video_time", msg: "vod_start_video_time must be between 0 and 2147483647"},
		{name: "offset 2^31", base: vodExample, set: map[string]any{"vod_start_video_time": int64(2147483648)}, field: "vod_start_video_time", msg: "between 0 and 2147483647"},
		{name: "offset on live", set: map[string]any{"vod_start_video_time": 5}, field: "vod_start_video_time", msg: "vod_start_video_time is only valid"},
		{name: "vod fields null on live", set: map[string]any{"vod_loop_time": nil, "vod_refresh_type": nil, "vod_start_video_index": nil, "vod_start_video_time": nil}},
	})
}

func TestCreateBackup(t *testing.T) {
	runCreateCases(t, []createCase{
		{name: "live backup", check: func(t *testing.T, got *Task) {
			wantString("backup_source_type", backupType, PullLivePushLive)(t, got)
			wantStrings("backup_source_urls", backupURLs, []string{"rtmp://play.example.huawei.com/live/stream1_bak"})(t, got)
		}},
		{name: "urls without type are live", set: map[string]any{"backup_source_type": absent}, check: wantString("backup_source_type", backupType, PullLivePushLive)},
		{name: "type without urls is no backup", set: map[string]any{"backup_source_urls": absent}, check: func(t *testing.T, got *Task) {
			wantString("backup_source_type", backupType, "")(t, got)
			if len(got.BackupSourceURLs) != 0 {
				t.Fatal(got.BackupSourceURLs)
			}
		}},
		{name: "unknown type", set: map[string]any{"backup_source_type": "Filler"}, field: "backup_source_type", msg: "backup_source_type must be PullLivePushLive or PullVodPushLive"},
		{name: "vod backup", set: map[string]any{"backup_source_type": PullVodPushLive, "backup_source_urls": []string{"https://m.example.com/slate.mp4"}},
			check: wantString("backup_source_type", backupType, PullVodPushLive)},
		{name: "vod backup not supported", rules: func(r *Rules) { r.VODBackupSupported = false },
			set:   map[string]any{"backup_source_type": PullVodPushLive, "backup_source_urls": []string{"https://m.example.com/slate.mp4"}},
			field: "backup_source_type", msg: "backup_source_type PullVodPushLive is not supported by this server yet"},
		{name: "30 urls", set: map[string]any{"backup_source_urls": urls(30, "rtmp://b.example.com/live/%d")}},
		{name: "31 urls", set: map[string]any{"backup_source_urls": urls(31, "rtmp://b.example.com/live/%d")}, field: "backup_source_urls", msg: "backup_source_urls must contain at most 30 URLs"},
		{name: "url checked for live type", set: map[string]any{"backup_source_urls": []string{"rtmp://b/live/s", "https://m.example.com/a.mp4"}},
			field: "backup_source_urls[1]", msg: `backup_source_urls[1]: scheme "https" is not supported for PullLivePushLive`},
		{name: "url checked for vod type", set: map[string]any{"backup_source_type": PullVodPushLive, "backup_source_urls": []string{"file:///etc/shadow"}},
			field: "backup_source_urls[0]", msg: "--allow-file-root"},
		{name: "empty url", set: map[string]any{"backup_source_urls": []string{""}}, field: "backup_source_urls[0]", msg: "must not be empty"},
		{name: "backup on a vod task", base: vodExample, set: map[string]any{"backup_source_urls": []string{"rtmp://b/live/s"}}, check: wantString("backup_source_type", backupType, PullLivePushLive)},
	})
}

func TestCreateCallbacks(t *testing.T) {
	runCreateCases(t, []createCase{
		{name: "events absent means all", set: map[string]any{"callback_events": absent}, check: wantStrings("callback_events", events, []string{})},
		{name: "events empty means all", set: map[string]any{"callback_events": []string{}}, check: wantStrings("callback_events", events, []string{})},
		{name: "events deduplicated, in API order", set: map[string]any{"callback_events": []string{"TaskAlarm", "TaskStart", "TaskAlarm"}},
			check: wantStrings("callback_events", events, []string{EventTaskStart, EventTaskAlarm})},
		{name: "unknown event", set: map[string]any{"callback_events": []string{"TaskStart", "Foo"}}, field: "callback_events[1]", msg: `callback_events: unknown event "Foo"`},
		{name: "event names are case-sensitive", set: map[string]any{"callback_events": []string{"taskstart"}}, field: "callback_events[0]", msg: `unknown event "taskstart"`},
		{name: "vod event on live", set: map[string]any{"callback_events": []string{"VodSourceFileStart"}}, field: "callback_events[0]",
			msg: `callback_events: event "VodSourceFileStart" is only available when source_type is PullVodPushLive`},
		{name: "vod events on vod", base: vodExample, set: map[string]any{"callback_events": []string{"ResetTaskConfig", "VodSourceFileFinish", "VodSourceFileStart"}},
			check: wantStrings("callback_events", events, []string{EventVodSourceFileStart, EventVodSourceFileFinish, EventResetTaskConfig})},

		{name: "bare callback gets http", check: wantString("callback_url", callbackURL, "http://callback.example.com")},
		{name: "bare callback with port and path", set: map[string]any{"callback_url": "hooks.example.com:8080/cb?x=1"}, check: wantString("callback_url", callbackURL, "http://hooks.example.com:8080/cb?x=1")},
		{name: "https callback", set: map[string]any{"callback_url": "https://hooks.example.com/cb"}, check: wantString("callback_url", callbackURL, "https://hooks.example.com/cb")},
		{name: "no callback", set: map[string]any{"callback_url": absent}, check: wantString("callback_url", callbackURL, "")},
		{name: "ftp callback", set: map[string]any{"callback_url": "ftp://hooks.example.com/cb"}, field: "callback_url", msg: `callback_url: scheme "ftp" is not supported (supported: http, https)`},
		{name: "mailto callback", set: map[string]any{"callback_url": "mailto:ops@example.com"}, field: "callback_url", msg: "callback_url must be an http:// or https:// URL"},
		{name: "javascript callback", set: map[string]any{"callback_url": "javascript:alert(1)"}, field: "callback_url", msg: "callback_url is not a valid URL"},
		{name: "callback without host", set: map[string]any{"callback_url": "https:///cb"}, field: "callback_url", msg: "callback_url must have a host"},
		{name: "callback 2049", set: map[string]any{"callback_url": "https://h/" + strings.Repeat("c", 2049-len("https://h/"))}, field: "callback_url", msg: "callback_url must be at most 2048 characters"},
	})
}

func TestCreateStatusAndGeneration(t *testing.T) {
	got := mustCreate(t, testRules(), vodExample)
	if got.Status != StatusEnable || got.Generation != 1 {
		t.Fatalf("status %q generation %d", got.Status, got.Generation)
	}
}
