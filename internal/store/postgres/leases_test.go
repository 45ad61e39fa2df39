//go:build unix

package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

const testTTL = time.Minute

// leaseFixture is two nodes on one database with tasks t0..t(n-1) of
// project p0 in region "r".
func leaseFixture(t testing.TB, tasks int) [2]*Store {
	t.Helper()
	nodes := twoStores(t, 1)
	for i, id := range []string{"node-a", "node-b"} {
		if err := nodes[i].RegisterNode(t.Context(), store.Node{ID: id, Regions: []string{"r"}, MaxTasks: 10, Listen: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range tasks {
		id := fmt.Sprintf("t%d", i)
		if err := nodes[0].CreateTask(t.Context(), clusterTask("p0", id, "rtmp://d.example/live/"+id), store.CreateLimits{Now: clusterNow}); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

func taskIDs(n int) []string {
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("t%d", i))
	}
	return ids
}

func holding(t *testing.T, s *Store, id string) store.Holding {
	t.Helper()
	hs, err := s.Holdings(t.Context(), nil, []string{id})
	if err != nil || len(hs) != 1 {
		t.Fatalf("Holdings(%s) = %v, %v", id, hs, err)
	}
	return hs[0]
}

// Many claimers on two nodes race for the same tasks: every task goes to
// exactly one of them, nobody waits for another's lock, and the tokens
// count one claim each.
func TestClaimTasksOneOwnerEach(t *testing.T) {
	const tasks, claimers = 40, 16
	nodes := leaseFixture(t, tasks)
	ids := taskIDs(tasks)
	var (
		mu    sync.Mutex
		owner = map[string]string{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for c := range claimers {
		wg.Go(func() {
			node := []string{"node-a", "node-b"}[c%2]
			<-start
			for range 4 {
				grants, err := nodes[c%2].ClaimTasks(t.Context(), node, ids, 3, testTTL)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, g := range grants {
					if prev, dup := owner[g.Lease.TaskID]; dup {
						t.Errorf("task %s claimed twice (%s, then %s)", g.Lease.TaskID, prev, node)
					}
					owner[g.Lease.TaskID] = node
					if g.Lease.Token != 1 || g.Lease.NodeID != node || g.State.State != task.StateWaiting {
						t.Errorf("grant %+v: want token 1, node %s, the stored waiting state", g, node)
					}
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(owner) != tasks {
		t.Fatalf("%d of %d tasks claimed (16 claimers x 4 rounds x 3 each can take all)", len(owner), tasks)
	}
	for id, node := range owner {
		if h := holding(t, nodes[0], id); h.Owner != node || h.Free || h.Remaining < testTTL-10*time.Second {
			t.Fatalf("holding of %s: %+v, want held by %s for about %v", id, h, node, testTTL)
		}
	}
	// Nothing is left to claim.
	if g, err := nodes[1].ClaimTasks(t.Context(), "node-b", ids, tasks, testTTL); err != nil || len(g) != 0 {
		t.Fatalf("claim after all were taken: %v, %v", g, err)
	}
}

// Claims come back in the order asked, and take at most limit.
func TestClaimTasksOrderAndLimit(t *testing.T) {
	nodes := leaseFixture(t, 5)
	grants, err := nodes[0].ClaimTasks(t.Context(), "node-a", []string{"t3", "t1", "t4", "t0"}, 3, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range grants {
		got = append(got, g.Lease.TaskID)
	}
	if !slices.Equal(got, []string{"t3", "t1", "t4"}) {
		t.Fatalf("claimed %v, want [t3 t1 t4]", got)
	}
}

// A lease that expired is claimed by another node with a new token; from
// then on every write of the first node under its old token matches
// nothing (ErrLeaseLost, nothing written, no event appended), and it can
// neither renew nor release the lease.
func TestFencedWritesAfterTakeover(t *testing.T) {
	nodes := leaseFixture(t, 1)
	ctx := t.Context()
	a, b := nodes[0], nodes[1]
	ga, err := a.ClaimTasks(ctx, "node-a", []string{"t0"}, 1, 50*time.Millisecond)
	if err != nil || len(ga) != 1 {
		t.Fatalf("claim by a: %v, %v", ga, err)
	}
	la := ga[0].Lease
	running := &task.RunState{TaskID: "t0", State: task.StateRunning, NodeID: "node-a", CurrentIndex: 2, CurrentOffsetMS: 4200}
	if err := a.PutRunStateLeased(ctx, la, false, running, eventFor("t0", "e1")); err != nil {
		t.Fatalf("write under a live lease: %v", err)
	}
	// Held: b cannot claim it.
	if g, err := b.ClaimTasks(ctx, "node-b", []string{"t0"}, 1, testTTL); err != nil || len(g) != 0 {
		t.Fatalf("claim of a held lease: %v, %v", g, err)
	}
	time.Sleep(100 * time.Millisecond) // a's lease expires
	if h := holding(t, b, "t0"); !h.Free || h.Owner != "node-a" {
		t.Fatalf("holding after expiry: %+v, want free, last held by node-a", h)
	}
	gb, err := b.ClaimTasks(ctx, "node-b", []string{"t0"}, 1, testTTL)
	if err != nil || len(gb) != 1 {
		t.Fatalf("claim by b after expiry: %v, %v", gb, err)
	}
	lb := gb[0].Lease
	if lb.Token != la.Token+1 {
		t.Fatalf("token after takeover %d, want %d", lb.Token, la.Token+1)
	}
	// b resumes from what a wrote last.
	checkFields(t, "state handed to b", gb[0].State, *running)

	stale := &task.RunState{TaskID: "t0", State: task.StateRecovering, NodeID: "node-a", CurrentIndex: 9}
	err = a.PutRunStateLeased(ctx, la, false, stale, eventFor("t0", "e2"))
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("write under the old token: %v, want ErrLeaseLost", err)
	}
	if err := a.PutRunStateLeased(ctx, la, true, stale); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("write and release under the old token: %v, want ErrLeaseLost", err)
	}
	if kept, err := a.RenewLeases(ctx, "node-a", []store.Lease{la}, testTTL); err != nil || len(kept) != 0 {
		t.Fatalf("renew of a lost lease: %v, %v; want nothing kept", kept, err)
	}
	if err := a.ReleaseLeases(ctx, []store.Lease{la}); err != nil {
		t.Fatal(err)
	}
	if h := holding(t, a, "t0"); h.Owner != "node-b" || h.Free {
		t.Fatalf("holding after the old owner's writes: %+v, want still node-b's", h)
	}
	rs, err := a.GetRunState(ctx, "t0")
	if err != nil {
		t.Fatal(err)
	}
	checkFields(t, "run state after fenced writes", *rs, *running)
	var events int
	if err := a.pool.QueryRow(ctx, `SELECT COUNT(*) FROM events WHERE task_id = 't0'`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	if events != 1 {
		t.Fatalf("%d events stored, want 1 (the fenced write's event dropped)", events)
	}

	// The new owner writes and releases; the task is free, the state kept.
	paused := &task.RunState{TaskID: "t0", State: task.StatePaused, ExitReason: task.ExitPaused}
	if err := b.PutRunStateLeased(ctx, lb, true, paused, eventFor("t0", "e3")); err != nil {
		t.Fatal(err)
	}
	if h := holding(t, a, "t0"); !h.Free || h.Owner != "" || h.State.State != task.StatePaused {
		t.Fatalf("holding after release: %+v", h)
	}
	if err := b.PutRunStateLeased(ctx, lb, false, paused); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("write after release: %v, want ErrLeaseLost", err)
	}
}

// The token, not the owner, fences: a node that claims a task again (after
// a restart under the same node ID, or after losing the lease) makes its
// own earlier lease worthless.
func TestFencedBySameNodesNewerClaim(t *testing.T) {
	nodes := leaseFixture(t, 1)
	ctx := t.Context()
	old, err := nodes[0].ClaimTasks(ctx, "node-a", []string{"t0"}, 1, time.Millisecond)
	if err != nil || len(old) != 1 {
		t.Fatal(old, err)
	}
	time.Sleep(20 * time.Millisecond)
	cur, err := nodes[1].ClaimTasks(ctx, "node-a", []string{"t0"}, 1, testTTL)
	if err != nil || len(cur) != 1 {
		t.Fatal(cur, err)
	}
	rs := &task.RunState{TaskID: "t0", State: task.StateRunning}
	if err := nodes[0].PutRunStateLeased(ctx, old[0].Lease, false, rs); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("write under the node's earlier token: %v, want ErrLeaseLost", err)
	}
	if kept, err := nodes[0].RenewLeases(ctx, "node-a", []store.Lease{old[0].Lease}, testTTL); err != nil || len(kept) != 0 {
		t.Fatalf("renew under the earlier token: %v, %v", kept, err)
	}
	if err := nodes[0].ReleaseLeases(ctx, []store.Lease{old[0].Lease}); err != nil {
		t.Fatal(err)
	}
	if h := holding(t, nodes[0], "t0"); h.Free {
		t.Fatalf("released by the earlier token: %+v", h)
	}
	if err := nodes[1].PutRunStateLeased(ctx, cur[0].Lease, false, rs); err != nil {
		t.Fatalf("write under the current token: %v", err)
	}
}

// A write under a lease of a deleted task is ErrLeaseLost: the writer
// stops, as for a lease taken over.
func TestFencedWriteOfDeletedTask(t *testing.T) {
	nodes := leaseFixture(t, 1)
	g, err := nodes[0].ClaimTasks(t.Context(), "node-a", []string{"t0"}, 1, testTTL)
	if err != nil || len(g) != 1 {
		t.Fatal(g, err)
	}
	if err := nodes[1].DeleteTask(t.Context(), "p0", "t0"); err != nil {
		t.Fatal(err)
	}
	err = nodes[0].PutRunStateLeased(t.Context(), g[0].Lease, false, &task.RunState{TaskID: "t0", State: task.StateRunning})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("write of a deleted task: %v, want ErrLeaseLost", err)
	}
}

// Several writes in one transaction are fenced one by one: a write whose
// lease is another node's fails alone (nothing of it stored, its event
// dropped), the others are stored with their events and releases.
func TestPutRunStatesLeasedFencesEachWrite(t *testing.T) {
	nodes := leaseFixture(t, 3)
	ctx := t.Context()
	a, b := nodes[0], nodes[1]
	ga, err := a.ClaimTasks(ctx, "node-a", []string{"t0", "t1"}, 2, testTTL)
	if err != nil || len(ga) != 2 {
		t.Fatalf("claim by a: %v, %v", ga, err)
	}
	gb, err := b.ClaimTasks(ctx, "node-b", []string{"t2"}, 1, testTTL)
	if err != nil || len(gb) != 1 {
		t.Fatalf("claim by b: %v, %v", gb, err)
	}
	atB := &task.RunState{TaskID: "t2", State: task.StateRunning, NodeID: "node-b", FramesOut: 7}
	if err := b.PutRunStateLeased(ctx, gb[0].Lease, false, atB); err != nil {
		t.Fatal(err)
	}
	running := &task.RunState{TaskID: "t0", State: task.StateRunning, NodeID: "node-a", FramesOut: 100}
	paused := &task.RunState{TaskID: "t1", State: task.StatePaused, ExitReason: task.ExitPaused}
	notA := store.Lease{TaskID: "t2", NodeID: "node-a", Token: gb[0].Lease.Token}
	errs, err := a.PutRunStatesLeased(ctx, []store.LeasedWrite{
		{Lease: ga[0].Lease, State: running, Events: []*store.Event{eventFor("t0", "e1")}},
		{Lease: ga[1].Lease, Release: true, State: paused},
		{Lease: notA, State: &task.RunState{TaskID: "t2", State: task.StateRecovering, NodeID: "node-a"}, Events: []*store.Event{eventFor("t2", "e2")}},
	})
	if err != nil || len(errs) != 3 {
		t.Fatalf("PutRunStatesLeased: %v, %v", errs, err)
	}
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], store.ErrLeaseLost) {
		t.Fatalf("errs %v, want nil, nil, ErrLeaseLost", errs)
	}
	for id, want := range map[string]*task.RunState{"t0": running, "t1": paused, "t2": atB} {
		rs, err := a.GetRunState(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		checkFields(t, "run state of "+id, *rs, *want)
	}
	if h := holding(t, a, "t1"); !h.Free {
		t.Fatalf("t1 after its write with release: %+v, want free", h)
	}
	if h := holding(t, a, "t2"); h.Owner != "node-b" || h.Free {
		t.Fatalf("t2 after a's fenced write: %+v, want still node-b's", h)
	}
	rows, err := a.pool.Query(ctx, `SELECT id FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !slices.Equal(ids, []string{"e1"}) {
		t.Fatalf("events stored: %v (%v), want [e1]", ids, err)
	}
}

func eventFor(taskID, id string) *store.Event {
	return &store.Event{ID: id, TaskID: taskID, ProjectID: "p0", Name: task.EventTaskAlarm, Time: clusterNow,
		CallbackURL: "http://cb.example/", Payload: []byte(`{}`)}
}

// Renewal extends only unexpired leases held with the same token, records
// the heartbeat, and fails for a node that never registered.
func TestRenewLeases(t *testing.T) {
	nodes := leaseFixture(t, 3)
	ctx := t.Context()
	a := nodes[0]
	g, err := a.ClaimTasks(ctx, "node-a", []string{"t0", "t1"}, 2, 2*time.Second)
	if err != nil || len(g) != 2 {
		t.Fatal(g, err)
	}
	short, err := a.ClaimTasks(ctx, "node-a", []string{"t2"}, 1, time.Millisecond)
	if err != nil || len(short) != 1 {
		t.Fatal(short, err)
	}
	time.Sleep(20 * time.Millisecond) // t2's lease expires
	before := nodeRow(t, a, "node-a")
	held := []store.Lease{g[0].Lease, g[1].Lease, short[0].Lease, {TaskID: "t1", NodeID: "node-a", Token: 99}}
	kept, err := a.RenewLeases(ctx, "node-a", held, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(kept, func(x, y store.Lease) int { return cmpString(x.TaskID, y.TaskID) })
	if want := []store.Lease{g[0].Lease, g[1].Lease}; !slices.Equal(kept, want) {
		t.Fatalf("kept %v, want %v (t2 expired, token 99 is not t1's)", kept, want)
	}
	if h := holding(t, a, "t0"); h.Remaining < testTTL-10*time.Second {
		t.Fatalf("t0 remaining %v after renewal for %v", h.Remaining, testTTL)
	}
	if h := holding(t, a, "t2"); !h.Free {
		t.Fatalf("expired t2 renewed: %+v", h)
	}
	if after := nodeRow(t, a, "node-a"); !after.HeartbeatAt.After(before.HeartbeatAt) {
		t.Fatalf("heartbeat %v not after %v", after.HeartbeatAt, before.HeartbeatAt)
	}
	if after := nodeRow(t, a, "node-a"); after.Load != 2 {
		t.Fatalf("load %d, want 2 unexpired leases", after.Load)
	}
	if _, err := a.RenewLeases(ctx, "node-z", nil, testTTL); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("renew of an unregistered node: %v, want ErrNotFound", err)
	}
}

// checkFields compares run states without time fields, which these tests
// leave zero.
func checkFields(t *testing.T, what string, got, want task.RunState) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func nodeRow(t *testing.T, s *Store, id string) store.Node {
	t.Helper()
	nodes, err := s.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("node %s not in %v", id, nodes)
	return store.Node{}
}

// Nodes lists every registered node with its settings, heartbeat age and
// load; registering again replaces the row and ends draining.
func TestNodes(t *testing.T) {
	nodes := leaseFixture(t, 2)
	ctx := t.Context()
	if _, err := nodes[1].ClaimTasks(ctx, "node-b", []string{"t0", "t1"}, 2, testTTL); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].SetDraining(ctx, "node-a"); err != nil {
		t.Fatal(err)
	}
	list, err := nodes[0].Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "node-a" || list[1].ID != "node-b" {
		t.Fatalf("nodes %+v", list)
	}
	a, b := list[0], list[1]
	if !a.Draining || a.Load != 0 || b.Draining || b.Load != 2 || !slices.Equal(b.Regions, []string{"r"}) ||
		b.MaxTasks != 10 || b.Listen != "127.0.0.1:1" || b.StartedAt.IsZero() || b.HeartbeatAge < 0 || b.HeartbeatAge > 5*time.Second {
		t.Fatalf("nodes %+v", list)
	}
	if err := nodes[0].RegisterNode(ctx, store.Node{ID: "node-a", Regions: []string{"r", "s"}, MaxTasks: 3}); err != nil {
		t.Fatal(err)
	}
	if a := nodeRow(t, nodes[0], "node-a"); a.Draining || a.MaxTasks != 3 || !slices.Equal(a.Regions, []string{"r", "s"}) {
		t.Fatalf("node-a after registering again: %+v", a)
	}
	if err := nodes[0].SetDraining(ctx, "node-z"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetDraining of an unknown node: %v", err)
	}
}

// Holdings filters by region and by task, and says who holds what.
func TestHoldings(t *testing.T) {
	nodes := leaseFixture(t, 2)
	ctx := t.Context()
	other := clusterTask("p0", "elsewhere", "rtmp://d.example/live/elsewhere")
	other.Region = "s"
	if err := nodes[0].CreateTask(ctx, other, store.CreateLimits{Now: clusterNow}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].ClaimTasks(ctx, "node-a", []string{"t1"}, 1, testTTL); err != nil {
		t.Fatal(err)
	}
	hs, err := nodes[1].Holdings(ctx, []string{"r"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs[0].TaskID != "t0" || !hs[0].Free || hs[0].Owner != "" || hs[0].Remaining != 0 ||
		hs[1].TaskID != "t1" || hs[1].Free || hs[1].Owner != "node-a" || hs[1].Remaining <= 0 {
		t.Fatalf("holdings of region r: %+v", hs)
	}
	all, err := nodes[1].Holdings(ctx, nil, nil)
	if err != nil || len(all) != 3 {
		t.Fatalf("holdings of every region: %v, %v", all, err)
	}
	none, err := nodes[1].Holdings(ctx, nil, []string{})
	if err != nil || len(none) != 0 {
		t.Fatalf("holdings of no task: %v, %v", none, err)
	}
}

// Creates, updates, deletes and releases announce themselves to every
// listener, the writing node's included.
func TestListenChanges(t *testing.T) {
	nodes := leaseFixture(t, 0)
	ctx := t.Context()
	got := make(chan store.Change, 16)
	ready := make(chan struct{})
	done := make(chan error, 1)
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		done <- nodes[1].ListenChanges(lctx, func() { close(ready) }, func(c store.Change) { got <- c })
	}()
	<-ready
	next := func(what string) store.Change {
		t.Helper()
		select {
		case c := <-got:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("no change announced after %s", what)
		}
		return store.Change{}
	}

	tk := clusterTask("p0", "n1", "rtmp://d.example/live/n1")
	if err := nodes[0].CreateTask(ctx, tk, store.CreateLimits{Now: clusterNow}); err != nil {
		t.Fatal(err)
	}
	if c := next("create"); c != (store.Change{ProjectID: "p0", TaskID: "n1"}) {
		t.Fatalf("create announced %+v", c)
	}
	tk.Generation = 2
	tk.Status = task.StatusPause
	if err := nodes[1].UpdateTask(ctx, tk, clusterNow); err != nil {
		t.Fatal(err)
	}
	if c := next("update"); c != (store.Change{ProjectID: "p0", TaskID: "n1"}) {
		t.Fatalf("update announced %+v", c)
	}
	g, err := nodes[0].ClaimTasks(ctx, "node-a", []string{"n1"}, 1, testTTL)
	if err != nil || len(g) != 1 {
		t.Fatal(g, err)
	}
	if err := nodes[0].ReleaseLeases(ctx, []store.Lease{g[0].Lease}); err != nil {
		t.Fatal(err)
	}
	if c := next("release"); !c.Released {
		t.Fatalf("release announced %+v", c)
	}
	if err := nodes[0].DeleteTask(ctx, "p0", "n1"); err != nil {
		t.Fatal(err)
	}
	if c := next("delete"); c != (store.Change{ProjectID: "p0", TaskID: "n1"}) {
		t.Fatalf("delete announced %+v", c)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("ListenChanges returned nil after its context ended, want the reason")
	}
}

// Deliverers on two nodes claim the outbox: an event goes to one of them at
// a time, a task's next event waits while its previous one is claimed, and
// the outcome is recorded only under the current claim.
func TestClaimDueEvents(t *testing.T) {
	nodes := leaseFixture(t, 2)
	ctx := t.Context()
	a, b := nodes[0], nodes[1]
	at := clusterNow
	ev := func(taskID, id string) *store.Event {
		e := eventFor(taskID, id)
		e.Time = at
		return e
	}
	if err := a.PutRunState(ctx, &task.RunState{TaskID: "t0", State: task.StateRunning}, ev("t0", "e1"), ev("t0", "e2")); err != nil {
		t.Fatal(err)
	}
	if err := a.PutRunState(ctx, &task.RunState{TaskID: "t1", State: task.StateRunning}, ev("t1", "f1")); err != nil {
		t.Fatal(err)
	}
	ids := func(evs []store.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.ID)
		}
		slices.Sort(out)
		return out
	}
	claimed, err := a.ClaimDueEvents(ctx, store.EventClaim{NodeID: "node-a", Now: at, Limit: 10, Retries: false, TTL: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(claimed); !slices.Equal(got, []string{"e1", "f1"}) {
		t.Fatalf("node a claimed %v, want the heads e1 and f1", got)
	}
	if other, err := b.ClaimDueEvents(ctx, store.EventClaim{NodeID: "node-b", Now: at, Limit: 10, Retries: false, TTL: testTTL}); err != nil || len(other) != 0 {
		t.Fatalf("node b claimed %v (%v) while node a holds them", ids(other), err)
	}
	var e1, f1 store.Event
	for _, e := range claimed {
		switch e.ID {
		case "e1":
			e1 = e
		case "f1":
			f1 = e
		}
	}
	if e1.ClaimToken != 1 || e1.Seq != 1 || string(e1.Payload) != "{}" {
		t.Fatalf("claimed e1 = %+v", e1)
	}
	time.Sleep(60 * time.Millisecond) // both claims expire
	// b takes f1 over; a's outcome for it no longer counts.
	again, err := b.ClaimDueEvents(ctx, store.EventClaim{NodeID: "node-b", Now: at, Limit: 10, Retries: false, TTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(again); !slices.Equal(got, []string{"e1", "f1"}) {
		t.Fatalf("node b claimed %v after expiry, want e1 and f1", got)
	}
	if err := a.MarkDeliveredClaimed(ctx, "e1", e1.ClaimToken, at); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("mark under an expired, retaken claim: %v, want ErrLeaseLost", err)
	}
	if err := a.MarkFailedClaimed(ctx, "f1", f1.ClaimToken, 1, at, "x", false); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("mark failed under an expired, retaken claim: %v, want ErrLeaseLost", err)
	}
	for _, e := range again {
		switch e.ID {
		case "e1":
			if err := b.MarkDeliveredClaimed(ctx, "e1", e.ClaimToken, at); err != nil {
				t.Fatal(err)
			}
		case "f1":
			if err := b.MarkFailedClaimed(ctx, "f1", e.ClaimToken, 1, at, "receiver answered 500", false); err != nil {
				t.Fatal(err)
			}
		}
	}
	// e2 is the head of t0 now; f1 waits among the retries.
	// A claim given back without an outcome makes the event due at once.
	held, err := b.ClaimDueEvents(ctx, store.EventClaim{NodeID: "node-b", Now: at, Limit: 10, TTL: testTTL})
	if err != nil || !slices.Equal(ids(held), []string{"e2"}) {
		t.Fatalf("claim of e2: %v, %v", ids(held), err)
	}
	if err := b.ReleaseEventClaim(ctx, "e2", held[0].ClaimToken-1); err != nil {
		t.Fatal(err)
	}
	if again, _ := a.ClaimDueEvents(ctx, store.EventClaim{NodeID: "node-a", Now: at, Limit: 10, TTL: testTTL}); len(again) != 0 {
		t.Fatalf("a release under an old token freed %v", ids(again))
	}
	if err := b.ReleaseEventClaim(ctx, "e2", held[0].ClaimToken); err != nil {
		t.Fatal(err)
	}
	if skipped, err := a.ClaimDueEvents(ctx, store.EventClaim{NodeID: "node-a", Now: at, Limit: 10, SkipTasks: []string{"t0"}, TTL: testTTL}); err != nil || len(skipped) != 0 {
		t.Fatalf("claim skipping t0: %v, %v; want nothing", ids(skipped), err)
	}
	fresh, err := a.ClaimDueEvents(ctx, store.EventClaim{NodeID: "node-a", Now: at, Limit: 10, Retries: false, TTL: testTTL})
	if err != nil || !slices.Equal(ids(fresh), []string{"e2"}) {
		t.Fatalf("fresh events after e1's delivery: %v, %v; want e2", ids(fresh), err)
	}
	retries, err := a.ClaimDueEvents(ctx, store.EventClaim{NodeID: "node-a", Now: at, Limit: 10, Retries: true, TTL: testTTL})
	if err != nil || !slices.Equal(ids(retries), []string{"f1"}) || retries[0].Attempts != 1 || retries[0].LastError != "receiver answered 500" {
		t.Fatalf("retries: %+v, %v; want f1 tried once", retries, err)
	}
	backlog, err := a.EventBacklog(ctx, []string{"t0", "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if backlog["t0"].Pending != 1 || backlog["t1"].Pending != 1 {
		t.Fatalf("backlog %+v", backlog)
	}
}

// Many deliverers race for one outbox: every event is claimed once.
func TestClaimDueEventsRace(t *testing.T) {
	const tasks, claimers = 30, 12
	nodes := leaseFixture(t, tasks)
	ctx := t.Context()
	for i := range tasks {
		id := fmt.Sprintf("t%d", i)
		if err := nodes[0].PutRunState(ctx, &task.RunState{TaskID: id, State: task.StateRunning}, eventFor(id, "ev-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu    sync.Mutex
		seen  = map[string]int{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for c := range claimers {
		wg.Go(func() {
			<-start
			for range 3 {
				evs, err := nodes[c%2].ClaimDueEvents(ctx, store.EventClaim{NodeID: fmt.Sprintf("node-%d", c), Now: clusterNow, Limit: 2, TTL: testTTL})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, e := range evs {
					seen[e.ID]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s claimed %d times", id, n)
		}
	}
	if len(seen) != tasks {
		t.Fatalf("%d of %d events claimed", len(seen), tasks)
	}
}
