// Package sdktest drives the liverelay binary with the cloud's official Go
// SDK (huaweicloud-sdk-go-v3, services/live/v1), unchanged: the SDK signs
// with AK/SK, sends its own JSON and parses our answers with its own models.
// It is a module of its own so that the SDK never becomes a dependency of
// liverelay.
package sdktest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdktime"
	live "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/live/v1"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/live/v1/model"
)

const (
	projectID = "5f1a0e3c9b2d4e6f8a7b6c5d4e3f2a1b"
	accessKey = "SDKTESTACCESSKEY0001"
	secretKey = "SdkTestSecretKey0000000000000000000000ab"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "liverelay-sdktest-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "liverelay")
	// The binary is in the parent module; build it there.
	build := exec.Command("go", "build", "-o", binPath, "./cmd/liverelay")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build liverelay:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lockedBuffer collects the service's output for the failure report.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startService runs liverelay serve with a bootstrap project and key, and
// returns its endpoint.
func startService(t *testing.T) string {
	t.Helper()
	dataDir := t.TempDir()
	for range 5 {
		port := freePort(t)
		out := &lockedBuffer{}
		cmd := exec.Command(binPath, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", dataDir)
		cmd.Env = append(os.Environ(),
			"LIVERELAY_BOOTSTRAP_PROJECT_ID="+projectID,
			"LIVERELAY_BOOTSTRAP_ACCESS_KEY="+accessKey,
			"LIVERELAY_BOOTSTRAP_SECRET_KEY="+secretKey,
		)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start liverelay: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			if t.Failed() {
				t.Logf("liverelay output:\n%s", out.String())
			}
		})
		endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			select {
			case <-exited:
				if strings.Contains(out.String(), "address already in use") {
					goto nextPort
				}
				t.Fatalf("liverelay exited at start:\n%s", out.String())
			default:
			}
			if resp, err := http.Get(endpoint + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return endpoint
				}
			}
		}
		t.Fatalf("liverelay did not become healthy:\n%s", out.String())
	nextPort:
	}
	t.Fatal("no free port for liverelay after 5 attempts")
	return ""
}

// newClient is the SDK client as a user of the cloud would build it, pointed
// at liverelay.
func newClient(t *testing.T, endpoint, ak, sk string) *live.LiveClient {
	t.Helper()
	cred, err := basic.NewCredentialsBuilder().WithAk(ak).WithSk(sk).WithProjectId(projectID).SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	hc, err := live.LiveClientBuilder().
		WithEndpoints([]string{endpoint}).
		WithCredential(cred).
		WithHttpConfig(config.DefaultHttpConfig().WithTimeout(10 * time.Second)).
		SafeBuild()
	if err != nil {
		t.Fatal(err)
	}
	return live.NewLiveClient(hc)
}

// deadRTMP is an RTMP URL on a loopback port where nothing listens: tasks
// are accepted and just keep retrying, which is all an API test needs.
func deadRTMP(t *testing.T, stream string) string {
	return fmt.Sprintf("rtmp://127.0.0.1:%d/live/%s", freePort(t), stream)
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func sdkTime(t time.Time) *sdktime.SdkTime {
	st := sdktime.SdkTime(t.UTC())
	return &st
}

// statusOf returns the HTTP status of an SDK error, or 0 when the request
// got no answer.
func statusOf(err error) int {
	var sre *sdkerr.ServiceResponseError
	if errors.As(err, &sre) {
		return sre.StatusCode
	}
	return 0
}

// showTask lists one task by ID; nil when there is none.
func showTask(t *testing.T, c *live.LiveClient, id string) *model.LivePullTaskInfo {
	t.Helper()
	resp, err := c.ListPullTasks(&model.ListPullTasksRequest{TaskId: &id})
	if err != nil {
		t.Fatalf("ListPullTasks(task_id=%s): %v", id, err)
	}
	infos := deref(resp.TaskInfos)
	if deref(resp.Total) != int32(len(infos)) || len(infos) > 1 {
		t.Fatalf("ListPullTasks(task_id=%s): total %d with %d task_infos", id, deref(resp.Total), len(infos))
	}
	if len(infos) == 0 {
		return nil
	}
	return &infos[0]
}

func TestSDKLiveTaskLifecycle(t *testing.T) {
	endpoint := startService(t)
	c := newClient(t, endpoint, accessKey, secretKey)

	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	end := start.Add(2 * time.Hour)
	src, dst := deadRTMP(t, "src"), deadRTMP(t, "dst")
	events := model.GetLivePullStreamTaskCallbackEventsEnum()
	created, err := c.CreatePullTask(&model.CreatePullTaskRequest{Body: &model.LivePullStreamTask{
		Region:         ptr("local"),
		SourceType:     model.GetLivePullStreamTaskSourceTypeEnum().PULL_LIVE_PUSH_LIVE,
		SourceUrls:     []string{src},
		DestinationUrl: &dst,
		StartTime:      sdkTime(start),
		EndTime:        sdkTime(end),
		CallbackEvents: &[]model.LivePullStreamTaskCallbackEvents{events.TASK_START, events.TASK_EXIT},
		CallbackUrl:    ptr("http://127.0.0.1:9/hook"),
	}})
	if err != nil {
		t.Fatalf("CreatePullTask: %v", err)
	}
	id := deref(created.TaskId)
	if id == "" || deref(created.RequestId) == "" || created.HttpStatusCode != http.StatusOK {
		t.Fatalf("CreatePullTask: task_id %q, request_id %q, status %d", id, deref(created.RequestId), created.HttpStatusCode)
	}

	info := showTask(t, c, id)
	if info == nil {
		t.Fatalf("the new task %s is not listed", id)
	}
	checks := []struct {
		field     string
		got, want any
	}{
		{"task_id", deref(info.TaskId), id},
		{"status", deref(info.Status), "enable"},
		{"region", deref(info.Region), "local"},
		{"source_type", deref(info.SourceType), "PullLivePushLive"},
		{"source_urls", strings.Join(deref(info.SourceUrls), " "), src},
		{"destination_url", deref(info.DestinationUrl), dst},
		{"start_time", deref(info.StartTime), start.Format("2006-01-02T15:04:05Z")},
		{"end_time", deref(info.EndTime), end.Format("2006-01-02T15:04:05Z")},
		{"callback_events", strings.Join(deref(info.CallbackEvents), " "), "TaskStart TaskExit"},
		{"callback_url", deref(info.CallbackUrl), "http://127.0.0.1:9/hook"},
		{"vod_loop_time", info.VodLoopTime, (*string)(nil)},
	}
	for _, ck := range checks {
		if fmt.Sprint(ck.got) != fmt.Sprint(ck.want) {
			t.Errorf("listed %s = %v, want %v", ck.field, ck.got, ck.want)
		}
	}
	if info.CreateTime == nil || time.Since(time.Time(*info.CreateTime)) > time.Minute {
		t.Errorf("listed create_time = %v, want about now", info.CreateTime)
	}

	// A page of the whole list.
	page, err := c.ListPullTasks(&model.ListPullTasksRequest{Offset: ptr(int32(0)), Limit: ptr(int32(10)), Region: ptr("local")})
	if err != nil {
		t.Fatalf("ListPullTasks: %v", err)
	}
	if deref(page.Total) != 1 || len(deref(page.TaskInfos)) != 1 {
		t.Errorf("ListPullTasks: total %d, %d task_infos; want the one task", deref(page.Total), len(deref(page.TaskInfos)))
	}

	newEnd := end.Add(time.Hour)
	modified, err := c.ModifyPullTask(&model.ModifyPullTaskRequest{Body: &model.ModifyLivePullStreamTask{
		TaskId:  id,
		Status:  ptr(model.GetModifyLivePullStreamTaskStatusEnum().PAUSE),
		EndTime: sdkTime(newEnd),
	}})
	if err != nil {
		t.Fatalf("ModifyPullTask: %v", err)
	}
	if deref(modified.TaskId) != id {
		t.Errorf("ModifyPullTask: task_id %q, want %s", deref(modified.TaskId), id)
	}
	info = showTask(t, c, id)
	if info == nil || deref(info.Status) != "pause" || deref(info.EndTime) != newEnd.Format("2006-01-02T15:04:05Z") {
		t.Errorf("after ModifyPullTask: status %q, end_time %q; want pause, %s",
			deref(info.Status), deref(info.EndTime), newEnd.Format("2006-01-02T15:04:05Z"))
	}

	deleted, err := c.DeletePullTask(&model.DeletePullTaskRequest{TaskId: id, Region: ptr("local")})
	if err != nil {
		t.Fatalf("DeletePullTask: %v", err)
	}
	if deref(deleted.TaskId) != id {
		t.Errorf("DeletePullTask: task_id %q, want %s", deref(deleted.TaskId), id)
	}
	if info := showTask(t, c, id); info != nil {
		t.Errorf("the deleted task is still listed: %+v", info)
	}
	_, err = c.DeletePullTask(&model.DeletePullTaskRequest{TaskId: id})
	if statusOf(err) != http.StatusNotFound {
		t.Errorf("DeletePullTask of a deleted task: %v, want HTTP 404", err)
	}
}

func TestSDKVodTaskFields(t *testing.T) {
	endpoint := startService(t)
	c := newClient(t, endpoint, accessKey, secretKey)

	files := []string{"http://127.0.0.1:9/a.mp4", "http://127.0.0.1:9/b.mp4", "http://127.0.0.1:9/c.mp4"}
	// It starts in an hour: this test is about the fields, not playback.
	start := time.Now().UTC().Add(time.Hour)
	created, err := c.CreatePullTask(&model.CreatePullTaskRequest{Body: &model.LivePullStreamTask{
		SourceType:         model.GetLivePullStreamTaskSourceTypeEnum().PULL_VOD_PUSH_LIVE,
		SourceUrls:         files,
		DestinationUrl:     ptr(deadRTMP(t, "vod")),
		StartTime:          sdkTime(start),
		EndTime:            sdkTime(start.Add(time.Hour)),
		VodLoopTime:        ptr("3"),
		VodRefreshType:     ptr(model.GetLivePullStreamTaskVodRefreshTypeEnum().IMMEDIATE_NEW_SOURCE),
		VodStartVideoIndex: ptr(int32(1)),
		VodStartVideoTime:  ptr(int32(12)),
	}})
	if err != nil {
		t.Fatalf("CreatePullTask (VOD): %v", err)
	}
	id := deref(created.TaskId)
	info := showTask(t, c, id)
	if info == nil {
		t.Fatalf("the VOD task %s is not listed", id)
	}
	if deref(info.SourceType) != "PullVodPushLive" || !slices.Equal(deref(info.SourceUrls), files) ||
		deref(info.VodLoopTime) != "3" || deref(info.VodStartVideoIndex) != 1 || deref(info.VodStartVideoTime) != 12 ||
		info.VodRefreshType == nil || info.VodRefreshType.Value() != "immediate_new_source" {
		t.Errorf("listed VOD task: type %q, urls %q, loop %q, index %d, time %d, refresh %v",
			deref(info.SourceType), deref(info.SourceUrls), deref(info.VodLoopTime),
			deref(info.VodStartVideoIndex), deref(info.VodStartVideoTime), info.VodRefreshType)
	}

	_, err = c.ModifyPullTask(&model.ModifyPullTaskRequest{Body: &model.ModifyLivePullStreamTask{
		TaskId:             id,
		SourceUrls:         &[]string{files[2], files[0]},
		VodRefreshType:     ptr(model.GetModifyLivePullStreamTaskVodRefreshTypeEnum().CONTINUE_FROM_FILE_START),
		VodStartVideoIndex: ptr(int32(0)),
	}})
	if err != nil {
		t.Fatalf("ModifyPullTask (VOD): %v", err)
	}
	info = showTask(t, c, id)
	if got := deref(info.SourceUrls); !slices.Equal(got, []string{files[2], files[0]}) {
		t.Errorf("after ModifyPullTask: source_urls %q", got)
	}

	// A field the rules refuse comes back as the SDK's error with our message.
	_, err = c.ModifyPullTask(&model.ModifyPullTaskRequest{Body: &model.ModifyLivePullStreamTask{
		TaskId:             id,
		VodStartVideoIndex: ptr(int32(7)),
	}})
	var sre *sdkerr.ServiceResponseError
	if !errors.As(err, &sre) || sre.StatusCode != http.StatusBadRequest || sre.ErrorCode == "" || sre.RequestId == "" ||
		!strings.Contains(sre.ErrorMessage, "vod_start_video_index") {
		t.Errorf("ModifyPullTask with an index out of range: %v, want a 400 naming vod_start_video_index", err)
	}
}

func TestSDKWrongSecretKey(t *testing.T) {
	endpoint := startService(t)
	good := newClient(t, endpoint, accessKey, secretKey)
	created, err := good.CreatePullTask(&model.CreatePullTaskRequest{Body: &model.LivePullStreamTask{
		SourceType:     model.GetLivePullStreamTaskSourceTypeEnum().PULL_LIVE_PUSH_LIVE,
		SourceUrls:     []string{deadRTMP(t, "src")},
		DestinationUrl: ptr(deadRTMP(t, "dst")),
	}})
	if err != nil {
		t.Fatalf("CreatePullTask: %v", err)
	}
	id := deref(created.TaskId)

	bad := newClient(t, endpoint, accessKey, secretKey[:len(secretKey)-1]+"x")
	calls := []struct {
		name string
		do   func() error
	}{
		{"CreatePullTask", func() error {
			_, err := bad.CreatePullTask(&model.CreatePullTaskRequest{Body: &model.LivePullStreamTask{
				SourceType:     model.GetLivePullStreamTaskSourceTypeEnum().PULL_LIVE_PUSH_LIVE,
				SourceUrls:     []string{deadRTMP(t, "src")},
				DestinationUrl: ptr(deadRTMP(t, "other")),
			}})
			return err
		}},
		{"ListPullTasks", func() error {
			_, err := bad.ListPullTasks(&model.ListPullTasksRequest{TaskId: &id})
			return err
		}},
		{"ModifyPullTask", func() error {
			_, err := bad.ModifyPullTask(&model.ModifyPullTaskRequest{Body: &model.ModifyLivePullStreamTask{
				TaskId: id, Status: ptr(model.GetModifyLivePullStreamTaskStatusEnum().PAUSE)}})
			return err
		}},
		{"DeletePullTask", func() error {
			_, err := bad.DeletePullTask(&model.DeletePullTaskRequest{TaskId: id})
			return err
		}},
	}
	for _, call := range calls {
		if err := call.do(); statusOf(err) != http.StatusUnauthorized {
			t.Errorf("%s with a wrong secret key: %v, want HTTP 401", call.name, err)
		}
	}
	// Nothing the refused calls asked for happened.
	page, err := good.ListPullTasks(&model.ListPullTasksRequest{})
	if err != nil {
		t.Fatalf("ListPullTasks: %v", err)
	}
	if infos := deref(page.TaskInfos); len(infos) != 1 || deref(infos[0].TaskId) != id || deref(infos[0].Status) != "enable" {
		t.Errorf("after the refused calls the project lists %d tasks, want the one enabled task %s", len(infos), id)
	}
}
