package store

import (
	"context"
	"errors"
	"time"

	"github.com/liverelay/liverelay/internal/task"
)

// ErrLeaseLost is returned by a write under a lease the node no longer
// holds: another node claimed the task since (its token is newer), or the
// task is gone. The writer must stop acting for the task at once.
var ErrLeaseLost = errors.New("lease lost")

// Lease is a node's right to run one task and to write its run state. Every
// claim of a task bumps its Token (a fencing token): a write carries the
// token it was claimed with and matches nothing once another claim came.
type Lease struct {
	TaskID string
	NodeID string
	Token  int64
}

// Node is one liverelay process sharing the store, as its heartbeat row
// says. Times are the database's.
type Node struct {
	ID       string
	Regions  []string // served regions; empty: all
	MaxTasks int      // most tasks it runs at once; 0: no limit
	Listen   string   // the address of its API, for operators
	Draining bool     // shutting down: it claims nothing more

	StartedAt   time.Time
	HeartbeatAt time.Time
	// HeartbeatAge is how long ago the last heartbeat was, by the database
	// clock, when the node was read.
	HeartbeatAge time.Duration
	// Load is how many unexpired leases the node holds.
	Load int
}

// Holding is who holds a task's lease, with the task's stored run state.
type Holding struct {
	TaskID string
	// Owner is the node holding the lease; "" when it was never claimed or
	// was released.
	Owner string
	// Free: the task has no unexpired lease and may be claimed.
	Free bool
	// Remaining is how long the lease lasts without renewal, by the
	// database clock; 0 when free.
	Remaining time.Duration
	State     task.RunState
}

// Grant is a lease just claimed, with the run state stored at the moment of
// the claim: the previous holder's last word (a VOD task resumes from it).
type Grant struct {
	Lease Lease
	State task.RunState
}

// LeasedWrite is a run state and its events to store under a lease,
// releasing it with Release.
type LeasedWrite struct {
	Lease   Lease
	Release bool
	State   *task.RunState
	Events  []*Event
}

// Change is what a node announces to the others after a write they must act
// on (PostgreSQL's NOTIFY): a task was created, modified or deleted, or
// leases were released.
type Change struct {
	ProjectID, TaskID string // the task written; empty for Released
	Released          bool   // leases were released: free tasks to claim
}

// Cluster is what a store that several nodes share adds to Store: node
// heartbeats, task leases and their fenced writes, claimed delivery of the
// outbox, and change notifications. Lease expiry is judged by the store's
// clock, never a node's.
type Cluster interface {
	// RegisterNode inserts or replaces the node's row, heartbeat now, not
	// draining.
	RegisterNode(ctx context.Context, n Node) error
	// SetDraining marks the node as draining: it claims nothing more.
	SetDraining(ctx context.Context, nodeID string) error
	// Nodes returns every node's row with its load, ordered by ID.
	Nodes(ctx context.Context) ([]Node, error)

	// Holdings returns the lease and run state of the tasks of the given
	// regions (all when empty), or of the given tasks when taskIDs is not
	// nil.
	Holdings(ctx context.Context, regions, taskIDs []string) ([]Holding, error)
	// ClaimTasks claims, for nodeID, at most limit of the given tasks that
	// are free (FOR UPDATE SKIP LOCKED: a task another node is claiming at
	// the same moment is skipped, not waited for), in the given order, each
	// with a new token and an expiry ttl from now by the store's clock.
	ClaimTasks(ctx context.Context, nodeID string, taskIDs []string, limit int, ttl time.Duration) ([]Grant, error)
	// RenewLeases records the node's heartbeat and extends, by ttl from now,
	// those of the given leases it still holds unexpired with the same
	// token. It returns the leases it extended.
	RenewLeases(ctx context.Context, nodeID string, leases []Lease, ttl time.Duration) ([]Lease, error)
	// PutRunStatesLeased writes run states (stamped with nothing else than
	// they carry) and appends their events, in one transaction, each only
	// while its Lease is the task's lease; with Release, that lease is
	// released in the same transaction. errs[i] is ErrLeaseLost when
	// writes[i]'s lease is not the task's (or the task is gone): nothing of
	// it is written, the others are. err: none was written.
	PutRunStatesLeased(ctx context.Context, writes []LeasedWrite) (errs []error, err error)
	// ReleaseLeases releases the given leases where they are still held
	// with the same token.
	ReleaseLeases(ctx context.Context, leases []Lease) error

	// ClaimDueEvents is DueEvents for one of several deliverers: it
	// returns the due events it claimed (see EventClaim), skipping events
	// another node holds a claim on. Each carries its ClaimToken.
	ClaimDueEvents(ctx context.Context, c EventClaim) ([]Event, error)
	// MarkDeliveredClaimed and MarkFailedClaimed are MarkDelivered and
	// MarkFailed under the claim with that token, which they end;
	// ErrLeaseLost when the claim is no longer that one.
	MarkDeliveredClaimed(ctx context.Context, id string, token int64, at time.Time) error
	MarkFailedClaimed(ctx context.Context, id string, token int64, attempts int, next time.Time, lastErr string, gaveUp bool) error
	// ReleaseEventClaim ends the claim with that token without an outcome
	// (the deliverer stops): the event is due to any node again.
	ReleaseEventClaim(ctx context.Context, id string, token int64) error

	// ListenChanges calls fn with every Change announced (by any node, this
	// one included) until ctx is done or the connection fails; it returns
	// the reason. Changes announced while nobody listened are not replayed.
	ListenChanges(ctx context.Context, ready func(), fn func(Change)) error
}

// EventClaim says which due events ClaimDueEvents claims.
type EventClaim struct {
	NodeID string
	Now    time.Time // due: NextAttemptAt not after Now
	Limit  int
	// Retries: only events tried before; else only fresh ones.
	Retries bool
	// SkipTasks are tasks whose events not to claim (the deliverer is busy
	// with them: it could not start their next event now).
	SkipTasks []string
	TTL       time.Duration // how long the claim lasts, by the store's clock
}
