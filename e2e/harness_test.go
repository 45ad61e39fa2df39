// Package e2e runs the real liverelay binary against real peers (nginx-rtmp,
// ffmpeg, ffprobe) on loopback and checks what arrives at the far end.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/testpeer"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "liverelay-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "liverelay")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/liverelay")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build liverelay:", err)
		os.Exit(1)
	}
	code := m.Run()
	testpeer.StopSharedPostgres()
	os.RemoveAll(dir)
	if vodFilesDir != "" {
		os.RemoveAll(vodFilesDir)
	}
	os.Exit(code)
}

const (
	testProject = "0123456789abcdef0123456789abcdef"
	testAK      = "E2ETESTACCESSKEY0001"
	testSK      = "e2e-test-secret-key-0000000000000000000000"
)

// syncBuffer collects a process's output for the failure report.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// service is one liverelay process with its data directory.
type service struct {
	t       *testing.T
	dataDir string
	port    int
	args    []string
	env     []string // besides the bootstrap variables
	cmd     *exec.Cmd
	out     *syncBuffer
	exited  chan struct{}
}

// startService runs liverelay serve on a free port with extra flags.
func startService(t *testing.T, extra ...string) *service {
	t.Helper()
	return startServiceEnv(t, nil, extra...)
}

// startServiceEnv is startService with extra environment variables.
func startServiceEnv(t *testing.T, env []string, extra ...string) *service {
	t.Helper()
	s := &service{t: t, dataDir: t.TempDir(), args: extra, env: env, out: &syncBuffer{}}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("liverelay output:\n%s", s.out.String())
		}
	})
	return s
}

func (s *service) start() {
	s.t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		s.port = testpeer.FreePort(s.t)
		args := append([]string{"serve",
			"--listen", fmt.Sprintf("127.0.0.1:%d", s.port),
			"--data-dir", s.dataDir,
			"--log-level", "debug",
		}, s.args...)
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(),
			"LIVERELAY_BOOTSTRAP_PROJECT_ID="+testProject,
			"LIVERELAY_BOOTSTRAP_ACCESS_KEY="+testAK,
			"LIVERELAY_BOOTSTRAP_SECRET_KEY="+testSK,
		)
		cmd.Env = append(cmd.Env, s.env...)
		cmd.Stdout, cmd.Stderr = s.out, s.out
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("start liverelay: %v", err)
		}
		s.cmd = cmd
		s.exited = make(chan struct{})
		go func(c *exec.Cmd, done chan struct{}) {
			_ = c.Wait()
			close(done)
		}(cmd, s.exited)

		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			select {
			case <-s.exited:
				if strings.Contains(s.out.String(), "address already in use") {
					goto retry
				}
				s.t.Fatalf("liverelay exited at start:\n%s", s.out.String())
			default:
			}
			resp, err := http.Get(s.url("/healthz"))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		s.t.Fatalf("liverelay did not become healthy:\n%s", s.out.String())
	retry:
	}
	s.t.Fatal("no free port for liverelay after 5 attempts")
}

func (s *service) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", s.port, path) }

// kill9 kills the process without letting it clean up.
func (s *service) kill9() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// term sends SIGTERM without waiting.
func (s *service) term() { _ = s.cmd.Process.Signal(syscall.SIGTERM) }

// stop ends the process with SIGTERM and waits (SIGKILL after 15 s).
func (s *service) stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.kill9()
	}
}

// do sends an API request and decodes the JSON answer.
func (s *service) do(method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.url(path), rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	var raw []byte
	if rd != nil {
		raw, _ = io.ReadAll(rd)
		req.Body = io.NopCloser(bytes.NewReader(raw))
		req.ContentLength = int64(len(raw))
	}
	req.Header.Set("X-Project-Id", testProject)
	auth.Sign(req, raw, testAK, testSK, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(answer, &out); err != nil {
		s.t.Fatalf("%s %s: answer is not JSON (%d): %s", method, path, resp.StatusCode, answer)
	}
	if rid := resp.Header.Get("X-Request-Id"); rid == "" || rid != out["request_id"] {
		s.t.Fatalf("%s %s: X-Request-Id %q does not match body request_id %v", method, path, rid, out["request_id"])
	}
	return resp.StatusCode, out
}

const taskPath = "/v1/" + testProject + "/pull/stream/task"

func (s *service) create(body map[string]any) string {
	s.t.Helper()
	status, out := s.do(http.MethodPost, taskPath, body)
	if status != http.StatusOK {
		s.t.Fatalf("create: %d %v", status, out)
	}
	id, _ := out["task_id"].(string)
	if id == "" {
		s.t.Fatalf("create: no task_id in %v", out)
	}
	return id
}

func (s *service) modify(body map[string]any) {
	s.t.Helper()
	status, out := s.do(http.MethodPut, taskPath, body)
	if status != http.StatusOK {
		s.t.Fatalf("modify: %d %v", status, out)
	}
}

// show returns the task's list entry, or nil when it does not exist.
func (s *service) show(id string) map[string]any {
	s.t.Helper()
	status, out := s.do(http.MethodGet, taskPath+"?task_id="+id, nil)
	if status != http.StatusOK {
		s.t.Fatalf("show: %d %v", status, out)
	}
	infos, _ := out["task_infos"].([]any)
	if len(infos) == 0 {
		return nil
	}
	return infos[0].(map[string]any)
}

// waitState polls until the task's run_state is want.
func (s *service) waitState(id, want string, timeout time.Duration) map[string]any {
	s.t.Helper()
	var last map[string]any
	testpeer.WaitFor(s.t, timeout, fmt.Sprintf("task %s run_state %s", id, want), func() bool {
		last = s.show(id)
		return last != nil && last["run_state"] == want
	})
	return last
}

func num(m map[string]any, k string) float64 {
	f, _ := m[k].(float64)
	return f
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
