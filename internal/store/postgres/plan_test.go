//go:build unix

package postgres

import (
	"strings"
	"testing"
	"time"
)

// TestDueEventsPlan guards the deliverer's poll, which runs every second:
// over an outbox of mostly delivered events (they stay for the retention
// time), it must read only the partial indexes of pending events,
// events_due and events_task_pending, never scan the table or a full index.
// That holds only while their predicates match the query's.
func TestDueEventsPlan(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, `INSERT INTO events
		(id, task_id, project_id, seq, type, created_at, body, final, callback_url, next_attempt_at, delivered_at, gave_up)
		SELECT 'e' || i, 't' || (i % 100), 'p', i, 'TaskAlarm', now(), '{}', false, '', now(),
			CASE WHEN i % 1000 = 0 THEN NULL ELSE now() END, i % 1000 = 500
		FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	rows, err := s.pool.Query(ctx, `EXPLAIN `+dueEventsQuery, timeArg(time.Now()), 10)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(plan, "\n")
	scans := strings.Count(all, "Scan")
	partial := strings.Count(all, "Scan using events_due") + strings.Count(all, "Scan using events_task_pending")
	if scans == 0 || scans != partial {
		t.Errorf("DueEvents reads more than the pending events' indexes:\n%s", all)
	}
	t.Logf("plan of DueEvents:\n%s", all)
}
