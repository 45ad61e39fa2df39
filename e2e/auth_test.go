package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/testpeer"
)

// These tests check authentication and authorisation against the running
// binary, and that `liverelay iam` changes take effect in it at once. They
// relay no media: sources and destinations are loopback ports where nothing
// listens, so tasks only retry.

const (
	codeUnauthorized = "APIGW.0301"
	codeForbidden    = "APIGW.0302"
)

// credentials adds credentials to a request whose body is body.
type credentials func(r *http.Request, body []byte)

func noCredentials(*http.Request, []byte) {}

// signed signs as the SDKs do, with the path's project in X-Project-Id (as an
// SDK client configured for that project sends it).
func signed(ak, sk string) credentials {
	return signedAt(ak, sk, 0)
}

// signedAt signs with the clock off by skew.
func signedAt(ak, sk string, skew time.Duration) credentials {
	return func(r *http.Request, body []byte) {
		r.Header.Set("X-Project-Id", projectOfPath(r.URL.Path))
		auth.Sign(r, body, ak, sk, time.Now().Add(skew))
	}
}

func withToken(token string) credentials {
	return func(r *http.Request, _ []byte) { r.Header.Set("X-Auth-Token", token) }
}

// projectOfPath returns the project of /v1/{project}/pull/stream/task.
func projectOfPath(path string) string {
	parts := strings.Split(path, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}

func tasksOf(project string) string { return "/v1/" + project + "/pull/stream/task" }

// send sends an API request with the given credentials, then lets tamper
// change it after signing, and decodes the JSON answer.
func (s *service) send(method, path string, body any, cred credentials, tamper func(*http.Request)) (int, map[string]any) {
	s.t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			s.t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, s.url(path), bytes.NewReader(raw))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	cred(req, raw)
	if tamper != nil {
		tamper(req)
	}
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

// iamCLI runs `liverelay iam <args> --data-dir <the service's>` beside the
// running service and decodes what it prints.
func (s *service) iamCLI(args ...string) map[string]any {
	s.t.Helper()
	stdout, stderr, err := s.runIAM(args...)
	if err != nil {
		s.t.Fatalf("liverelay iam %q: %v\n%s", args, err, stderr)
	}
	var out map[string]any
	if err := json.Unmarshal(stdout, &out); err != nil {
		s.t.Fatalf("liverelay iam %q printed %q: %v", args, stdout, err)
	}
	return out
}

func (s *service) runIAM(args ...string) (stdout, stderr []byte, err error) {
	cmd := exec.Command(binPath, append(append([]string{"iam"}, args...), "--data-dir", s.dataDir)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

func str(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

// apiCall is one of the four calls on an existing task.
type apiCall struct {
	name   string
	method string
	body   func(taskID string) any
	query  func(taskID string) string
}

// taskCalls are the four calls; create gets a destination of its own each
// time so that a create that gets through is not refused for a busy
// destination.
func taskCalls() []apiCall {
	n := 0
	return []apiCall{
		{name: "create", method: http.MethodPost, body: func(string) any {
			n++
			return liveTask(deadRTMP("src"), deadRTMP(fmt.Sprintf("auth-%d", n)))
		}},
		{name: "list", method: http.MethodGet, query: func(id string) string { return "?task_id=" + id }},
		{name: "modify", method: http.MethodPut, body: func(id string) any { return map[string]any{"task_id": id, "status": "pause"} }},
		{name: "delete", method: http.MethodDelete, query: func(id string) string { return "?task_id=" + id }},
	}
}

func (c apiCall) send(s *service, project, taskID string, cred credentials, tamper func(*http.Request)) (int, map[string]any) {
	s.t.Helper()
	path := tasksOf(project)
	if c.query != nil {
		path += c.query(taskID)
	}
	var body any
	if c.body != nil {
		body = c.body(taskID)
	}
	return s.send(c.method, path, body, cred, tamper)
}

// deadPort is a loopback port where nothing listens, so connections to it
// are refused at once.
var deadPort = func() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}()

func deadRTMP(stream string) string {
	return fmt.Sprintf("rtmp://127.0.0.1:%d/live/%s", deadPort, stream)
}

func wantStatus(t *testing.T, what string, status int, out map[string]any, want int, wantCode string) {
	t.Helper()
	if status != want {
		t.Errorf("%s: %d %v, want %d", what, status, out, want)
		return
	}
	if wantCode != "" && out["error_code"] != wantCode {
		t.Errorf("%s: error_code %v, want %s (%v)", what, out["error_code"], wantCode, out)
	}
}

// wantUnchanged checks that the task is still there and enabled: refused
// calls had no effect.
func wantUnchanged(t *testing.T, s *service, id string) {
	t.Helper()
	info := s.show(id)
	if info == nil || info["status"] != "enable" {
		t.Fatalf("task %s after refused calls: %v, want it there and enabled", id, info)
	}
}

func TestAuthRefusesBadCredentials(t *testing.T) {
	svc := startService(t)
	id := svc.create(liveTask(deadRTMP("src"), deadRTMP("dst")))

	keys, err := auth.LoadKeyring(svc.dataDir) // the service's master key
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := keys.IssueToken(testAK, testProject, time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherMaster := make([]byte, 32)
	rand.Read(otherMaster)
	otherKeys, _ := auth.NewKeyring(otherMaster)
	forged, _, _ := otherKeys.IssueToken(testAK, testProject, time.Now(), time.Hour)
	valid, _, err := keys.IssueToken(testAK, testProject, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A valid token whose payload names another access key, MAC kept.
	payloadEnd := strings.LastIndexByte(valid, '.')
	altered := valid[:payloadEnd-2] + flip(valid[payloadEnd-2:payloadEnd-1]) + valid[payloadEnd-1:]

	tamperBody := func(r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		raw = bytes.Replace(raw, []byte(`"source_type"`), []byte(`"source_type" `), 1)
		raw = bytes.Replace(raw, []byte(`"pause"`), []byte(`"enable"`), 1)
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(raw)), int64(len(raw))
	}
	tamperQuery := func(r *http.Request) { r.URL.RawQuery += "&region=local" }

	cases := []struct {
		name   string
		cred   credentials
		tamper func(*http.Request)
	}{
		{"no credentials", noCredentials, nil},
		{"wrong secret key", signed(testAK, testSK+"x"), nil},
		{"unknown access key", signed("UNKNOWNACCESSKEY0001", testSK), nil},
		{"date 20 minutes old", signedAt(testAK, testSK, -20*time.Minute), nil},
		{"date 20 minutes ahead", signedAt(testAK, testSK, 20*time.Minute), nil},
		{"tampered body", signed(testAK, testSK), tamperBody},
		{"tampered query", signed(testAK, testSK), tamperQuery},
		{"expired token", withToken(expired), nil},
		{"token of another server", withToken(forged), nil},
		{"altered token", withToken(altered), nil},
		{"made-up token", withToken("lr1.e30.AAAA"), nil},
	}
	for _, call := range taskCalls() {
		for _, tc := range cases {
			if tc.name == "tampered body" && call.body == nil || tc.name == "tampered query" && call.query == nil {
				continue
			}
			status, out := call.send(svc, testProject, id, tc.cred, tc.tamper)
			wantStatus(t, call.name+" with "+tc.name, status, out, http.StatusUnauthorized, codeUnauthorized)
		}
	}
	wantUnchanged(t, svc, id)

	// The credentials above work when nothing is wrong with them: the
	// refusals were for the reasons tested.
	if status, out := svc.send(http.MethodGet, tasksOf(testProject), nil, withToken(valid), nil); status != http.StatusOK {
		t.Errorf("list with a valid token: %d %v", status, out)
	}
	// A signed create is accepted once; the same request again is a replay.
	body := liveTask(deadRTMP("src"), deadRTMP("replayed"))
	var header http.Header
	record := func(r *http.Request, raw []byte) {
		signed(testAK, testSK)(r, raw)
		header = r.Header.Clone()
	}
	replay := func(r *http.Request, _ []byte) { r.Header = header.Clone() }
	status, out := svc.send(http.MethodPost, tasksOf(testProject), body, record, nil)
	wantStatus(t, "create, signed", status, out, http.StatusOK, "")
	status, out = svc.send(http.MethodPost, tasksOf(testProject), body, replay, nil)
	wantStatus(t, "the same signed create again", status, out, http.StatusUnauthorized, codeUnauthorized)

	if t.Failed() {
		return
	}
	logs := svc.out.String()
	for _, secret := range []string{testSK, expired, forged, valid} {
		if strings.Contains(logs, secret) {
			t.Errorf("the service log holds a secret (%.12s...)", secret)
		}
	}
}

// flip changes one base64url character into another.
func flip(c string) string {
	if c == "A" {
		return "B"
	}
	return "A"
}

func TestAuthOtherProjectForbidden(t *testing.T) {
	svc := startService(t)
	id := svc.create(liveTask(deadRTMP("src"), deadRTMP("dst")))

	// A project of another account, made while the service runs.
	p := svc.iamCLI("create-project", "--project", "second", "--region", "local")
	if str(p, "project_id") != "second" || str(p, "account") != "second" {
		t.Fatalf("create-project = %v", p)
	}
	root := signed(testAK, testSK)
	for _, project := range []string{"second", "nosuchproject"} {
		for _, call := range taskCalls() {
			status, out := call.send(svc, project, id, root, nil)
			// The same answer whether or not the project exists.
			wantStatus(t, call.name+" in project "+project+" with the bootstrap key", status, out, http.StatusForbidden, codeForbidden)
		}
	}
	tok := svc.iamCLI("issue-token", "--access-key", testAK)
	if status, out := svc.send(http.MethodGet, tasksOf("second"), nil, withToken(str(tok, "token")), nil); status != http.StatusForbidden {
		t.Errorf("list in project second with a token for %s: %d %v, want 403", testProject, status, out)
	}
	wantUnchanged(t, svc, id)

	// A user of the second project works there, and only there.
	u := svc.iamCLI("create-user", "--project", "second", "--name", "ops", "--allow", auth.ActionAll)
	ops := signed(str(u, "access_key"), str(u, "secret_key"))
	status, out := svc.send(http.MethodPost, tasksOf("second"), liveTask(deadRTMP("src"), deadRTMP("second")), ops, nil)
	wantStatus(t, "create in project second by its user", status, out, http.StatusOK, "")
	status, out = svc.send(http.MethodGet, tasksOf("second"), nil, ops, nil)
	wantStatus(t, "list in project second by its user", status, out, http.StatusOK, "")
	if infos, _ := out["task_infos"].([]any); len(infos) != 1 || infos[0].(map[string]any)["task_id"] == id {
		t.Errorf("project second lists %v, want its one task", out["task_infos"])
	}
	status, out = svc.send(http.MethodGet, tasksOf(testProject)+"?task_id="+id, nil, ops, nil)
	wantStatus(t, "list in the bootstrap project by the second project's user", status, out, http.StatusForbidden, codeForbidden)
}

func TestAuthLimitedUser(t *testing.T) {
	svc := startService(t)
	id := svc.create(liveTask(deadRTMP("src"), deadRTMP("dst")))

	_, stderr, err := svc.runIAM("create-user", "--project", testProject, "--name", "viewer", "--allow", "live:stream:list")
	if err == nil || !strings.Contains(string(stderr), "valid actions: "+strings.Join([]string{
		auth.ActionCreate, auth.ActionList, auth.ActionModify, auth.ActionDelete, auth.ActionAll}, ", ")) {
		t.Errorf("create-user with a bad action: %v, %s; want a failure listing the valid actions", err, stderr)
	}
	_, stderr, err = svc.runIAM("create-user", "--project", "ghost", "--name", "viewer", "--allow", auth.ActionList)
	if err == nil || !strings.Contains(string(stderr), `unknown project "ghost"`) {
		t.Errorf("create-user in an unknown project: %v, %s", err, stderr)
	}

	u := svc.iamCLI("create-user", "--project", testProject, "--name", "viewer", "--allow", auth.ActionList)
	viewer := signed(str(u, "access_key"), str(u, "secret_key"))
	for _, call := range taskCalls() {
		status, out := call.send(svc, testProject, id, viewer, nil)
		if call.name == "list" {
			wantStatus(t, "list by a list-only user", status, out, http.StatusOK, "")
			if infos, _ := out["task_infos"].([]any); len(infos) != 1 || infos[0].(map[string]any)["task_id"] != id {
				t.Errorf("list by a list-only user: %v, want the task %s", out, id)
			}
			continue
		}
		wantStatus(t, call.name+" by a list-only user", status, out, http.StatusForbidden, codeForbidden)
	}
	wantUnchanged(t, svc, id)

	// list-users shows the user and never a secret.
	stdout, _, err := svc.runIAM("list-users", "--project", testProject)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(stdout), str(u, "access_key")) || strings.Contains(string(stdout), str(u, "secret_key")) ||
		strings.Contains(string(stdout), testSK) {
		t.Errorf("list-users: %s", stdout)
	}
}

func TestAuthRevokeWhileRunning(t *testing.T) {
	svc := startService(t)
	u := svc.iamCLI("create-user", "--project", testProject, "--name", "ops", "--allow", auth.ActionAll)
	ak := str(u, "access_key")
	ops := signed(ak, str(u, "secret_key"))
	tok := svc.iamCLI("issue-token", "--access-key", ak)
	byToken := withToken(str(tok, "token"))

	for _, cred := range []credentials{ops, byToken} {
		if status, out := svc.send(http.MethodGet, tasksOf(testProject), nil, cred, nil); status != http.StatusOK {
			t.Fatalf("list before the revoke: %d %v", status, out)
		}
	}
	r := svc.iamCLI("revoke-key", "--access-key", ak)
	if r["revoked"] != true {
		t.Fatalf("revoke-key = %v", r)
	}
	status, out := svc.send(http.MethodGet, tasksOf(testProject), nil, ops, nil)
	wantStatus(t, "list with a revoked key", status, out, http.StatusUnauthorized, codeUnauthorized)
	status, out = svc.send(http.MethodGet, tasksOf(testProject), nil, byToken, nil)
	wantStatus(t, "list with a token of a revoked key", status, out, http.StatusUnauthorized, codeUnauthorized)
	status, out = svc.send(http.MethodPost, tasksOf(testProject), liveTask(deadRTMP("src"), deadRTMP("dst")), ops, nil)
	wantStatus(t, "create with a revoked key", status, out, http.StatusUnauthorized, codeUnauthorized)
	if _, stderr, err := svc.runIAM("issue-token", "--access-key", ak); err == nil || !strings.Contains(string(stderr), "is revoked") {
		t.Errorf("issue-token for a revoked key: %v, %s", err, stderr)
	}
	// Other keys are not affected.
	status, out = svc.send(http.MethodGet, tasksOf(testProject), nil, signed(testAK, testSK), nil)
	wantStatus(t, "list with the bootstrap key", status, out, http.StatusOK, "")
}

// TestAuthTokenFlow is the README's curl walk-through: a token from the CLI,
// then plain requests that carry only X-Auth-Token.
func TestAuthTokenFlow(t *testing.T) {
	svc := startService(t)
	tok := svc.iamCLI("issue-token", "--access-key", testAK, "--ttl", "1h")
	token := str(tok, "token")
	exp, err := time.Parse(time.RFC3339, str(tok, "expires_at"))
	if err != nil || exp.Before(time.Now().Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
		t.Fatalf("issue-token --ttl 1h: %v (%v), want expires_at in an hour", tok, err)
	}
	if str(tok, "project_id") != testProject {
		t.Errorf("issue-token: project_id %q, want the key's project %s", str(tok, "project_id"), testProject)
	}

	curl := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, svc.url(path), strings.NewReader(body))
		req.Header.Set("X-Auth-Token", token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	status, out := curl(http.MethodPost, tasksOf(testProject), fmt.Sprintf(
		`{"source_type":"PullLivePushLive","source_urls":[%q],"destination_url":%q}`, deadRTMP("src"), deadRTMP("dst")))
	wantStatus(t, "create with a token", status, out, http.StatusOK, "")
	id := str(out, "task_id")
	status, out = curl(http.MethodGet, tasksOf(testProject)+"?task_id="+id, "")
	wantStatus(t, "list with a token", status, out, http.StatusOK, "")
	if out["total"] != float64(1) {
		t.Errorf("list with a token: %v, want the task", out)
	}
	status, out = curl(http.MethodPut, tasksOf(testProject), fmt.Sprintf(`{"task_id":%q,"status":"pause"}`, id))
	wantStatus(t, "modify with a token", status, out, http.StatusOK, "")
	if info := svc.show(id); info == nil || info["status"] != "pause" {
		t.Errorf("after modify with a token: %v, want status pause", info)
	}
	status, out = curl(http.MethodDelete, tasksOf(testProject)+"?task_id="+id, "")
	wantStatus(t, "delete with a token", status, out, http.StatusOK, "")
	if info := svc.show(id); info != nil {
		t.Errorf("after delete with a token the task is still listed: %v", info)
	}
	if strings.Contains(svc.out.String(), token) {
		t.Error("the service log holds the token")
	}
}

// TestNoCredentialsInListOrLogs creates a task whose URLs carry credentials:
// list returns them as stored but for the secrets, and the log never holds
// them, not even while the task fails to connect.
func TestNoCredentialsInListOrLogs(t *testing.T) {
	svc := startService(t)
	secrets := []string{"srcPassw0rd", "srcToken123", "bkPassw0rd", "dstKey456789", "cbSign000111"}
	src := fmt.Sprintf("rtmp://relay:srcPassw0rd@127.0.0.1:%d/live/src?token=srcToken123&vhost=v1", deadPort)
	backup := fmt.Sprintf("rtmp://relay:bkPassw0rd@127.0.0.1:%d/live/backup", deadPort)
	dst := fmt.Sprintf("rtmp://127.0.0.1:%d/live/dst?key=dstKey456789", deadPort)
	cb := fmt.Sprintf("http://127.0.0.1:%d/hook?sign=cbSign000111&id=7", deadPort)
	id := svc.create(map[string]any{
		"source_type":        "PullLivePushLive",
		"source_urls":        []string{src},
		"backup_source_type": "PullLivePushLive",
		"backup_source_urls": []string{backup},
		"destination_url":    dst,
		"callback_url":       cb,
	})
	// Let it try the source, the backup and the callback a few times.
	var info map[string]any
	testpeer.WaitFor(t, 20*time.Second, "the task to fail over and record an error", func() bool {
		info = svc.show(id)
		return info != nil && info["last_error"] != nil && num(info, "failovers") >= 1
	})
	time.Sleep(500 * time.Millisecond)

	raw, _ := json.Marshal(info)
	for _, secret := range secrets {
		if strings.Contains(string(raw), secret) {
			t.Errorf("list returns the secret %q: %s", secret, raw)
		}
	}
	port := fmt.Sprint(deadPort)
	wantFields := map[string]any{
		"source_urls":        []any{"rtmp://relay:REDACTED@127.0.0.1:" + port + "/live/src?token=REDACTED&vhost=v1"},
		"backup_source_urls": []any{"rtmp://relay:REDACTED@127.0.0.1:" + port + "/live/backup"},
		"destination_url":    "rtmp://127.0.0.1:" + port + "/live/dst?key=REDACTED",
		"callback_url":       "http://127.0.0.1:" + port + "/hook?sign=REDACTED&id=7",
	}
	for k, want := range wantFields {
		if got, _ := json.Marshal(info[k]); string(got) != mustJSON(want) {
			t.Errorf("list %s = %s, want %s", k, got, mustJSON(want))
		}
	}
	logs := svc.out.String()
	for _, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the service log holds the secret %q", secret)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
