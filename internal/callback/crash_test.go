//go:build unix

package callback

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store/sqlite"
	"github.com/liverelay/liverelay/internal/task"
)

// crashChildEnv switches the test binary into the child of
// TestKillNineLosesNoEvent: its value is the database to use.
const crashChildEnv = "LIVERELAY_CALLBACK_CRASH_CHILD_DB"

// TestKillNineLosesNoEvent runs producer and deliverer in a child process,
// kills it with SIGKILL while events are pending (some delivered, some
// failing, some in flight), and checks that a new Deliverer on the same
// file delivers every event the child had stored, in order per task.
func TestKillNineLosesNoEvent(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path) // never returns
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	path := filepath.Join(t.TempDir(), "liverelay.db")
	var up atomic.Bool
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		if up.Load() || n%3 == 0 {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	st := openStore(t, path)
	for i := range 3 {
		addTask(t, st, "p1", fmt.Sprintf("t%d", i), rc.url("/hook"))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestKillNineLosesNoEvent$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child prints an event's ID once the store acknowledged it.
	var acked []string
	lines := bufio.NewScanner(out)
	for len(acked) < 60 && lines.Scan() {
		if id, ok := strings.CutPrefix(lines.Text(), "stored "); ok {
			acked = append(acked, id)
		}
	}
	cmd.Process.Kill() // SIGKILL: no deferred function, no Close
	cmd.Wait()
	if len(acked) < 60 {
		t.Fatalf("child acknowledged %d events before it ended, want 60", len(acked))
	}
	before := len(rc.requests())

	up.Store(true)
	st = openStore(t, path)
	t.Cleanup(func() { st.Close() })
	d, _ := start(t, Options{Store: st})
	d.Notify()
	accepted := func() map[string]bool {
		ids := map[string]bool{}
		for _, r := range rc.requests() {
			var body struct {
				EventID string `json:"event_id"`
			}
			if r.status/100 == 2 && json.Unmarshal(r.body, &body) == nil {
				ids[body.EventID] = true
			}
		}
		return ids
	}
	waitFor(t, "every acknowledged event delivered", func() bool {
		got := accepted()
		for _, id := range acked {
			if !got[id] {
				return false
			}
		}
		return len(pending(t, st, "t0", "t1", "t2")) == 0
	})
	for i := range 3 {
		id := fmt.Sprintf("t%d", i)
		var last int64 // highest seq delivered in order
		for _, r := range rc.requests() {
			if r.taskID != id {
				continue
			}
			if r.seq > last+1 {
				t.Errorf("task %s: seq %d sent while seq %d was not delivered", id, r.seq, last+1)
			}
			if r.status/100 == 2 && r.seq == last+1 {
				last++
			}
		}
	}
	t.Logf("%d events acknowledged, %d requests before the kill, %d after", len(acked), before, len(rc.requests())-before)
}

// crashChild stores events for the tasks of the database round-robin,
// printing each one's ID once stored, with a Deliverer running beside it,
// until it is killed.
func crashChild(path string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	st, err := sqlite.Open(path)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	tasks, err := st.TasksInRegions(ctx, nil)
	if err != nil || len(tasks) == 0 {
		fail(fmt.Errorf("tasks: %d, %v", len(tasks), err))
	}
	d := NewDeliverer(Options{Store: st, ServerKey: serverKey, BackoffMin: 5 * time.Millisecond,
		BackoffMax: 20 * time.Millisecond, Logger: quietLogger()})
	go d.Run(ctx)
	// A parent that died before killing it must not leave it running.
	time.AfterFunc(time.Minute, func() { os.Exit(3) })
	for i := 0; ; i++ {
		tk := &tasks[i%len(tasks)]
		ev := NewEvent(tk, task.EventTaskAlarm, false, map[string]any{"i": i}, time.Now())
		if err := st.PutRunState(ctx, &task.RunState{TaskID: tk.ID, State: task.StateRunning}, ev); err != nil {
			fail(err)
		}
		fmt.Printf("stored %s\n", ev.ID)
		d.Notify()
		time.Sleep(2 * time.Millisecond)
	}
}
