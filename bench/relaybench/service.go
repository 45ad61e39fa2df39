package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/liverelay/liverelay/internal/auth"
)

// buildService builds cmd/liverelay of the module the bench runs in.
func buildService(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run the bench from inside the liverelay module, or pass --bin")
	}
	bin := filepath.Join(dir, "liverelay")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/liverelay")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/liverelay: %v\n%s", err, b)
	}
	return bin, nil
}

// service is one liverelay process and a signed API client for its
// bootstrap project.
type service struct {
	proc      *proc
	port      int
	debugPort int // --debug-listen, for a GC before memory readings
	project   string
	ak, sk    string
	hc        *http.Client
}

// startService runs `liverelay serve` on a free port with a new data
// directory under dir, and waits for /healthz.
func startService(ctx context.Context, ps *procs, bin, dir string, extra ...string) (*service, error) {
	pid := make([]byte, 16)
	_, _ = rand.Read(pid)
	ak, sk := auth.NewAccessKey()
	s := &service{
		project: hex.EncodeToString(pid), ak: ak, sk: sk,
		hc: &http.Client{
			Timeout:   30 * time.Second,
			Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute},
		},
	}
	env := []string{
		"LIVERELAY_BOOTSTRAP_PROJECT_ID=" + s.project,
		"LIVERELAY_BOOTSTRAP_ACCESS_KEY=" + ak,
		"LIVERELAY_BOOTSTRAP_SECRET_KEY=" + sk,
	}
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		if s.debugPort, err = freePort(); err != nil {
			return nil, err
		}
		args := append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", dir,
			"--debug-listen", fmt.Sprintf("127.0.0.1:%d", s.debugPort)}, extra...)
		p, err := ps.start("liverelay", env, bin, args...)
		if err != nil {
			return nil, err
		}
		s.proc = p
		deadline := time.Now().Add(30 * time.Second)
		for {
			if p.exited() {
				if strings.Contains(p.output(), "address already in use") {
					break
				}
				return nil, fmt.Errorf("liverelay exited at start: %s", p.output())
			}
			if resp, err := s.hc.Get(s.url("/healthz")); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return s, nil
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				p.kill()
				return nil, fmt.Errorf("liverelay not healthy after 30s: %s", p.output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil, fmt.Errorf("no free port for liverelay after 5 attempts")
}

func (s *service) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", s.port, path) }

func (s *service) taskPath() string { return "/v1/" + s.project + "/pull/stream/task" }

// stop ends the service with SIGTERM (it stops its tasks) and waits.
func (s *service) stop() { s.proc.stop(syscall.SIGTERM, 20*time.Second) }

// do sends a signed request and returns the status and body.
func (s *service) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.url(path), rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Project-Id", s.project)
	auth.Sign(req, body, s.ak, s.sk, time.Now())
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// create creates a task and returns its id.
func (s *service) create(ctx context.Context, body map[string]any) (string, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	status, b, err := s.do(ctx, http.MethodPost, s.taskPath(), raw)
	if err != nil {
		return "", fmt.Errorf("create: %w", err)
	}
	var out struct {
		TaskID string `json:"task_id"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &out) != nil || out.TaskID == "" {
		return "", fmt.Errorf("create: %d %s", status, b)
	}
	return out.TaskID, nil
}

func (s *service) deleteTask(ctx context.Context, id string) error {
	status, b, err := s.do(ctx, http.MethodDelete, s.taskPath()+"?task_id="+id, nil)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("delete: %d %s", status, b)
	}
	return nil
}

// taskInfo is the part of a list entry the bench reads.
type taskInfo struct {
	TaskID    string  `json:"task_id"`
	RunState  string  `json:"run_state"`
	FPS       float64 `json:"fps"`
	Bitrate   int64   `json:"bitrate_bps"`
	FramesOut int64   `json:"frames_out"`
	Failovers int64   `json:"failovers"`
	Reconnect int64   `json:"reconnects"`
	OnBackup  bool    `json:"on_backup"`
}

type listPage struct {
	TaskInfos []taskInfo `json:"task_infos"`
	Total     int        `json:"total"`
}

func (s *service) list(ctx context.Context, offset, limit int) (listPage, error) {
	var page listPage
	status, b, err := s.do(ctx, http.MethodGet, fmt.Sprintf("%s?offset=%d&limit=%d", s.taskPath(), offset, limit), nil)
	if err != nil {
		return page, fmt.Errorf("list: %w", err)
	}
	if status != http.StatusOK {
		return page, fmt.Errorf("list: %d %s", status, b)
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return page, fmt.Errorf("list: %w", err)
	}
	return page, nil
}

// show returns one task.
func (s *service) show(ctx context.Context, id string) (taskInfo, error) {
	var page listPage
	status, b, err := s.do(ctx, http.MethodGet, s.taskPath()+"?task_id="+id, nil)
	if err != nil {
		return taskInfo{}, fmt.Errorf("show: %w", err)
	}
	if status != http.StatusOK || json.Unmarshal(b, &page) != nil || len(page.TaskInfos) == 0 {
		return taskInfo{}, fmt.Errorf("show: %d %s", status, b)
	}
	return page.TaskInfos[0], nil
}

// loggedAt returns the time of the first line of the service's log (text
// format) with msg and task_id=id at or after since, zero if none. The log
// is the one clock of when liverelay noticed something.
func (s *service) loggedAt(id, msg string, since time.Time) time.Time {
	// The log's times have milliseconds.
	since = since.Truncate(time.Millisecond)
	for line := range strings.Lines(s.proc.output()) {
		if !strings.Contains(line, `msg="`+msg+`"`) || !slices.Contains(strings.Fields(line), "task_id="+id) {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if t, err := time.Parse(time.RFC3339Nano, stamp); err == nil && !t.Before(since) {
			return t
		}
	}
	return time.Time{}
}

// listAll pages through every task.
func (s *service) listAll(ctx context.Context) ([]taskInfo, error) {
	var all []taskInfo
	for {
		page, err := s.list(ctx, len(all), 100)
		if err != nil {
			return nil, err
		}
		all = append(all, page.TaskInfos...)
		if len(page.TaskInfos) == 0 || len(all) >= page.Total {
			return all, nil
		}
	}
}

// goMetrics reads Go runtime gauges from /metrics, after a garbage
// collection (the heap profile's gc=1), so that the heap figures are what
// is live, not how far the collector let garbage pile up.
func (s *service) goMetrics(ctx context.Context) (map[string]float64, error) {
	gc, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1", s.debugPort), nil)
	if err != nil {
		return nil, err
	}
	if resp, err := s.hc.Do(gc); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	} else {
		return nil, fmt.Errorf("collect garbage: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url("/metrics"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		switch name {
		case "go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_sys_bytes", "go_memstats_heap_alloc_bytes",
			"go_gc_duration_seconds_count", "go_gc_duration_seconds_sum", "go_memstats_alloc_bytes_total":
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				out[name] = v
			}
		}
	}
	return out, sc.Err()
}
