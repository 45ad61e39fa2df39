package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/netguard"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/sqlite"
	"github.com/liverelay/liverelay/internal/task"
)

const project = "p1"

// fakeScheduler records what the API told it: "id:set" or "id:deleted".
type fakeScheduler struct {
	mu      sync.Mutex
	changes []string
}

func (f *fakeScheduler) Changed(id string, t *task.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	what := "set"
	if t == nil {
		what = "deleted"
	} else if t.ID != id {
		what = "mismatch"
	}
	f.changes = append(f.changes, id+":"+what)
}

func (f *fakeScheduler) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.changes) == 0 {
		return ""
	}
	return f.changes[len(f.changes)-1]
}

type env struct {
	t     testing.TB
	srv   *httptest.Server
	st    store.Store
	sched *fakeScheduler
}

func newEnv(t testing.TB, quota int) *env {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	for _, p := range []*store.Project{{ID: project, AccountID: "a1", Region: "cn-north-4"}, {ID: "p2", AccountID: "a2", Region: "cn-north-4"}} {
		if err := st.PutProject(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	sched := &fakeScheduler{}
	s := &Server{
		Store:     st,
		Auth:      auth.Open{},
		Scheduler: sched,
		Guard:     netguard.New(nil),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Quota:     quota,
		Now:       time.Now,
		Rules: func(region string, now time.Time) *task.Rules {
			return &task.Rules{
				Now: now, Regions: []string{"cn-north-4", "local"}, DefaultRegion: region,
				Domains: map[string]task.Domain{
					"publish.example.huawei.com": {Name: "publish.example.huawei.com", Region: "cn-north-4", Ingest: "rtmp://127.0.0.1:1935"},
				},
			}
		},
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, st: st, sched: sched}
}

func (e *env) do(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("%s %s: not JSON (%d): %s", method, path, resp.StatusCode, raw)
	}
	rid := resp.Header.Get("X-Request-Id")
	if rid == "" || out["request_id"] != rid {
		e.t.Fatalf("%s %s: request_id %v, header %q", method, path, out["request_id"], rid)
	}
	return resp.StatusCode, out
}

func taskPath(p string) string { return "/v1/" + p + "/pull/stream/task" }

// seedExample is the seed's own example request with its times moved into
// the future.
func seedExample() string {
	start := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	end := time.Now().Add(4 * time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	return fmt.Sprintf(`{
"region" : "cn-north-4",
"source_type" : "PullLivePushLive",
"source_urls" : [ "rtmp://play.example.huawei.com/live/stream1" ],
"domain" : "publish.example.huawei.com",
"app_name" : "live",
"stream_name" : "test",
"start_time" : %q,
"end_time" : %q,
"push_args" : "arg1=value1",
"callback_events" : [ "TaskStart", "TaskExit", "TaskAlarm" ],
"callback_url" : "callback.example.com",
"backup_source_type" : "PullLivePushLive",
"backup_source_urls" : [ "rtmp://play.example.huawei.com/live/stream1_bak" ]
}`, start, end)
}

func liveBody(dst string) string {
	return fmt.Sprintf(`{"source_type":"PullLivePushLive","source_urls":["rtmp://127.0.0.1/live/src"],"destination_url":%q}`, dst)
}

func TestSeedExampleIsAccepted(t *testing.T) {
	e := newEnv(t, 10)
	status, out := e.do(http.MethodPost, taskPath(project), seedExample())
	if status != http.StatusOK {
		t.Fatalf("create: %d %v", status, out)
	}
	id := out["task_id"].(string)
	if got := e.sched.last(); got != id+":set" {
		t.Fatalf("scheduler told %q after create, want %q", got, id+":set")
	}
	status, out = e.do(http.MethodGet, taskPath(project)+"?task_id="+id, "")
	if status != http.StatusOK || out["total"] != 1.0 {
		t.Fatalf("show: %d %v", status, out)
	}
	info := out["task_infos"].([]any)[0].(map[string]any)
	want := map[string]any{
		"task_id": id, "region": "cn-north-4", "domain": "publish.example.huawei.com", "app_name": "live",
		"stream_name": "test", "push_args": "arg1=value1", "callback_url": "http://callback.example.com",
		"status": "enable", "run_state": "waiting", "backup_source_type": "PullLivePushLive",
	}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("%s = %v, want %v", k, info[k], v)
		}
	}
	if !strings.HasSuffix(info["start_time"].(string), "Z") {
		t.Errorf("start_time not in UTC Z form: %v", info["start_time"])
	}
}

func TestBadInputIs4xxWithTheErrorShape(t *testing.T) {
	e := newEnv(t, 10)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"not JSON", "POST", taskPath(project), "{not json", 400, "JSON"},
		{"wrong type", "POST", taskPath(project), `{"source_type":"PullLivePushLive","source_urls":"rtmp://x/a/b"}`, 400, "source_urls"},
		{"missing source_type", "POST", taskPath(project), `{"source_urls":["rtmp://h/a/b"],"destination_url":"rtmp://h/a/c"}`, 400, "source_type"},
		{"end before start", "POST", taskPath(project), `{"source_type":"PullLivePushLive","source_urls":["rtmp://h/a/b"],"destination_url":"rtmp://h/a/c","start_time":"2030-01-02T00:00:00Z","end_time":"2030-01-01T00:00:00Z"}`, 400, "end_time"},
		{"destination and domain", "POST", taskPath(project), `{"source_type":"PullLivePushLive","source_urls":["rtmp://h/a/b"],"destination_url":"rtmp://h/a/c","domain":"publish.example.huawei.com"}`, 400, "destination_url"},
		{"unknown domain", "POST", taskPath(project), `{"source_type":"PullLivePushLive","source_urls":["rtmp://h/a/b"],"domain":"nope.example.com","app_name":"a","stream_name":"s"}`, 400, "domain"},
		{"metadata address", "POST", taskPath(project), `{"source_type":"PullLivePushLive","source_urls":["rtmp://169.254.169.254/a/b"],"destination_url":"rtmp://127.0.0.1/a/c"}`, 400, "denied network"},
		{"denied callback", "POST", taskPath(project), `{"source_type":"PullLivePushLive","source_urls":["rtmp://127.0.0.1/a/b"],"destination_url":"rtmp://127.0.0.1/a/c","callback_url":"http://169.254.169.254/x"}`, 400, "callback_url"},
		{"bad limit", "GET", taskPath(project) + "?limit=0", "", 400, "limit"},
		{"bad offset", "GET", taskPath(project) + "?offset=-1", "", 400, "offset"},
		{"delete without id", "DELETE", taskPath(project), "", 400, "task_id"},
		{"delete unknown", "DELETE", taskPath(project) + "?task_id=nope", "", 404, "not found"},
		{"modify unknown", "PUT", taskPath(project), `{"task_id":"nope","status":"pause"}`, 404, "not found"},
		{"modify without id", "PUT", taskPath(project), `{"status":"pause"}`, 400, "task_id"},
		{"method", "PATCH", taskPath(project), "", 405, "PATCH"},
		{"unknown route", "GET", "/v2/nothing", "", 404, "no API"},
		{"unknown project", "GET", taskPath("nope"), "", 403, "permission denied"},
		{"too large", "POST", taskPath(project), `{"x":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "larger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := e.do(tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%v)", status, tc.status, out)
			}
			code, _ := out["error_code"].(string)
			msg, _ := out["error_msg"].(string)
			if code == "" || !strings.Contains(msg, tc.msg) {
				t.Fatalf("error %q %q, want a code and a message containing %q", code, msg, tc.msg)
			}
		})
	}
	// Nothing was stored by any of them.
	_, out := e.do(http.MethodGet, taskPath(project), "")
	if out["total"] != 0.0 {
		t.Fatalf("bad requests stored tasks: %v", out)
	}
}

func TestQuotaAndDestinationRules(t *testing.T) {
	e := newEnv(t, 2)
	if s, out := e.do("POST", taskPath(project), liveBody("rtmp://127.0.0.1/live/a")); s != 200 {
		t.Fatalf("first create: %d %v", s, out)
	}
	// The same destination from another project is refused.
	s, out := e.do("POST", taskPath("p2"), liveBody("rtmp://127.0.0.1:1935/live/a"))
	if s != 400 || !strings.Contains(out["error_msg"].(string), "destination") {
		t.Fatalf("duplicate destination: %d %v", s, out)
	}
	if s, out := e.do("POST", taskPath(project), liveBody("rtmp://127.0.0.1/live/b")); s != 200 {
		t.Fatalf("second create: %d %v", s, out)
	}
	s, out = e.do("POST", taskPath(project), liveBody("rtmp://127.0.0.1/live/c"))
	if s != 400 || !strings.Contains(out["error_msg"].(string), "--task-quota") {
		t.Fatalf("over quota: %d %v", s, out)
	}
}

func TestListPagingAndModify(t *testing.T) {
	e := newEnv(t, 50)
	var ids []string
	for i := 0; i < 5; i++ {
		_, out := e.do("POST", taskPath(project), liveBody(fmt.Sprintf("rtmp://127.0.0.1/live/s%d", i)))
		ids = append(ids, out["task_id"].(string))
		time.Sleep(2 * time.Millisecond) // distinct create times
	}
	_, out := e.do("GET", taskPath(project)+"?offset=1&limit=2", "")
	infos := out["task_infos"].([]any)
	if out["total"] != 5.0 || len(infos) != 2 {
		t.Fatalf("page: total %v len %d", out["total"], len(infos))
	}
	// Newest first: offset 1 is the fourth created.
	if got := infos[0].(map[string]any)["task_id"]; got != ids[3] {
		t.Fatalf("offset 1 = %v, want %v", got, ids[3])
	}
	if s, out := e.do("GET", taskPath(project)+"?task_id=unknown", ""); s != 200 || out["total"] != 0.0 || len(out["task_infos"].([]any)) != 0 {
		t.Fatalf("unknown task_id: %d %v", s, out)
	}
	// Other projects' tasks are not visible.
	if _, out := e.do("GET", taskPath("p2")+"?task_id="+ids[0], ""); out["total"] != 0.0 {
		t.Fatalf("p2 sees p1's task: %v", out)
	}

	end := time.Now().Add(48 * time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	if s, out := e.do("PUT", taskPath(project), fmt.Sprintf(`{"task_id":%q,"status":"pause","end_time":%q}`, ids[0], end)); s != 200 {
		t.Fatalf("modify: %d %v", s, out)
	}
	_, out = e.do("GET", taskPath(project)+"?task_id="+ids[0], "")
	info := out["task_infos"].([]any)[0].(map[string]any)
	if info["status"] != "pause" || info["end_time"] != end {
		t.Fatalf("after modify: status %v end %v", info["status"], info["end_time"])
	}
	s, out := e.do("PUT", taskPath(project), fmt.Sprintf(`{"task_id":%q,"destination_url":"rtmp://127.0.0.1/live/other"}`, ids[0]))
	if s != 400 || !strings.Contains(out["error_msg"].(string), "destination_url") {
		t.Fatalf("changing the destination: %d %v", s, out)
	}

	if s, _ := e.do("DELETE", taskPath(project)+"?task_id="+ids[0], ""); s != 200 {
		t.Fatalf("delete: %d", s)
	}
	if got := e.sched.last(); got != ids[0]+":deleted" {
		t.Fatalf("scheduler told %q after delete, want %q", got, ids[0]+":deleted")
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, 1)
	resp, err := http.Get(e.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, []byte("ok\n")) {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
}
