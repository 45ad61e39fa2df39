package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/liverelay/liverelay/internal/store"
)

// The callback outbox, as the deliverer sees it. Events are appended by
// appendEvents (events.go) inside the transactions of task writes; an event
// is pending while delivered_at is NULL and gave_up is 0, which is also the
// condition of the partial indexes events_due and events_task_pending.

// eventColumns are the events table's columns in the order of scanEvent.
const eventColumns = `e.id, e.task_id, e.project_id, e.seq, e.type, e.created_at, e.final, e.callback_url, e.body,
	e.attempts, e.next_attempt_at, e.last_error, e.delivered_at, e.gave_up`

func scanEvent(row interface{ Scan(dest ...any) error }) (store.Event, error) {
	var ev store.Event
	var created int64
	var body string
	var next, delivered sql.NullInt64
	err := row.Scan(&ev.ID, &ev.TaskID, &ev.ProjectID, &ev.Seq, &ev.Name, &created, &ev.Final, &ev.CallbackURL, &body,
		&ev.Attempts, &next, &ev.LastError, &delivered, &ev.GaveUp)
	if err != nil {
		return ev, err
	}
	ev.Time = time.UnixMilli(created).UTC()
	ev.Payload = []byte(body)
	ev.NextAttemptAt = timeFromMS(next)
	ev.DeliveredAt = timeFromMS(delivered)
	return ev, nil
}

// dueEventsQuery finds due events through events_due and keeps those with
// no pending event of a lower seq in their task (events_task_pending).
const dueEventsQuery = `SELECT ` + eventColumns + ` FROM events e
	WHERE e.delivered_at IS NULL AND e.gave_up = 0 AND e.next_attempt_at <= ?
	  AND NOT EXISTS (SELECT 1 FROM events p
		WHERE p.task_id = e.task_id AND p.seq < e.seq AND p.delivered_at IS NULL AND p.gave_up = 0)
	ORDER BY e.attempts, e.next_attempt_at, e.task_id
	LIMIT ?`

// DueEvents implements store.Store.
func (s *Store) DueEvents(ctx context.Context, now time.Time, limit int) ([]store.Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, dueEventsQuery, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: due events: %w", err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: due events: %w", err)
	}
	return out, nil
}

// MarkDelivered implements store.Store.
func (s *Store) MarkDelivered(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE events SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?`,
			at.UnixMilli(), id)
		return oneRow(res, err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark event %s delivered: %w", id, err)
	}
	return nil
}

// MarkFailed implements store.Store.
func (s *Store) MarkFailed(ctx context.Context, id string, attempts int, next time.Time, lastErr string, gaveUp bool) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE events SET attempts = ?, next_attempt_at = ?, last_error = ?, gave_up = ?
			WHERE id = ?`, attempts, next.UnixMilli(), lastErr, gaveUp, id)
		return oneRow(res, err)
	})
	if err != nil {
		return fmt.Errorf("sqlite: mark event %s failed: %w", id, err)
	}
	return nil
}

// oneRow turns an UPDATE that matched no row into store.ErrNotFound.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// PruneEvents implements store.Store. appendEvents numbers a task's next
// event after the highest seq stored, so that row stays while the task
// exists; a deleted task gets no more events (task IDs are not reused).
func (s *Store) PruneEvents(ctx context.Context, deliveredBefore time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		cut := deliveredBefore.UnixMilli()
		res, err := tx.ExecContext(ctx, `DELETE FROM events
			WHERE (delivered_at < ? OR (delivered_at IS NULL AND gave_up = 1 AND next_attempt_at < ?))
			  AND (seq < (SELECT MAX(m.seq) FROM events m WHERE m.task_id = events.task_id)
			       OR NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = events.task_id))`, cut, cut)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune events: %w", err)
	}
	return int(n), nil
}

// backlogChunk bounds the IDs bound in one query, well under SQLite's limit
// on variables.
const backlogChunk = 500

// EventBacklog implements store.Store.
func (s *Store) EventBacklog(ctx context.Context, taskIDs []string) (map[string]store.EventBacklog, error) {
	out := make(map[string]store.EventBacklog)
	for start := 0; start < len(taskIDs); start += backlogChunk {
		chunk := taskIDs[start:min(start+backlogChunk, len(taskIDs))]
		if err := s.eventBacklog(ctx, chunk, out); err != nil {
			return nil, fmt.Errorf("sqlite: event backlog: %w", err)
		}
	}
	return out, nil
}

func (s *Store) eventBacklog(ctx context.Context, taskIDs []string, out map[string]store.EventBacklog) error {
	// The IDs are padded with "" (no task has it) to one of a few sizes, so
	// that a few prepared statements serve every page size.
	n := backlogChunk
	for _, size := range []int{10, 100} {
		if len(taskIDs) <= size {
			n = size
			break
		}
	}
	args := make([]any, n)
	for i := range args {
		args[i] = ""
	}
	for i, id := range taskIDs {
		args[i] = id
	}
	st, err := s.rs.get(ctx, `SELECT e.task_id, SUM(e.gave_up = 0), SUM(e.gave_up <> 0),
			COALESCE((SELECT h.last_error FROM events h
				WHERE h.task_id = e.task_id AND h.delivered_at IS NULL AND h.gave_up = 0
				ORDER BY h.seq LIMIT 1), '')
		FROM events e
		WHERE e.delivered_at IS NULL AND e.task_id IN (`+placeholders(n)+`)
		GROUP BY e.task_id`)
	if err != nil {
		return err
	}
	rows, err := st[0].QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var b store.EventBacklog
		if err := rows.Scan(&id, &b.Pending, &b.GaveUp, &b.LastError); err != nil {
			return err
		}
		out[id] = b
	}
	return rows.Err()
}
