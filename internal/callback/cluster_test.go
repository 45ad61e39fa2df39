//go:build unix

package callback

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/store/postgres"
	"github.com/liverelay/liverelay/internal/testpeer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testpeer.StopSharedPostgres()
	os.Exit(code)
}

func openPostgres(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Two nodes deliver one outbox: each event is accepted once (no node sends
// an event another holds), every task's events arrive in seq order, retries
// included, and both nodes take part.
func TestSharedOutboxOneDelivererPerEvent(t *testing.T) {
	const tasks, perTask = 10, 5
	dsn := testpeer.StartPostgres(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		time.Sleep(5 * time.Millisecond) // a window for a second sender, were there one
		if n%7 == 3 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	for i := range tasks {
		tk := addTask(t, a, "p", fmt.Sprintf("t%d", i), rc.url("/hook"))
		emit(t, a, tk, eventNames(perTask)...)
	}
	_, stopA := start(t, Options{Store: a, Claims: a, NodeID: "node-a", Workers: 4})
	_, stopB := start(t, Options{Store: b, Claims: b, NodeID: "node-b", Workers: 4})
	waitFor(t, "every event delivered", func() bool {
		for i := range tasks {
			if len(rc.delivered(fmt.Sprintf("t%d", i))) < perTask {
				return false
			}
		}
		return true
	})
	stopA()
	stopB()
	accepted := map[string]int{}
	for _, r := range rc.requests() {
		if r.status/100 == 2 {
			accepted[r.header.Get(EventIDHeader)]++
		}
	}
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("event %s accepted %d times", id, n)
		}
	}
	if len(accepted) != tasks*perTask {
		t.Fatalf("%d events accepted, want %d", len(accepted), tasks*perTask)
	}
	for i := range tasks {
		checkOrder(t, rc, fmt.Sprintf("t%d", i), perTask)
	}
	if b := pending(t, a, "t0", "t9"); len(b) != 0 {
		t.Fatalf("backlog after delivery: %+v", b)
	}
}
