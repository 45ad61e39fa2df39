package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/callback"
	"github.com/liverelay/liverelay/internal/testpeer"
)

const callbackKey = "e2e-callback-signing-key"

// receiver is a callback endpoint on loopback that can be told to fail.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	failOK bool // answer 500 while set
	got    []map[string]any
	bad    []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.failOK {
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		if err := callback.Verify([]byte(callbackKey), body, req.Header.Get("X-Liverelay-Signature"), time.Now(), 5*time.Minute); err != nil {
			r.bad = append(r.bad, "signature: "+err.Error())
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			r.bad = append(r.bad, "body: "+err.Error())
		}
		r.got = append(r.got, ev)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setFailing(v bool) { r.mu.Lock(); r.failOK = v; r.mu.Unlock() }

// events returns "Name[final]" of each delivery of a task, de-duplicated by
// event_id, with their seqs.
func (r *receiver) events(taskID string) (names []string, seqs []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		r.t.Fatalf("bad deliveries: %v", r.bad)
	}
	seen := map[string]bool{}
	for _, ev := range r.got {
		if ev["task_id"] != taskID || seen[ev["event_id"].(string)] {
			continue
		}
		seen[ev["event_id"].(string)] = true
		name := ev["event"].(string)
		if name == "TaskExit" {
			name += fmt.Sprintf("[final=%v]", ev["final"])
		}
		if name == "TaskAlarm" {
			name += fmt.Sprintf("[%v]", ev["data"].(map[string]any)["type"])
		}
		names = append(names, name)
		seqs = append(seqs, int(ev["seq"].(float64)))
	}
	return names, seqs
}

func checkSeqs(t *testing.T, seqs []int) {
	t.Helper()
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("seqs %v: want 1, 2, 3, ... in order", seqs)
		}
	}
}

func TestCallbacksAtLeastOnceInOrderSigned(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	rcv := newReceiver(t)
	svc := startService(t, "--callback-signing-key", callbackKey)

	// The receiver fails at first: events wait in the outbox and are retried.
	rcv.setFailing(true)
	body := liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst"))
	body["callback_url"] = rcv.srv.URL + "/hook"
	id := svc.create(body)
	svc.waitState(id, "running", 30*time.Second)
	svc.modify(map[string]any{"task_id": id, "status": "pause"})
	svc.waitState(id, "paused", 10*time.Second)
	testpeer.WaitFor(t, 10*time.Second, "delivery failures recorded", func() bool {
		info := svc.show(id)
		return num(info, "callback_pending") >= 1 && info["callback_last_error"] != ""
	})

	// Killed while events are pending: none is lost.
	svc.kill9()
	rcv.setFailing(false)
	svc.start()
	status, out := svc.do(http.MethodDelete, taskPath+"?task_id="+id, nil)
	if status != http.StatusOK {
		t.Fatalf("delete: %d %v", status, out)
	}

	want := []string{"TaskStart", "TaskExit[final=false]", "TaskExit[final=true]"}
	var names []string
	var seqs []int
	testpeer.WaitFor(t, 60*time.Second, "all events delivered", func() bool {
		names, seqs = rcv.events(id)
		return len(names) >= len(want)
	})
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v, want %v", names, want)
	}
	checkSeqs(t, seqs)
}

func TestCallbackEventsFilter(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	rcv := newReceiver(t)
	svc := startService(t, "--callback-signing-key", callbackKey)

	body := liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst"))
	body["callback_url"] = rcv.srv.URL
	body["callback_events"] = []string{"TaskExit"}
	id := svc.create(body)
	svc.waitState(id, "running", 30*time.Second)
	svc.modify(map[string]any{"task_id": id, "status": "pause"})
	svc.waitState(id, "paused", 10*time.Second)
	// Now ask for TaskStart only: the enable's TaskStart comes, its
	// next TaskExit does not.
	svc.modify(map[string]any{"task_id": id, "callback_events": []string{"TaskStart"}, "status": "enable"})
	svc.waitState(id, "running", 30*time.Second)
	time.Sleep(1100 * time.Millisecond)
	svc.modify(map[string]any{"task_id": id, "status": "pause"})
	svc.waitState(id, "paused", 10*time.Second)

	testpeer.WaitFor(t, 30*time.Second, "two events delivered", func() bool {
		names, _ := rcv.events(id)
		return len(names) >= 2
	})
	time.Sleep(2 * time.Second) // anything filtered out would have come by now
	names, _ := rcv.events(id)
	if want := "TaskExit[final=false] TaskStart"; strings.Join(names, " ") != want {
		t.Fatalf("events %v, want %s", names, want)
	}
}

// A receiver that never answers holds back only its own task's events: the
// task relays at full rate (checked at its destination, against a task with
// a working receiver on the same source), and the other task's events come.
func TestHangingReceiverDelaysNothing(t *testing.T) {
	requirePeers(t)
	ng := testpeer.StartNginx(t, testpeer.NginxOptions{})
	testpeer.Publish(t, ng.RTMPURL("live", "src"))
	release := make(chan struct{})
	var hung sync.WaitGroup
	var hangs atomic.Int32
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hung.Add(1)
		defer hung.Done()
		hangs.Add(1)
		<-release // never answers while the test runs
	}))
	t.Cleanup(func() {
		close(release)
		hung.Wait()
		stuck.Close()
	})
	rcv := newReceiver(t)
	// The hanging request holds its delivery worker for the whole test.
	svc := startService(t, "--callback-signing-key", callbackKey, "--callback-timeout", "2m")

	stuckBody := liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst-a"))
	stuckBody["callback_url"] = stuck.URL + "/hook"
	a := svc.create(stuckBody)
	svc.waitState(a, "running", 30*time.Second)
	testpeer.WaitFor(t, 10*time.Second, "the hanging receiver called", func() bool { return hangs.Load() >= 1 })
	okBody := liveTask(ng.RTMPURL("live", "src"), ng.RTMPURL("live", "dst-b"))
	okBody["callback_url"] = rcv.srv.URL + "/hook"
	b := svc.create(okBody)
	svc.waitState(b, "running", 30*time.Second)
	testpeer.WaitFor(t, 10*time.Second, "the other task's TaskStart delivered", func() bool {
		names, _ := rcv.events(b)
		return len(names) >= 1 && names[0] == "TaskStart"
	})

	dir := t.TempDir()
	recA := testpeer.Record(t, ng.RTMPURL("live", "dst-a"), filepath.Join(dir, "a.flv"))
	recB := testpeer.Record(t, ng.RTMPURL("live", "dst-b"), filepath.Join(dir, "b.flv"))
	time.Sleep(8 * time.Second)
	recA.Stop()
	recB.Stop()
	pa := checkRecording(t, filepath.Join(dir, "a.flv"), 5*time.Second)
	pb := checkRecording(t, filepath.Join(dir, "b.flv"), 5*time.Second)
	if pa.Duration < pb.Duration-time.Second {
		t.Fatalf("the task with the hanging receiver delivered %v in 8 s, the other %v", pa.Duration, pb.Duration)
	}
	if gap := pa.MaxGap("video"); gap > time.Second {
		t.Fatalf("video hole of %v at the destination of the task with the hanging receiver", gap)
	}
	info := svc.show(a)
	if num(info, "callback_pending") < 1 || num(info, "fps") < 20 {
		t.Fatalf("task with the hanging receiver: callback_pending %v, fps %v; want >= 1 pending, full rate", info["callback_pending"], info["fps"])
	}
	if names, _ := rcv.events(a); len(names) != 0 {
		t.Fatalf("events of the hanging receiver's task reached the other receiver: %v", names)
	}
}
