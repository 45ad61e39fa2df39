package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/store/sqlite"
)

// clearLiverelayEnv unsets every LIVERELAY_ variable for the test, so the
// environment of whoever runs the tests cannot fill a flag.
func clearLiverelayEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "LIVERELAY_") {
			t.Setenv(name, "") // restores the value after the test
			os.Unsetenv(name)
		}
	}
}

func TestParseIAM(t *testing.T) {
	valid := strings.Join(grantableActions, ", ")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // substring; "" means success
		check   func(t *testing.T, cmd *iamCommand, o *iamOptions)
	}{
		{name: "no command", args: nil, wantErr: "name a command: create-project, create-user, issue-token, list-users, revoke-key"},
		{name: "unknown command", args: []string{"delete-user"}, wantErr: `unknown command "delete-user"; the commands are create-project, create-user`},
		{name: "unknown flag", args: []string{"list-users", "--token", "x"}, wantErr: "flag provided but not defined: -token"},
		{name: "stray argument", args: []string{"list-users", "extra"}, wantErr: `unexpected argument "extra"`},
		{
			name: "create-user", args: []string{"create-user", "--data-dir", "/d", "--project", "p1", "--name", "ops.bot", "--allow", "live:stream:listPullTask, live:stream:createPullTask", "--allow", "live:stream:listPullTask"},
			check: func(t *testing.T, cmd *iamCommand, o *iamOptions) {
				if cmd.name != "create-user" || o.dataDir != "/d" || o.project != "p1" || o.name != "ops.bot" {
					t.Errorf("got %s %+v", cmd.name, o)
				}
				if want := []string{auth.ActionCreate, auth.ActionList}; !slices.Equal(o.allow, want) {
					t.Errorf("allow = %q, want %q (sorted, without repeats)", o.allow, want)
				}
			},
		},
		{name: "create-user without project", args: []string{"create-user", "--name", "n", "--allow", auth.ActionList}, wantErr: "--project is required"},
		{name: "create-user without allow", args: []string{"create-user", "--project", "p", "--name", "n"}, wantErr: "--allow is required; valid actions: " + valid},
		{name: "create-user bad action", args: []string{"create-user", "--project", "p", "--name", "n", "--allow", "live:stream:list"}, wantErr: `unknown action "live:stream:list"; valid actions: ` + valid},
		{name: "create-user pattern not offered", args: []string{"create-user", "--project", "p", "--name", "n", "--allow", "live:stream:*"}, wantErr: "valid actions: " + valid},
		{name: "create-user bad name", args: []string{"create-user", "--project", "p", "--name", "a b", "--allow", auth.ActionAll}, wantErr: `--name "a b"`},
		{name: "create-user empty name", args: []string{"create-user", "--project", "p", "--allow", auth.ActionAll}, wantErr: `--name ""`},
		{
			name: "issue-token defaults", args: []string{"issue-token", "--access-key", "AK1"},
			check: func(t *testing.T, cmd *iamCommand, o *iamOptions) {
				if o.accessKey != "AK1" || o.ttl != 24*time.Hour || o.project != "" || o.dataDir != "./liverelay-data" {
					t.Errorf("got %+v", o)
				}
			},
		},
		{name: "issue-token zero ttl", args: []string{"issue-token", "--access-key", "AK1", "--ttl", "0s"}, wantErr: "--ttl must be positive"},
		{name: "issue-token bad ttl", args: []string{"issue-token", "--access-key", "AK1", "--ttl", "a day"}, wantErr: `invalid value "a day" for flag -ttl`},
		{name: "issue-token without key", args: []string{"issue-token"}, wantErr: "--access-key is required"},
		{name: "revoke-key without key", args: []string{"revoke-key", "--data-dir", "/d"}, wantErr: "--access-key is required"},
		{
			name: "environment fills flags, the command line wins",
			args: []string{"issue-token", "--project", "p-flag"},
			env:  map[string]string{"LIVERELAY_DATA_DIR": "/env/dir", "LIVERELAY_ACCESS_KEY": "AKENV", "LIVERELAY_PROJECT": "p-env", "LIVERELAY_TTL": "90m"},
			check: func(t *testing.T, cmd *iamCommand, o *iamOptions) {
				if o.dataDir != "/env/dir" || o.accessKey != "AKENV" || o.project != "p-flag" || o.ttl != 90*time.Minute {
					t.Errorf("got %+v", o)
				}
			},
		},
		{name: "bad environment value", args: []string{"issue-token", "--access-key", "AK"}, env: map[string]string{"LIVERELAY_TTL": "soon"}, wantErr: `LIVERELAY_TTL="soon"`},
		{
			name: "create-project defaults", args: []string{"create-project"},
			check: func(t *testing.T, cmd *iamCommand, o *iamOptions) {
				if o.project != "" || !slices.Equal(o.regions, listFlag{"local"}) || o.account != "" {
					t.Errorf("got %+v", o)
				}
			},
		},
		{
			name: "create-project takes serve's region list", args: []string{"create-project", "--project", "p_2-x"}, env: map[string]string{"LIVERELAY_REGION": "eu-1,us-1"},
			check: func(t *testing.T, cmd *iamCommand, o *iamOptions) {
				if o.regions[0] != "eu-1" {
					t.Errorf("region = %q, want eu-1", o.regions[0])
				}
			},
		},
		{name: "create-project bad ID", args: []string{"create-project", "--project", "../p"}, wantErr: `--project "../p"`},
		{name: "create-project bad account", args: []string{"create-project", "--account", "a/b"}, wantErr: `--account "a/b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearLiverelayEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd, o, err := parseIAM(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseIAM(%q) error = %v, want one containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseIAM(%q): %v", tc.args, err)
			}
			tc.check(t, cmd, o)
		})
	}
}

func TestParseIAMHelp(t *testing.T) {
	clearLiverelayEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "revoke-key      --access-key AK"},
		{[]string{"help"}, "Actions for --allow: live:stream:createPullTask"},
		{[]string{"create-user", "-h"}, "(env LIVERELAY_ALLOW)"},
	} {
		var out bytes.Buffer
		_, _, err := parseIAM(tc.args, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseIAM(%q) error = %v, want flag.ErrHelp", tc.args, err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("parseIAM(%q) help lacks %q:\n%s", tc.args, tc.want, out.String())
		}
	}
}

const (
	rootProject = "0123456789abcdef0123456789abcdef"
	rootAK      = "ROOTACCESSKEY0000001"
)

// newIAMAdmin returns an admin on a new store that holds what bootstrap
// makes: one project in its own account with a root key.
func newIAMAdmin(t *testing.T) (*iamAdmin, *auth.Keyring) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), storeFileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys, err := auth.NewKeyring(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ctx := t.Context()
	if err := st.PutProject(ctx, &store.Project{ID: rootProject, AccountID: rootProject, Region: "local", CreateTime: now}); err != nil {
		t.Fatal(err)
	}
	sealed, _ := keys.Seal([]byte("root-secret"))
	err = st.PutCredential(ctx, &store.Credential{AccessKey: rootAK, SecretKey: sealed, UserID: "root", AccountID: rootProject,
		ProjectIDs: []string{rootProject}, Actions: []string{auth.ActionAll}, Root: true, CreateTime: now})
	if err != nil {
		t.Fatal(err)
	}
	return &iamAdmin{store: st, keys: func() (*auth.Keyring, error) { return keys, nil }, now: now}, keys
}

// runIAM parses args as the command line would and runs the command.
func runIAM(t *testing.T, a *iamAdmin, args ...string) (any, error) {
	t.Helper()
	clearLiverelayEnv(t)
	cmd, o, err := parseIAM(args, io.Discard)
	if err != nil {
		t.Fatalf("parseIAM(%q): %v", args, err)
	}
	return cmd.run(t.Context(), a, o)
}

func mustRunIAM[T any](t *testing.T, a *iamAdmin, args ...string) T {
	t.Helper()
	out, err := runIAM(t, a, args...)
	if err != nil {
		t.Fatalf("iam %q: %v", args, err)
	}
	v, ok := out.(T)
	if !ok {
		t.Fatalf("iam %q returned %T", args, out)
	}
	return v
}

func wantIAMError(t *testing.T, a *iamAdmin, want string, args ...string) {
	t.Helper()
	_, err := runIAM(t, a, args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("iam %q error = %v, want one containing %q", args, err, want)
	}
}

// authorize asks a Verifier on the admin's store whether a request with
// these headers may perform action in project.
func authorize(t *testing.T, a *iamAdmin, keys *auth.Keyring, project, action string, header http.Header) error {
	t.Helper()
	r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/v1/"+project+"/pull/stream/task", nil)
	r.Header = header
	_, err := auth.NewVerifier(a.store, keys, nil).Authorize(context.Background(), r, nil, project, action)
	return err
}

func tokenHeader(token string) http.Header {
	return http.Header{"X-Auth-Token": {token}}
}

func TestIAMCreateProject(t *testing.T) {
	a, _ := newIAMAdmin(t)
	ctx := t.Context()

	p := mustRunIAM[projectOutput](t, a, "create-project", "--project", "p2", "--region", "eu-1")
	if p != (projectOutput{ProjectID: "p2", Account: "p2", Region: "eu-1"}) {
		t.Errorf("create-project = %+v, want p2 in a new account p2, region eu-1", p)
	}
	stored, err := a.store.GetProject(ctx, "p2")
	if err != nil || stored.AccountID != "p2" || stored.Region != "eu-1" || !stored.CreateTime.Equal(a.now) {
		t.Fatalf("stored project = %+v, %v", stored, err)
	}
	wantIAMError(t, a, "project p2 already exists (account p2)", "create-project", "--project", "p2")
	wantIAMError(t, a, `unknown account "nobody"`, "create-project", "--project", "p3", "--account", "nobody")

	p = mustRunIAM[projectOutput](t, a, "create-project", "--project", "p3", "--account", rootProject)
	if p.Account != rootProject || p.Region != "local" {
		t.Errorf("create-project --account = %+v, want the root account and region local", p)
	}
	gen := mustRunIAM[projectOutput](t, a, "create-project")
	if len(gen.ProjectID) != 32 || gen.Account != gen.ProjectID {
		t.Errorf("create-project without --project = %+v, want a 32-character ID in its own account", gen)
	}
}

func TestIAMCreateUser(t *testing.T) {
	a, keys := newIAMAdmin(t)
	ctx := t.Context()

	u := mustRunIAM[newUserOutput](t, a, "create-user", "--project", rootProject, "--name", "viewer", "--allow", auth.ActionList)
	if u.User != "viewer" || u.ProjectID != rootProject || !slices.Equal(u.Actions, []string{auth.ActionList}) {
		t.Errorf("create-user = %+v", u)
	}
	if len(u.AccessKey) != 20 || len(u.SecretKey) != 40 {
		t.Fatalf("access key %q / secret of %d characters, want 20 and 40", u.AccessKey, len(u.SecretKey))
	}
	c, err := a.store.GetCredential(ctx, u.AccessKey)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(c.SecretKey, []byte(u.SecretKey)) {
		t.Error("the secret key is stored in the clear")
	}
	if sk, err := keys.Open(c.SecretKey); err != nil || string(sk) != u.SecretKey {
		t.Errorf("stored secret opens to %q, %v; want the one printed", sk, err)
	}
	want := store.Credential{AccessKey: u.AccessKey, UserID: "viewer", AccountID: rootProject,
		ProjectIDs: []string{rootProject}, Actions: []string{auth.ActionList}}
	if c.UserID != want.UserID || c.AccountID != want.AccountID || c.Root || c.Revoked ||
		!slices.Equal(c.ProjectIDs, want.ProjectIDs) || !slices.Equal(c.Actions, want.Actions) {
		t.Errorf("stored credential = %+v, want %+v", c, want)
	}

	// The key signs requests the service accepts, for its actions only.
	sign := func() http.Header {
		r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/v1/"+rootProject+"/pull/stream/task", nil)
		auth.Sign(r, nil, u.AccessKey, u.SecretKey, time.Now())
		return r.Header
	}
	if err := authorize(t, a, keys, rootProject, auth.ActionList, sign()); err != nil {
		t.Errorf("list with the new key: %v", err)
	}
	if err := authorize(t, a, keys, rootProject, auth.ActionCreate, sign()); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("create with a list-only key: %v, want ErrForbidden", err)
	}

	wantIAMError(t, a, `user "viewer" of account `+rootProject+" already has the access key "+u.AccessKey,
		"create-user", "--project", rootProject, "--name", "viewer", "--allow", auth.ActionAll)
	wantIAMError(t, a, `user "root" of account`, "create-user", "--project", rootProject, "--name", "root", "--allow", auth.ActionAll)
	wantIAMError(t, a, `unknown project "ghost"`, "create-user", "--project", "ghost", "--name", "x", "--allow", auth.ActionAll)

	// After a revoke the name is free again.
	mustRunIAM[revokeOutput](t, a, "revoke-key", "--access-key", u.AccessKey)
	again := mustRunIAM[newUserOutput](t, a, "create-user", "--project", rootProject, "--name", "viewer", "--allow", auth.ActionAll)
	if again.AccessKey == u.AccessKey {
		t.Error("a new user got the revoked access key again")
	}
}

func TestIAMIssueToken(t *testing.T) {
	a, keys := newIAMAdmin(t)
	mustRunIAM[projectOutput](t, a, "create-project", "--project", "other")
	viewer := mustRunIAM[newUserOutput](t, a, "create-user", "--project", rootProject, "--name", "viewer", "--allow", auth.ActionList)

	tok := mustRunIAM[tokenOutput](t, a, "issue-token", "--access-key", rootAK, "--ttl", "2h")
	if tok.ProjectID != rootProject || tok.AccessKey != rootAK {
		t.Errorf("issue-token = %+v, want the root key's only project", tok)
	}
	if want := a.now.Add(2 * time.Hour).Truncate(time.Second).Format(time.RFC3339); tok.ExpiresAt != want {
		t.Errorf("expires_at = %s, want %s", tok.ExpiresAt, want)
	}
	if err := authorize(t, a, keys, rootProject, auth.ActionCreate, tokenHeader(tok.Token)); err != nil {
		t.Errorf("the root token is refused: %v", err)
	}
	if err := authorize(t, a, keys, "other", auth.ActionList, tokenHeader(tok.Token)); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("the root token in another project: %v, want ErrForbidden", err)
	}

	vt := mustRunIAM[tokenOutput](t, a, "issue-token", "--access-key", viewer.AccessKey, "--project", rootProject)
	if err := authorize(t, a, keys, rootProject, auth.ActionList, tokenHeader(vt.Token)); err != nil {
		t.Errorf("the viewer's token may not list: %v", err)
	}
	if err := authorize(t, a, keys, rootProject, auth.ActionDelete, tokenHeader(vt.Token)); !errors.Is(err, auth.ErrForbidden) {
		t.Errorf("the viewer's token may delete: %v", err)
	}

	wantIAMError(t, a, `unknown access key "NOSUCHKEY"`, "issue-token", "--access-key", "NOSUCHKEY")
	wantIAMError(t, a, `unknown project "ghost"`, "issue-token", "--access-key", rootAK, "--project", "ghost")
	wantIAMError(t, a, "may not act in project other (account other)", "issue-token", "--access-key", rootAK, "--project", "other")
	wantIAMError(t, a, "may not act in project other", "issue-token", "--access-key", viewer.AccessKey, "--project", "other")

	// A key of every project of its account must name one.
	wide := store.Credential{AccessKey: "WIDEACCESSKEY0000001", SecretKey: []byte{1}, UserID: "wide", AccountID: rootProject, Actions: []string{auth.ActionAll}}
	if err := a.store.PutCredential(t.Context(), &wide); err != nil {
		t.Fatal(err)
	}
	wantIAMError(t, a, "is not limited to one project: name one with --project", "issue-token", "--access-key", wide.AccessKey)
	mustRunIAM[tokenOutput](t, a, "issue-token", "--access-key", wide.AccessKey, "--project", rootProject)

	mustRunIAM[revokeOutput](t, a, "revoke-key", "--access-key", viewer.AccessKey)
	wantIAMError(t, a, "access key "+viewer.AccessKey+" is revoked", "issue-token", "--access-key", viewer.AccessKey)
	if err := authorize(t, a, keys, rootProject, auth.ActionList, tokenHeader(vt.Token)); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Errorf("a token of a revoked key: %v, want ErrUnauthenticated", err)
	}
}

func TestIAMListUsers(t *testing.T) {
	a, _ := newIAMAdmin(t)
	mustRunIAM[projectOutput](t, a, "create-project", "--project", "other")
	mustRunIAM[projectOutput](t, a, "create-project", "--project", "sibling", "--account", rootProject)
	viewer := mustRunIAM[newUserOutput](t, a, "create-user", "--project", rootProject, "--name", "viewer", "--allow", auth.ActionList)
	ops := mustRunIAM[newUserOutput](t, a, "create-user", "--project", "other", "--name", "ops", "--allow", auth.ActionAll)
	mustRunIAM[revokeOutput](t, a, "revoke-key", "--access-key", viewer.AccessKey)

	users := func(args ...string) []string {
		t.Helper()
		out, err := runIAM(t, a, append([]string{"list-users"}, args...)...)
		if err != nil {
			t.Fatalf("list-users %q: %v", args, err)
		}
		raw, _ := json.Marshal(out)
		for _, secret := range []string{viewer.SecretKey, ops.SecretKey, "root-secret", "secret_key"} {
			if strings.Contains(string(raw), secret) {
				t.Fatalf("list-users prints a secret: %s", raw)
			}
		}
		var got []string
		for _, u := range out.(usersOutput).Users {
			state := ""
			if u.Revoked {
				state = " revoked"
			}
			got = append(got, u.Account+"/"+u.User+state)
		}
		return got
	}
	if got, want := users(), []string{rootProject + "/root", rootProject + "/viewer revoked", "other/ops"}; !slices.Equal(got, want) {
		t.Errorf("list-users = %q, want %q", got, want)
	}
	if got, want := users("--project", "other"), []string{"other/ops"}; !slices.Equal(got, want) {
		t.Errorf("list-users --project other = %q, want %q", got, want)
	}
	// The account's root reaches its sibling project; the viewer's key does not.
	if got, want := users("--project", "sibling"), []string{rootProject + "/root"}; !slices.Equal(got, want) {
		t.Errorf("list-users --project sibling = %q, want %q", got, want)
	}
	wantIAMError(t, a, `unknown project "ghost"`, "list-users", "--project", "ghost")
}

func TestIAMRevokeKey(t *testing.T) {
	a, _ := newIAMAdmin(t)
	out := mustRunIAM[revokeOutput](t, a, "revoke-key", "--access-key", rootAK)
	if !out.Revoked || out.User != "root" {
		t.Errorf("revoke-key of the root key = %+v, want it revoked", out)
	}
	c, err := a.store.GetCredential(t.Context(), rootAK)
	if err != nil || !c.Revoked {
		t.Fatalf("stored key after revoke-key = %+v, %v", c, err)
	}
	if len(c.SecretKey) == 0 {
		t.Error("revoke-key dropped the sealed secret")
	}
	mustRunIAM[revokeOutput](t, a, "revoke-key", "--access-key", rootAK) // again: no error
	wantIAMError(t, a, `unknown access key "NOSUCHKEY"`, "revoke-key", "--access-key", "NOSUCHKEY")
}

// TestIAMCommandLine runs iam as main does, on a data directory a service
// used: the JSON on stdout and the refusal of a directory without a store.
func TestIAMCommandLine(t *testing.T) {
	clearLiverelayEnv(t)
	dir := t.TempDir()
	var stdout bytes.Buffer
	err := iam([]string{"list-users", "--data-dir", dir}, &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "holds no liverelay store") {
		t.Fatalf("iam on an empty directory: %v, want a refusal", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, storeFileName)); statErr == nil {
		t.Fatal("iam created a store in a directory that had none")
	}

	st, err := sqlite.Open(filepath.Join(dir, storeFileName))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutProject(t.Context(), &store.Project{ID: "p1", AccountID: "p1", Region: "local"}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	if err := iam([]string{"create-user", "--data-dir", dir, "--project", "p1", "--name", "bot", "--allow", auth.ActionAll}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var user map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &user); err != nil {
		t.Fatalf("create-user printed %q: %v", stdout.String(), err)
	}
	for _, k := range []string{"user", "access_key", "secret_key"} {
		if s, _ := user[k].(string); s == "" {
			t.Errorf("create-user printed no %s: %s", k, stdout.String())
		}
	}
	// The key is sealed with the data directory's master key, which the
	// service loads the same way.
	keys, err := auth.LoadKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err = sqlite.Open(filepath.Join(dir, storeFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.GetCredential(t.Context(), user["access_key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if sk, err := keys.Open(c.SecretKey); err != nil || string(sk) != user["secret_key"] {
		t.Errorf("the stored secret opens to %q, %v; want the printed one", sk, err)
	}
}

func TestIAMSetCallbackKey(t *testing.T) {
	a, keys := newIAMAdmin(t)
	out := mustRunIAM[callbackKeyOutput](t, a, "set-callback-key", "--project", rootProject, "--generate")
	if len(out.CallbackKey) != 64 {
		t.Fatalf("generated key %q, want 64 hex characters", out.CallbackKey)
	}
	p, err := a.store.GetProject(t.Context(), rootProject)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.CallbackKey, []byte(out.CallbackKey)) {
		t.Fatal("the callback key is stored in plain text")
	}
	if plain, err := keys.Open(p.CallbackKey); err != nil || string(plain) != out.CallbackKey {
		t.Fatalf("stored key opens to %q, %v", plain, err)
	}
	mustRunIAM[callbackKeyOutput](t, a, "set-callback-key", "--project", rootProject, "--clear")
	if p, _ := a.store.GetProject(t.Context(), rootProject); len(p.CallbackKey) != 0 {
		t.Fatal("--clear left a key")
	}
	if err := checkSetCallbackKey(&iamOptions{project: rootProject, generate: true, clear: true}); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Fatalf("--generate with --clear: %v", err)
	}
	wantIAMError(t, a, "nosuch", "set-callback-key", "--project", "nosuch", "--key", "k")
}
