//go:build unix

package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// crashDBEnv switches the test binary into the child of
// TestCrashKeepsAcknowledgedWrites: its value is the database to write to.
const crashDBEnv = "LIVERELAY_STORE_CRASH_CHILD_DB"

const crashProject = "crash-project"

var crashEpoch = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// crashTask is task n of the crash tests, every field set and derived from
// n, so the parent can tell what a stored row must hold.
func crashTask(n int) *task.Task {
	id := fmt.Sprintf("crash-%07d", n)
	at := crashEpoch.Add(time.Duration(n) * time.Millisecond)
	return &task.Task{
		ID: id, ProjectID: crashProject, Region: fmt.Sprintf("region-%d", n%3),
		SourceType: task.PullVodPushLive,
		SourceURLs: []string{"https://media.example/" + id + "/a.mp4", "https://media.example/" + id + "/b.mp4"},
		Domain:     "push.example", AppName: "live", StreamName: id, PushArgs: "k=" + strconv.Itoa(n),
		Destination:    "rtmp://ingest.push.example/live/" + id + "?k=" + strconv.Itoa(n),
		DestinationKey: "rtmp://ingest.push.example/live/" + id,
		StartTime:      at, EndTime: at.Add(time.Hour),
		VodLoopTime: n%5 + 1, VodRefreshType: task.RefreshImmediate, VodStartVideoIndex: n % 2, VodStartVideoTime: n % 60,
		BackupSourceType: task.PullLivePushLive, BackupSourceURLs: []string{"rtmp://backup.example/live/" + id},
		CallbackEvents: []string{task.EventTaskStart, task.EventTaskExit},
		CallbackURL:    "https://callback.example/" + id,
		Status:         task.StatusEnable, CreateTime: at, UpdateTime: at, Generation: 1,
	}
}

func crashRunState(n int) *task.RunState {
	at := crashEpoch.Add(time.Duration(n) * time.Millisecond)
	return &task.RunState{
		TaskID: fmt.Sprintf("crash-%07d", n), State: task.StateRunning, OnBackup: n%2 == 0,
		CurrentSourceURL: "https://media.example/x.mp4", CurrentIndex: n % 2, CurrentOffsetMS: int64(n) * 40,
		LoopsDone: n % 3, StartedAt: at, LastHeartbeat: at.Add(time.Second), BitrateBPS: int64(n) * 1000,
		FPS: 25, FramesOut: int64(n), BytesOut: int64(n) << 10, Reconnects: int64(n % 7), Failovers: int64(n % 4),
		LastError:  &task.ErrorInfo{Code: "PullFileUnstable", Message: "slow read " + strconv.Itoa(n), At: at},
		ExitReason: "",
	}
}

// crashIndex parses n back out of a crash task's ID.
func crashIndex(t *testing.T, id string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(id, "crash-"))
	if err != nil || !strings.HasPrefix(id, "crash-") {
		t.Fatalf("unexpected task id %q", id)
	}
	return n
}

// TestCrashChild is the child half of TestCrashKeepsAcknowledgedWrites; run
// on its own it skips. It writes from several goroutines until it is killed,
// printing a line for each write that returned nil.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashDBEnv)
	if path == "" {
		t.Skip("runs only as the child of TestCrashKeepsAcknowledgedWrites")
	}
	s, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(3)
	}
	var (
		next  atomic.Int64
		outMu sync.Mutex
		wg    sync.WaitGroup
	)
	ack := func(kind string, n int) {
		outMu.Lock()
		defer outMu.Unlock()
		// One unbuffered write per line: the parent sees it as soon as the
		// call returned, and a kill cannot tear it.
		fmt.Fprintf(os.Stdout, "%s %d\n", kind, n)
	}
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute) // the parent should have killed us long before
	for range 4 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				n := int(next.Add(1))
				if err := s.CreateTask(ctx, crashTask(n), store.CreateLimits{Quota: 1 << 30, Now: crashEpoch}); err != nil {
					fmt.Fprintln(os.Stderr, "child: create:", err)
					os.Exit(3)
				}
				ack("task", n)
				if err := s.PutRunState(ctx, crashRunState(n)); err != nil {
					fmt.Fprintln(os.Stderr, "child: run state:", err)
					os.Exit(3)
				}
				ack("state", n)
			}
		})
	}
	wg.Wait()
	fmt.Fprintln(os.Stderr, "child: not killed in time")
	os.Exit(4)
}

// TestCrashKeepsAcknowledgedWrites kills -9 a process that is writing and
// checks that every write it acknowledged survived, whole.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	const killAfter = 300 // acknowledged task creates
	path := filepath.Join(t.TempDir(), "crash.db")
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.PutProject(t.Context(), &store.Project{ID: crashProject, AccountID: "a", Region: "region-0"}); err != nil {
		t.Fatal(err)
	}
	migrationsBefore := schemaMigrations(t, s.w)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), crashDBEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer watchdog.Stop()

	tasks, states := map[int]bool{}, map[int]bool{}
	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		kind, num, _ := strings.Cut(sc.Text(), " ")
		n, err := strconv.Atoi(num)
		if err != nil {
			continue // not ours (the testing package's own output)
		}
		switch kind {
		case "task":
			tasks[n] = true
		case "state":
			states[n] = true
		}
		if !killed && len(tasks) >= killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("kill child: %v", err)
			}
			killed = true
		}
		// Lines already in the pipe when the kill landed were acknowledged
		// too: read on to EOF.
	}
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !killed || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v after %d acknowledged creates, not by our kill; stderr:\n%s", cmd.ProcessState, len(tasks), stderr.String())
	}

	s, applied, err := open(path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	if len(applied) != 0 {
		t.Errorf("reopen applied migrations %v again", applied)
	}
	if got := schemaMigrations(t, s.w); !reflect.DeepEqual(got, migrationsBefore) {
		t.Errorf("schema_migrations changed by the crash and reopen: %v, was %v", got, migrationsBefore)
	}
	checkIntegrity(t, s.w)

	ctx := t.Context()
	for n := range tasks {
		got, err := s.GetTask(ctx, crashProject, crashTask(n).ID)
		if err != nil {
			t.Fatalf("acknowledged task %d lost: %v", n, err)
		}
		if want := crashTask(n); !reflect.DeepEqual(got, want) {
			t.Fatalf("acknowledged task %d:\n got %+v\nwant %+v", n, got, want)
		}
	}
	for n := range states {
		got, err := s.GetRunState(ctx, crashTask(n).ID)
		if err != nil {
			t.Fatalf("acknowledged run state %d lost: %v", n, err)
		}
		if want := crashRunState(n); !reflect.DeepEqual(got, want) {
			t.Fatalf("acknowledged run state %d:\n got %+v\nwant %+v", n, got, want)
		}
	}
	// Writes in flight at the kill may have committed or not, but nothing is
	// half there: every stored task is whole, with a whole run state.
	views, total, err := s.ListTasks(ctx, store.ListFilter{ProjectID: crashProject})
	if err != nil {
		t.Fatal(err)
	}
	if total < len(tasks) {
		t.Fatalf("%d tasks stored, %d acknowledged", total, len(tasks))
	}
	for _, v := range views {
		n := crashIndex(t, v.Task.ID)
		if want := crashTask(n); !reflect.DeepEqual(&v.Task, want) {
			t.Fatalf("stored task %d is not whole:\n got %+v\nwant %+v", n, v.Task, *want)
		}
		if v.State.State != task.StateWaiting {
			if want := crashRunState(n); !reflect.DeepEqual(&v.State, want) {
				t.Fatalf("stored run state %d is not whole:\n got %+v\nwant %+v", n, v.State, *want)
			}
		}
	}
	t.Logf("killed after %d acknowledged creates (%d run states); %d tasks stored", len(tasks), len(states), total)

	// The store still works.
	if err := s.CreateTask(ctx, crashTask(1<<20), store.CreateLimits{Now: crashEpoch}); err != nil {
		t.Fatalf("CreateTask after recovery: %v", err)
	}
}

// TestReopenAfterUncleanClose reopens a file whose Store was never closed,
// both beside the live Store and from a copy of the files as a crash would
// leave them (the WAL not checkpointed, no shared-memory index).
func TestReopenAfterUncleanClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "unclean.db")
	s1, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close() // only at the very end
	ctx := t.Context()
	if err := s1.PutProject(ctx, &store.Project{ID: crashProject}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := 1; i <= n; i++ {
		if err := s1.CreateTask(ctx, crashTask(i), store.CreateLimits{Now: crashEpoch}); err != nil {
			t.Fatal(err)
		}
		if err := s1.PutRunState(ctx, crashRunState(i)); err != nil {
			t.Fatal(err)
		}
		if err := s1.PutCheckpoint(ctx, crashTask(i).ID, task.Checkpoint{Loop: i, Index: i % 2, OffsetMS: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}

	image := filepath.Join(t.TempDir(), "image.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if suffix == "-wal" && len(b) == 0 {
			t.Fatal("the WAL is empty: the test needs writes that are only in the WAL")
		}
		if err := os.WriteFile(image+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for _, p := range []string{path, image} {
		s, applied, err := open(p)
		if err != nil {
			t.Fatalf("reopen %s: %v", filepath.Base(p), err)
		}
		if len(applied) != 0 {
			t.Errorf("reopen %s applied migrations %v again", filepath.Base(p), applied)
		}
		checkIntegrity(t, s.w)
		for i := 1; i <= n; i++ {
			id := crashTask(i).ID
			got, err := s.GetTask(ctx, crashProject, id)
			if err != nil || !reflect.DeepEqual(got, crashTask(i)) {
				t.Fatalf("%s: task %d = %+v, %v", filepath.Base(p), i, got, err)
			}
			rs, err := s.GetRunState(ctx, id)
			if err != nil || !reflect.DeepEqual(rs, crashRunState(i)) {
				t.Fatalf("%s: run state %d = %+v, %v", filepath.Base(p), i, rs, err)
			}
			cp, err := s.GetCheckpoint(ctx, id)
			if err != nil || cp.Loop != i {
				t.Fatalf("%s: checkpoint %d = %+v, %v", filepath.Base(p), i, cp, err)
			}
		}
		if err := s.CreateTask(ctx, crashTask(n+1), store.CreateLimits{Now: crashEpoch}); err != nil {
			t.Fatalf("%s: CreateTask after reopen: %v", filepath.Base(p), err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func checkIntegrity(t *testing.T, db *sql.DB) {
	t.Helper()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check: %q, %v", res, err)
	}
	rows, err := db.Query(`PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if rows.Next() {
		t.Fatal("foreign_key_check found rows that point nowhere")
	}
}

type migrationRow struct {
	Version   int
	Name      string
	AppliedAt int64
}

func schemaMigrations(t *testing.T, db *sql.DB) []migrationRow {
	t.Helper()
	rows, err := db.Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var r migrationRow
		if err := rows.Scan(&r.Version, &r.Name, &r.AppliedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
