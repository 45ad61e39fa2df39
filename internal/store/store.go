// Package store defines how tasks, their run state, checkpoints, projects and
// credentials are persisted. Implementations live in sub-packages (sqlite for
// a node alone, postgres for several nodes, which also implements Cluster)
// and share the behaviour tested by storetest.
//
// Conventions every implementation keeps, so callers need not care which one
// they hold:
//   - Times are kept to the millisecond and come back in UTC; a zero time
//     comes back zero.
//   - An empty slice may come back nil.
//   - Errors wrap the sentinels below, with context; test them with errors.Is.
//   - Task IDs are unique across projects.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/liverelay/liverelay/internal/task"
)

// Errors an implementation returns, checked with errors.Is.
var (
	ErrNotFound          = errors.New("not found")
	ErrQuotaExceeded     = errors.New("task quota exceeded")
	ErrDestinationInUse  = errors.New("destination already used by another task")
	ErrConflict          = errors.New("conflicting concurrent change")
	ErrProjectNotFound   = errors.New("project not found")
	ErrCredentialUnknown = errors.New("credential not found")
)

// Project is a tenant's project; tasks live in one.
type Project struct {
	ID         string
	AccountID  string
	Region     string
	CreateTime time.Time
	// CallbackKey is the project's own key for signing callbacks, sealed
	// with the server's keyring (auth.Keyring.Seal); empty: callbacks are
	// signed with the server-wide key, if there is one.
	CallbackKey []byte
}

// Credential is an access key of a user. SecretKey is stored as given by the
// caller (the auth package decides how it is protected at rest).
type Credential struct {
	AccessKey  string
	SecretKey  []byte
	UserID     string
	AccountID  string
	ProjectIDs []string // empty: every project of the account
	Actions    []string // IAM actions; "live:*:*" for all
	Root       bool
	Revoked    bool
	CreateTime time.Time
}

// TaskView is a task with its run state, as list returns it.
type TaskView struct {
	Task  task.Task
	State task.RunState
}

// ListFilter selects tasks of one project for list/show.
type ListFilter struct {
	ProjectID string // required
	TaskID    string // optional: show one
	Region    string // optional
	Offset    int    // < 0 is taken as 0
	Limit     int    // <= 0: no limit (the API caps it before it gets here)
}

// PageLen is how many of total rows a page of f can hold at most: the
// capacity to allocate for a list's answer.
func (f ListFilter) PageLen(total int) int {
	n := max(total-max(f.Offset, 0), 0)
	if f.Limit > 0 {
		n = min(n, f.Limit)
	}
	return n
}

// CreateLimits are the rules checked inside the create transaction, where
// they cannot race with another create.
type CreateLimits struct {
	Quota int       // max tasks per project; <= 0: no limit
	Now   time.Time // for "unfinished" in the destination rule
}

// Event is one callback event in the outbox. Producers fill ID, TaskID,
// ProjectID, Name, Time, Final, CallbackURL and Payload; the store assigns
// Seq (1, 2, 3, ... per task) when it appends the event, in the same
// transaction as the state change that caused it.
type Event struct {
	ID          string // event_id, unique
	TaskID      string
	ProjectID   string
	Seq         int64
	Name        string // TaskStart, TaskExit, ...
	Time        time.Time
	Final       bool
	CallbackURL string // kept with the event: the task may be gone before delivery
	// Payload is the JSON object to POST, without "seq" (the deliverer adds
	// it, so the body is built once the store has numbered the event).
	Payload []byte

	// Delivery state.
	Attempts      int
	NextAttemptAt time.Time
	LastError     string
	DeliveredAt   time.Time // zero: not delivered
	GaveUp        bool      // retried for the whole retry window without success
	// ClaimToken is the token of the claim under which a deliverer holds
	// the event (Cluster.ClaimDueEvents); 0 when not claimed.
	ClaimToken int64
}

// RunStateWrite is one task's run state with the events it causes.
type RunStateWrite struct {
	State  *task.RunState
	Events []*Event
}

// EventBacklog is what delivery still owes one task, for the list output.
type EventBacklog struct {
	Pending   int    // events neither delivered nor given up
	GaveUp    int    // events given up and not yet pruned
	LastError string // the error of the last failed attempt at the task's next pending event; "" if none
}

// Store persists everything. Every method is safe for concurrent use, and
// every write is durable when it returns nil. A write never fails because
// another write holds a lock: implementations serialise or retry.
type Store interface {
	// CreateTask stores a new task (and a "waiting" run state) in one
	// transaction, unless the project does not exist (ErrProjectNotFound),
	// the ID is taken (ErrConflict), the project already holds lim.Quota
	// tasks (ErrQuotaExceeded), or another task of any project that is
	// enabled, whose end_time is after lim.Now and whose run state is neither
	// finished nor failed already pushes to t.DestinationKey
	// (ErrDestinationInUse). The task is stored as given, Generation included.
	CreateTask(ctx context.Context, t *task.Task, lim CreateLimits) error
	// GetTask returns one task of a project, or ErrNotFound (also when the
	// task exists in another project).
	GetTask(ctx context.Context, projectID, taskID string) (*task.Task, error)
	// UpdateTask replaces the fields of the task t.ID of project t.ProjectID
	// (ErrNotFound if there is none), except ID, ProjectID and CreateTime;
	// t.Generation must be one more than the stored generation (ErrConflict
	// otherwise). When t.Status is enable, the destination rule of CreateTask
	// is checked again against the other tasks, at now.
	//
	// events are appended to the outbox in the same transaction.
	UpdateTask(ctx context.Context, t *task.Task, now time.Time, events ...*Event) error
	// DeleteTask removes a task with its run state and checkpoint, or returns
	// ErrNotFound. Its undelivered callback events are kept.
	// events are appended to the outbox in the same transaction (they
	// outlive the task).
	DeleteTask(ctx context.Context, projectID, taskID string, events ...*Event) error
	// ListTasks returns one page, newest first (CreateTime descending, then ID
	// descending), with each task's run state, and the total that match the
	// filter regardless of paging. An unknown TaskID gives an empty page and 0.
	ListTasks(ctx context.Context, f ListFilter) ([]TaskView, int, error)
	// TasksInRegions returns every task in the given regions (all regions when
	// empty), ordered by ID, for the scheduler.
	TasksInRegions(ctx context.Context, regions []string) ([]task.Task, error)

	// PutRunState upserts a task's run state; a task that no longer exists
	// is not an error (the write is dropped).
	// events are appended to the outbox in the same transaction; they are
	// dropped with the state when the task no longer exists.
	PutRunState(ctx context.Context, rs *task.RunState, events ...*Event) error
	// PutRunStates is PutRunState for several tasks in one transaction (one
	// durable write for the heartbeats of many tasks): all are written or
	// none. Writes of tasks that no longer exist are dropped.
	PutRunStates(ctx context.Context, writes []RunStateWrite) error
	// GetRunState returns a task's run state, or ErrNotFound.
	GetRunState(ctx context.Context, taskID string) (*task.RunState, error)
	// PutCheckpoint and GetCheckpoint keep a VOD task's position. Like
	// PutRunState, PutCheckpoint drops the write when the task no longer
	// exists; GetCheckpoint returns ErrNotFound when none was stored.
	PutCheckpoint(ctx context.Context, taskID string, cp task.Checkpoint) error
	GetCheckpoint(ctx context.Context, taskID string) (*task.Checkpoint, error)

	// Projects and credentials. GetProject returns ErrProjectNotFound and
	// GetCredential ErrCredentialUnknown when there is none; a revoked
	// credential is returned with Revoked set.
	PutProject(ctx context.Context, p *Project) error // insert or keep existing
	GetProject(ctx context.Context, id string) (*Project, error)
	CountProjects(ctx context.Context) (int, error)
	PutCredential(ctx context.Context, c *Credential) error // insert or replace
	GetCredential(ctx context.Context, accessKey string) (*Credential, error)
	// ListCredentials returns every credential, revoked ones included,
	// ordered by access key, for administration.
	ListCredentials(ctx context.Context) ([]Credential, error)

	// Callback outbox. Events enter it with the state changes above; these
	// methods are for the deliverer and the list output. An event is pending
	// while it is neither delivered nor given up.

	// DueEvents returns up to limit pending events whose NextAttemptAt is
	// not after now, each the lowest-seq pending event of its task: a task's
	// next event is never due while an earlier one is pending. Events that
	// were tried fewer times come first, then earlier NextAttemptAt, so a
	// dead receiver's retries do not crowd out fresh events.
	DueEvents(ctx context.Context, now time.Time, limit int) ([]Event, error)
	// MarkDelivered records a successful delivery (one more attempt) at at;
	// ErrNotFound if there is no such event.
	MarkDelivered(ctx context.Context, id string, at time.Time) error
	// MarkFailed records a failed attempt: the event's attempt count, its
	// next attempt time and the error. With gaveUp the event is not tried
	// again (and the task's next event becomes due); next is then the time
	// it was given up, from which PruneEvents counts. ErrNotFound if there
	// is no such event.
	MarkFailed(ctx context.Context, id string, attempts int, next time.Time, lastErr string, gaveUp bool) error
	// PruneEvents deletes the events delivered, or given up, before
	// deliveredBefore, and returns how many it deleted. It keeps the
	// highest-seq event of every task that still exists, so that seq keeps
	// counting up after a prune.
	PruneEvents(ctx context.Context, deliveredBefore time.Time) (int, error)
	// EventBacklog returns the backlog of each of the given tasks that has
	// pending or given-up events; the others are absent from the map.
	EventBacklog(ctx context.Context, taskIDs []string) (map[string]EventBacklog, error)
	// SetProjectCallbackKey sets a project's sealed callback signing key
	// (empty: use the server-wide key), or returns ErrProjectNotFound.
	SetProjectCallbackKey(ctx context.Context, projectID string, sealed []byte) error

	Close() error
}
