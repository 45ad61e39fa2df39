package sqlite

import (
	"context"
	"database/sql"

	"github.com/liverelay/liverelay/internal/store"
)

// appendEvents adds events to the outbox inside tx, numbering them after the
// task's last event.
func appendEvents(ctx context.Context, tx *sql.Tx, events []*store.Event) error {
	for _, ev := range events {
		if ev == nil {
			continue
		}
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE task_id = ?`, ev.TaskID).Scan(&ev.Seq)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO events
			(id, task_id, project_id, seq, type, created_at, body, final, callback_url, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.ID, ev.TaskID, ev.ProjectID, ev.Seq, ev.Name, ev.Time.UnixMilli(), string(ev.Payload),
			ev.Final, ev.CallbackURL, ev.Time.UnixMilli())
		if err != nil {
			return err
		}
	}
	return nil
}
