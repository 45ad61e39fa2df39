// Package storetest is the behaviour every store.Store must show. Each
// implementation's tests call Run with a function that opens an empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// Run runs the suite. open must return a new, empty store and close it when
// the test ends (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"TaskRoundTrip", testTaskRoundTrip},
		{"CreateRejects", testCreateRejects},
		{"UpdateTask", testUpdateTask},
		{"UpdateGenerationRace", testUpdateGenerationRace},
		{"DeleteTask", testDeleteTask},
		{"ListOrderPagingTotal", testListOrderPagingTotal},
		{"ListFilters", testListFilters},
		{"TasksInRegions", testTasksInRegions},
		{"Quota", testQuota},
		{"DestinationRule", testDestinationRule},
		{"DestinationRecheckOnUpdate", testDestinationRecheckOnUpdate},
		{"RunStateRoundTrip", testRunStateRoundTrip},
		{"PutRunStates", testPutRunStates},
		{"Checkpoints", testCheckpoints},
		{"Projects", testProjects},
		{"Credentials", testCredentials},
		{"ListCredentials", testListCredentials},
		{"ConcurrentCreatesRespectQuota", testConcurrentQuota},
		{"ConcurrentCreatesOneDestination", testConcurrentDestination},
		{"ConcurrentWrites", testConcurrentWrites},
		{"EventAppend", testEventAppend},
		{"DueEvents", testDueEvents},
		{"PruneEvents", testPruneEvents},
		{"EventBacklog", testEventBacklog},
		{"ProjectCallbackKey", testProjectCallbackKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// now is the clock of the suite: tasks run from now to now+2h unless a test
// says otherwise.
var now = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// east is a zone other than UTC, to check that times come back in UTC.
var east = time.FixedZone("UTC+8", 8*3600)

func lim(quota int) store.CreateLimits { return store.CreateLimits{Quota: quota, Now: now} }

func putProject(t *testing.T, s store.Store, id string) {
	t.Helper()
	if err := s.PutProject(t.Context(), &store.Project{ID: id, AccountID: "acct-" + id, Region: "region-a", CreateTime: now}); err != nil {
		t.Fatalf("PutProject(%s): %v", id, err)
	}
}

// newTask returns a task with every field set and a destination of its own.
func newTask(projectID, id string) *task.Task {
	return &task.Task{
		ID:                 id,
		ProjectID:          projectID,
		Region:             "region-a",
		SourceType:         task.PullVodPushLive,
		SourceURLs:         []string{"https://media.example/" + id + "/a.mp4", "https://media.example/" + id + "/b.flv"},
		Domain:             "push.example",
		AppName:            "live",
		StreamName:         id,
		PushArgs:           "token=abc&x=1",
		DestinationURL:     "",
		Destination:        "rtmp://ingest.push.example/live/" + id + "?token=abc&x=1",
		DestinationKey:     "rtmp://ingest.push.example/live/" + id,
		StartTime:          now,
		EndTime:            now.Add(2 * time.Hour),
		VodLoopTime:        3,
		VodRefreshType:     task.RefreshImmediate,
		VodStartVideoIndex: 1,
		VodStartVideoTime:  42,
		BackupSourceType:   task.PullLivePushLive,
		BackupSourceURLs:   []string{"rtmp://backup.example/live/" + id},
		CallbackEvents:     []string{task.EventTaskStart, task.EventTaskExit},
		CallbackURL:        "https://callback.example/hook",
		Status:             task.StatusEnable,
		CreateTime:         now.Add(-time.Minute),
		UpdateTime:         now.Add(-time.Minute),
		Generation:         1,
	}
}

func mustCreate(t *testing.T, s store.Store, tk *task.Task) {
	t.Helper()
	if err := s.CreateTask(t.Context(), tk, lim(0)); err != nil {
		t.Fatalf("CreateTask(%s): %v", tk.ID, err)
	}
}

func mustUpdate(t *testing.T, s store.Store, tk *task.Task) {
	t.Helper()
	if err := s.UpdateTask(t.Context(), tk, now); err != nil {
		t.Fatalf("UpdateTask(%s, generation %d): %v", tk.ID, tk.Generation, err)
	}
}

func mustPutState(t *testing.T, s store.Store, taskID, state string) {
	t.Helper()
	if err := s.PutRunState(t.Context(), &task.RunState{TaskID: taskID, State: state}); err != nil {
		t.Fatalf("PutRunState(%s, %s): %v", taskID, state, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if want == nil && err != nil {
		t.Fatalf("%s: %v, want no error", what, err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func testTaskRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	tk := newTask("p1", "t1")
	// A zone other than UTC and sub-millisecond digits: times come back in
	// UTC, to the millisecond.
	tk.StartTime = time.Date(2026, 11, 25, 18, 0, 0, 123456789, east)
	tk.EndTime = tk.StartTime.Add(90 * time.Minute)
	tk.CreateTime = time.Date(2026, 11, 25, 17, 59, 1, 500000000, east)
	tk.UpdateTime = tk.CreateTime.Add(time.Second)
	tk.Generation = 7
	mustCreate(t, s, tk)

	got, err := s.GetTask(ctx, "p1", "t1")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	checkTask(t, got, tk)

	rs, err := s.GetRunState(ctx, "t1")
	if err != nil {
		t.Fatalf("GetRunState of a new task: %v", err)
	}
	if rs.TaskID != "t1" || rs.State != task.StateWaiting {
		t.Fatalf("run state of a new task: %+v, want task t1 waiting", rs)
	}

	// Empty lists and zero values survive too.
	bare := &task.Task{ID: "t2", ProjectID: "p1", Region: "region-b", SourceType: task.PullLivePushLive,
		SourceURLs: []string{"rtmp://src.example/live/x"}, DestinationURL: "rtmp://d.example/a/b",
		Destination: "rtmp://d.example/a/b", DestinationKey: "rtmp://d.example/a/b",
		StartTime: now, EndTime: now.Add(time.Hour), VodLoopTime: task.LoopForever,
		Status: task.StatusPause, CreateTime: now}
	mustCreate(t, s, bare)
	got, err = s.GetTask(ctx, "p1", "t2")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	checkTask(t, got, bare)

	wantErr(t, "GetTask of an unknown task", get(s, ctx, "p1", "nope"), store.ErrNotFound)
	wantErr(t, "GetTask through another project", get(s, ctx, "p2", "t1"), store.ErrNotFound)
}

func get(s store.Store, ctx context.Context, projectID, taskID string) error {
	_, err := s.GetTask(ctx, projectID, taskID)
	return err
}

func testCreateRejects(t *testing.T, s store.Store) {
	ctx := t.Context()
	wantErr(t, "CreateTask in an unknown project", s.CreateTask(ctx, newTask("ghost", "t1"), lim(10)), store.ErrProjectNotFound)
	putProject(t, s, "p1")
	putProject(t, s, "p2")
	mustCreate(t, s, newTask("p1", "t1"))
	dup := newTask("p1", "t1")
	dup.DestinationKey += "/other"
	wantErr(t, "CreateTask with a taken ID", s.CreateTask(ctx, dup, lim(10)), store.ErrConflict)
	dup.ProjectID = "p2"
	wantErr(t, "CreateTask with an ID taken in another project", s.CreateTask(ctx, dup, lim(10)), store.ErrConflict)
	if _, total, err := s.ListTasks(ctx, store.ListFilter{ProjectID: "p2"}); err != nil || total != 0 {
		t.Fatalf("project p2 after rejected creates: total %d, %v; want 0", total, err)
	}
}

func testUpdateTask(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	orig := newTask("p1", "t1")
	mustCreate(t, s, orig)

	up := *orig
	up.Region = "region-z"
	up.SourceURLs = []string{"https://media.example/new.mp4"}
	up.VodLoopTime = task.LoopForever
	up.VodRefreshType = task.RefreshFromBreak
	up.VodStartVideoIndex = 0
	up.VodStartVideoTime = 7
	up.StartTime = now.Add(time.Hour)
	up.EndTime = now.Add(5 * time.Hour)
	up.CallbackEvents = nil
	up.Status = task.StatusPause
	up.UpdateTime = now.Add(time.Minute)
	up.CreateTime = now.Add(time.Hour) // ignored: the creation time is kept
	up.Generation = 2
	mustUpdate(t, s, &up)

	got, err := s.GetTask(ctx, "p1", "t1")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	want := up
	want.CreateTime = orig.CreateTime
	checkTask(t, got, &want)

	stale := up
	stale.Status = task.StatusEnable
	wantErr(t, "UpdateTask with the stored generation", s.UpdateTask(ctx, &stale, now), store.ErrConflict)
	stale.Generation = 4
	wantErr(t, "UpdateTask skipping a generation", s.UpdateTask(ctx, &stale, now), store.ErrConflict)
	got, err = s.GetTask(ctx, "p1", "t1")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	checkTask(t, got, &want) // unchanged by the rejected updates

	ghost := newTask("p1", "ghost")
	ghost.Generation = 2
	wantErr(t, "UpdateTask of an unknown task", s.UpdateTask(ctx, ghost, now), store.ErrNotFound)
	other := up
	other.ProjectID = "p2"
	other.Generation = 3
	wantErr(t, "UpdateTask through another project", s.UpdateTask(ctx, &other, now), store.ErrNotFound)
}

func testUpdateGenerationRace(t *testing.T, s store.Store) {
	putProject(t, s, "p1")
	tk := newTask("p1", "t1")
	mustCreate(t, s, tk)
	const n = 8
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			up := *tk
			up.Generation = 2
			up.StreamName = fmt.Sprintf("writer-%d", i)
			<-start
			errs[i] = s.UpdateTask(t.Context(), &up, now)
		})
	}
	close(start)
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("writers %d and %d both updated generation 1 to 2", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("writer %d: %v, want ErrConflict", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no writer updated the task")
	}
	got, err := s.GetTask(t.Context(), "p1", "t1")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if got.Generation != 2 || got.StreamName != fmt.Sprintf("writer-%d", won) {
		t.Fatalf("after the race: generation %d, stream %q; want 2, writer-%d", got.Generation, got.StreamName, won)
	}
}

func testDeleteTask(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	mustCreate(t, s, newTask("p1", "t1"))
	mustCreate(t, s, newTask("p1", "t2"))
	if err := s.PutCheckpoint(ctx, "t1", task.Checkpoint{Loop: 1, Index: 2, OffsetMS: 3}); err != nil {
		t.Fatalf("PutCheckpoint: %v", err)
	}
	wantErr(t, "DeleteTask through another project", s.DeleteTask(ctx, "p2", "t1"), store.ErrNotFound)
	if err := s.DeleteTask(ctx, "p1", "t1"); err != nil {
		t.Fatalf("DeleteTask: %v", err)
	}
	wantErr(t, "GetTask after delete", get(s, ctx, "p1", "t1"), store.ErrNotFound)
	_, err := s.GetRunState(ctx, "t1")
	wantErr(t, "GetRunState after delete", err, store.ErrNotFound)
	_, err = s.GetCheckpoint(ctx, "t1")
	wantErr(t, "GetCheckpoint after delete", err, store.ErrNotFound)
	wantErr(t, "DeleteTask again", s.DeleteTask(ctx, "p1", "t1"), store.ErrNotFound)

	// A supervisor still running may report once more: dropped, no error.
	if err := s.PutRunState(ctx, &task.RunState{TaskID: "t1", State: task.StateRunning}); err != nil {
		t.Fatalf("PutRunState after delete: %v", err)
	}
	_, err = s.GetRunState(ctx, "t1")
	wantErr(t, "GetRunState after a dropped write", err, store.ErrNotFound)
	if err := s.PutCheckpoint(ctx, "t1", task.Checkpoint{Loop: 1}); err != nil {
		t.Fatalf("PutCheckpoint after delete: %v", err)
	}
	_, err = s.GetCheckpoint(ctx, "t1")
	wantErr(t, "GetCheckpoint after a dropped write", err, store.ErrNotFound)

	views, total, err := s.ListTasks(ctx, store.ListFilter{ProjectID: "p1"})
	if err != nil || total != 1 || len(views) != 1 || views[0].Task.ID != "t2" {
		t.Fatalf("ListTasks after delete: %d views, total %d, %v; want only t2", len(views), total, err)
	}
	// The ID is free again.
	mustCreate(t, s, newTask("p1", "t1"))
}

func testListOrderPagingTotal(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	putProject(t, s, "p2")
	// 25 tasks; created out of order, some at the same instant (ties go to
	// the greater ID first).
	var want []string // newest first
	for i := 24; i >= 0; i-- {
		want = append(want, fmt.Sprintf("t%02d", i))
	}
	for _, i := range []int{3, 0, 24, 7, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23} {
		tk := newTask("p1", fmt.Sprintf("t%02d", i))
		tk.CreateTime = now.Add(time.Duration(i/2) * time.Second) // pairs share a time
		mustCreate(t, s, tk)
	}
	for i := range 3 {
		tk := newTask("p2", fmt.Sprintf("other%d", i))
		tk.CreateTime = now.Add(time.Hour) // newer, but another project
		mustCreate(t, s, tk)
	}

	for _, page := range []struct{ offset, limit int }{
		{0, 10}, {10, 10}, {20, 10}, {24, 1}, {25, 10}, {100, 10}, {3, 4}, {0, 0}, {5, 0}, {-1, 2},
	} {
		views, total, err := s.ListTasks(ctx, store.ListFilter{ProjectID: "p1", Offset: page.offset, Limit: page.limit})
		if err != nil {
			t.Fatalf("ListTasks(offset %d, limit %d): %v", page.offset, page.limit, err)
		}
		if total != 25 {
			t.Errorf("ListTasks(offset %d, limit %d): total %d, want 25", page.offset, page.limit, total)
		}
		lo := max(page.offset, 0)
		hi := len(want)
		if page.limit > 0 {
			hi = min(lo+page.limit, len(want))
		}
		var exp []string
		if lo < len(want) {
			exp = want[lo:hi]
		}
		if got := ids(views); !reflect.DeepEqual(got, exp) && !(len(got) == 0 && len(exp) == 0) {
			t.Errorf("ListTasks(offset %d, limit %d) = %v, want %v", page.offset, page.limit, got, exp)
		}
	}
}

func ids(views []store.TaskView) []string {
	var out []string
	for _, v := range views {
		out = append(out, v.Task.ID)
	}
	return out
}

func testListFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	putProject(t, s, "p2")
	for i, region := range []string{"a", "b", "a", "b", "a"} {
		tk := newTask("p1", fmt.Sprintf("t%d", i))
		tk.Region = region
		tk.CreateTime = now.Add(time.Duration(i) * time.Second)
		mustCreate(t, s, tk)
	}
	mustCreate(t, s, newTask("p2", "x0"))

	full := &task.RunState{TaskID: "t1", State: task.StateRunning, OnBackup: true, CurrentSourceURL: "rtmp://b/x",
		CurrentIndex: 1, CurrentOffsetMS: 1500, LoopsDone: 2, StartedAt: now, LastHeartbeat: now.Add(time.Second),
		BitrateBPS: 2_000_000, FPS: 29.97, FramesOut: 900, BytesOut: 1 << 20, Reconnects: 1, Failovers: 2,
		LastError: &task.ErrorInfo{Code: "SourceLost", Message: "eof", At: now}, ExitReason: ""}
	if err := s.PutRunState(ctx, full); err != nil {
		t.Fatalf("PutRunState: %v", err)
	}

	for _, tc := range []struct {
		f     store.ListFilter
		want  []string
		total int
	}{
		{store.ListFilter{ProjectID: "p1", Region: "a"}, []string{"t4", "t2", "t0"}, 3},
		{store.ListFilter{ProjectID: "p1", Region: "a", Offset: 1, Limit: 1}, []string{"t2"}, 3},
		{store.ListFilter{ProjectID: "p1", Region: "b"}, []string{"t3", "t1"}, 2},
		{store.ListFilter{ProjectID: "p1", Region: "nowhere"}, nil, 0},
		{store.ListFilter{ProjectID: "p1", TaskID: "t3"}, []string{"t3"}, 1},
		{store.ListFilter{ProjectID: "p1", TaskID: "t3", Region: "a"}, nil, 0},
		{store.ListFilter{ProjectID: "p1", TaskID: "t3", Offset: 1}, nil, 1},
		{store.ListFilter{ProjectID: "p1", TaskID: "missing"}, nil, 0},
		{store.ListFilter{ProjectID: "p1", TaskID: "x0"}, nil, 0}, // another project's task
		{store.ListFilter{ProjectID: "p2"}, []string{"x0"}, 1},
		{store.ListFilter{ProjectID: "p3"}, nil, 0},
	} {
		views, total, err := s.ListTasks(ctx, tc.f)
		if err != nil {
			t.Fatalf("ListTasks(%+v): %v", tc.f, err)
		}
		if got := ids(views); total != tc.total || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListTasks(%+v) = %v, total %d; want %v, total %d", tc.f, got, total, tc.want, tc.total)
		}
	}

	// Each view carries its task's run state.
	views, _, err := s.ListTasks(ctx, store.ListFilter{ProjectID: "p1", Region: "b"})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	for _, v := range views {
		want := &task.RunState{TaskID: v.Task.ID, State: task.StateWaiting}
		if v.Task.ID == "t1" {
			want = full
		}
		checkRunState(t, &v.State, want)
		wantTask := newTask("p1", v.Task.ID)
		wantTask.Region = "b"
		wantTask.CreateTime = v.Task.CreateTime
		checkTask(t, &v.Task, wantTask)
	}
}

func testTasksInRegions(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	putProject(t, s, "p2")
	for i, region := range []string{"a", "b", "c", "a"} {
		tk := newTask("p1", fmt.Sprintf("t%d", i))
		tk.Region = region
		mustCreate(t, s, tk)
	}
	x := newTask("p2", "x0")
	x.Region = "b"
	mustCreate(t, s, x)

	for _, tc := range []struct {
		regions []string
		want    []string
	}{
		{nil, []string{"t0", "t1", "t2", "t3", "x0"}},
		{[]string{"a"}, []string{"t0", "t3"}},
		{[]string{"b", "c"}, []string{"t1", "t2", "x0"}},
		{[]string{"zz"}, nil},
	} {
		tasks, err := s.TasksInRegions(ctx, tc.regions)
		if err != nil {
			t.Fatalf("TasksInRegions(%q): %v", tc.regions, err)
		}
		var got []string
		for _, tk := range tasks {
			got = append(got, tk.ID)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("TasksInRegions(%q) = %v, want %v", tc.regions, got, tc.want)
		}
		for _, tk := range tasks {
			if tk.ID == "x0" {
				checkTask(t, &tk, x)
			}
		}
	}
}

func testQuota(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	putProject(t, s, "p2")
	for i := range 3 {
		if err := s.CreateTask(ctx, newTask("p1", fmt.Sprintf("t%d", i)), lim(3)); err != nil {
			t.Fatalf("CreateTask %d of 3: %v", i+1, err)
		}
	}
	wantErr(t, "CreateTask over the quota", s.CreateTask(ctx, newTask("p1", "t3"), lim(3)), store.ErrQuotaExceeded)
	// The quota is per project.
	wantErr(t, "CreateTask in another project", s.CreateTask(ctx, newTask("p2", "x0"), lim(3)), nil)
	// A lower quota than the project holds (the setting changed) refuses too.
	wantErr(t, "CreateTask over a lowered quota", s.CreateTask(ctx, newTask("p1", "t3"), lim(1)), store.ErrQuotaExceeded)
	if err := s.DeleteTask(ctx, "p1", "t0"); err != nil {
		t.Fatalf("DeleteTask: %v", err)
	}
	wantErr(t, "CreateTask after a delete freed a slot", s.CreateTask(ctx, newTask("p1", "t3"), lim(3)), nil)
	// Quota <= 0: no limit.
	wantErr(t, "CreateTask without a quota", s.CreateTask(ctx, newTask("p1", "t4"), lim(0)), nil)
	_, total, err := s.ListTasks(ctx, store.ListFilter{ProjectID: "p1"})
	if err != nil || total != 4 {
		t.Fatalf("ListTasks: total %d, %v; want 4", total, err)
	}
}

func testDestinationRule(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	putProject(t, s, "p2")
	for i, tc := range []struct {
		name         string
		other        func(o *task.Task) // the task already there
		state        string             // its run state, when not waiting
		deleted      bool
		otherProject bool
		want         error
	}{
		{name: "enabled, waiting", want: store.ErrDestinationInUse},
		{name: "enabled, not started yet", other: func(o *task.Task) {
			o.StartTime, o.EndTime = now.Add(time.Hour), now.Add(2*time.Hour)
		}, want: store.ErrDestinationInUse},
		{name: "enabled, running", state: task.StateRunning, want: store.ErrDestinationInUse},
		{name: "enabled, recovering", state: task.StateRecovering, want: store.ErrDestinationInUse},
		{name: "enabled, in another project", otherProject: true, want: store.ErrDestinationInUse},
		{name: "paused", other: func(o *task.Task) { o.Status = task.StatusPause }},
		{name: "paused and running", other: func(o *task.Task) { o.Status = task.StatusPause }, state: task.StateRunning},
		{name: "ends now", other: func(o *task.Task) { o.StartTime, o.EndTime = now.Add(-time.Hour), now }},
		{name: "ended", other: func(o *task.Task) { o.StartTime, o.EndTime = now.Add(-2*time.Hour), now.Add(-time.Hour) }},
		{name: "finished", state: task.StateFinished},
		{name: "failed", state: task.StateFailed},
		{name: "deleted", deleted: true},
	} {
		key := fmt.Sprintf("rtmp://ingest.example/live/dest%d", i)
		other := newTask("p1", fmt.Sprintf("other%d", i))
		if tc.otherProject {
			other.ProjectID = "p2"
		}
		other.DestinationKey = key
		if tc.other != nil {
			tc.other(other)
		}
		mustCreate(t, s, other)
		if tc.state != "" {
			mustPutState(t, s, other.ID, tc.state)
		}
		if tc.deleted {
			if err := s.DeleteTask(ctx, other.ProjectID, other.ID); err != nil {
				t.Fatalf("%s: DeleteTask: %v", tc.name, err)
			}
		}
		tk := newTask("p1", fmt.Sprintf("new%d", i))
		tk.DestinationKey = key
		err := s.CreateTask(ctx, tk, lim(100))
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s: CreateTask: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want != nil {
			wantErr(t, tc.name+": GetTask of the refused task", get(s, ctx, "p1", tk.ID), store.ErrNotFound)
		}
	}
}

func testDestinationRecheckOnUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	const key = "rtmp://ingest.example/live/shared"
	b := newTask("p1", "b")
	b.DestinationKey = key
	mustCreate(t, s, b)
	b.Status, b.Generation = task.StatusPause, 2
	mustUpdate(t, s, b)

	a := newTask("p1", "a")
	a.DestinationKey = key
	mustCreate(t, s, a) // b is paused: the destination is free

	enable := *b
	enable.Status, enable.Generation = task.StatusEnable, 3
	wantErr(t, "enabling b while a pushes", s.UpdateTask(ctx, &enable, now), store.ErrDestinationInUse)
	got, err := s.GetTask(ctx, "p1", "b")
	if err != nil {
		t.Fatalf("GetTask: %v", err)
	}
	if got.Status != task.StatusPause || got.Generation != 2 {
		t.Fatalf("b after a refused enable: status %s, generation %d; want pause, 2", got.Status, got.Generation)
	}

	// Staying paused with another change is fine.
	b.SourceURLs, b.Generation = []string{"https://media.example/z.mp4"}, 3
	mustUpdate(t, s, b)
	// a stays enabled: it does not conflict with itself.
	a.EndTime, a.Generation = a.EndTime.Add(time.Hour), 2
	mustUpdate(t, s, a)
	// The rule is evaluated at the time given: when a has ended, b may go.
	enable = *b
	enable.Status, enable.Generation = task.StatusEnable, 4
	if err := s.UpdateTask(ctx, &enable, a.EndTime); err != nil {
		t.Fatalf("enabling b after a's end_time: %v", err)
	}
	enable.Status, enable.Generation = task.StatusPause, 5
	mustUpdate(t, s, &enable)
	// Or when a has finished.
	mustPutState(t, s, "a", task.StateFinished)
	enable.Status, enable.Generation = task.StatusEnable, 6
	mustUpdate(t, s, &enable)
}

func testRunStateRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	mustCreate(t, s, newTask("p1", "t1"))
	full := &task.RunState{
		TaskID:           "t1",
		State:            task.StateRecovering,
		NodeID:           "node-a.example-1",
		OnBackup:         true,
		CurrentSourceURL: "rtmp://backup.example/live/t1",
		CurrentIndex:     4,
		CurrentOffsetMS:  123456,
		LoopsDone:        9,
		StartedAt:        time.Date(2026, 11, 25, 18, 0, 0, 250000000, east),
		LastHeartbeat:    time.Date(2026, 11, 25, 18, 30, 1, 999000000, east),
		BitrateBPS:       4_500_000,
		FPS:              59.94,
		FramesOut:        1 << 40,
		BytesOut:         1<<50 + 3,
		Reconnects:       17,
		Failovers:        5,
		FramesDropped:    1234,
		LastError:        &task.ErrorInfo{Code: "PushStreamUnstable", Message: `write: broken pipe "quoted" ✓`, At: time.Date(2026, 11, 25, 18, 29, 0, 1000000, east)},
		ExitReason:       task.ExitGaveUp,
	}
	if err := s.PutRunState(ctx, full); err != nil {
		t.Fatalf("PutRunState: %v", err)
	}
	got, err := s.GetRunState(ctx, "t1")
	if err != nil {
		t.Fatalf("GetRunState: %v", err)
	}
	checkRunState(t, got, full)

	// Overwrite with zero values: zero times, no error, an error without a time.
	for _, rs := range []*task.RunState{
		{TaskID: "t1", State: task.StateStarting, LastError: &task.ErrorInfo{Code: "c", Message: "m"}},
		{TaskID: "t1", State: task.StatePaused},
	} {
		if err := s.PutRunState(ctx, rs); err != nil {
			t.Fatalf("PutRunState: %v", err)
		}
		got, err := s.GetRunState(ctx, "t1")
		if err != nil {
			t.Fatalf("GetRunState: %v", err)
		}
		checkRunState(t, got, rs)
	}

	_, err = s.GetRunState(ctx, "unknown")
	wantErr(t, "GetRunState of an unknown task", err, store.ErrNotFound)
	if err := s.PutRunState(ctx, &task.RunState{TaskID: "unknown", State: task.StateRunning}); err != nil {
		t.Fatalf("PutRunState of an unknown task: %v, want the write dropped", err)
	}
	_, err = s.GetRunState(ctx, "unknown")
	wantErr(t, "GetRunState after a dropped write", err, store.ErrNotFound)
}

// Several tasks' states in one write: each lands with its events, in seq
// order per task; a task that is gone is skipped, not an error; a write that
// fails stores nothing of the batch.
func testPutRunStates(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	mustCreate(t, s, newTask("p1", "t1"))
	mustCreate(t, s, newTask("p1", "t2"))
	if err := s.PutRunStates(ctx, nil); err != nil {
		t.Fatalf("PutRunStates of nothing: %v", err)
	}
	a1 := newEvent("t1", task.EventTaskStart, now)
	a2 := newEvent("t1", task.EventTaskAlarm, now.Add(time.Millisecond))
	b1 := newEvent("t2", task.EventTaskStart, now)
	gone := newEvent("t0", task.EventTaskStart, now)
	s1 := &task.RunState{TaskID: "t1", State: task.StateRunning, FramesOut: 10, NodeID: "n1"}
	s2 := &task.RunState{TaskID: "t2", State: task.StateRecovering, Reconnects: 3}
	err := s.PutRunStates(ctx, []store.RunStateWrite{
		{State: s1, Events: []*store.Event{a1, a2}},
		{State: &task.RunState{TaskID: "t0", State: task.StateRunning}, Events: []*store.Event{gone}},
		{State: s2, Events: []*store.Event{b1}},
	})
	if err != nil {
		t.Fatalf("PutRunStates: %v", err)
	}
	for _, want := range []*task.RunState{s1, s2} {
		got, err := s.GetRunState(ctx, want.TaskID)
		if err != nil {
			t.Fatalf("GetRunState %s: %v", want.TaskID, err)
		}
		checkRunState(t, got, want)
	}
	wantSeqs(t, "PutRunStates", []*store.Event{a1, a2, b1}, 1, 2, 1)
	if _, err := s.GetRunState(ctx, "t0"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRunState of the missing task: %v, want ErrNotFound", err)
	}

	// An event ID used twice fails the whole batch: t2's new state is not
	// stored either.
	dup := newEvent("t1", task.EventTaskAlarm, now.Add(2*time.Millisecond))
	dup.ID = a1.ID
	err = s.PutRunStates(ctx, []store.RunStateWrite{
		{State: &task.RunState{TaskID: "t2", State: task.StatePaused}},
		{State: &task.RunState{TaskID: "t1", State: task.StatePaused}, Events: []*store.Event{dup}},
	})
	if err == nil {
		t.Fatal("PutRunStates with a duplicate event ID succeeded")
	}
	got, err := s.GetRunState(ctx, "t2")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != task.StateRecovering {
		t.Fatalf("t2 is %s after a failed batch, want the state before it (%s)", got.State, task.StateRecovering)
	}
}

func testCheckpoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	putProject(t, s, "p1")
	mustCreate(t, s, newTask("p1", "t1"))
	mustCreate(t, s, newTask("p1", "t2"))
	_, err := s.GetCheckpoint(ctx, "t1")
	wantErr(t, "GetCheckpoint before any", err, store.ErrNotFound)
	for _, cp := range []task.Checkpoint{{Loop: 2, Index: 3, OffsetMS: 1 << 40}, {}, {Loop: 0, Index: 29, OffsetMS: 5}} {
		if err := s.PutCheckpoint(ctx, "t1", cp); err != nil {
			t.Fatalf("PutCheckpoint(%+v): %v", cp, err)
		}
		got, err := s.GetCheckpoint(ctx, "t1")
		if err != nil {
			t.Fatalf("GetCheckpoint: %v", err)
		}
		if *got != cp {
			t.Fatalf("GetCheckpoint = %+v, want %+v", *got, cp)
		}
	}
	_, err = s.GetCheckpoint(ctx, "t2")
	wantErr(t, "GetCheckpoint of another task", err, store.ErrNotFound)
	if err := s.PutCheckpoint(ctx, "unknown", task.Checkpoint{Loop: 1}); err != nil {
		t.Fatalf("PutCheckpoint of an unknown task: %v, want the write dropped", err)
	}
	_, err = s.GetCheckpoint(ctx, "unknown")
	wantErr(t, "GetCheckpoint after a dropped write", err, store.ErrNotFound)
}

func testProjects(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n, err := s.CountProjects(ctx); err != nil || n != 0 {
		t.Fatalf("CountProjects of an empty store = %d, %v; want 0", n, err)
	}
	_, err := s.GetProject(ctx, "p1")
	wantErr(t, "GetProject of an unknown project", err, store.ErrProjectNotFound)

	p := &store.Project{ID: "p1", AccountID: "acct", Region: "region-a", CreateTime: time.Date(2026, 1, 2, 3, 4, 5, 6000000, east)}
	if err := s.PutProject(ctx, p); err != nil {
		t.Fatalf("PutProject: %v", err)
	}
	// Putting it again keeps what is there.
	if err := s.PutProject(ctx, &store.Project{ID: "p1", AccountID: "other", Region: "region-b", CreateTime: now}); err != nil {
		t.Fatalf("PutProject again: %v", err)
	}
	if err := s.PutProject(ctx, &store.Project{ID: "p2", AccountID: "acct", Region: "region-b"}); err != nil {
		t.Fatalf("PutProject: %v", err)
	}
	got, err := s.GetProject(ctx, "p1")
	if err != nil {
		t.Fatalf("GetProject: %v", err)
	}
	checkUTC(t, "project create time", got.CreateTime)
	want := *p
	want.CreateTime = canonTime(p.CreateTime)
	gotC := *got
	gotC.CreateTime = canonTime(got.CreateTime)
	checkFields(t, "project", gotC, want)
	if n, err := s.CountProjects(ctx); err != nil || n != 2 {
		t.Fatalf("CountProjects = %d, %v; want 2", n, err)
	}
}

func testCredentials(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetCredential(ctx, "AK1")
	wantErr(t, "GetCredential of an unknown key", err, store.ErrCredentialUnknown)

	c := &store.Credential{
		AccessKey:  "AK1",
		SecretKey:  []byte{0, 0xff, 0x10, 'a', 0, 0x80},
		UserID:     "u1",
		AccountID:  "acct",
		ProjectIDs: []string{"p1", "p2"},
		Actions:    []string{"live:stream:createPullTask", "live:stream:listPullTask"},
		CreateTime: time.Date(2026, 1, 2, 3, 4, 5, 0, east),
	}
	if err := s.PutCredential(ctx, c); err != nil {
		t.Fatalf("PutCredential: %v", err)
	}
	got, err := s.GetCredential(ctx, "AK1")
	if err != nil {
		t.Fatalf("GetCredential: %v", err)
	}
	checkCredential(t, got, c)

	// Replaced as a whole, revoked ones included.
	r := &store.Credential{AccessKey: "AK1", SecretKey: []byte("new secret"), UserID: "u2", AccountID: "acct2",
		Actions: []string{"live:*:*"}, Root: true, Revoked: true}
	if err := s.PutCredential(ctx, r); err != nil {
		t.Fatalf("PutCredential again: %v", err)
	}
	got, err = s.GetCredential(ctx, "AK1")
	if err != nil {
		t.Fatalf("GetCredential: %v", err)
	}
	checkCredential(t, got, r)
	_, err = s.GetCredential(ctx, "ak1")
	wantErr(t, "GetCredential is case-sensitive", err, store.ErrCredentialUnknown)
}

func testListCredentials(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.ListCredentials(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListCredentials of an empty store = %v, %v; want none", got, err)
	}
	// Put out of order, across accounts; AK2 is put, then revoked.
	want := []*store.Credential{
		{AccessKey: "AK1", SecretKey: []byte{1, 0, 2}, UserID: "root", AccountID: "acct1", ProjectIDs: []string{"p1"},
			Actions: []string{"live:*:*"}, Root: true, CreateTime: time.Date(2026, 1, 2, 3, 4, 5, 0, east)},
		{AccessKey: "AK2", SecretKey: []byte("s2"), UserID: "viewer", AccountID: "acct1",
			Actions: []string{"live:stream:listPullTask"}, CreateTime: now},
		{AccessKey: "AK3", SecretKey: []byte("s3"), UserID: "ops", AccountID: "acct2", ProjectIDs: []string{"p2", "p3"},
			Actions: []string{"live:stream:createPullTask", "live:stream:deletePullTask"}},
	}
	for _, i := range []int{2, 0, 1} {
		if err := s.PutCredential(ctx, want[i]); err != nil {
			t.Fatalf("PutCredential(%s): %v", want[i].AccessKey, err)
		}
	}
	revoked := *want[1]
	revoked.Revoked = true
	if err := s.PutCredential(ctx, &revoked); err != nil {
		t.Fatalf("PutCredential(%s) revoked: %v", revoked.AccessKey, err)
	}
	want[1] = &revoked // listed once, as it is now

	got, err = s.ListCredentials(ctx)
	if err != nil {
		t.Fatalf("ListCredentials: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ListCredentials returned %d credentials, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].AccessKey != want[i].AccessKey {
			t.Fatalf("ListCredentials[%d] is %s, want %s (ordered by access key)", i, got[i].AccessKey, want[i].AccessKey)
		}
		checkCredential(t, &got[i], want[i])
	}
}

func testConcurrentQuota(t *testing.T, s store.Store) {
	const workers, tries, quota = 8, 4, 5
	for round := range 3 {
		project := fmt.Sprintf("p%d", round)
		putProject(t, s, project)
		var (
			mu      sync.Mutex
			created int
			start   = make(chan struct{})
			wg      sync.WaitGroup
		)
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := range tries {
					err := s.CreateTask(t.Context(), newTask(project, fmt.Sprintf("%s-w%d-%d", project, w, i)), lim(quota))
					switch {
					case err == nil:
						mu.Lock()
						created++
						mu.Unlock()
					case !errors.Is(err, store.ErrQuotaExceeded):
						t.Errorf("worker %d: CreateTask: %v", w, err)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		_, total, err := s.ListTasks(t.Context(), store.ListFilter{ProjectID: project})
		if err != nil {
			t.Fatalf("ListTasks: %v", err)
		}
		if created != quota || total != quota {
			t.Fatalf("round %d: %d creates succeeded, %d stored; want %d (the quota)", round, created, total, quota)
		}
	}
}

func testConcurrentDestination(t *testing.T, s store.Store) {
	putProject(t, s, "p1")
	putProject(t, s, "p2")
	const workers = 8
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tk := newTask([]string{"p1", "p2"}[w%2], fmt.Sprintf("t%d", w))
			tk.DestinationKey = "rtmp://ingest.example/live/contended"
			<-start
			errs[w] = s.CreateTask(t.Context(), tk, lim(100))
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for w, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrDestinationInUse):
			t.Errorf("worker %d: %v, want ErrDestinationInUse", w, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creates for one destination succeeded, want 1", ok)
	}
}

// testConcurrentWrites mixes every kind of write with reads from several
// goroutines: none may fail, in particular not with a lock error.
func testConcurrentWrites(t *testing.T, s store.Store) {
	putProject(t, s, "p1")
	const workers, rounds = 8, 25
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		own := newTask("p1", fmt.Sprintf("own%d", w))
		mustCreate(t, s, own)
		wg.Go(func() {
			<-start
			fail := func(what string, err error) {
				msg := strings.ToLower(err.Error())
				if strings.Contains(msg, "locked") || strings.Contains(msg, "busy") {
					t.Errorf("worker %d: %s: lock error reached the caller: %v", w, what, err)
					return
				}
				t.Errorf("worker %d: %s: %v", w, what, err)
			}
			for i := range rounds {
				if err := s.CreateTask(ctx, newTask("p1", fmt.Sprintf("w%d-%d", w, i)), lim(0)); err != nil {
					fail("CreateTask", err)
					return
				}
				own.Generation++
				own.UpdateTime = own.UpdateTime.Add(time.Second)
				if err := s.UpdateTask(ctx, own, now); err != nil {
					fail("UpdateTask", err)
					return
				}
				if err := s.PutRunState(ctx, &task.RunState{TaskID: own.ID, State: task.StateRunning, FramesOut: int64(i)}); err != nil {
					fail("PutRunState", err)
					return
				}
				if err := s.PutCheckpoint(ctx, own.ID, task.Checkpoint{Index: i}); err != nil {
					fail("PutCheckpoint", err)
					return
				}
				if i%5 == 4 {
					if err := s.DeleteTask(ctx, "p1", fmt.Sprintf("w%d-%d", w, i-1)); err != nil {
						fail("DeleteTask", err)
						return
					}
				}
				if _, _, err := s.ListTasks(ctx, store.ListFilter{ProjectID: "p1", Limit: 10}); err != nil {
					fail("ListTasks", err)
					return
				}
				if _, err := s.GetRunState(ctx, own.ID); err != nil {
					fail("GetRunState", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	_, total, err := s.ListTasks(t.Context(), store.ListFilter{ProjectID: "p1"})
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	if want := workers * (1 + rounds - rounds/5); total != want {
		t.Fatalf("%d tasks stored, want %d", total, want)
	}
	for w := range workers {
		got, err := s.GetTask(t.Context(), "p1", fmt.Sprintf("own%d", w))
		if err != nil {
			t.Fatalf("GetTask: %v", err)
		}
		if got.Generation != 1+rounds {
			t.Errorf("own%d: generation %d, want %d", w, got.Generation, 1+rounds)
		}
	}
}
