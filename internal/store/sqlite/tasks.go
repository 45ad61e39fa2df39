package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// CreateTask implements store.Store.
func (s *Store) CreateTask(ctx context.Context, t *task.Task, lim store.CreateLimits) error {
	st, err := s.ws.get(ctx, projectTaskCount, taskExists, destinationTaken, taskInsert, countTaskAdded, runStateUpsert)
	if err != nil {
		return fmt.Errorf("sqlite: create task %s: %w", t.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.StmtContext(ctx, st[0]).QueryRowContext(ctx, t.ProjectID).Scan(&n); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("project %s: %w", t.ProjectID, store.ErrProjectNotFound)
			}
			return err
		}
		var one int
		switch err := tx.StmtContext(ctx, st[1]).QueryRowContext(ctx, t.ID).Scan(&one); {
		case err == nil:
			return fmt.Errorf("task id already exists: %w", store.ErrConflict)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if lim.Quota > 0 && n >= lim.Quota {
			return fmt.Errorf("project %s holds %d tasks, quota %d: %w", t.ProjectID, n, lim.Quota, store.ErrQuotaExceeded)
		}
		if err := checkDestination(ctx, tx.StmtContext(ctx, st[2]), t, lim.Now); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, st[3]).ExecContext(ctx, taskArgs(t)...); err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, st[4]).ExecContext(ctx, t.ProjectID); err != nil {
			return err
		}
		rs := &task.RunState{TaskID: t.ID, State: task.StateWaiting}
		_, err := tx.StmtContext(ctx, st[5]).ExecContext(ctx, append(runStateArgs(rs), rs.TaskID)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create task %s: %w", t.ID, err)
	}
	return nil
}

// The statements of create, prepared once (see stmtCache).
const (
	projectTaskCount = `SELECT task_count FROM projects WHERE id = ?`
	taskExists       = `SELECT 1 FROM tasks WHERE id = ?`
	countTaskAdded   = `UPDATE projects SET task_count = task_count + 1 WHERE id = ?`
	destinationTaken = `SELECT EXISTS (
		SELECT 1 FROM tasks t LEFT JOIN run_states r ON r.task_id = t.id
		WHERE t.destination_key = ? AND t.id <> ? AND t.status = ? AND t.end_time > ?
		  AND (r.state IS NULL OR r.state NOT IN (?, ?)))`
)

// checkDestination enforces "one enabled, unfinished task per destination"
// against every task but t itself, of any project; taken is the statement
// destinationTaken of the transaction.
func checkDestination(ctx context.Context, taken *sql.Stmt, t *task.Task, now time.Time) error {
	var isTaken bool
	err := taken.QueryRowContext(ctx,
		t.DestinationKey, t.ID, task.StatusEnable, now.UnixMilli(), task.StateFinished, task.StateFailed,
	).Scan(&isTaken)
	if err != nil {
		return err
	}
	if isTaken {
		// The other task may belong to another project: name neither it nor
		// the destination (which can carry a stream key).
		return store.ErrDestinationInUse
	}
	return nil
}

// GetTask implements store.Store.
func (s *Store) GetTask(ctx context.Context, projectID, taskID string) (*task.Task, error) {
	var row taskRow
	err := s.r.QueryRowContext(ctx, `SELECT `+taskSelect+` FROM tasks t WHERE t.id = ? AND t.project_id = ?`,
		taskID, projectID).Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get task %s: %w", taskID, err)
	}
	t, err := row.task()
	if err != nil {
		return nil, fmt.Errorf("sqlite: get task %s: %w", taskID, err)
	}
	return &t, nil
}

// UpdateTask implements store.Store.
func (s *Store) UpdateTask(ctx context.Context, t *task.Task, now time.Time, events ...*store.Event) error {
	st, err := s.ws.get(ctx, destinationTaken)
	if err != nil {
		return fmt.Errorf("sqlite: update task %s: %w", t.ID, err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		var gen int64
		err := tx.QueryRowContext(ctx, `SELECT generation FROM tasks WHERE id = ? AND project_id = ?`,
			t.ID, t.ProjectID).Scan(&gen)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if gen != t.Generation-1 {
			return fmt.Errorf("stored generation %d, update carries %d: %w", gen, t.Generation, store.ErrConflict)
		}
		if t.Status == task.StatusEnable {
			if err := checkDestination(ctx, tx.StmtContext(ctx, st[0]), t, now); err != nil {
				return err
			}
		}
		if _, err = tx.ExecContext(ctx, taskUpdate, taskUpdateArgs(t)...); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: update task %s: %w", t.ID, err)
	}
	return nil
}

// DeleteTask implements store.Store. The run state and checkpoint go with the
// task (ON DELETE CASCADE); events stay for delivery.
func (s *Store) DeleteTask(ctx context.Context, projectID, taskID string, events ...*store.Event) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM tasks WHERE id = ? AND project_id = ?`, taskID, projectID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, `UPDATE projects SET task_count = task_count - 1 WHERE id = ?`, projectID); err != nil {
			return err
		}
		return appendEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete task %s: %w", taskID, err)
	}
	return nil
}

// ListTasks implements store.Store. The count and the page are read in one
// transaction, so they agree.
func (s *Store) ListTasks(ctx context.Context, f store.ListFilter) ([]store.TaskView, int, error) {
	views, total, err := s.listTasks(ctx, f)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite: list tasks of project %s: %w", f.ProjectID, err)
	}
	return views, total, nil
}

func (s *Store) listTasks(ctx context.Context, f store.ListFilter) (_ []store.TaskView, _ int, err error) {
	if f.ProjectID == "" {
		return nil, 0, errors.New("no project given")
	}
	where, args := "t.project_id = ?", []any{f.ProjectID}
	if f.TaskID != "" {
		where += " AND t.id = ?"
		args = append(args, f.TaskID)
	}
	if f.Region != "" {
		where += " AND t.region = ?"
		args = append(args, f.Region)
	}

	// A whole project's total is its task_count; a filtered one is counted
	// (on an index that covers the filter).
	countQuery, countArgs := `SELECT COUNT(*) FROM tasks t WHERE `+where, args
	if f.TaskID == "" && f.Region == "" {
		countQuery, countArgs = `SELECT COALESCE((SELECT task_count FROM projects WHERE id = ?), 0)`, []any{f.ProjectID}
	}
	// The page is found on the index alone (skipping OFFSET entries of it
	// rather than whole joined rows), then read.
	pageQuery := `SELECT ` + taskSelect + `, ` + runStateSelect + `
		FROM tasks t LEFT JOIN run_states r ON r.task_id = t.id
		WHERE t.id IN (SELECT t.id FROM tasks t WHERE ` + where + `
			ORDER BY t.create_time DESC, t.id DESC LIMIT ? OFFSET ?)
		ORDER BY t.create_time DESC, t.id DESC`
	st, err := s.rs.get(ctx, countQuery, pageQuery)
	if err != nil {
		return nil, 0, err
	}

	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, err
	}
	defer func() { err = rollback(tx, err) }() // read only: nothing to commit

	var total int
	if err := tx.StmtContext(ctx, st[0]).QueryRowContext(ctx, countArgs...).Scan(&total); err != nil {
		return nil, 0, err
	}
	views := []store.TaskView{}
	if total == 0 {
		return views, 0, nil
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := tx.StmtContext(ctx, st[1]).QueryContext(ctx, append(args, limit, max(f.Offset, 0))...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	views = make([]store.TaskView, 0, f.PageLen(total))
	var tr taskRow
	var rr runStateRow
	dest := append(tr.dest(), rr.dest()...) // pointers into tr and rr, cleared for each row
	for rows.Next() {
		tr, rr = taskRow{}, runStateRow{}
		if err := rows.Scan(dest...); err != nil {
			return nil, 0, err
		}
		var v store.TaskView
		if v.Task, err = tr.task(); err != nil {
			return nil, 0, fmt.Errorf("task %s: %w", tr.t.ID, err)
		}
		if v.State, err = rr.runState(); err != nil {
			return nil, 0, fmt.Errorf("task %s: %w", tr.t.ID, err)
		}
		v.State.TaskID = v.Task.ID
		views = append(views, v)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	return views, total, nil
}

// TasksInRegions implements store.Store.
func (s *Store) TasksInRegions(ctx context.Context, regions []string) ([]task.Task, error) {
	q := `SELECT ` + taskSelect + ` FROM tasks t`
	args := make([]any, len(regions))
	if len(regions) > 0 {
		q += ` WHERE t.region IN (` + placeholders(len(regions)) + `)`
		for i, r := range regions {
			args[i] = r
		}
	}
	q += ` ORDER BY t.id`
	tasks, err := s.queryTasks(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: tasks in regions %q: %w", regions, err)
	}
	return tasks, nil
}

func (s *Store) queryTasks(ctx context.Context, q string, args ...any) ([]task.Task, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
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
		t, err := row.task()
		if err != nil {
			return nil, fmt.Errorf("task %s: %w", row.t.ID, err)
		}
		tasks = append(tasks, t)
	}
	return tasks, rows.Err()
}

// PutRunState implements store.Store.
func (s *Store) PutRunState(ctx context.Context, rs *task.RunState, events ...*store.Event) error {
	if err := s.putRunStates(ctx, []store.RunStateWrite{{State: rs, Events: events}}); err != nil {
		return fmt.Errorf("sqlite: put run state of task %s: %w", rs.TaskID, err)
	}
	return nil
}

// PutRunStates implements store.Store.
func (s *Store) PutRunStates(ctx context.Context, writes []store.RunStateWrite) error {
	if len(writes) == 0 {
		return nil
	}
	if err := s.putRunStates(ctx, writes); err != nil {
		return fmt.Errorf("sqlite: put run states of %d tasks: %w", len(writes), err)
	}
	return nil
}

// putRunStates upserts the states in one transaction, with the prepared
// upsert.
func (s *Store) putRunStates(ctx context.Context, writes []store.RunStateWrite) error {
	st, err := s.ws.get(ctx, runStateUpsert)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		return upsertRunStates(ctx, tx, tx.StmtContext(ctx, st[0]), writes)
	})
}

func upsertRunStates(ctx context.Context, tx *sql.Tx, upsert *sql.Stmt, writes []store.RunStateWrite) error {
	for _, w := range writes {
		res, err := upsert.ExecContext(ctx, append(runStateArgs(w.State), w.State.TaskID)...)
		if err != nil {
			return fmt.Errorf("task %s: %w", w.State.TaskID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			continue // the task is gone: its state and events go with it
		}
		if err := appendEvents(ctx, tx, w.Events); err != nil {
			return fmt.Errorf("task %s: %w", w.State.TaskID, err)
		}
	}
	return nil
}

func putRunState(ctx context.Context, tx *sql.Tx, rs *task.RunState) error {
	_, err := tx.ExecContext(ctx, runStateUpsert, append(runStateArgs(rs), rs.TaskID)...)
	return err
}

// GetRunState implements store.Store.
func (s *Store) GetRunState(ctx context.Context, taskID string) (*task.RunState, error) {
	var row runStateRow
	err := s.r.QueryRowContext(ctx, `SELECT `+runStateSelect+` FROM run_states r WHERE r.task_id = ?`, taskID).Scan(row.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get run state of task %s: %w", taskID, err)
	}
	rs, err := row.runState()
	if err != nil {
		return nil, fmt.Errorf("sqlite: get run state of task %s: %w", taskID, err)
	}
	return &rs, nil
}

// PutCheckpoint implements store.Store.
func (s *Store) PutCheckpoint(ctx context.Context, taskID string, cp task.Checkpoint) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (task_id, loop, file_index, offset_ms)
			SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tasks WHERE id = ?)
			ON CONFLICT (task_id) DO UPDATE SET
				loop = excluded.loop, file_index = excluded.file_index, offset_ms = excluded.offset_ms`,
			taskID, cp.Loop, cp.Index, cp.OffsetMS, taskID)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put checkpoint of task %s: %w", taskID, err)
	}
	return nil
}

// GetCheckpoint implements store.Store.
func (s *Store) GetCheckpoint(ctx context.Context, taskID string) (*task.Checkpoint, error) {
	var cp task.Checkpoint
	err := s.r.QueryRowContext(ctx, `SELECT loop, file_index, offset_ms FROM checkpoints WHERE task_id = ?`, taskID).
		Scan(&cp.Loop, &cp.Index, &cp.OffsetMS)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get checkpoint of task %s: %w", taskID, err)
	}
	return &cp, nil
}

// exists runs a query that selects one row and reports sql.ErrNoRows when it
// selects none.
func exists(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
	var one int
	return tx.QueryRowContext(ctx, q, args...).Scan(&one)
}
