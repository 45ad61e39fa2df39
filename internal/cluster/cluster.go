// Package cluster makes a node one of several that share a PostgreSQL store
// (store.Cluster): it registers the node, implements the scheduler's Leases
// on the store's leases (with claims that spread the load), and relays the
// store's change notifications, so that a write on any node reaches the node
// that runs the task at once.
//
// PostgreSQL does the coordinating (row locks, SKIP LOCKED, its clock,
// NOTIFY); there is no consensus of our own. What each node decides alone it
// decides from the same rows, the same way.
package cluster

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/liverelay/liverelay/internal/backoff"
	"github.com/liverelay/liverelay/internal/scheduler"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// DefaultTTL is the lease time of tasks when none is configured.
const DefaultTTL = 10 * time.Second

// Node is one node of a cluster.
type Node struct {
	st   store.Cluster
	self store.Node
	ttl  time.Duration
	log  *slog.Logger
}

var _ scheduler.Leases = (*Node)(nil)

// New returns the node self (its ID, regions, capacity and listen address)
// on st, with leases of ttl (DefaultTTL when 0). Register it before use.
func New(st store.Cluster, self store.Node, ttl time.Duration, log *slog.Logger) *Node {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if log == nil {
		log = slog.Default()
	}
	return &Node{st: st, self: self, ttl: ttl, log: log}
}

// Register writes the node's row (heartbeat now); nodes the others see
// alive share the claims.
func (n *Node) Register(ctx context.Context) error { return n.st.RegisterNode(ctx, n.self) }

// TTL implements scheduler.Leases.
func (n *Node) TTL() time.Duration { return n.ttl }

// Survey implements scheduler.Leases.
func (n *Node) Survey(ctx context.Context, regions, ids []string) ([]store.Holding, error) {
	return n.st.Holdings(ctx, regions, ids)
}

// Write implements scheduler.Leases.
func (n *Node) Write(ctx context.Context, writes []store.LeasedWrite) ([]error, error) {
	return n.st.PutRunStatesLeased(ctx, writes)
}

// Drain implements scheduler.Leases.
func (n *Node) Drain(ctx context.Context) error { return n.st.SetDraining(ctx, n.self.ID) }

// Renew implements scheduler.Leases. A node whose row has gone (removed
// by an operator, or pruned after a long absence) registers again.
func (n *Node) Renew(ctx context.Context, leases []store.Lease) ([]store.Lease, error) {
	kept, err := n.st.RenewLeases(ctx, n.self.ID, leases, n.ttl)
	if errors.Is(err, store.ErrNotFound) {
		n.log.Warn("node row missing: registering again", "node_id", n.self.ID)
		if err := n.Register(ctx); err != nil {
			return nil, err
		}
		kept, err = n.st.RenewLeases(ctx, n.self.ID, leases, n.ttl)
	}
	return kept, err
}

// Claim implements scheduler.Leases. For tasks to run, each region's free
// tasks are shared among the live nodes serving it (see share); this node
// claims its part, within its capacity, and every urgent task it has room
// for.
func (n *Node) Claim(ctx context.Context, cands []scheduler.Candidate, run bool) ([]store.Grant, error) {
	if !run {
		ids := make([]string, len(cands))
		for i, c := range cands {
			ids[i] = c.Task.ID
		}
		return n.st.ClaimTasks(ctx, n.self.ID, ids, len(ids), n.ttl)
	}
	nodes, err := n.st.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	load := 0
	for _, nd := range nodes {
		if nd.ID == n.self.ID {
			load = nd.Load
		}
	}
	var regions []string
	byRegion := map[string][]scheduler.Candidate{}
	for _, c := range cands {
		if _, ok := byRegion[c.Task.Region]; !ok {
			regions = append(regions, c.Task.Region)
		}
		byRegion[c.Task.Region] = append(byRegion[c.Task.Region], c)
	}
	var grants []store.Grant
	for _, region := range regions {
		var urgent, normal []string
		for _, c := range byRegion[region] {
			if c.Urgent {
				urgent = append(urgent, c.Task.ID)
			} else {
				normal = append(normal, c.Task.ID)
			}
		}
		// Urgent tasks waited a whole TTL for their fair claimer: take
		// them if there is room. Then this node's share of the others.
		limit := min(room(n.self.MaxTasks, load), len(urgent))
		got, err := n.st.ClaimTasks(ctx, n.self.ID, urgent, limit, n.ttl)
		if err != nil {
			return grants, err
		}
		grants, load = append(grants, got...), load+len(got)
		limit = min(room(n.self.MaxTasks, load), share(nodes, n.self, load, n.ttl, region, len(normal)))
		got, err = n.st.ClaimTasks(ctx, n.self.ID, normal, limit, n.ttl)
		if err != nil {
			return grants, err
		}
		grants, load = append(grants, got...), load+len(got)
	}
	return grants, nil
}

// room is how many more tasks a node of capacity capacity (0: no limit)
// with load tasks may take.
func room(capacity, load int) int {
	if capacity <= 0 {
		return 1 << 30
	}
	return max(capacity-load, 0)
}

// share returns how many of free, the free tasks of region, this node
// (self, holding load leases) should claim. The tasks go one by one to the
// least-loaded live node serving the region that has room, ties to the
// lowest ID; every node computes it alike from the same rows, so between
// them they take each task once, and the least-loaded first. A node is live
// when it is not draining and its heartbeat is younger than a lease.
func share(nodes []store.Node, self store.Node, load int, ttl time.Duration, region string, free int) int {
	type part struct {
		id             string
		load, capacity int
	}
	parts := []part{{id: self.ID, load: load, capacity: self.MaxTasks}}
	for _, nd := range nodes {
		if nd.ID == self.ID || nd.Draining || nd.HeartbeatAge >= ttl {
			continue
		}
		if len(nd.Regions) > 0 && !slices.Contains(nd.Regions, region) {
			continue
		}
		parts = append(parts, part{id: nd.ID, load: nd.Load, capacity: nd.MaxTasks})
	}
	mine := 0
	for range free {
		best := -1
		for i, p := range parts {
			if room(p.capacity, p.load) == 0 {
				continue
			}
			if best < 0 || p.load < parts[best].load || p.load == parts[best].load && p.id < parts[best].id {
				best = i
			}
		}
		if best < 0 {
			break // every node is full
		}
		parts[best].load++
		if parts[best].id == self.ID {
			mine++
		}
	}
	return mine
}

// listen relays the store's change notifications to fn until ctx is done,
// connecting again (with backoff) whenever the connection fails. After each
// (re)connection it calls fn with a Released change, as announcements made
// while nobody listened are lost: the receiver then looks at everything.
func (n *Node) listen(ctx context.Context, fn func(store.Change)) {
	b := backoff.New(200*time.Millisecond, 5*time.Second)
	var lastLog time.Time
	for {
		err := n.st.ListenChanges(ctx, func() {
			b.Reset()
			fn(store.Change{Released: true})
		}, fn)
		if ctx.Err() != nil {
			return
		}
		if time.Since(lastLog) >= n.ttl {
			n.log.Warn("change notifications interrupted; polling until they are back", "err", err)
			lastLog = time.Now()
		}
		if b.Wait(ctx) != nil {
			return
		}
	}
}

// Reconciler is what change notifications drive: the scheduler.
type Reconciler interface {
	// Changed reconciles one task: t is its definition now, nil when gone.
	Changed(id string, t *task.Task)
	// Wake asks for a reconcile of every task.
	Wake()
}

// Relay hands the store's change notifications to r until ctx is done: a
// task written by any node is read again and reconciled alone; released
// leases (or a reconnection, after which nothing missed is known) wake a
// full reconcile. With notifications down, r's own polling still catches
// up.
func (n *Node) Relay(ctx context.Context, st store.Store, r Reconciler) {
	n.listen(ctx, func(c store.Change) {
		if c.Released || c.TaskID == "" {
			r.Wake()
			return
		}
		t, err := st.GetTask(ctx, c.ProjectID, c.TaskID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			r.Changed(c.TaskID, nil)
		case err != nil:
			if ctx.Err() == nil {
				n.log.Warn("read a changed task", "task_id", c.TaskID, "err", err)
			}
			r.Wake()
		default:
			r.Changed(t.ID, t)
		}
	})
}
