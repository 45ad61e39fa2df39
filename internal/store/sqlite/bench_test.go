package sqlite

import (
	"database/sql"
	"testing"

	"github.com/liverelay/liverelay/internal/store"
)

// BenchmarkCreateTask measures one durable create (quota count, destination
// check, two inserts, fsync) in a project that grows as it runs.
func BenchmarkCreateTask(b *testing.B) {
	s := openTemp(b)
	ctx := b.Context()
	if err := s.PutProject(ctx, &store.Project{ID: crashProject}); err != nil {
		b.Fatal(err)
	}
	lim := store.CreateLimits{Quota: 1 << 30, Now: crashEpoch}
	n := 0
	for b.Loop() {
		n++
		if err := s.CreateTask(ctx, crashTask(n), lim); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListTasks lists pages of a project holding 10,000 tasks.
func BenchmarkListTasks(b *testing.B) {
	const tasks = 10_000
	s := openTemp(b)
	ctx := b.Context()
	if err := s.PutProject(ctx, &store.Project{ID: crashProject}); err != nil {
		b.Fatal(err)
	}
	// Filled in one transaction: 10,000 separate durable creates would
	// measure the disk, not the list.
	err := s.write(ctx, func(tx *sql.Tx) error {
		for n := 1; n <= tasks; n++ {
			if _, err := tx.ExecContext(ctx, taskInsert, taskArgs(crashTask(n))...); err != nil {
				return err
			}
			if err := putRunState(ctx, tx, crashRunState(n)); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE projects SET task_count = ? WHERE id = ?`, tasks, crashProject)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		f    store.ListFilter
		want int
	}{
		{"first-page", store.ListFilter{ProjectID: crashProject, Limit: 10}, 10},
		{"first-page-of-100", store.ListFilter{ProjectID: crashProject, Limit: 100}, 100},
		{"last-page", store.ListFilter{ProjectID: crashProject, Offset: tasks - 10, Limit: 10}, 10},
		{"last-page-of-100", store.ListFilter{ProjectID: crashProject, Offset: tasks - 100, Limit: 100}, 100},
		{"region", store.ListFilter{ProjectID: crashProject, Region: "region-1", Limit: 10}, 10},
		{"one-task", store.ListFilter{ProjectID: crashProject, TaskID: crashTask(tasks / 2).ID, Limit: 10}, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				views, total, err := s.ListTasks(ctx, bc.f)
				if err != nil || len(views) != bc.want || total == 0 || bc.f.TaskID == "" && bc.f.Region == "" && total != tasks {
					b.Fatalf("ListTasks: %d views, total %d, %v", len(views), total, err)
				}
			}
		})
	}
}
