package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/testpeer"
)

// With no bootstrap variables and an empty store, the service creates a
// project and a key pair, prints them once and keeps them in a 0600 file.
func TestBootstrapGeneratesCredentialsOnce(t *testing.T) {
	dir := t.TempDir()
	run := func() string {
		port := testpeer.FreePort(t)
		cmd := exec.Command(binPath, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", dir)
		cmd.Env = append(os.Environ(), "LIVERELAY_BOOTSTRAP_PROJECT_ID=", "LIVERELAY_BOOTSTRAP_ACCESS_KEY=", "LIVERELAY_BOOTSTRAP_SECRET_KEY=")
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testpeer.WaitFor(t, 20*time.Second, "service healthy", func() bool {
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		return out.String()
	}

	first := run()
	path := filepath.Join(dir, "bootstrap.json")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no bootstrap.json: %v\n%s", err, first)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap.json mode %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	var creds map[string]string
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"project_id", "access_key", "secret_key"} {
		if creds[k] == "" || !strings.Contains(first, creds[k]) {
			t.Fatalf("%s missing from the file or not printed once", k)
		}
	}
	if second := run(); strings.Contains(second, creds["secret_key"]) || strings.Contains(second, "created a project") {
		t.Fatalf("second start printed credentials again:\n%s", second)
	}
	// The store never holds the secret key in plain text.
	db, _ := os.ReadFile(filepath.Join(dir, "liverelay.db"))
	wal, _ := os.ReadFile(filepath.Join(dir, "liverelay.db-wal"))
	if strings.Contains(string(db)+string(wal), creds["secret_key"]) {
		t.Fatal("the secret key is stored in plain text")
	}
}

func TestMetrics(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	svc := startService(t)
	id := svc.create(liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst")))
	svc.waitState(id, "running", 30*time.Second)

	metric := func(body, name string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` ([0-9.e+]+)$`).FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	var body string
	testpeer.WaitFor(t, 10*time.Second, "bytes out counted", func() bool {
		resp, err := http.Get(svc.url("/metrics"))
		if err != nil {
			return false
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(raw)
		return metric(body, "liverelay_relay_bytes_out_total") > 0
	})
	if v := metric(body, `liverelay_tasks{run_state="running"}`); v != 1 {
		t.Errorf("tasks running = %v, want 1", v)
	}
	if v := metric(body, "liverelay_relay_frames_out_total"); v <= 0 {
		t.Errorf("frames out = %v", v)
	}
	if v := metric(body, `liverelay_api_requests_total{call="create",status="200"}`); v != 1 {
		t.Errorf("create requests = %v, want 1", v)
	}
}
