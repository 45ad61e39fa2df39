package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/liverelay/liverelay/internal/store"
)

// The callback outbox. Events are appended inside the transactions of task
// writes; an event is pending while delivered_at is NULL and gave_up is
// false, the condition of the partial indexes events_due and
// events_task_pending.

// appendEvents adds events to the outbox inside tx, numbering each after its
// task's highest seq. The task's event lock makes that read and the insert
// one step across nodes; the task's row cannot serve, as a delete's events
// are appended after the row is gone. UNIQUE (task_id, seq) would turn a
// numbering race into an error, never into two events with one seq.
func appendEvents(ctx context.Context, tx pgx.Tx, events []*store.Event) error {
	locked := map[string]bool{}
	for _, ev := range events {
		if ev == nil {
			continue
		}
		if !locked[ev.TaskID] {
			if err := lockXact(ctx, tx, lockEventSeq+ev.TaskID); err != nil {
				return err
			}
			locked[ev.TaskID] = true
		}
		err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE task_id = $1`, ev.TaskID).Scan(&ev.Seq)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO events
			(id, task_id, project_id, seq, type, created_at, body, final, callback_url, next_attempt_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $6)`,
			ev.ID, ev.TaskID, ev.ProjectID, ev.Seq, ev.Name, timeArg(ev.Time), bytesArg(ev.Payload),
			ev.Final, ev.CallbackURL)
		if err != nil {
			return err
		}
	}
	return nil
}

// eventColumns are the events table's columns in the order of scanEvent.
const eventColumns = `e.id, e.task_id, e.project_id, e.seq, e.type, e.created_at, e.final, e.callback_url, e.body,
	e.attempts, e.next_attempt_at, e.last_error, e.delivered_at, e.gave_up`

func scanEvent(row pgx.Row) (store.Event, error) {
	var ev store.Event
	var created, next, delivered pgtype.Timestamptz
	err := row.Scan(&ev.ID, &ev.TaskID, &ev.ProjectID, &ev.Seq, &ev.Name, &created, &ev.Final, &ev.CallbackURL, &ev.Payload,
		&ev.Attempts, &next, &ev.LastError, &delivered, &ev.GaveUp)
	if err != nil {
		return ev, err
	}
	ev.Time, ev.NextAttemptAt, ev.DeliveredAt = timeOf(created), timeOf(next), timeOf(delivered)
	return ev, nil
}

// dueEventsQuery finds due events through events_due and keeps those with
// no pending event of a lower seq in their task (events_task_pending).
const dueEventsQuery = `SELECT ` + eventColumns + ` FROM events e
	WHERE e.delivered_at IS NULL AND NOT e.gave_up AND e.next_attempt_at <= $1
	  AND NOT EXISTS (SELECT 1 FROM events p
		WHERE p.task_id = e.task_id AND p.seq < e.seq AND p.delivered_at IS NULL AND NOT p.gave_up)
	ORDER BY e.attempts, e.next_attempt_at, e.task_id
	LIMIT $2`

// DueEvents implements store.Store.
func (s *Store) DueEvents(ctx context.Context, now time.Time, limit int) ([]store.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, dueEventsQuery, timeArg(now), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Event, error) { return scanEvent(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: due events: %w", err)
	}
	return evs, nil
}

// MarkDelivered implements store.Store.
func (s *Store) MarkDelivered(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return oneRow(tx.Exec(ctx, `UPDATE events SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2`,
			timeArg(at), id))
	})
	if err != nil {
		return fmt.Errorf("postgres: mark event %s delivered: %w", id, err)
	}
	return nil
}

// MarkFailed implements store.Store.
func (s *Store) MarkFailed(ctx context.Context, id string, attempts int, next time.Time, lastErr string, gaveUp bool) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return oneRow(tx.Exec(ctx, `UPDATE events SET attempts = $1, next_attempt_at = $2, last_error = $3, gave_up = $4
			WHERE id = $5`, attempts, timeArg(next), textArg(lastErr), gaveUp, id))
	})
	if err != nil {
		return fmt.Errorf("postgres: mark event %s failed: %w", id, err)
	}
	return nil
}

// oneRow turns an UPDATE that matched no row into store.ErrNotFound.
func oneRow(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// PruneEvents implements store.Store. appendEvents numbers a task's next
// event after the highest seq stored, so that row stays while the task
// exists; a deleted task gets no more events (task IDs are not reused).
func (s *Store) PruneEvents(ctx context.Context, deliveredBefore time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM events
			WHERE (delivered_at < $1 OR (delivered_at IS NULL AND gave_up AND next_attempt_at < $1))
			  AND (seq < (SELECT MAX(m.seq) FROM events m WHERE m.task_id = events.task_id)
			       OR NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = events.task_id))`, timeArg(deliveredBefore))
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: prune events: %w", err)
	}
	return int(n), nil
}

// EventBacklog implements store.Store.
func (s *Store) EventBacklog(ctx context.Context, taskIDs []string) (map[string]store.EventBacklog, error) {
	out := make(map[string]store.EventBacklog)
	if len(taskIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT e.task_id, COUNT(*) FILTER (WHERE NOT e.gave_up), COUNT(*) FILTER (WHERE e.gave_up),
			COALESCE((SELECT h.last_error FROM events h
				WHERE h.task_id = e.task_id AND h.delivered_at IS NULL AND NOT h.gave_up
				ORDER BY h.seq LIMIT 1), '')
		FROM events e
		WHERE e.delivered_at IS NULL AND e.task_id = ANY($1)
		GROUP BY e.task_id`, taskIDs)
	if err != nil {
		return nil, fmt.Errorf("postgres: event backlog: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var b store.EventBacklog
		if err := rows.Scan(&id, &b.Pending, &b.GaveUp, &b.LastError); err != nil {
			return nil, fmt.Errorf("postgres: event backlog: %w", err)
		}
		out[id] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: event backlog: %w", err)
	}
	return out, nil
}

// claimDueEventsQuery is dueEventsQuery for one of several deliverers: it
// passes over events that another node holds a claim on (their task's next
// event then waits too, as the claimed one is still pending) and rows being
// claimed at this moment (SKIP LOCKED), and claims what it selects.
const claimDueEventsQuery = `WITH c AS (
		SELECT e.id FROM events e
		WHERE e.delivered_at IS NULL AND NOT e.gave_up AND e.next_attempt_at <= $1
		  AND (e.attempts > 0) = $3
		  AND (e.claim_owner IS NULL OR e.claim_expires_at <= now())
		  AND e.task_id <> ALL($6::text[])
		  AND NOT EXISTS (SELECT 1 FROM events p
			WHERE p.task_id = e.task_id AND p.seq < e.seq AND p.delivered_at IS NULL AND NOT p.gave_up)
		ORDER BY e.attempts, e.next_attempt_at, e.task_id
		LIMIT $2
		FOR UPDATE OF e SKIP LOCKED
	)
	UPDATE events e SET claim_owner = $4, claim_token = e.claim_token + 1,
		claim_expires_at = now() + $5::bigint * interval '1 millisecond'
	FROM c WHERE e.id = c.id
	RETURNING ` + eventColumns + `, e.claim_token`

// ClaimDueEvents implements store.Cluster.
func (s *Store) ClaimDueEvents(ctx context.Context, c store.EventClaim) ([]store.Event, error) {
	if c.Limit <= 0 {
		return nil, nil
	}
	var evs []store.Event
	err := s.write(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, claimDueEventsQuery, timeArg(c.Now), c.Limit, c.Retries, c.NodeID, ms(c.TTL), listArg(c.SkipTasks))
		if err != nil {
			return err
		}
		evs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Event, error) {
			var ev store.Event
			var created, next, delivered pgtype.Timestamptz
			err := row.Scan(&ev.ID, &ev.TaskID, &ev.ProjectID, &ev.Seq, &ev.Name, &created, &ev.Final, &ev.CallbackURL, &ev.Payload,
				&ev.Attempts, &next, &ev.LastError, &delivered, &ev.GaveUp, &ev.ClaimToken)
			ev.Time, ev.NextAttemptAt, ev.DeliveredAt = timeOf(created), timeOf(next), timeOf(delivered)
			return ev, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim due events for node %s: %w", c.NodeID, err)
	}
	// RETURNING keeps no order: put back the one DueEvents promises.
	slices.SortFunc(evs, func(a, b store.Event) int {
		if c := cmp.Compare(a.Attempts, b.Attempts); c != 0 {
			return c
		}
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return strings.Compare(a.TaskID, b.TaskID)
	})
	return evs, nil
}

// claimedRow turns an UPDATE under a claim that matched no row into
// store.ErrLeaseLost.
func claimedRow(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrLeaseLost
	}
	return nil
}

// MarkDeliveredClaimed implements store.Cluster.
func (s *Store) MarkDeliveredClaimed(ctx context.Context, id string, token int64, at time.Time) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return claimedRow(tx.Exec(ctx, `UPDATE events SET delivered_at = $1, attempts = attempts + 1,
				claim_owner = NULL, claim_expires_at = NULL
			WHERE id = $2 AND claim_token = $3 AND claim_owner IS NOT NULL`, timeArg(at), id, token))
	})
	if err != nil {
		return fmt.Errorf("postgres: mark event %s delivered (claim %d): %w", id, token, err)
	}
	return nil
}

// MarkFailedClaimed implements store.Cluster.
func (s *Store) MarkFailedClaimed(ctx context.Context, id string, token int64, attempts int, next time.Time, lastErr string, gaveUp bool) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		return claimedRow(tx.Exec(ctx, `UPDATE events SET attempts = $1, next_attempt_at = $2, last_error = $3, gave_up = $4,
				claim_owner = NULL, claim_expires_at = NULL
			WHERE id = $5 AND claim_token = $6 AND claim_owner IS NOT NULL`,
			attempts, timeArg(next), textArg(lastErr), gaveUp, id, token))
	})
	if err != nil {
		return fmt.Errorf("postgres: mark event %s failed (claim %d): %w", id, token, err)
	}
	return nil
}

// ReleaseEventClaim implements store.Cluster.
func (s *Store) ReleaseEventClaim(ctx context.Context, id string, token int64) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE events SET claim_owner = NULL, claim_expires_at = NULL
			WHERE id = $1 AND claim_token = $2`, id, token)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: release claim %d of event %s: %w", token, id, err)
	}
	return nil
}
