package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// Leases decide, for a node that shares its store with others, which tasks
// it runs: one node per task, the holder of the task's lease. Every run
// state (and the events with it) that the node writes carries the lease, and
// a write under a lease that is gone matches nothing: the node then stops
// pushing that task at once. cluster.Leases is the implementation on
// PostgreSQL.
//
// A node alone on its store (Options.Leases nil, the SQLite mode) needs
// none of this: nobody else can run its tasks or write their state, so a
// lease would fence nothing, and the scheduler runs every task it should.
type Leases interface {
	// TTL is how long a lease lasts without renewal. The scheduler renews
	// its leases every TTL/3, and stops pushing a task before TTL has
	// passed since the last renewal it knows succeeded.
	TTL() time.Duration
	// Survey returns the lease and stored run state of every task of the
	// regions (all when empty), or of the given tasks when ids is not nil.
	Survey(ctx context.Context, regions, ids []string) ([]store.Holding, error)
	// Claim claims free tasks among the candidates. With run, to run them:
	// no more than the node's capacity and its fair share of each region
	// (the least-loaded node first), except urgent candidates, taken
	// whatever the share. Without run, to write their state at rest: all
	// of them.
	Claim(ctx context.Context, cands []Candidate, run bool) ([]store.Grant, error)
	// Renew records the node's heartbeat and renews the leases; it returns
	// the ones still held.
	Renew(ctx context.Context, leases []store.Lease) ([]store.Lease, error)
	// Write stores run states and their events, each under its lease (and
	// releasing it with Release), in one transaction. errs[i] is
	// store.ErrLeaseLost when the lease of writes[i] is gone: that one wrote
	// nothing. err: none was written.
	Write(ctx context.Context, writes []store.LeasedWrite) (errs []error, err error)
	// Drain tells the other nodes that this node claims nothing more.
	Drain(ctx context.Context) error
}

// Candidate is a task the scheduler wants to claim.
type Candidate struct {
	Task *task.Task
	// Urgent: the task has been free for a whole lease TTL without its
	// fair-share claimer taking it; anyone with room takes it.
	Urgent bool
}

// Cutter is a Runner that can stop pushing at once, before Run has
// returned: the scheduler cuts a task whose lease is lost, so the
// destination is free for the next holder even if a write is blocked.
type Cutter interface {
	Cut()
}

// Run-state error codes and exit reasons of the cluster.
const (
	// CodeNodeShutdown: the node that ran the task shut down and released
	// it to the other nodes.
	CodeNodeShutdown = "NODE_SHUTDOWN"
	// CodeNodeLost: the node that ran the task stopped renewing its lease
	// (it died or lost the database); another node took the task over.
	CodeNodeLost = "NODE_LOST"
	// ExitNodeLost is the exit reason of a run that ended when its node was
	// lost.
	ExitNodeLost = "node_lost"
)

// expirySlack is how long after another node's lease should expire the
// scheduler looks again, so that its clock and the database's need not
// agree to the millisecond.
const expirySlack = 100 * time.Millisecond

// active reports whether a stored state says a node is running the task.
func active(rs task.RunState) bool {
	switch rs.State {
	case task.StateStarting, task.StateRunning, task.StateRecovering:
		return true
	}
	return false
}

// orphaned reports whether a stored state is the last word of a run that
// ended without its node saying so (no exit reason): the node died or lost
// its lease. The node that takes the task on reports that run's TaskExit.
func orphaned(rs task.RunState) bool {
	return active(rs) && rs.ExitReason == ""
}

func isLeaseLost(err error) bool { return errors.Is(err, store.ErrLeaseLost) }
