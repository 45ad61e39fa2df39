package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/testpeer"
)

// A node on PostgreSQL (--store postgres://...) relays, and after kill -9
// and a restart against the same database the task runs again without a
// call.
func TestPostgresStore(t *testing.T) {
	requirePeers(t)
	dsn := testpeer.StartPostgres(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	svc := startService(t, "--store", dsn)

	id := svc.create(liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst")))
	svc.waitState(id, "running", 30*time.Second)
	svc.kill9()
	testpeer.WaitFor(t, 20*time.Second, "destination publisher gone after kill -9", func() bool {
		return ng.Publishers(t, "live", "dst") == 0
	})
	svc.start()
	svc.waitState(id, "running", 30*time.Second)
	rec := filepath.Join(t.TempDir(), "dst.flv")
	r := testpeer.Record(t, ng.RTMPURL("live", "dst"), rec)
	time.Sleep(3 * time.Second)
	r.Stop()
	checkRecording(t, rec, time.Second)
}
