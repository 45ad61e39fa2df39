package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// CreateTask implements store.Store.
func (s *Store) CreateTask(ctx context.Context, t *task.Task, lim store.CreateLimits) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		// With a quota, creates in one project take turns on its row, so the
		// count read here cannot miss a create that commits meanwhile.
		q := `SELECT task_count FROM projects WHERE id = $1`
		if lim.Quota > 0 {
			q += ` FOR NO KEY UPDATE`
		}
		var n int
		if err := tx.QueryRow(ctx, q, t.ProjectID).Scan(&n); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("project %s: %w", t.ProjectID, store.ErrProjectNotFound)
			}
			return err
		}
		switch err := exists(ctx, tx, `SELECT 1 FROM tasks WHERE id = $1`, t.ID); {
		case err == nil:
			return fmt.Errorf("task id already exists: %w", store.ErrConflict)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if lim.Quota > 0 && n >= lim.Quota {
			return fmt.Errorf("project %s holds %d tasks, quota %d: %w", t.ProjectID, n, lim.Quota, store.ErrQuotaExceeded)
		}
		if err := checkDestination(ctx, tx, t, lim.Now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, taskInsert, taskArgs(t)...); err != nil {
			if isUniqueViolation(err, "tasks_pkey") {
				// Created by another node since the check above.
				return fmt.Errorf("task id already exists: %w", store.ErrConflict)
			}
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE projects SET task_count = task_count + 1 WHERE id = $1`, t.ProjectID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, runStateUpsert, runStateArgs(&task.RunState{TaskID: t.ID, State: task.StateWaiting})...); err != nil {
			return err
		}
		return notify(ctx, tx, store.Change{ProjectID: t.ProjectID, TaskID: t.ID})
	})
	if err != nil {
		return fmt.Errorf("postgres: create task %s: %w", t.ID, err)
	}
	return nil
}

// checkDestination enforces "one enabled, unfinished task per destination"
// against every task but t itself, of any project. It first takes the
// destination's lock, which every create and enabling update of that
// destination takes, so the check and the caller's write are one step for
// the other nodes.
func checkDestination(ctx context.Context, tx pgx.Tx, t *task.Task, now time.Time) error {
	if err := lockXact(ctx, tx, lockDestination+t.DestinationKey); err != nil {
		return err
	}
	var taken bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM tasks t LEFT JOIN run_states r ON r.task_id = t.id
		WHERE t.destination_key = $1 AND t.id <> $2 AND t.status = $3 AND t.end_time > $4
		  AND (r.state IS NULL OR r.state NOT IN ($5, $6)))`,
		t.DestinationKey, t.ID, task.StatusEnable, timeArg(now), task.StateFinished, task.StateFailed,
	).Scan(&taken)
	if err != nil {
		return err
	}
	if taken {
		// The other task may belong to another project: name neither it nor
		// the destination (which can carry a stream key).
		return store.ErrDestinationInUse
	}
	return nil
}

// GetTask implements store.Store.
func (s *Store) GetTask(ctx context.Context, projectID, taskID string) (*task.Task, error) {
	var row taskRow
	err := s.pool.QueryRow(ctx, `SELECT `+taskSelect+` FROM tasks t WHERE t.id = $1 AND t.project_id = $2`,
		taskID, projectID).Scan(row.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get task %s: %w", taskID, err)
	}
	t := row.task()
	return &t, nil
}

// UpdateTask implements store.Store.
func (s *Store) UpdateTask(ctx context.Context, t *task.Task, now time.Time, events ...*store.Event) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		// The row lock makes concurrent updates of one generation take
		// turns: the second reads the first one's generation and conflicts.
		var gen int64
		err := tx.QueryRow(ctx, `SELECT generation FROM tasks WHERE id = $1 AND project_id = $2 FOR NO KEY UPDATE`,
			t.ID, t.ProjectID).Scan(&gen)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if gen != t.Generation-1 {
			return fmt.Errorf("stored generation %d, update carries %d: %w", gen, t.Generation, store.ErrConflict)
		}
		if t.Status == task.StatusEnable {
			if err := checkDestination(ctx, tx, t, now); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, taskUpdate, taskUpdateArgs(t)...); err != nil {
			return err
		}
		if err := appendEvents(ctx, tx, events); err != nil {
			return err
		}
		return notify(ctx, tx, store.Change{ProjectID: t.ProjectID, TaskID: t.ID})
	})
	if err != nil {
		return fmt.Errorf("postgres: update task %s: %w", t.ID, err)
	}
	return nil
}

// DeleteTask implements store.Store. The run state and checkpoint go with the
// task (ON DELETE CASCADE); events stay for delivery.
func (s *Store) DeleteTask(ctx context.Context, projectID, taskID string, events ...*store.Event) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM tasks WHERE id = $1 AND project_id = $2`, taskID, projectID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if _, err := tx.Exec(ctx, `UPDATE projects SET task_count = task_count - 1 WHERE id = $1`, projectID); err != nil {
			return err
		}
		if err := appendEvents(ctx, tx, events); err != nil {
			return err
		}
		return notify(ctx, tx, store.Change{ProjectID: projectID, TaskID: taskID})
	})
	if err != nil {
		return fmt.Errorf("postgres: delete task %s: %w", taskID, err)
	}
	return nil
}

// ListTasks implements store.Store. The count and the page are read from one
// snapshot, so they agree.
func (s *Store) ListTasks(ctx context.Context, f store.ListFilter) ([]store.TaskView, int, error) {
	views, total, err := s.listTasks(ctx, f)
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: list tasks of project %s: %w", f.ProjectID, err)
	}
	return views, total, nil
}

func (s *Store) listTasks(ctx context.Context, f store.ListFilter) (views []store.TaskView, total int, err error) {
	if f.ProjectID == "" {
		return nil, 0, errors.New("no project given")
	}
	where, args := "t.project_id = $1", []any{f.ProjectID}
	if f.TaskID != "" {
		args = append(args, f.TaskID)
		where += fmt.Sprintf(" AND t.id = $%d", len(args))
	}
	if f.Region != "" {
		args = append(args, f.Region)
		where += fmt.Sprintf(" AND t.region = $%d", len(args))
	}
	var limit any // NULL: no limit
	if f.Limit > 0 {
		limit = f.Limit
	}
	snapshot := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	err = pgx.BeginTxFunc(ctx, s.pool, snapshot, func(tx pgx.Tx) error {
		// A whole project's total is its task_count; a filtered one is
		// counted.
		countQuery, countArgs := `SELECT COUNT(*) FROM tasks t WHERE `+where, args
		if f.TaskID == "" && f.Region == "" {
			countQuery, countArgs = `SELECT COALESCE((SELECT task_count FROM projects WHERE id = $1), 0)`, []any{f.ProjectID}
		}
		if err := tx.QueryRow(ctx, countQuery, countArgs...).Scan(&total); err != nil {
			return err
		}
		views = []store.TaskView{}
		if total == 0 {
			return nil
		}
		rows, err := tx.Query(ctx, `SELECT `+taskSelect+`, `+runStateSelect+`
			FROM tasks t LEFT JOIN run_states r ON r.task_id = t.id
			WHERE `+where+`
			ORDER BY t.create_time DESC, t.id DESC
			LIMIT $`+fmt.Sprint(len(args)+1)+` OFFSET $`+fmt.Sprint(len(args)+2),
			append(args, limit, max(f.Offset, 0))...)
		if err != nil {
			return err
		}
		defer rows.Close()
		views = make([]store.TaskView, 0, f.PageLen(total))
		var tr taskRow
		var rr runStateRow
		dest := append(tr.dest(), rr.dest()...) // pointers into tr and rr, cleared for each row
		for rows.Next() {
			tr, rr = taskRow{}, runStateRow{}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			v := store.TaskView{Task: tr.task()}
			if v.State, err = rr.runState(); err != nil {
				return fmt.Errorf("task %s: %w", v.Task.ID, err)
			}
			v.State.TaskID = v.Task.ID
			views = append(views, v)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, err
	}
	return views, total, nil
}

// TasksInRegions implements store.Store.
func (s *Store) TasksInRegions(ctx context.Context, regions []string) ([]task.Task, error) {
	q := `SELECT ` + taskSelect + ` FROM tasks t`
	var args []any
	if len(regions) > 0 {
		q += ` WHERE t.region = ANY($1)`
		args = append(args, regions)
	}
	q += ` ORDER BY t.id`
	tasks, err := s.queryTasks(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: tasks in regions %q: %w", regions, err)
	}
	return tasks, nil
}

func (s *Store) queryTasks(ctx context.Context, q string, args ...any) ([]task.Task, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tasks []task.Task
	for rows.Next() {
		var row taskRow
		if err := rows.Scan(row.dest()...); err != nil {
			return nil, err
		}
		tasks = append(tasks, row.task())
	}
	return tasks, rows.Err()
}

// PutRunState implements store.Store.
func (s *Store) PutRunState(ctx context.Context, rs *task.RunState, events ...*store.Event) error {
	if err := s.write(ctx, func(tx pgx.Tx) error {
		return putRunStates(ctx, tx, []store.RunStateWrite{{State: rs, Events: events}})
	}); err != nil {
		return fmt.Errorf("postgres: put run state of task %s: %w", rs.TaskID, err)
	}
	return nil
}

// PutRunStates implements store.Store.
func (s *Store) PutRunStates(ctx context.Context, writes []store.RunStateWrite) error {
	if len(writes) == 0 {
		return nil
	}
	if err := s.write(ctx, func(tx pgx.Tx) error { return putRunStates(ctx, tx, writes) }); err != nil {
		return fmt.Errorf("postgres: put run states of %d tasks: %w", len(writes), err)
	}
	return nil
}

func putRunStates(ctx context.Context, tx pgx.Tx, writes []store.RunStateWrite) error {
	for _, w := range writes {
		tag, err := tx.Exec(ctx, runStateUpsert, runStateArgs(w.State)...)
		if err != nil {
			return fmt.Errorf("task %s: %w", w.State.TaskID, err)
		}
		if tag.RowsAffected() == 0 {
			continue // the task is gone: its state and events go with it
		}
		if err := appendEvents(ctx, tx, w.Events); err != nil {
			return fmt.Errorf("task %s: %w", w.State.TaskID, err)
		}
	}
	return nil
}

// GetRunState implements store.Store.
func (s *Store) GetRunState(ctx context.Context, taskID string) (*task.RunState, error) {
	var row runStateRow
	err := s.pool.QueryRow(ctx, `SELECT `+runStateSelect+` FROM run_states r WHERE r.task_id = $1`, taskID).Scan(row.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get run state of task %s: %w", taskID, err)
	}
	rs, err := row.runState()
	if err != nil {
		return nil, fmt.Errorf("postgres: get run state of task %s: %w", taskID, err)
	}
	return &rs, nil
}

// PutCheckpoint implements store.Store. Like runStateUpsert, it locks the
// task's row so a concurrent delete either wins or waits.
func (s *Store) PutCheckpoint(ctx context.Context, taskID string, cp task.Checkpoint) error {
	err := s.write(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `WITH t AS (SELECT id FROM tasks WHERE id = $1 FOR KEY SHARE)
			INSERT INTO checkpoints (task_id, loop, file_index, offset_ms)
			SELECT t.id, $2, $3, $4 FROM t
			ON CONFLICT (task_id) DO UPDATE SET
				loop = excluded.loop, file_index = excluded.file_index, offset_ms = excluded.offset_ms`,
			taskID, cp.Loop, cp.Index, cp.OffsetMS)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: put checkpoint of task %s: %w", taskID, err)
	}
	return nil
}

// GetCheckpoint implements store.Store.
func (s *Store) GetCheckpoint(ctx context.Context, taskID string) (*task.Checkpoint, error) {
	var cp task.Checkpoint
	err := s.pool.QueryRow(ctx, `SELECT loop, file_index, offset_ms FROM checkpoints WHERE task_id = $1`, taskID).
		Scan(&cp.Loop, &cp.Index, &cp.OffsetMS)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get checkpoint of task %s: %w", taskID, err)
	}
	return &cp, nil
}

// exists runs a query that selects one row and reports pgx.ErrNoRows when it
// selects none.
func exists(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
	var one int
	return tx.QueryRow(ctx, q, args...).Scan(&one)
}
