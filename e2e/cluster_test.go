package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liverelay/liverelay/internal/testpeer"
)

// The cluster tests run three liverelay processes (the real binary) on one
// real PostgreSQL, each reaching it through a TCP proxy the test can cut,
// with nginx-rtmp as source and destinations; they check at the destinations
// (nginx's /stat, recordings) and in the database.

// clusterNode is one liverelay process of a test cluster.
type clusterNode struct {
	*service
	id    string
	proxy *testpeer.TCPProxy
}

type testCluster struct {
	t     *testing.T
	dsn   string
	ttl   time.Duration
	ng    *testpeer.Nginx
	rc    *receiver
	nodes []*clusterNode
	pubs  *publisherWatch
	files string // served at nginx's HTTP root
}

// startCluster starts PostgreSQL, nginx (serving files), a live source at
// live/src, a callback receiver, and n nodes with leases of ttl.
func startCluster(t *testing.T, n int, ttl time.Duration) *testCluster {
	t.Helper()
	requirePeers(t)
	c := &testCluster{t: t, dsn: testpeer.StartPostgres(t), ttl: ttl, files: t.TempDir()}
	c.ng = testpeer.StartNginx(t, testpeer.NginxOptions{HTTPRoot: c.files})
	testpeer.Publish(t, c.ng.RTMPURL("live", "src"))
	c.rc = newReceiver(t)
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	// Every node seals and opens secrets with the same master key.
	env := []string{"LIVERELAY_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key)}
	pg, err := url.Parse(c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("node%d", i+1)
		proxy := testpeer.StartTCPProxy(t, pg.Host)
		via := *pg
		via.Host = proxy.Addr()
		svc := startServiceEnv(t, env, "--store", via.String(), "--node-id", id, "--lease-ttl", ttl.String(),
			"--callback-signing-key", callbackKey, "--callback-timeout", "2s")
		c.nodes = append(c.nodes, &clusterNode{service: svc, id: id, proxy: proxy})
	}
	c.pubs = watchPublishers(t, c.ng)
	return c
}

func (c *testCluster) node(id string) *clusterNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("no node %q", id)
	return nil
}

// runner returns the node_id the task's run state names, asking node via.
func (c *testCluster) runner(via *clusterNode, id string) string {
	info := via.show(id)
	if info == nil || info["run_state"] != "running" {
		return ""
	}
	return str(info, "node_id")
}

// waitRunning waits until every task runs (as via's list says) and its
// destination has its publisher.
func (c *testCluster) waitRunning(via *clusterNode, dsts map[string]string, timeout time.Duration) {
	c.t.Helper()
	testpeer.WaitFor(c.t, timeout, "every task running and publishing", func() bool {
		for id, dst := range dsts {
			if c.runner(via, id) == "" || c.pubs.now(dst) != 1 {
				return false
			}
		}
		return true
	})
}

// tasksOf returns the tasks of dsts that node runs (as via's list says);
// it fails the test when there is none.
func (c *testCluster) tasksOf(via, node *clusterNode, dsts map[string]string) []string {
	c.t.Helper()
	var ids []string
	for id := range dsts {
		if c.runner(via, id) == node.id {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		c.t.Fatalf("node %s runs no task", node.id)
	}
	return ids
}

// waitPublishing waits until every task of ids has a new publisher at its
// destination (one that was not there at since), and returns the longest
// it took.
func (c *testCluster) waitPublishing(ids []string, dsts map[string]string, since time.Time, timeout time.Duration) time.Duration {
	c.t.Helper()
	var worst time.Duration
	for _, id := range ids {
		testpeer.WaitFor(c.t, timeout, "task "+id+" publishing again", func() bool {
			_, ok := c.pubs.newPublisher(dsts[id], since)
			return ok
		})
		back, _ := c.pubs.newPublisher(dsts[id], since)
		worst = max(worst, back.Sub(since))
	}
	return worst
}

// checkOnePublisher fails if any destination ever had two publishers, or
// nginx refused a second one ("already publishing").
func (c *testCluster) checkOnePublisher() {
	c.t.Helper()
	for stream, n := range c.pubs.maxima() {
		if n > 1 {
			c.t.Fatalf("destination %s had %d publishers at once", stream, n)
		}
	}
	if log := c.ng.ErrorLog(); strings.Contains(log, "already publishing") {
		c.t.Fatalf("nginx refused a second publisher of a destination:\n%s", grepLines(log, "already publishing"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return strings.Join(out, "\n")
}

// exits returns the reasons of the TaskExit callbacks of a task, in seq
// order, each followed by the event after it ("" if none yet), e.g.
// ["node_lost>TaskStart"].
func (c *testCluster) exitsThen(taskID string) []string {
	c.rc.mu.Lock()
	defer c.rc.mu.Unlock()
	bySeq := map[int]map[string]any{}
	for _, ev := range c.rc.got {
		if ev["task_id"] == taskID {
			bySeq[int(ev["seq"].(float64))] = ev
		}
	}
	var out []string
	for seq := 1; bySeq[seq] != nil; seq++ {
		ev := bySeq[seq]
		if ev["event"] != "TaskExit" {
			continue
		}
		data, _ := ev["data"].(map[string]any)
		next := ""
		if n := bySeq[seq+1]; n != nil {
			next = n["event"].(string)
		}
		out = append(out, fmt.Sprintf("%v[final=%v]>%s", data["reason"], ev["final"], next))
	}
	return out
}

// publisherWatch polls nginx's /stat every 100 ms for the whole test and
// keeps, per stream, the most publishers seen at once and each publishing
// connection (nginx's client ID) with the polls that first saw it and first
// missed it.
type publisherWatch struct {
	mu   sync.Mutex
	max  map[string]int
	cur  map[string]int
	pubs map[string][]*seenPublisher
	errs int
}

type seenPublisher struct {
	id          int
	first, gone time.Time // gone: zero while it publishes
}

func watchPublishers(t *testing.T, ng *testpeer.Nginx) *publisherWatch {
	w := &publisherWatch{max: map[string]int{}, cur: map[string]int{}, pubs: map[string][]*seenPublisher{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			w.poll(ng)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *publisherWatch) poll(ng *testpeer.Nginx) {
	st, err := ng.TryStat()
	at := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.errs++
		return
	}
	now := map[string]map[int]bool{}
	for _, a := range st.Applications {
		for _, s := range a.Streams {
			name := a.Name + "/" + s.Name
			now[name] = map[int]bool{}
			for _, c := range s.Clients {
				if c.Publishing != nil {
					now[name][c.ID] = true
				}
			}
		}
	}
	for name := range w.pubs {
		if now[name] == nil {
			now[name] = map[int]bool{}
		}
	}
	for name, ids := range now {
		known := map[int]bool{}
		for _, p := range w.pubs[name] {
			known[p.id] = true
			if p.gone.IsZero() && !ids[p.id] {
				p.gone = at
			}
		}
		for id := range ids {
			if !known[id] {
				w.pubs[name] = append(w.pubs[name], &seenPublisher{id: id, first: at})
			}
		}
		w.cur[name] = len(ids)
		w.max[name] = max(w.max[name], len(ids))
	}
}

// now returns the publishers of app/stream at the last poll.
func (w *publisherWatch) now(stream string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur[stream]
}

// newPublisher returns when a publisher that was not there at t was first
// seen on the stream.
func (w *publisherWatch) newPublisher(stream string, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pubs[stream] {
		if p.first.After(t) {
			return p.first, true
		}
	}
	return time.Time{}, false
}

// publisherGone returns the first poll that missed the publisher the
// stream had at t.
func (w *publisherWatch) publisherGone(stream string, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.pubs[stream] {
		if !p.first.After(t) && (p.gone.IsZero() || p.gone.After(t)) {
			return p.gone, !p.gone.IsZero()
		}
	}
	return time.Time{}, false
}

func (w *publisherWatch) maxima() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.max))
	for k, v := range w.max {
		out[k] = v
	}
	return out
}

// stream is "app/stream" of an rtmp URL of the test's nginx.
func stream(rtmpURL string) string {
	u, err := url.Parse(rtmpURL)
	if err != nil {
		panic(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// longVOD encodes a 30 s file with a keyframe every half second and no
// B-frames: long enough that a resumed position means something, and every
// frame unique, so a frame seen at a destination says where in the file it
// is.
func longVOD(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "long.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "30",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-keyint_min", "15", "-sc_threshold", "0", "-bf", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-movflags", "+faststart", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

// frameHashes returns the MD5 of every decoded video frame of a file, in
// order (ffmpeg's framemd5). The relay passes the coded bytes on untouched,
// so a frame decoded at the destination hashes like the same frame decoded
// from the source file.
func frameHashes(t *testing.T, path string) []string {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "framemd5", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		t.Fatalf("framemd5 of %s: %v\n%s", path, err, stderr.String())
	}
	var hashes []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Split(line, ",")
		hashes = append(hashes, strings.TrimSpace(fields[len(fields)-1]))
	}
	return hashes
}

// Twelve tasks spread over three nodes. kill -9 of one: its tasks publish
// again from the other two within the lease TTL and a few seconds (checked
// at the destinations), its VOD task continues within 2 s of where it broke
// off (checked by the frames that arrive), the callbacks show the lost run's
// TaskExit (final false) before the new TaskStart, and no destination ever
// has two publishers.
func TestClusterKill9MovesTasks(t *testing.T) {
	const ttl = 3 * time.Second
	c := startCluster(t, 3, ttl)
	file := longVOD(t, c.files)
	dsts := map[string]string{} // task ID -> destination stream
	var vodIDs []string
	for i := range 12 {
		via := c.nodes[i%3] // any node takes a create
		var body map[string]any
		dst := c.ng.RTMPURL("live", fmt.Sprintf("dst%d", i))
		if i < 3 {
			body = vodTask([]string{c.ng.HTTPURL("/" + filepath.Base(file))}, dst, "-1")
		} else {
			body = liveTask(c.ng.RTMPURL("live", "src"), dst)
		}
		body["callback_url"] = c.rc.srv.URL + "/hook"
		id := via.create(body)
		dsts[id] = stream(dst)
		if i < 3 {
			vodIDs = append(vodIDs, id)
		}
	}
	c.waitRunning(c.nodes[0], dsts, 60*time.Second)

	perNode := map[string][]string{}
	for id := range dsts {
		n := c.runner(c.nodes[1], id)
		perNode[n] = append(perNode[n], id)
	}
	t.Logf("tasks per node: node1 %d, node2 %d, node3 %d", len(perNode["node1"]), len(perNode["node2"]), len(perNode["node3"]))
	for _, n := range c.nodes {
		if len(perNode[n.id]) == 0 {
			t.Fatalf("node %s runs no task: %v", n.id, perNode)
		}
	}
	vod := vodIDs[0]
	victim := c.node(c.runner(c.nodes[0], vod))
	moved := perNode[victim.id]
	var survivor *clusterNode
	for _, n := range c.nodes {
		if n != victim {
			survivor = n
			break
		}
	}

	// Record the VOD destination up to the kill, and from the kill on. The
	// first recorder writes every packet through and is killed with the
	// node, so it holds what arrived until then and nothing later.
	recDir := t.TempDir()
	vodDst := c.ng.RTMPURL("live", strings.TrimPrefix(dsts[vod], "live/"))
	killBefore := startFFmpeg(t, "-rw_timeout", "10000000", "-i", vodDst, "-c", "copy", "-flush_packets", "1",
		"-f", "flv", "-y", filepath.Join(recDir, "before.flv"))
	time.Sleep(4 * time.Second)
	victim.kill9()
	killBefore()
	killed := time.Now()
	after := testpeer.Record(t, vodDst, filepath.Join(recDir, "after.flv"))

	worst := c.waitPublishing(moved, dsts, killed, ttl+15*time.Second)
	t.Logf("the %d tasks of the killed node publish again %v after kill -9 at worst (lease TTL %v)", len(moved), worst.Round(time.Millisecond), ttl)
	if worst > ttl+5*time.Second {
		t.Fatalf("tasks published again %v after kill -9, want within the lease TTL (%v) plus a few seconds", worst, ttl)
	}
	for _, id := range moved {
		testpeer.WaitFor(t, 10*time.Second, "task "+id+" running on another node", func() bool {
			n := c.runner(survivor, id)
			return n != "" && n != victim.id
		})
	}

	// Where the VOD task broke off and where it resumed, by the frames
	// that reached its destination.
	time.Sleep(3 * time.Second)
	after.Stop()
	src := frameHashes(t, file)
	index := map[string]int{}
	for i, h := range src {
		index[h] = i
	}
	hb, ha := frameHashes(t, filepath.Join(recDir, "before.flv")), frameHashes(t, filepath.Join(recDir, "after.flv"))
	if len(hb) == 0 || len(ha) == 0 {
		t.Fatalf("recordings hold %d and %d video frames", len(hb), len(ha))
	}
	last, ok1 := index[hb[len(hb)-1]]
	first, ok2 := index[ha[0]]
	if !ok1 || !ok2 {
		t.Fatalf("frames at the destination are not frames of the file (last before the kill found: %v, first after: %v)", ok1, ok2)
	}
	for i, h := range ha {
		if j, ok := index[h]; !ok || j != (first+i)%len(src) {
			t.Fatalf("frame %d at the destination after the move is not frame %d of the file (found: %v, at %d)", i, (first+i)%len(src), ok, j)
		}
	}
	// In frames, the way round the loop that is shorter.
	n := len(src)
	gap := time.Duration(((first-last)%n+n+n/2)%n-n/2) * time.Second / 30
	t.Logf("VOD task broke off at %.2fs of the file and resumed at %.2fs on another node (%v)", float64(last)/30, float64(first)/30, gap)
	if gap < -2*time.Second || gap > 2*time.Second {
		t.Fatalf("VOD resumed %v from its break point, want within 2 s", gap)
	}

	// The callbacks of the moved tasks: the lost run's exit, then the new
	// start. The killed node's claims on events run out first.
	for _, id := range moved {
		testpeer.WaitFor(t, 40*time.Second, "callbacks of task "+id, func() bool {
			return slices.Contains(c.exitsThen(id), "node_lost[final=false]>TaskStart")
		})
	}
	c.checkOnePublisher()

	// liverelay nodes: the killed node is gone, the others carry the load.
	out, err := exec.Command(binPath, "nodes", "--store", c.dsn, "--lease-ttl", ttl.String()).Output()
	if err != nil {
		t.Fatalf("liverelay nodes: %v", err)
	}
	var listed struct {
		Nodes []struct {
			NodeID string `json:"node_id"`
			State  string `json:"state"`
			Load   int    `json:"load"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatalf("liverelay nodes: %v\n%s", err, out)
	}
	load := 0
	for _, n := range listed.Nodes {
		want := "live"
		if n.NodeID == victim.id {
			want = "gone"
		}
		if n.State != want {
			t.Fatalf("liverelay nodes: %s is %s, want %s\n%s", n.NodeID, n.State, want, out)
		}
		load += n.Load
	}
	if len(listed.Nodes) != 3 || load != 12 {
		t.Fatalf("liverelay nodes: %d nodes carrying %d tasks, want 3 and 12\n%s", len(listed.Nodes), load, out)
	}
}

// The database cut off from one node (its proxy stops forwarding, like a
// broken network: nothing is closed, nothing arrives): that node stops
// pushing before its leases expire, the others take its tasks after, and
// no destination ever has two publishers.
func TestClusterDatabaseCutOff(t *testing.T) {
	const ttl = 3 * time.Second
	c := startCluster(t, 3, ttl)
	dsts := map[string]string{}
	for i := range 6 {
		dst := c.ng.RTMPURL("live", fmt.Sprintf("cut%d", i))
		id := c.nodes[i%3].create(liveTask(c.ng.RTMPURL("live", "src"), dst))
		dsts[id] = stream(dst)
	}
	c.waitRunning(c.nodes[0], dsts, 60*time.Second)
	victim := c.nodes[2]
	mine := c.tasksOf(c.nodes[0], victim, dsts)

	victim.proxy.Freeze()
	frozen := time.Now()
	// The leases as the database has them, once nothing more can reach it.
	time.Sleep(200 * time.Millisecond)
	expiry := leaseExpiries(t, c.dsn, mine)

	for _, id := range mine {
		testpeer.WaitFor(t, ttl+20*time.Second, "task "+id+" moved", func() bool {
			_, ok := c.pubs.newPublisher(dsts[id], frozen)
			return ok
		})
		stopped, ok := c.pubs.publisherGone(dsts[id], frozen)
		if !ok {
			t.Fatalf("task %s: its publisher never went away", id)
		}
		back, _ := c.pubs.newPublisher(dsts[id], frozen)
		t.Logf("task %s: cut-off node stopped %v after the cut, %v before its lease expired; back on another node %v after the cut",
			id, stopped.Sub(frozen).Round(time.Millisecond), expiry[id].Sub(stopped).Round(time.Millisecond), back.Sub(frozen).Round(time.Millisecond))
		if !stopped.Before(expiry[id]) {
			t.Fatalf("task %s: pushed until %v, its lease expired at %v", id, stopped, expiry[id])
		}
		if back.Before(expiry[id]) {
			t.Fatalf("task %s: pushed by another node at %v, before the lease expired at %v", id, back, expiry[id])
		}
		testpeer.WaitFor(t, 10*time.Second, "task "+id+" running on another node", func() bool {
			n := c.runner(c.nodes[0], id)
			return n != "" && n != victim.id
		})
	}
	c.checkOnePublisher()
	if !strings.Contains(victim.out.String(), "leases not renewed in time") {
		t.Fatalf("the cut-off node does not say why it stopped:\n%s", victim.out.String())
	}
	victim.kill9() // a drain would wait for the database
}

// leaseExpiries reads the lease expiry of each task, from the database.
func leaseExpiries(t *testing.T, dsn string, ids []string) map[string]time.Time {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT task_id, lease_expires_at FROM run_states WHERE task_id = ANY($1)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		out[id] = at
	}
	if err := rows.Err(); err != nil || len(out) != len(ids) {
		t.Fatalf("lease expiries %v, %v", out, err)
	}
	return out
}

// SIGTERM of a node: it drains, handing its tasks over, and they publish
// again from the other nodes within seconds, well inside the (default,
// 10 s) lease TTL that a dead node's tasks wait for.
func TestClusterSIGTERMDrains(t *testing.T) {
	const ttl = 10 * time.Second
	c := startCluster(t, 3, ttl)
	dsts := map[string]string{}
	for i := range 6 {
		dst := c.ng.RTMPURL("live", fmt.Sprintf("drain%d", i))
		body := liveTask(c.ng.RTMPURL("live", "src"), dst)
		body["callback_url"] = c.rc.srv.URL + "/hook"
		id := c.nodes[i%3].create(body)
		dsts[id] = stream(dst)
	}
	c.waitRunning(c.nodes[0], dsts, 60*time.Second)
	leaving := c.nodes[1]
	mine := c.tasksOf(c.nodes[0], leaving, dsts)
	leaving.term()
	termed := time.Now()
	worst := c.waitPublishing(mine, dsts, termed, ttl+10*time.Second)
	t.Logf("the %d tasks of the stopped node publish again %v after SIGTERM at worst (lease TTL %v)", len(mine), worst.Round(time.Millisecond), ttl)
	if worst >= ttl/2 {
		t.Fatalf("drained tasks took %v to move: that is waiting for leases (%v) to expire", worst, ttl)
	}
	select {
	case <-leaving.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the stopped node has not exited")
	}
	if code := leaving.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the stopped node exited with %d:\n%s", code, leaving.out.String())
	}
	for _, id := range mine {
		testpeer.WaitFor(t, 20*time.Second, "callbacks of task "+id, func() bool {
			return slices.Contains(c.exitsThen(id), "shutdown[final=false]>TaskStart")
		})
		// The taker does not report the drained run again as lost.
		if got := c.exitsThen(id); slices.Contains(got, "shutdown[final=false]>TaskExit") {
			t.Fatalf("task %s: a drained run's exit reported twice: %v", id, got)
		}
	}
	c.checkOnePublisher()
}

// Modify and delete sent to a node that does not run the task take effect
// on the one that does, within a second or so.
func TestClusterModifyAndDeleteOnAnotherNode(t *testing.T) {
	// The default TTL: nodes wake at others' lease expiries, which at a
	// short TTL would pass for notifications.
	c := startCluster(t, 3, 10*time.Second)
	testpeer.Publish(t, c.ng.RTMPURL("live", "src2"))
	dsts := map[string]string{}
	var ids []string
	for i := range 3 {
		dst := c.ng.RTMPURL("live", fmt.Sprintf("mod%d", i))
		body := liveTask(c.ng.RTMPURL("live", "src"), dst)
		body["callback_url"] = c.rc.srv.URL + "/hook"
		id := c.nodes[i].create(body)
		dsts[id] = stream(dst)
		ids = append(ids, id)
	}
	c.waitRunning(c.nodes[0], dsts, 60*time.Second)
	id := ids[0]
	runs := c.runner(c.nodes[0], id)
	var other *clusterNode
	for _, n := range c.nodes {
		if n.id != runs {
			other = n
			break
		}
	}

	// A new source, sent to another node: the running node plays it.
	players := func(s string) int {
		st, err := c.ng.TryStat()
		if err != nil {
			return -1
		}
		return st.Players("live", s)
	}
	sent := time.Now()
	other.modify(map[string]any{"task_id": id, "source_urls": []string{c.ng.RTMPURL("live", "src2")}})
	testpeer.WaitFor(t, 10*time.Second, "the relay playing src2", func() bool { return players("src2") == 1 })
	t.Logf("modify sent to %s reached the task on %s: playing the new source %v later", other.id, runs, time.Since(sent).Round(time.Millisecond))
	// The run state is stored a moment after the switch (states gather
	// for up to 100 ms before a write).
	var info map[string]any
	testpeer.WaitFor(t, 5*time.Second, "the switch to src2 stored", func() bool {
		info = c.nodes[2].show(id)
		return strings.HasSuffix(str(info, "current_source_url"), "/live/src2")
	})
	if str(info, "node_id") != runs {
		t.Fatalf("after modify: current_source_url %v on %v", info["current_source_url"], info["node_id"])
	}

	// Pause through another node: the destination loses its publisher.
	sent = time.Now()
	other.modify(map[string]any{"task_id": id, "status": "pause"})
	testpeer.WaitFor(t, 10*time.Second, "publisher gone after pause", func() bool {
		_, ok := c.pubs.publisherGone(dsts[id], sent)
		return ok
	})
	gone, _ := c.pubs.publisherGone(dsts[id], sent)
	t.Logf("pause sent to %s stopped the push on %s %v later", other.id, runs, gone.Sub(sent).Round(time.Millisecond))
	if d := gone.Sub(sent); d > 2*time.Second {
		t.Fatalf("pause took %v to stop the push", d)
	}
	other.waitState(id, "paused", 10*time.Second)

	// Delete another task through a node that does not run it.
	victim := ids[1]
	var via *clusterNode
	for _, n := range c.nodes {
		if n.id != c.runner(c.nodes[0], victim) {
			via = n
			break
		}
	}
	sent = time.Now()
	status, out := via.do("DELETE", taskPath+"?task_id="+victim, nil)
	if status != 200 {
		t.Fatalf("delete: %d %v", status, out)
	}
	testpeer.WaitFor(t, 10*time.Second, "publisher gone after delete", func() bool {
		_, ok := c.pubs.publisherGone(dsts[victim], sent)
		return ok
	})
	gone, _ = c.pubs.publisherGone(dsts[victim], sent)
	t.Logf("delete sent to %s stopped the push %v later", via.id, gone.Sub(sent).Round(time.Millisecond))
	if d := gone.Sub(sent); d > 2*time.Second {
		t.Fatalf("delete took %v to stop the push", d)
	}
	for _, n := range c.nodes {
		if n.show(victim) != nil {
			t.Fatalf("node %s still lists the deleted task", n.id)
		}
	}
	testpeer.WaitFor(t, 20*time.Second, "final TaskExit of the deleted task", func() bool {
		return slices.Contains(c.exitsThen(victim), "deleted[final=true]>")
	})
	c.checkOnePublisher()
}
