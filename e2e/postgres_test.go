package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/testpeer"
)

// A node on PostgreSQL (--store postgres://...) relays, and after kill -9
// and a restart against the same database the task runs again without a
// call, once the killed process's lease has expired (a node cannot tell its
// own dead process from a live one cut off from the database).
func TestPostgresStore(t *testing.T) {
	requirePeers(t)
	dsn := testpeer.StartPostgres(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	svc := startService(t, "--store", dsn, "--lease-ttl", "3s")

	id := svc.create(liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst")))
	before := svc.waitState(id, "running", 30*time.Second)
	svc.kill9()
	testpeer.WaitFor(t, 20*time.Second, "destination publisher gone after kill -9", func() bool {
		return ng.Publishers(t, "live", "dst") == 0
	})
	svc.start()
	restarted := time.Now()
	testpeer.WaitFor(t, 30*time.Second, "a new run after the restart", func() bool {
		info := svc.show(id)
		return info["run_state"] == "running" && info["started_at"] != before["started_at"]
	})
	t.Logf("running again %v after the restart (lease TTL 3s)", time.Since(restarted).Round(100*time.Millisecond))
	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "dst"), rec)
	time.Sleep(3 * time.Second)
	r.Stop()
	checkRecording(t, rec, time.Second)
}
