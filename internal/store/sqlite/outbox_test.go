package sqlite

import (
	"strings"
	"testing"
)

// TestDueEventsPlan guards the deliverer's poll, which runs every second:
// it reads the due pending events through events_due and checks each one's
// task through events_task_pending, never scanning the outbox, whose
// delivered events stay for the retention time.
func TestDueEventsPlan(t *testing.T) {
	s := openTemp(t)
	rows, err := s.r.Query(`EXPLAIN QUERY PLAN `+dueEventsQuery, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	all := strings.Join(plan, "; ")
	if strings.Contains(all, "SCAN") || !strings.Contains(all, "events_due") || !strings.Contains(all, "events_task_pending") {
		t.Errorf("plan of DueEvents:\n%s", all)
	}
}
