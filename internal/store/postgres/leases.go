package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// Nodes, task leases and change notifications: what store.Cluster adds. A
// lease lives in the task's run_states row (lease_owner, lease_token,
// lease_expires_at); every expiry is computed and compared with now(), the
// database's clock, so the nodes' clocks never decide who runs a task.

var _ store.Cluster = (*Store)(nil)

// changesChannel is the NOTIFY channel of store.Change.
const changesChannel = "liverelay_changes"

// changePayload is a store.Change on the wire.
type changePayload struct {
	ProjectID string `json:"p,omitempty"`
	TaskID    string `json:"t,omitempty"`
	Released  bool   `json:"r,omitempty"`
}

// notify announces a change when tx commits (NOTIFY is transactional).
func notify(ctx context.Context, tx pgx.Tx, c store.Change) error {
	b, err := json.Marshal(changePayload{ProjectID: c.ProjectID, TaskID: c.TaskID, Released: c.Released})
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, changesChannel, string(b))
	return err
}

// ms is d as a whole number of milliseconds, for interval arithmetic.
func ms(d time.Duration) int64 { return d.Milliseconds() }

// nodeRetention is how long the row of a node that stopped heart-beating is
// kept for the nodes list.
const nodeRetention = 7 * 24 * time.Hour

// RegisterNode implements store.Cluster.
func (s *Store) RegisterNode(ctx context.Context, n store.Node) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM nodes WHERE heartbeat_at < now() - $1::bigint * interval '1 millisecond'`,
			ms(nodeRetention)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO nodes (id, regions, max_tasks, listen, draining, started_at, heartbeat_at)
			VALUES ($1, $2, $3, $4, false, now(), now())
			ON CONFLICT (id) DO UPDATE SET regions = excluded.regions, max_tasks = excluded.max_tasks,
				listen = excluded.listen, draining = false, started_at = now(), heartbeat_at = now()`,
			n.ID, listArg(n.Regions), n.MaxTasks, n.Listen)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: register node %s: %w", n.ID, err)
	}
	return nil
}

// SetDraining implements store.Cluster.
func (s *Store) SetDraining(ctx context.Context, nodeID string) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return oneRow(tx.Exec(ctx, `UPDATE nodes SET draining = true WHERE id = $1`, nodeID))
	})
	if err != nil {
		return fmt.Errorf("postgres: node %s draining: %w", nodeID, err)
	}
	return nil
}

// Nodes implements store.Cluster.
func (s *Store) Nodes(ctx context.Context) ([]store.Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT n.id, n.regions, n.max_tasks, n.listen, n.draining, n.started_at, n.heartbeat_at,
			(EXTRACT(EPOCH FROM now() - n.heartbeat_at) * 1000)::bigint,
			(SELECT COUNT(*) FROM run_states r WHERE r.lease_owner = n.id AND r.lease_expires_at > now())
		FROM nodes n ORDER BY n.id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: nodes: %w", err)
	}
	nodes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Node, error) {
		var n store.Node
		var started, heartbeat pgtype.Timestamptz
		var ageMS int64
		err := row.Scan(&n.ID, &n.Regions, &n.MaxTasks, &n.Listen, &n.Draining, &started, &heartbeat, &ageMS, &n.Load)
		n.Regions = listOf(n.Regions)
		n.StartedAt, n.HeartbeatAt = timeOf(started), timeOf(heartbeat)
		n.HeartbeatAge = time.Duration(ageMS) * time.Millisecond
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: nodes: %w", err)
	}
	return nodes, nil
}

// leaseSelect selects, for the run_states row aliased r, the lease's owner,
// whether it is free, and the milliseconds it has left.
const leaseSelect = `COALESCE(r.lease_owner, ''),
	r.lease_owner IS NULL OR r.lease_expires_at <= now(),
	GREATEST((EXTRACT(EPOCH FROM r.lease_expires_at - now()) * 1000)::bigint, 0)`

// Holdings implements store.Cluster.
func (s *Store) Holdings(ctx context.Context, regions, taskIDs []string) ([]store.Holding, error) {
	if taskIDs != nil && len(taskIDs) == 0 {
		return nil, nil
	}
	var regionArg, idArg any // NULL: no filter
	if len(regions) > 0 {
		regionArg = regions
	}
	if taskIDs != nil {
		idArg = taskIDs
	}
	rows, err := s.pool.Query(ctx, `SELECT `+leaseSelect+`, `+runStateSelect+`
		FROM run_states r JOIN tasks t ON t.id = r.task_id
		WHERE ($1::text[] IS NULL OR t.region = ANY($1)) AND ($2::text[] IS NULL OR r.task_id = ANY($2))
		ORDER BY r.task_id`, regionArg, idArg)
	if err != nil {
		return nil, fmt.Errorf("postgres: holdings: %w", err)
	}
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Holding, error) {
		var h store.Holding
		var rr runStateRow
		var remainingMS int64
		if err := row.Scan(append([]any{&h.Owner, &h.Free, &remainingMS}, rr.dest()...)...); err != nil {
			return h, err
		}
		var err error
		h.State, err = rr.runState()
		h.TaskID = h.State.TaskID
		if !h.Free {
			h.Remaining = time.Duration(remainingMS) * time.Millisecond
		}
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: holdings: %w", err)
	}
	return hs, nil
}

// claimQuery locks, among the wanted tasks, up to $3 free ones in the order
// given, passing over rows another transaction holds (a node claiming them
// now), and takes them for $1 with a new token.
var claimQuery = `WITH want AS (
		SELECT w.id, w.ord FROM unnest($2::text[]) WITH ORDINALITY AS w(id, ord)
	), c AS (
		SELECT r.task_id, want.ord FROM run_states r JOIN want ON want.id = r.task_id
		WHERE r.lease_owner IS NULL OR r.lease_expires_at <= now()
		ORDER BY want.ord
		LIMIT $3
		FOR UPDATE OF r SKIP LOCKED
	)
	UPDATE run_states r SET lease_owner = $1, lease_token = r.lease_token + 1,
		lease_expires_at = now() + $4::bigint * interval '1 millisecond'
	FROM c WHERE r.task_id = c.task_id
	RETURNING c.ord, r.lease_token, ` + runStateSelect

// ClaimTasks implements store.Cluster.
func (s *Store) ClaimTasks(ctx context.Context, nodeID string, taskIDs []string, limit int, ttl time.Duration) ([]store.Grant, error) {
	if limit <= 0 || len(taskIDs) == 0 {
		return nil, nil
	}
	var grants []store.Grant
	var order []int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		grants, order = nil, nil
		rows, err := tx.Query(ctx, claimQuery, nodeID, taskIDs, limit, ms(ttl))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ord int64
			var g store.Grant
			var rr runStateRow
			if err := rows.Scan(append([]any{&ord, &g.Lease.Token}, rr.dest()...)...); err != nil {
				return err
			}
			if g.State, err = rr.runState(); err != nil {
				return err
			}
			g.Lease.TaskID, g.Lease.NodeID = g.State.TaskID, nodeID
			grants, order = append(grants, g), append(order, ord)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim tasks for node %s: %w", nodeID, err)
	}
	// RETURNING keeps no order: restore the caller's.
	idx := make([]int, len(grants))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(order[a] - order[b]) })
	out := make([]store.Grant, len(grants))
	for i, j := range idx {
		out[i] = grants[j]
	}
	return out, nil
}

// leaseArrays splits leases into the parallel arrays the queries unnest.
func leaseArrays(leases []store.Lease) (ids, nodes []string, tokens []int64) {
	for _, l := range leases {
		ids, nodes, tokens = append(ids, l.TaskID), append(nodes, l.NodeID), append(tokens, l.Token)
	}
	return ids, nodes, tokens
}

// RenewLeases implements store.Cluster. The heartbeat and the renewals are
// one transaction: a node that is seen alive has its leases renewed.
func (s *Store) RenewLeases(ctx context.Context, nodeID string, leases []store.Lease, ttl time.Duration) ([]store.Lease, error) {
	var kept []store.Lease
	err := s.write(ctx, func(tx pgx.Tx) error {
		kept = nil
		if err := oneRow(tx.Exec(ctx, `UPDATE nodes SET heartbeat_at = now() WHERE id = $1`, nodeID)); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("node not registered: %w", err)
			}
			return err
		}
		if len(leases) == 0 {
			return nil
		}
		ids, _, tokens := leaseArrays(leases)
		rows, err := tx.Query(ctx, `UPDATE run_states r SET lease_expires_at = now() + $4::bigint * interval '1 millisecond'
			FROM unnest($2::text[], $3::bigint[]) AS h(task_id, token)
			WHERE r.task_id = h.task_id AND r.lease_token = h.token AND r.lease_owner = $1 AND r.lease_expires_at > now()
			RETURNING r.task_id, r.lease_token`, nodeID, ids, tokens, ms(ttl))
		if err != nil {
			return err
		}
		kept, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Lease, error) {
			l := store.Lease{NodeID: nodeID}
			return l, row.Scan(&l.TaskID, &l.Token)
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: renew leases of node %s: %w", nodeID, err)
	}
	return kept, nil
}

// runStateLeasedUpdate writes every run state column of the row whose lease
// is $owner with $token, and with $release frees the lease too.
var runStateLeasedUpdate = func() string {
	var set []string
	for i, c := range runStateColumns[1:] {
		set = append(set, fmt.Sprintf("%s = $%d", c, i+2))
	}
	n := len(runStateColumns)
	return fmt.Sprintf(`UPDATE run_states SET %s,
		lease_owner = CASE WHEN $%[2]d THEN NULL ELSE lease_owner END,
		lease_expires_at = CASE WHEN $%[2]d THEN NULL ELSE lease_expires_at END
		WHERE task_id = $1 AND lease_owner = $%[3]d AND lease_token = $%[4]d`,
		strings.Join(set, ", "), n+1, n+2, n+3)
}()

// PutRunStateLeased is PutRunStatesLeased for one write: ErrLeaseLost when
// l is not the task's lease.
func (s *Store) PutRunStateLeased(ctx context.Context, l store.Lease, release bool, rs *task.RunState, events ...*store.Event) error {
	errs, err := s.PutRunStatesLeased(ctx, []store.LeasedWrite{{Lease: l, Release: release, State: rs, Events: events}})
	if err != nil {
		return err
	}
	return errs[0]
}

// PutRunStatesLeased implements store.Cluster. The fenced updates go to the
// database in one round trip (a pipeline), then the events of the writes
// that matched their lease.
func (s *Store) PutRunStatesLeased(ctx context.Context, writes []store.LeasedWrite) ([]error, error) {
	for _, w := range writes {
		if w.State.TaskID != w.Lease.TaskID {
			return nil, fmt.Errorf("postgres: put run state of task %s under the lease of task %s", w.State.TaskID, w.Lease.TaskID)
		}
	}
	if len(writes) == 0 {
		return nil, nil
	}
	errs := make([]error, len(writes))
	err := s.write(ctx, func(tx pgx.Tx) error {
		clear(errs) // a retried transaction starts again
		b := &pgx.Batch{}
		for _, w := range writes {
			b.Queue(runStateLeasedUpdate, append(runStateArgs(w.State), w.Release, w.Lease.NodeID, w.Lease.Token)...)
		}
		br := tx.SendBatch(ctx, b)
		for i := range writes {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return err
			}
			if tag.RowsAffected() == 0 {
				errs[i] = store.ErrLeaseLost
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
		released := false
		for i, w := range writes {
			if errs[i] != nil {
				continue
			}
			if err := appendEvents(ctx, tx, w.Events); err != nil {
				return err
			}
			released = released || w.Release
		}
		if released {
			return notify(ctx, tx, store.Change{Released: true})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: put %d run states under their leases (node %s): %w", len(writes), writes[0].Lease.NodeID, err)
	}
	for i, w := range writes {
		if errs[i] != nil {
			errs[i] = fmt.Errorf("postgres: put run state of task %s (lease %d of node %s): %w", w.State.TaskID, w.Lease.Token, w.Lease.NodeID, errs[i])
		}
	}
	return errs, nil
}

// ReleaseLeases implements store.Cluster.
func (s *Store) ReleaseLeases(ctx context.Context, leases []store.Lease) error {
	if len(leases) == 0 {
		return nil
	}
	ids, nodes, tokens := leaseArrays(leases)
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE run_states r SET lease_owner = NULL, lease_expires_at = NULL
			FROM unnest($1::text[], $2::text[], $3::bigint[]) AS h(task_id, node_id, token)
			WHERE r.task_id = h.task_id AND r.lease_owner = h.node_id AND r.lease_token = h.token`, ids, nodes, tokens)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		return notify(ctx, tx, store.Change{Released: true})
	})
	if err != nil {
		return fmt.Errorf("postgres: release %d leases: %w", len(leases), err)
	}
	return nil
}

// ListenChanges implements store.Cluster, on a connection of its own (a
// LISTEN holds its connection for as long as it listens).
func (s *Store) ListenChanges(ctx context.Context, ready func(), fn func(store.Change)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("postgres: listen for changes: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `LISTEN `+changesChannel); err != nil {
		return fmt.Errorf("postgres: listen for changes: %w", err)
	}
	if ready != nil {
		ready()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("postgres: wait for changes: %w", err)
		}
		var p changePayload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil {
			continue // not ours: another program on the channel
		}
		fn(store.Change{ProjectID: p.ProjectID, TaskID: p.TaskID, Released: p.Released})
	}
}
