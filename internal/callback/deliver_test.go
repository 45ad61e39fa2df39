package callback

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/sqlite"
	"github.com/liverelay/liverelay/internal/task"
)

// The tests run a real Deliverer against real HTTP receivers on 127.0.0.1,
// with a real store, and short backoffs. They wait for outcomes with
// generous deadlines and never assert on how long something took.

var serverKey = []byte("server-wide signing key")

// waitFor polls cond until it holds, or fails the test after a deadline
// meant for a busy machine, not a fast one.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

func tempStore(t *testing.T) *sqlite.Store {
	st := openStore(t, filepath.Join(t.TempDir(), "liverelay.db"))
	t.Cleanup(func() { st.Close() })
	return st
}

// addTask stores a paused task of the project (created if need be) that
// posts its callbacks to url.
func addTask(t *testing.T, st store.Store, projectID, taskID, url string) *task.Task {
	t.Helper()
	ctx := t.Context()
	if err := st.PutProject(ctx, &store.Project{ID: projectID, AccountID: "acct", Region: "r1"}); err != nil {
		t.Fatalf("PutProject: %v", err)
	}
	tk := &task.Task{ID: taskID, ProjectID: projectID, Region: "r1", SourceType: task.PullVodPushLive,
		Destination: "rtmp://ingest.example/live/" + taskID, DestinationKey: "rtmp://ingest.example/live/" + taskID,
		CallbackURL: url, Status: task.StatusPause, Generation: 1}
	if err := st.CreateTask(ctx, tk, store.CreateLimits{}); err != nil {
		t.Fatalf("CreateTask: %v", err)
	}
	return tk
}

// emit stores one event per name for the task, each with its own run-state
// write, as the scheduler does.
func emit(t *testing.T, st store.Store, tk *task.Task, names ...string) []*store.Event {
	t.Helper()
	var evs []*store.Event
	for i, name := range names {
		ev := NewEvent(tk, name, false, map[string]any{"n": i}, time.Now())
		if err := st.PutRunState(t.Context(), &task.RunState{TaskID: tk.ID, State: task.StateRunning}, ev); err != nil {
			t.Fatalf("PutRunState: %v", err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func eventNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = task.AllEvents[i%len(task.AllEvents)]
	}
	return names
}

// request is one callback request as a receiver saw it.
type request struct {
	header http.Header
	body   []byte
	taskID string
	seq    int64
	status int // what the receiver answered; 0: no answer
}

// receiver is a callback endpoint on 127.0.0.1 that records every request
// and answers as respond says: a status, or 0 for no answer (respond then
// does what it likes with the connection).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	respond func(w http.ResponseWriter, r *http.Request, n int) int // n: requests before this one
}

func newReceiver(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int) int) *receiver {
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var head struct {
		TaskID string `json:"task_id"`
		Seq    int64  `json:"seq"`
	}
	json.Unmarshal(body, &head)
	rc.mu.Lock()
	n := len(rc.reqs)
	rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), body: body, taskID: head.TaskID, seq: head.Seq})
	rc.mu.Unlock()
	status := rc.respond(w, r, n)
	rc.mu.Lock()
	rc.reqs[n].status = status
	rc.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
	}
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

// delivered returns the seqs the receiver accepted for a task, in order.
func (rc *receiver) delivered(taskID string) []int64 {
	var seqs []int64
	for _, r := range rc.requests() {
		if r.taskID == taskID && r.status/100 == 2 {
			seqs = append(seqs, r.seq)
		}
	}
	return seqs
}

func (rc *receiver) url(path string) string { return rc.srv.URL + path }

// checkOrder checks that the receiver never got a task's event before the
// previous one was accepted, and that it accepted seqs 1..n.
func checkOrder(t *testing.T, rc *receiver, taskID string, n int) {
	t.Helper()
	var accepted int64
	for _, r := range rc.requests() {
		if r.taskID != taskID {
			continue
		}
		if r.seq > accepted+1 {
			t.Errorf("task %s: seq %d sent while seq %d was not delivered", taskID, r.seq, accepted+1)
		}
		if r.status/100 == 2 && r.seq == accepted+1 {
			accepted++
		}
	}
	if accepted != int64(n) {
		t.Errorf("task %s: delivered up to seq %d, want %d", taskID, accepted, n)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// start runs a Deliverer until the test ends (or stop is called).
func start(t *testing.T, opt Options) (d *Deliverer, stop func()) {
	t.Helper()
	if opt.BackoffMin == 0 {
		opt.BackoffMin, opt.BackoffMax = 20*time.Millisecond, 100*time.Millisecond
	}
	if opt.Logger == nil {
		opt.Logger = quietLogger()
	}
	if opt.ServerKey == nil {
		opt.ServerKey = serverKey
	}
	d = NewDeliverer(opt)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

func pending(t *testing.T, st store.Store, ids ...string) map[string]store.EventBacklog {
	t.Helper()
	b, err := st.EventBacklog(context.Background(), ids)
	if err != nil {
		t.Fatalf("EventBacklog: %v", err)
	}
	return b
}

func TestDeliverRetriesInOrderSigned(t *testing.T) {
	st := tempStore(t)
	keyring, err := auth.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	projectKey := []byte("project p2's own key")
	// The first 7 requests fail, whatever task they are for.
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		if n < 7 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	a := addTask(t, st, "p1", "task-a", rc.url("/hook?token=s3cret"))
	b := addTask(t, st, "p2", "task-b", rc.url("/other"))
	sealed, err := keyring.Seal(projectKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetProjectCallbackKey(t.Context(), "p2", sealed); err != nil {
		t.Fatal(err)
	}
	stored := map[string]*store.Event{}
	for _, ev := range append(emit(t, st, a, eventNames(6)...), emit(t, st, b, eventNames(4)...)...) {
		stored[ev.ID] = ev
	}

	d, _ := start(t, Options{Store: st, Keyring: keyring, Workers: 4})
	d.Notify()
	waitFor(t, "every event delivered", func() bool {
		return len(rc.delivered("task-a")) >= 6 && len(rc.delivered("task-b")) >= 4 &&
			len(pending(t, st, "task-a", "task-b")) == 0
	})
	checkOrder(t, rc, "task-a", 6)
	checkOrder(t, rc, "task-b", 4)

	for i, r := range rc.requests() {
		key := serverKey
		if r.taskID == "task-b" {
			key = projectKey
		}
		if err := Verify(key, r.body, r.header.Get(SignatureHeader), time.Now(), time.Minute); err != nil {
			t.Errorf("request %d (%s #%d): signature: %v", i, r.taskID, r.seq, err)
		}
		if r.taskID == "task-b" && Verify(serverKey, r.body, r.header.Get(SignatureHeader), time.Now(), 0) == nil {
			t.Errorf("request %d: a project with its own key was signed with the server key", i)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
		if ua := r.header.Get("User-Agent"); ua != "liverelay" {
			t.Errorf("request %d: User-Agent %q", i, ua)
		}
		// The body is the stored payload with the store's seq added.
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("request %d: body %s: %v", i, r.body, err)
		}
		id, _ := body["event_id"].(string)
		ev := stored[id]
		if ev == nil || r.header.Get(EventIDHeader) != id {
			t.Fatalf("request %d: event_id %q, header %q: not a stored event", i, id, r.header.Get(EventIDHeader))
		}
		if body["seq"] != float64(ev.Seq) {
			t.Errorf("request %d: seq %v, want %d", i, body["seq"], ev.Seq)
		}
		want, _ := bodyWithSeq(ev.Payload, ev.Seq)
		if !bytes.Equal(r.body, want) {
			t.Errorf("request %d: body %s, want %s", i, r.body, want)
		}
	}
}

func TestDeadReceiverHoldsOnlyItsTask(t *testing.T) {
	st := tempStore(t)
	release := make(chan struct{})
	var deadCalls atomic.Int32
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		if strings.HasPrefix(r.URL.Path, "/dead") {
			deadCalls.Add(1)
			select { // never answers while the test runs
			case <-release:
			case <-r.Context().Done():
			}
			return 0
		}
		return http.StatusOK
	})
	t.Cleanup(func() { close(release) }) // runs before the server closes

	dead := addTask(t, st, "p1", "task-dead", rc.url("/dead"))
	emit(t, st, dead, eventNames(3)...)
	var live []*task.Task
	for i := range 5 {
		live = append(live, addTask(t, st, "p1", fmt.Sprintf("task-live-%d", i), rc.url("/live")))
	}

	// The timeout is long next to local deliveries, so the live tasks'
	// events must go out while the dead receiver still holds its request.
	d, _ := start(t, Options{Store: st, Workers: 3, Timeout: 5 * time.Second})
	d.Notify()
	waitFor(t, "the dead receiver's first request", func() bool { return deadCalls.Load() == 1 })
	for _, tk := range live {
		emit(t, st, tk, eventNames(4)...)
		d.Notify()
	}
	waitFor(t, "the live tasks' events", func() bool {
		for _, tk := range live {
			if len(rc.delivered(tk.ID)) < 4 {
				return false
			}
		}
		return true
	})
	if b := pending(t, st, "task-dead")["task-dead"]; b.Pending != 3 || b.LastError != "" || deadCalls.Load() != 1 {
		t.Fatalf("live events delivered after the dead receiver's first attempt ended (backlog %+v, %d calls)", b, deadCalls.Load())
	}
	for _, tk := range live {
		checkOrder(t, rc, tk.ID, 4)
	}

	// The dead task's first event is retried after the timeout; its next
	// events wait behind it.
	waitFor(t, "a retry to the dead receiver", func() bool { return deadCalls.Load() >= 2 })
	waitFor(t, "the timeout recorded", func() bool {
		b := pending(t, st, "task-dead")["task-dead"]
		return b.Pending == 3 && strings.Contains(b.LastError, "Timeout")
	})
	for _, r := range rc.requests() {
		if r.taskID == "task-dead" && r.seq != 1 {
			t.Fatalf("task-dead: seq %d sent while seq 1 was not delivered", r.seq)
		}
	}
}

func TestReceiverClosesConnection(t *testing.T) {
	st := tempStore(t)
	var hijacked atomic.Int32
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		if n%2 == 0 { // every other request: drop the connection, no answer
			hijacked.Add(1)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return 0
		}
		return http.StatusOK
	})
	tk := addTask(t, st, "p1", "t1", rc.url("/hook"))
	emit(t, st, tk, eventNames(4)...)
	d, _ := start(t, Options{Store: st})
	d.Notify()
	waitFor(t, "every event delivered", func() bool {
		return len(rc.delivered("t1")) >= 4 && len(pending(t, st, "t1")) == 0
	})
	checkOrder(t, rc, "t1", 4)
	if hijacked.Load() < 4 {
		t.Fatalf("%d connections closed without an answer, want at least 4", hijacked.Load())
	}
}

func TestRestartDeliversPending(t *testing.T) {
	path := filepath.Join(t.TempDir(), "liverelay.db")
	var up atomic.Bool
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})

	st := openStore(t, path)
	tasks := []*task.Task{addTask(t, st, "p1", "t1", rc.url("/a")), addTask(t, st, "p1", "t2", rc.url("/b"))}
	for _, tk := range tasks {
		emit(t, st, tk, eventNames(5)...)
	}
	d, stop := start(t, Options{Store: st})
	d.Notify()
	waitFor(t, "failed attempts", func() bool { return len(rc.requests()) >= 4 })
	stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(rc.delivered("t1")) + len(rc.delivered("t2")); n != 0 {
		t.Fatalf("%d events delivered by a receiver that answered 503", n)
	}

	// A new process: the store from the file, a new Deliverer.
	up.Store(true)
	st = openStore(t, path)
	t.Cleanup(func() { st.Close() })
	d, _ = start(t, Options{Store: st})
	d.Notify()
	waitFor(t, "every event delivered after the restart", func() bool {
		return len(rc.delivered("t1")) >= 5 && len(rc.delivered("t2")) >= 5 && len(pending(t, st, "t1", "t2")) == 0
	})
	checkOrder(t, rc, "t1", 5)
	checkOrder(t, rc, "t2", 5)
}

// syncBuffer is a log sink the deliverer's goroutines write to.
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

func TestDeniedNetworksAndRedirects(t *testing.T) {
	st := tempStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		switch r.URL.Path {
		case "/to-metadata":
			w.Header().Set("Location", "http://169.254.169.254/latest/meta-data/")
			return http.StatusFound
		case "/to-ftp":
			w.Header().Set("Location", "ftp://example.com/x")
			return http.StatusTemporaryRedirect
		case "/loop":
			w.Header().Set("Location", "/loop")
			return http.StatusTemporaryRedirect
		case "/hop":
			w.Header().Set("Location", "/ok")
			return http.StatusPermanentRedirect
		}
		return http.StatusOK
	})
	cases := []struct {
		task, url, errText string
	}{
		{"metadata", "http://user:pw@169.254.169.254/hook?token=s3cret-token", "denied network"},
		{"redirect-metadata", rc.url("/to-metadata?sig=s3cret-sig"), "denied network"},
		{"redirect-ftp", rc.url("/to-ftp"), `scheme "ftp"`},
		{"redirect-loop", rc.url("/loop"), "redirects"},
	}
	var ids []string
	for _, c := range cases {
		emit(t, st, addTask(t, st, "p1", c.task, c.url), eventNames(2)...)
		ids = append(ids, c.task)
	}
	good := addTask(t, st, "p1", "good", rc.url("/hop"))
	emit(t, st, good, eventNames(3)...)

	logs := &syncBuffer{}
	d, _ := start(t, Options{Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	d.Notify()
	waitFor(t, "retries of every refused callback", func() bool {
		evs, err := st.DueEvents(context.Background(), time.Now().Add(time.Hour), 100)
		if err != nil {
			t.Fatal(err)
		}
		retried := 0
		for _, ev := range evs {
			if ev.Seq == 1 && ev.Attempts >= 2 {
				retried++
			}
		}
		return retried == len(cases)
	})
	// Redirects followed to an allowed place still deliver.
	waitFor(t, "the good task's events", func() bool { return len(pending(t, st, "good")) == 0 })
	checkOrder(t, rc, "good", 3)

	backlog := pending(t, st, ids...)
	for _, c := range cases {
		b := backlog[c.task]
		if b.Pending != 2 || !strings.Contains(b.LastError, c.errText) {
			t.Errorf("task %s: backlog %+v, want 2 pending and an error about %q", c.task, b, c.errText)
		}
		if strings.Contains(b.LastError, "s3cret") || strings.Contains(b.LastError, "pw@") {
			t.Errorf("task %s: stored error leaks a secret: %s", c.task, b.LastError)
		}
	}
	for _, r := range rc.requests() {
		if r.taskID == "redirect-loop" && r.seq != 1 {
			t.Fatalf("redirect-loop: seq %d sent before seq 1 was delivered", r.seq)
		}
	}
	if out := logs.String(); strings.Contains(out, "s3cret") || strings.Contains(out, "pw@") {
		t.Errorf("log leaks a secret:\n%s", out)
	} else if !strings.Contains(out, "callback delivery failed") || !strings.Contains(out, "169.254.169.254") {
		t.Errorf("log does not tell about the refused callbacks:\n%s", out)
	}
}

func TestRetryWindowGivesUp(t *testing.T) {
	st := tempStore(t)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int {
		return http.StatusBadGateway
	})
	tk := addTask(t, st, "p1", "t1", rc.url("/hook"))
	emit(t, st, tk, eventNames(2)...)
	logs := &syncBuffer{}
	d, _ := start(t, Options{Store: st, RetryWindow: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	d.Notify()
	waitFor(t, "both events given up", func() bool {
		b := pending(t, st, "t1")["t1"]
		return b.Pending == 0 && b.GaveUp == 2
	})
	// Each was tried more than once, the second only after the first was
	// given up.
	var seq1, seq2 int
	for _, r := range rc.requests() {
		switch r.seq {
		case 1:
			if seq2 > 0 {
				t.Fatal("seq 1 sent again after seq 2")
			}
			seq1++
		case 2:
			seq2++
		}
	}
	if seq1 < 2 || seq2 < 1 {
		t.Fatalf("%d attempts at seq 1, %d at seq 2; want retries of the first and an attempt at the second", seq1, seq2)
	}
	// The log line follows the store's write: wait for it too.
	waitFor(t, "both give-ups logged", func() bool { return strings.Count(logs.String(), "callback event given up") >= 2 })
	if out := logs.String(); strings.Count(out, "callback event given up") != 2 {
		t.Fatalf("log does not report both events given up exactly once:\n%s", out)
	}
}

// pruneCounter counts what the Deliverer prunes.
type pruneCounter struct {
	store.Store
	pruned atomic.Int64
}

func (p *pruneCounter) PruneEvents(ctx context.Context, before time.Time) (int, error) {
	n, err := p.Store.PruneEvents(ctx, before)
	p.pruned.Add(int64(n))
	return n, err
}

func TestPruneDelivered(t *testing.T) {
	st := &pruneCounter{Store: tempStore(t)}
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) int { return http.StatusOK })
	tk := addTask(t, st, "p1", "t1", rc.url("/hook"))
	emit(t, st, tk, eventNames(5)...)
	d, _ := start(t, Options{Store: st, Retention: time.Millisecond, PruneInterval: 20 * time.Millisecond})
	d.Notify()
	waitFor(t, "delivery", func() bool { return len(rc.delivered("t1")) == 5 })
	// Every delivered event but the task's last goes; seq then goes on.
	waitFor(t, "pruning", func() bool { return st.pruned.Load() == 4 })
	next := emit(t, st, tk, task.EventTaskExit)
	if next[0].Seq != 6 {
		t.Fatalf("seq after pruning: %d, want 6", next[0].Seq)
	}
	d.Notify()
	waitFor(t, "delivery after pruning", func() bool { return len(rc.delivered("t1")) == 6 })
	checkOrder(t, rc, "t1", 6)
}
