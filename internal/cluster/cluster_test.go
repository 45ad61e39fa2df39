//go:build unix

package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liverelay/liverelay/internal/relay"
	"github.com/liverelay/liverelay/internal/scheduler"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/postgres"
	"github.com/liverelay/liverelay/internal/task"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// These tests run the real scheduler of several nodes against a real
// PostgreSQL; only the runners are fakes (they record when they push).

func TestMain(m *testing.M) {
	code := m.Run()
	testpeer.StopSharedPostgres()
	os.Exit(code)
}

const testTTL = 2 * time.Second

// pushes records, per task, every run of it: on which node, from when to
// when it pushed (until its Run returned or it was cut, whichever first).
type pushes struct {
	mu   sync.Mutex
	runs map[string][]*push
}

type push struct {
	node        string
	start, stop time.Time
	updates     int
	resume      task.RunState
}

func (p *pushes) all(id string) []push {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []push
	for _, r := range p.runs[id] {
		out = append(out, *r)
	}
	return out
}

// current returns the node pushing the task now, "" if none.
func (p *pushes) current(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.runs[id] {
		if r.stop.IsZero() {
			return r.node
		}
	}
	return ""
}

// checkNoOverlap fails when two runs of a task pushed at the same moment.
func (p *pushes) checkNoOverlap(t *testing.T, ids []string) {
	t.Helper()
	for _, id := range ids {
		runs := p.all(id)
		sort.Slice(runs, func(i, j int) bool { return runs[i].start.Before(runs[j].start) })
		for i := 1; i < len(runs); i++ {
			prev, cur := runs[i-1], runs[i]
			if prev.stop.IsZero() || cur.start.Before(prev.stop) {
				t.Fatalf("task %s: run on %s from %v overlaps the run on %s (%v to %v)",
					id, cur.node, cur.start.Format("15:04:05.000"), prev.node, prev.start.Format("15:04:05.000"), prev.stop.Format("15:04:05.000"))
			}
		}
	}
}

// fakeRunner pushes nothing but says it does: it reports running every
// 100 ms with a growing VOD position, and records its run.
type fakeRunner struct {
	t   *task.Task
	rep relay.Reporter
	rec *push
	p   *pushes
	up  chan *task.Task
}

func (f *fakeRunner) Run(ctx context.Context) {
	f.rep.Event(task.EventTaskStart, map[string]any{"source_url": "fake"})
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	rs := task.RunState{TaskID: f.t.ID, State: task.StateRunning, StartedAt: time.Now(),
		CurrentIndex: f.rec.resume.CurrentIndex, CurrentOffsetMS: f.rec.resume.CurrentOffsetMS}
	for {
		select {
		case <-ctx.Done():
			f.stopped()
			return
		case <-f.up:
			f.p.mu.Lock()
			f.rec.updates++
			f.p.mu.Unlock()
		case <-tick.C:
			rs.CurrentOffsetMS += 100
			rs.LastHeartbeat = time.Now()
			f.rep.Report(rs)
		}
	}
}

func (f *fakeRunner) stopped() {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if f.rec.stop.IsZero() {
		f.rec.stop = time.Now()
	}
}

func (f *fakeRunner) Cut()                { f.stopped() }
func (f *fakeRunner) Update(t *task.Task) { f.up <- t }

// testNode is one node: its store (through a proxy that can cut it off the
// database), cluster.Node, scheduler and notification relay.
type testNode struct {
	id    string
	st    *postgres.Store
	proxy *testpeer.TCPProxy
	cn    *Node
	sched *scheduler.Scheduler
	stop  func()
}

// startNode starts a node on the database at dsn, reached through a proxy.
func startNode(t *testing.T, dsn, id string, maxTasks int, p *pushes) *testNode {
	t.Helper()
	return startNodeWith(t, dsn, id, maxTasks, p, nil)
}

// startNodeWith is startNode with the node's leases wrapped by wrap (to
// inject a fault), when not nil.
func startNodeWith(t *testing.T, dsn, id string, maxTasks int, p *pushes, wrap func(*Node) scheduler.Leases) *testNode {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testpeer.StartTCPProxy(t, u.Host)
	u.Host = proxy.Addr()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", id)
	}
	self := store.Node{ID: id, Regions: []string{"r"}, MaxTasks: maxTasks, Listen: "test"}
	cn := New(st, self, testTTL, log)
	if err := cn.Register(ctx); err != nil {
		t.Fatal(err)
	}
	n := &testNode{id: id, st: st, proxy: proxy, cn: cn}
	var leases scheduler.Leases = cn
	if wrap != nil {
		leases = wrap(cn)
	}
	n.sched = scheduler.New(scheduler.Options{
		Store: st, Regions: []string{"r"}, NodeID: id, MaxTasks: maxTasks, Leases: leases, Logger: log,
		Poll: 5 * time.Second, // the default: notifications and lease expiries drive it
		NewRunner: func(tk *task.Task, rep relay.Reporter, resume task.RunState) scheduler.Runner {
			rec := &push{node: id, start: time.Now(), resume: resume}
			p.mu.Lock()
			p.runs[tk.ID] = append(p.runs[tk.ID], rec)
			p.mu.Unlock()
			return &fakeRunner{t: tk, rep: rep, rec: rec, p: p, up: make(chan *task.Task, 16)}
		},
	})
	runCtx, stopRun := context.WithCancel(context.Background())
	relayCtx, stopRelay := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.sched.Run(runCtx) })
	wg.Go(func() { cn.Relay(relayCtx, st, n.sched) })
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			stopRun()
			stopRelay()
			wg.Wait()
			st.Close()
		})
	}
	t.Cleanup(n.stop)
	return n
}

// cluster is three nodes and an observer store of the test's own.
type cluster struct {
	dsn   string
	obs   *postgres.Store
	nodes []*testNode
	p     *pushes
}

// newCluster returns a cluster of nodes named node-a, node-b, ... on a new
// database; with 0, a database with its project and no node yet.
func newCluster(t *testing.T, nodes int) *cluster {
	t.Helper()
	dsn := testpeer.StartPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	obs, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { obs.Close() })
	if err := obs.PutProject(ctx, &store.Project{ID: "p", AccountID: "a", Region: "r"}); err != nil {
		t.Fatal(err)
	}
	c := &cluster{dsn: dsn, obs: obs, p: &pushes{runs: map[string][]*push{}}}
	for i := range nodes {
		c.nodes = append(c.nodes, startNode(t, dsn, fmt.Sprintf("node-%c", 'a'+i), 0, c.p))
	}
	return c
}

func (c *cluster) addTasks(t *testing.T, n int) []string {
	t.Helper()
	var ids []string
	now := time.Now()
	for i := range n {
		id := fmt.Sprintf("task%02d", i)
		tk := &task.Task{ID: id, ProjectID: "p", Region: "r", SourceType: task.PullVodPushLive,
			SourceURLs: []string{"http://media.example/a.mp4"}, Destination: "rtmp://dst.example/live/" + id,
			DestinationKey: "rtmp://dst.example:1935/live/" + id, StartTime: now.Add(-time.Second), EndTime: now.Add(time.Hour),
			Status: task.StatusEnable, VodLoopTime: -1, CallbackURL: "http://127.0.0.1:9/cb", CreateTime: now, Generation: 1}
		if err := c.obs.CreateTask(t.Context(), tk, store.CreateLimits{Now: now}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// perNode counts the tasks each node pushes now.
func (c *cluster) perNode(ids []string) map[string]int {
	out := map[string]int{}
	for _, id := range ids {
		if n := c.p.current(id); n != "" {
			out[n]++
		}
	}
	return out
}

func (c *cluster) waitAllRunning(t *testing.T, ids []string, timeout time.Duration) {
	t.Helper()
	testpeer.WaitFor(t, timeout, "every task pushed by a node", func() bool {
		for _, id := range ids {
			if c.p.current(id) == "" {
				return false
			}
		}
		return true
	})
}

// events returns "Name[reason]" of a task's stored events in seq order.
// eventsEndingWith polls a task's stored events until they end with want
// (events are written off the media path, a moment after what causes
// them) or a few seconds pass, and returns the last read.
func (c *cluster) eventsEndingWith(t *testing.T, id string, want []string) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs := c.events(t, id)
		if len(evs) >= len(want) && slices.Equal(evs[len(evs)-len(want):], want) || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) events(t *testing.T, id string) []string {
	t.Helper()
	var out []string
	rows, err := c.obsQuery(t, `SELECT type, convert_from(body, 'UTF8') FROM events WHERE task_id = $1 ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		var body struct {
			Final bool           `json:"final"`
			Data  map[string]any `json:"data"`
		}
		if err := json.Unmarshal([]byte(r[1]), &body); err != nil {
			t.Fatal(err)
		}
		name := r[0]
		if name == task.EventTaskExit {
			name += fmt.Sprintf("[%v final=%v]", body.Data["reason"], body.Final)
		}
		out = append(out, name)
	}
	return out
}

// obsQuery runs a query returning two text columns on a connection of the
// test's own.
func (c *cluster) obsQuery(t *testing.T, q string, args ...any) ([][2]string, error) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), c.dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) ([2]string, error) {
		var a, b string
		err := row.Scan(&a, &b)
		return [2]string{a, b}, err
	})
}

// Three nodes share twelve tasks evenly; each task runs on one node.
func TestTasksSpreadOverNodes(t *testing.T) {
	c := newCluster(t, 3)
	ids := c.addTasks(t, 12)
	c.waitAllRunning(t, ids, 15*time.Second)
	time.Sleep(500 * time.Millisecond) // a late double start would show now
	per := c.perNode(ids)
	t.Logf("tasks per node: %v", per)
	if len(per) != 3 {
		t.Fatalf("tasks per node %v: want every node to run some", per)
	}
	for n, k := range per {
		if k != 4 {
			t.Fatalf("tasks per node %v: want 4 each (%s has %d)", per, n, k)
		}
	}
	for _, id := range ids {
		if runs := c.p.all(id); len(runs) != 1 {
			t.Fatalf("task %s ran %d times: %+v", id, len(runs), runs)
		}
		rs, err := c.obs.GetRunState(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if rs.NodeID != c.p.current(id) || rs.State != task.StateRunning {
			t.Fatalf("task %s: stored state %s on node %q, pushed by %s", id, rs.State, rs.NodeID, c.p.current(id))
		}
	}
	nodes, err := c.obs.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.Load != 4 || n.HeartbeatAge > testTTL {
			t.Fatalf("node %s: load %d, heartbeat %v ago; want 4, fresh", n.ID, n.Load, n.HeartbeatAge)
		}
	}
}

// A node cut off from the database stops pushing before its leases can
// expire; the others take its tasks once they have, resume them from the
// stored position, and report the lost run's TaskExit before the new
// TaskStart. No task is ever pushed by two nodes at once.
func TestCutOffNodeStopsAndTasksMove(t *testing.T) {
	c := newCluster(t, 3)
	ids := c.addTasks(t, 9)
	c.waitAllRunning(t, ids, 15*time.Second)
	victim := c.nodes[2]
	var moved []string
	for _, id := range ids {
		if c.p.current(id) == victim.id {
			moved = append(moved, id)
		}
	}
	if len(moved) == 0 {
		t.Fatal("the victim runs no task")
	}
	time.Sleep(time.Second) // positions advance and are stored
	before := map[string]int64{}
	for _, id := range moved {
		rs, err := c.obs.GetRunState(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		before[id] = rs.CurrentOffsetMS
	}

	// The earliest the victim's leases can expire, read just before the cut
	// (a renewal in between only makes them last longer). Renewals run
	// late on a busy machine, so this, not the TTL, bounds the move.
	held, err := c.obs.Holdings(t.Context(), nil, moved)
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	earliest := testTTL
	for _, h := range held {
		if h.Owner != victim.id {
			t.Fatalf("task %s held by %q, want the victim", h.TaskID, h.Owner)
		}
		earliest = min(earliest, h.Remaining)
	}
	victim.proxy.Cut()
	testpeer.WaitFor(t, 3*testTTL, "the cut-off node's tasks pushed by the others", func() bool {
		for _, id := range moved {
			if n := c.p.current(id); n == "" || n == victim.id {
				return false
			}
		}
		return true
	})
	took := time.Since(cut)
	t.Logf("%d tasks moved %v after the cut (lease TTL %v, %v left at the cut)", len(moved), took, testTTL, earliest)
	if took < earliest-100*time.Millisecond {
		t.Fatalf("tasks moved %v after the cut, before the cut-off node's leases (%v left) could expire", took, earliest)
	}
	for _, id := range moved {
		runs := c.p.all(id)
		old := runs[0]
		if old.node != victim.id || old.stop.IsZero() {
			t.Fatalf("task %s: first run %+v", id, old)
		}
		if stopped := old.stop.Sub(cut); stopped > testTTL {
			t.Fatalf("task %s pushed %v after the cut, longer than a lease", id, stopped)
		}
		newRun := runs[len(runs)-1]
		if newRun.resume.CurrentOffsetMS < before[id] {
			t.Fatalf("task %s resumed at %d ms, before the %d ms stored before the cut", id, newRun.resume.CurrentOffsetMS, before[id])
		}
		want := []string{task.EventTaskStart, task.EventTaskExit + "[node_lost final=false]", task.EventTaskStart}
		evs := c.eventsEndingWith(t, id, want)
		if len(evs) < 3 || !slices.Equal(evs[len(evs)-3:], want) {
			t.Fatalf("task %s events %v: want them to end with %v", id, evs, want)
		}
	}
	c.p.checkNoOverlap(t, ids)
	// The others' tasks never moved.
	for _, id := range ids {
		if !slices.Contains(moved, id) && len(c.p.all(id)) != 1 {
			t.Fatalf("task %s of a healthy node ran %d times", id, len(c.p.all(id)))
		}
	}
}

// A node that shuts down hands its tasks over: the others run them within
// a second or so, long before its leases would have expired, and the
// callbacks say why (TaskExit shutdown, not node_lost).
func TestDrainHandsTasksOver(t *testing.T) {
	c := newCluster(t, 3)
	ids := c.addTasks(t, 9)
	c.waitAllRunning(t, ids, 15*time.Second)
	leaving := c.nodes[0]
	var moved []string
	for _, id := range ids {
		if c.p.current(id) == leaving.id {
			moved = append(moved, id)
		}
	}
	began := time.Now()
	leaving.stop()
	testpeer.WaitFor(t, 3*testTTL, "the drained node's tasks pushed by the others", func() bool {
		for _, id := range moved {
			if n := c.p.current(id); n == "" || n == leaving.id {
				return false
			}
		}
		return true
	})
	took := time.Since(began)
	t.Logf("%d tasks moved %v after the shutdown began (lease TTL %v)", len(moved), took, testTTL)
	if took >= testTTL {
		t.Fatalf("drained tasks moved after %v: as slow as a lease expiry (%v)", took, testTTL)
	}
	for _, id := range moved {
		want := []string{task.EventTaskStart, task.EventTaskExit + "[shutdown final=false]", task.EventTaskStart}
		evs := c.eventsEndingWith(t, id, want)
		if !slices.Equal(evs, want) {
			t.Fatalf("task %s events %v, want %v", id, evs, want)
		}
	}
	c.p.checkNoOverlap(t, ids)
	n, err := c.obs.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !n[0].Draining || n[0].Load != 0 {
		t.Fatalf("drained node row %+v: want draining, no leases", n[0])
	}
}

// A change written on one node reaches the node running the task at once:
// a modify is handed to its runner, a pause stops it, a delete too.
func TestWritesReachTheRunningNode(t *testing.T) {
	c := newCluster(t, 3)
	ids := c.addTasks(t, 3)
	c.waitAllRunning(t, ids, 15*time.Second)
	id := ids[0]
	runner := c.p.current(id)
	var other *testNode
	for _, n := range c.nodes {
		if n.id != runner {
			other = n
			break
		}
	}
	update := func(mut func(*task.Task)) time.Time {
		t.Helper()
		cur, err := other.st.GetTask(t.Context(), "p", id)
		if err != nil {
			t.Fatal(err)
		}
		mut(cur)
		cur.Generation++
		if err := other.st.UpdateTask(t.Context(), cur, time.Now()); err != nil {
			t.Fatal(err)
		}
		return time.Now()
	}
	at := update(func(tk *task.Task) { tk.EndTime = tk.EndTime.Add(time.Hour) })
	testpeer.WaitFor(t, 5*time.Second, "the modify handed to the runner", func() bool {
		runs := c.p.all(id)
		return runs[len(runs)-1].updates == 1
	})
	t.Logf("modify reached the runner on %s %v after it was written on %s", runner, time.Since(at), other.id)
	if d := time.Since(at); d > time.Second {
		t.Fatalf("modify took %v to reach the running node", d)
	}
	at = update(func(tk *task.Task) { tk.Status = task.StatusPause })
	testpeer.WaitFor(t, 5*time.Second, "pause stopped the runner", func() bool { return c.p.current(id) == "" })
	t.Logf("pause stopped the runner %v after it was written", time.Since(at))
	if d := time.Since(at); d > time.Second {
		t.Fatalf("pause took %v", d)
	}
	testpeer.WaitFor(t, 5*time.Second, "paused state stored", func() bool {
		rs, err := c.obs.GetRunState(t.Context(), id)
		return err == nil && rs.State == task.StatePaused && rs.NodeID == ""
	})
	update(func(tk *task.Task) { tk.Status = task.StatusEnable })
	testpeer.WaitFor(t, 5*time.Second, "enabled again", func() bool { return c.p.current(id) != "" })

	victim := ids[1]
	if err := other.st.DeleteTask(t.Context(), "p", victim); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	testpeer.WaitFor(t, 5*time.Second, "delete stopped the runner", func() bool { return c.p.current(victim) == "" })
	if d := time.Since(at); d > time.Second {
		t.Fatalf("delete took %v", d)
	}
	c.p.checkNoOverlap(t, ids)
}

// A node whose lease was taken (here by hand, in the database) learns it
// at its next write and stops pushing that task at once.
func TestStolenLeaseStopsTheTask(t *testing.T) {
	c := newCluster(t, 1)
	ids := c.addTasks(t, 1)
	c.waitAllRunning(t, ids, 15*time.Second)
	if _, err := c.obsQuery(t, `UPDATE run_states SET lease_owner = 'intruder', lease_token = lease_token + 1 WHERE task_id = $1 RETURNING task_id, lease_owner`, ids[0]); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	testpeer.WaitFor(t, 5*time.Second, "runner stopped", func() bool { return c.p.current(ids[0]) == "" })
	t.Logf("stopped %v after the lease was taken", time.Since(at))
	if d := time.Since(at); d > time.Second {
		t.Fatalf("took %v to stop", d)
	}
}

// blindRenewals says every renewal kept every lease: with it, only the
// fence on writes can tell the node its lease is gone.
type blindRenewals struct{ *Node }

func (b blindRenewals) Renew(ctx context.Context, leases []store.Lease) ([]store.Lease, error) {
	if _, err := b.Node.Renew(ctx, nil); err != nil {
		return nil, err
	}
	return leases, nil
}

// The fence alone stops a task: a write under a lease that was taken
// matches nothing, and the node stops pushing at once.
func TestFencedWriteStopsTheTask(t *testing.T) {
	c := newCluster(t, 0)
	c.nodes = append(c.nodes, startNodeWith(t, c.dsn, "node-a", 0, c.p, func(n *Node) scheduler.Leases { return blindRenewals{n} }))
	ids := c.addTasks(t, 1)
	c.waitAllRunning(t, ids, 15*time.Second)
	if _, err := c.obsQuery(t, `UPDATE run_states SET lease_token = lease_token + 1 WHERE task_id = $1 RETURNING task_id, lease_owner`, ids[0]); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	testpeer.WaitFor(t, 5*time.Second, "runner stopped by its fenced write", func() bool { return c.p.current(ids[0]) == "" })
	t.Logf("stopped %v after the token changed", time.Since(at))
}

// A node takes no more tasks than its capacity, even when alone.
func TestCapacity(t *testing.T) {
	c := newCluster(t, 0)
	c.nodes = append(c.nodes, startNode(t, c.dsn, "small", 2, c.p))
	ids := c.addTasks(t, 5)
	testpeer.WaitFor(t, 10*time.Second, "two tasks running", func() bool { return c.perNode(ids)["small"] == 2 })
	time.Sleep(2 * testTTL) // long enough for urgency to kick in, were it to ignore capacity
	if n := c.perNode(ids)["small"]; n != 2 {
		t.Fatalf("node of capacity 2 runs %d tasks", n)
	}
	c.nodes = append(c.nodes, startNode(t, c.dsn, "big", 0, c.p))
	c.waitAllRunning(t, ids, 15*time.Second)
	if per := c.perNode(ids); per["small"] != 2 || per["big"] != 3 {
		t.Fatalf("tasks per node %v", per)
	}
}

func TestShare(t *testing.T) {
	live := func(id string, load, capacity int, regions ...string) store.Node {
		return store.Node{ID: id, Load: load, MaxTasks: capacity, Regions: regions, HeartbeatAge: time.Second}
	}
	self := func(id string, capacity int, regions ...string) store.Node {
		return store.Node{ID: id, MaxTasks: capacity, Regions: regions}
	}
	dead := live("z", 0, 0)
	dead.HeartbeatAge = time.Hour
	draining := live("y", 0, 0)
	draining.Draining = true
	for _, tc := range []struct {
		name  string
		nodes []store.Node
		self  store.Node
		load  int
		free  int
		want  int
	}{
		{"alone", nil, self("a", 0), 0, 5, 5},
		{"three equal", []store.Node{live("b", 0, 0), live("c", 0, 0)}, self("a", 0), 0, 12, 4},
		{"ties go to the lowest ID", []store.Node{live("b", 0, 0), live("c", 0, 0)}, self("a", 0), 0, 1, 1},
		{"not mine on a tie", []store.Node{live("a", 0, 0), live("c", 0, 0)}, self("b", 0), 0, 1, 0},
		{"least loaded first", []store.Node{live("b", 4, 0), live("c", 4, 0)}, self("a", 0), 2, 4, 3},
		{"the others are fuller", []store.Node{live("b", 6, 0)}, self("a", 0), 0, 4, 4},
		{"my capacity", []store.Node{live("b", 0, 0)}, self("a", 3), 0, 10, 3},
		{"their capacity", []store.Node{live("b", 0, 1)}, self("a", 0), 0, 10, 9},
		{"dead and draining nodes take nothing", []store.Node{dead, draining}, self("a", 0), 0, 3, 3},
		{"nodes of other regions take nothing", []store.Node{live("b", 0, 0, "elsewhere")}, self("c", 0, "r"), 0, 2, 2},
		{"nodes of every region share", []store.Node{live("b", 0, 0)}, self("c", 0), 0, 2, 1},
		{"full", []store.Node{live("b", 0, 1)}, self("a", 1), 1, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := share(tc.nodes, tc.self, tc.load, testTTL, "r", tc.free); got != tc.want {
				t.Fatalf("share = %d, want %d", got, tc.want)
			}
		})
	}
}
