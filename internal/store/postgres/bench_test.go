//go:build unix

package postgres

import (
	"testing"

	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

// BenchmarkHeartbeats writes the run states of 100 leased tasks, as a node's
// heartbeat does each second: each in its own transaction, or all in one.
// ns/op is the cost of one round of heartbeats.
func BenchmarkHeartbeats(b *testing.B) {
	const tasks = 100
	nodes := leaseFixture(b, tasks)
	grants, err := nodes[0].ClaimTasks(b.Context(), "node-a", taskIDs(tasks), tasks, testTTL)
	if err != nil || len(grants) != tasks {
		b.Fatal(grants, err)
	}
	writes := make([]store.LeasedWrite, tasks)
	for i, g := range grants {
		writes[i] = store.LeasedWrite{Lease: g.Lease, State: &task.RunState{TaskID: g.Lease.TaskID, State: task.StateRunning, NodeID: "node-a"}}
	}
	b.Run("one-transaction-each", func(b *testing.B) {
		for b.Loop() {
			for _, w := range writes {
				w.State.FramesOut++
				if err := nodes[0].PutRunStateLeased(b.Context(), w.Lease, false, w.State); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("one-transaction", func(b *testing.B) {
		for b.Loop() {
			for _, w := range writes {
				w.State.FramesOut++
			}
			errs, err := nodes[0].PutRunStatesLeased(b.Context(), writes)
			if err != nil {
				b.Fatal(err)
			}
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
