package sqlite

import (
	"strings"
	"testing"
)

// TestQueriesUseIndexes guards the plans of the hot queries: no scan of the
// tasks table and no sort, whatever the filter, and counts that read an
// index only.
func TestQueriesUseIndexes(t *testing.T) {
	s := openTemp(t)
	list := func(where string) string {
		return `SELECT ` + taskSelect + `, ` + runStateSelect + ` FROM tasks t LEFT JOIN run_states r ON r.task_id = t.id
			WHERE ` + where + ` ORDER BY t.create_time DESC, t.id DESC LIMIT 10 OFFSET 0`
	}
	for _, q := range []string{
		list(`t.project_id = 'p'`),
		list(`t.project_id = 'p' AND t.region = 'r'`),
		list(`t.project_id = 'p' AND t.id = 'x'`),
		`SELECT COUNT(*) FROM tasks t WHERE t.project_id = 'p'`,
		`SELECT COUNT(*) FROM tasks t WHERE t.project_id = 'p' AND t.region = 'r'`,
		`SELECT 1 FROM tasks t LEFT JOIN run_states r ON r.task_id = t.id WHERE t.destination_key = 'k' AND t.id <> 'x'`,
	} {
		rows, err := s.r.Query(`EXPLAIN QUERY PLAN ` + q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		all := strings.Join(plan, "; ")
		counts := strings.Contains(q, "COUNT(*)")
		if strings.Contains(all, "SCAN t") || strings.Contains(all, "TEMP B-TREE") || counts && !strings.Contains(all, "COVERING INDEX") {
			t.Errorf("plan of %s:\n%s", q, all)
		}
	}
}
