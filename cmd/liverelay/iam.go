package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/store"
)

// apiActions are the IAM actions of the API's calls; grantableActions are
// what --allow accepts: those and the wildcard for all of them.
var (
	apiActions       = []string{auth.ActionCreate, auth.ActionList, auth.ActionModify, auth.ActionDelete}
	grantableActions = []string{auth.ActionCreate, auth.ActionList, auth.ActionModify, auth.ActionDelete, auth.ActionAll}
)

// iamOptions holds every iam flag; each command defines the ones it takes.
type iamOptions struct {
	dataDir   string
	store     string
	project   string
	name      string
	allow     listFlag
	accessKey string
	ttl       time.Duration
	regions   listFlag
	account   string
	cbKey     string
	generate  bool
	clear     bool
}

// iamCommand is one `liverelay iam` command.
type iamCommand struct {
	name     string
	synopsis string
	define   func(fs *flag.FlagSet, o *iamOptions)
	// check validates the flags before the store is opened.
	check func(o *iamOptions) error
	// run does the work and returns what is printed as JSON.
	run func(ctx context.Context, a *iamAdmin, o *iamOptions) (any, error)
}

// iamAdmin is what the commands work on: the store the service reads on
// every request, so what they change takes effect at once.
type iamAdmin struct {
	store store.Store
	keys  func() (*auth.Keyring, error) // loaded only by the commands that need it
	now   time.Time
}

var iamCommands = []*iamCommand{
	{
		name:     "create-project",
		synopsis: "[--project P] [--region R] [--account A]",
		define: func(fs *flag.FlagSet, o *iamOptions) {
			fs.StringVar(&o.project, "project", "", "ID of the new project (default: 32 random hex characters)")
			fs.Var(&o.regions, "region", "the project's default region; with a comma-separated list, as serve takes, the first (default local)")
			fs.StringVar(&o.account, "account", "", "an existing account to add the project to (default: a new account, named after the project)")
		},
		check: checkCreateProject,
		run:   createProject,
	},
	{
		name:     "create-user",
		synopsis: "--project P --name N --allow ACTION[,ACTION...]",
		define: func(fs *flag.FlagSet, o *iamOptions) {
			fs.StringVar(&o.project, "project", "", "project the user's access key may use (required)")
			fs.StringVar(&o.name, "name", "", "user name, unique among the account's users with a valid key (required)")
			fs.Var(&o.allow, "allow", "comma-separated IAM actions the user may perform: "+strings.Join(grantableActions, ", ")+" (required)")
		},
		check: checkCreateUser,
		run:   createUser,
	},
	{
		name:     "issue-token",
		synopsis: "--access-key AK [--project P] [--ttl 24h]",
		define: func(fs *flag.FlagSet, o *iamOptions) {
			fs.StringVar(&o.accessKey, "access-key", "", "access key the token stands for (required)")
			fs.StringVar(&o.project, "project", "", "project the token is for (default: the key's project, when it has exactly one)")
			fs.DurationVar(&o.ttl, "ttl", auth.DefaultTokenTTL, "how long the token is valid")
		},
		check: checkIssueToken,
		run:   issueToken,
	},
	{
		name:     "list-users",
		synopsis: "[--project P]",
		define: func(fs *flag.FlagSet, o *iamOptions) {
			fs.StringVar(&o.project, "project", "", "list only the keys that may use this project")
		},
		check: func(*iamOptions) error { return nil },
		run:   listUsers,
	},
	{
		name:     "revoke-key",
		synopsis: "--access-key AK",
		define: func(fs *flag.FlagSet, o *iamOptions) {
			fs.StringVar(&o.accessKey, "access-key", "", "access key to revoke (required)")
		},
		check: func(o *iamOptions) error { return required("access-key", o.accessKey) },
		run:   revokeKey,
	},
	{
		name:     "set-callback-key",
		synopsis: "--project P (--generate | --key K | --clear)",
		define: func(fs *flag.FlagSet, o *iamOptions) {
			fs.StringVar(&o.project, "project", "", "project whose callbacks the key signs (required)")
			fs.BoolVar(&o.generate, "generate", false, "generate a random key and print it once")
			fs.StringVar(&o.cbKey, "key", "", "use this key")
			fs.BoolVar(&o.clear, "clear", false, "remove the project's key (callbacks are signed with --callback-signing-key again)")
		},
		check: checkSetCallbackKey,
		run:   setCallbackKey,
	},
}

func checkSetCallbackKey(o *iamOptions) error {
	if err := required("project", o.project); err != nil {
		return err
	}
	n := 0
	for _, set := range []bool{o.generate, o.cbKey != "", o.clear} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("give exactly one of --generate, --key and --clear")
	}
	return nil
}

type callbackKeyOutput struct {
	Project     string `json:"project"`
	CallbackKey string `json:"callback_key,omitempty"` // shown once
	Cleared     bool   `json:"cleared,omitempty"`
}

// setCallbackKey stores a project's own callback signing key, sealed.
func setCallbackKey(ctx context.Context, a *iamAdmin, o *iamOptions) (any, error) {
	if _, err := a.store.GetProject(ctx, o.project); err != nil {
		return nil, fmt.Errorf("project %q: %w", o.project, err)
	}
	if o.clear {
		if err := a.store.SetProjectCallbackKey(ctx, o.project, nil); err != nil {
			return nil, err
		}
		return callbackKeyOutput{Project: o.project, Cleared: true}, nil
	}
	key := o.cbKey
	if o.generate {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		key = hex.EncodeToString(b)
	}
	keys, err := a.keys()
	if err != nil {
		return nil, err
	}
	sealed, err := keys.Seal([]byte(key))
	if err != nil {
		return nil, err
	}
	if err := a.store.SetProjectCallbackKey(ctx, o.project, sealed); err != nil {
		return nil, err
	}
	return callbackKeyOutput{Project: o.project, CallbackKey: key}, nil
}

func iamUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: liverelay iam <command> [flags]

Administers projects, users and access keys in the data directory of a
service, running or not; what a command changes takes effect at once.
Each command prints JSON. Every command takes --data-dir (env
LIVERELAY_DATA_DIR, default ./liverelay-data), and every flag its
LIVERELAY_<FLAG> variable; liverelay iam <command> -h lists the flags.

Commands:
`)
	for _, c := range iamCommands {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.synopsis)
	}
	fmt.Fprintf(w, "\nActions for --allow: %s\n", strings.Join(grantableActions, ", "))
}

// iam runs `liverelay iam <command> [flags]`.
func iam(args []string, stdout, stderr io.Writer) error {
	cmd, o, err := parseIAM(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := openStore(context.Background(), o.store, o.dataDir, true)
	if err != nil {
		return err
	}
	defer st.Close()
	a := &iamAdmin{
		store: st,
		keys:  func() (*auth.Keyring, error) { return auth.LoadKeyring(o.dataDir) },
		now:   time.Now().UTC().Truncate(time.Millisecond),
	}
	out, err := cmd.run(context.Background(), a, o)
	if err != nil {
		return fmt.Errorf("iam %s: %w", cmd.name, err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// parseIAM finds the command and parses and checks its flags.
func parseIAM(args []string, stderr io.Writer) (*iamCommand, *iamOptions, error) {
	names := make([]string, len(iamCommands))
	for i, c := range iamCommands {
		names[i] = c.name
	}
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("iam: name a command: %s (liverelay iam -h for help)", strings.Join(names, ", "))
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		iamUsage(stderr)
		return nil, nil, flag.ErrHelp
	}
	i := slices.IndexFunc(iamCommands, func(c *iamCommand) bool { return c.name == args[0] })
	if i < 0 {
		return nil, nil, fmt.Errorf("iam: unknown command %q; the commands are %s", args[0], strings.Join(names, ", "))
	}
	cmd := iamCommands[i]
	o := &iamOptions{}
	fs := flag.NewFlagSet("liverelay iam "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dataDir, "data-dir", "./liverelay-data", "data directory of the service (its key file seals secrets)")
	fs.StringVar(&o.store, "store", "", storeUsage)
	cmd.define(fs, o)
	if err := parseFlags(fs, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("iam %s: %w", cmd.name, err)
	}
	if err := cmd.check(o); err != nil {
		return nil, nil, fmt.Errorf("iam %s: %w", cmd.name, err)
	}
	return cmd, o, nil
}

func required(flagName, value string) error {
	if value == "" {
		return fmt.Errorf("--%s is required", flagName)
	}
	return nil
}

// checkID accepts 1-64 letters, digits and the characters in extra; IDs go
// into URL paths and logs, so they stay plain.
func checkID(flagName, value, extra string) error {
	ok := len(value) >= 1 && len(value) <= 64 && !strings.ContainsFunc(value, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune(extra, r))
	})
	if !ok {
		return fmt.Errorf("--%s %q: want 1-64 letters, digits or %q", flagName, value, extra)
	}
	return nil
}

func checkCreateProject(o *iamOptions) error {
	if o.project != "" {
		if err := checkID("project", o.project, "-_"); err != nil {
			return err
		}
	}
	if len(o.regions) == 0 {
		o.regions = listFlag{"local"}
	}
	if r := o.regions[0]; len(r) > 64 || strings.ContainsFunc(r, func(c rune) bool { return c <= ' ' || c == 0x7f }) {
		return fmt.Errorf("--region %q: want 1-64 characters without spaces", r)
	}
	if o.account != "" {
		return checkID("account", o.account, "-_")
	}
	return nil
}

type projectOutput struct {
	ProjectID string `json:"project_id"`
	Account   string `json:"account"`
	Region    string `json:"region"`
}

func createProject(ctx context.Context, a *iamAdmin, o *iamOptions) (any, error) {
	id := o.project
	if id == "" {
		id = newProjectID()
	}
	p, err := a.store.GetProject(ctx, id)
	switch {
	case err == nil:
		return nil, fmt.Errorf("project %s already exists (account %s)", id, p.AccountID)
	case !errors.Is(err, store.ErrProjectNotFound):
		return nil, err
	}
	account := id // a new account, named after its first project as bootstrap does
	if o.account != "" {
		creds, err := a.store.ListCredentials(ctx)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(creds, func(c store.Credential) bool { return c.AccountID == o.account }) {
			return nil, fmt.Errorf("unknown account %q: no access key belongs to it (omit --account to create a new account)", o.account)
		}
		account = o.account
	}
	p = &store.Project{ID: id, AccountID: account, Region: o.regions[0], CreateTime: a.now}
	if err := a.store.PutProject(ctx, p); err != nil {
		return nil, err
	}
	return projectOutput{ProjectID: p.ID, Account: p.AccountID, Region: p.Region}, nil
}

func checkCreateUser(o *iamOptions) error {
	if err := required("project", o.project); err != nil {
		return err
	}
	if err := checkID("name", o.name, "-_.@"); err != nil {
		return err
	}
	if len(o.allow) == 0 {
		return fmt.Errorf("--allow is required; valid actions: %s", strings.Join(grantableActions, ", "))
	}
	for _, act := range o.allow {
		if !slices.Contains(grantableActions, act) {
			return fmt.Errorf("--allow: unknown action %q; valid actions: %s", act, strings.Join(grantableActions, ", "))
		}
	}
	slices.Sort(o.allow)
	o.allow = slices.Compact(o.allow)
	return nil
}

type newUserOutput struct {
	User      string   `json:"user"`
	AccessKey string   `json:"access_key"`
	SecretKey string   `json:"secret_key"`
	ProjectID string   `json:"project_id"`
	Actions   []string `json:"actions"`
}

func createUser(ctx context.Context, a *iamAdmin, o *iamOptions) (any, error) {
	p, err := a.store.GetProject(ctx, o.project)
	if errors.Is(err, store.ErrProjectNotFound) {
		return nil, fmt.Errorf("unknown project %q", o.project)
	}
	if err != nil {
		return nil, err
	}
	creds, err := a.store.ListCredentials(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range creds {
		if c.AccountID == p.AccountID && c.UserID == o.name && !c.Revoked {
			return nil, fmt.Errorf("user %q of account %s already has the access key %s: revoke it first, or choose another --name", o.name, p.AccountID, c.AccessKey)
		}
	}
	keys, err := a.keys()
	if err != nil {
		return nil, err
	}
	var ak, sk string
	for {
		ak, sk = auth.NewAccessKey()
		if !slices.ContainsFunc(creds, func(c store.Credential) bool { return c.AccessKey == ak }) {
			break
		}
	}
	sealed, err := keys.Seal([]byte(sk))
	if err != nil {
		return nil, err
	}
	err = a.store.PutCredential(ctx, &store.Credential{
		AccessKey: ak, SecretKey: sealed, UserID: o.name, AccountID: p.AccountID,
		ProjectIDs: []string{p.ID}, Actions: o.allow, CreateTime: a.now,
	})
	if err != nil {
		return nil, err
	}
	return newUserOutput{User: o.name, AccessKey: ak, SecretKey: sk, ProjectID: p.ID, Actions: o.allow}, nil
}

func checkIssueToken(o *iamOptions) error {
	if err := required("access-key", o.accessKey); err != nil {
		return err
	}
	if o.ttl <= 0 {
		return fmt.Errorf("--ttl must be positive, got %s", o.ttl)
	}
	return nil
}

type tokenOutput struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expires_at"`
	AccessKey string `json:"access_key"`
	ProjectID string `json:"project_id"`
}

// issueToken checks what the service will check on every request with the
// token (a live key that may act in the project), so that a token that could
// never work is not handed out.
func issueToken(ctx context.Context, a *iamAdmin, o *iamOptions) (any, error) {
	c, err := liveCredential(ctx, a.store, o.accessKey)
	if err != nil {
		return nil, err
	}
	projectID := o.project
	if projectID == "" {
		if len(c.ProjectIDs) != 1 {
			return nil, fmt.Errorf("access key %s is not limited to one project: name one with --project", c.AccessKey)
		}
		projectID = c.ProjectIDs[0]
	}
	p, err := a.store.GetProject(ctx, projectID)
	if errors.Is(err, store.ErrProjectNotFound) {
		return nil, fmt.Errorf("unknown project %q", projectID)
	}
	if err != nil {
		return nil, err
	}
	mayAct := slices.ContainsFunc(apiActions, func(action string) bool {
		return auth.Allowed(c, projectID, p, action)
	})
	if !mayAct {
		return nil, fmt.Errorf("access key %s (user %s of account %s) may not act in project %s (account %s)",
			c.AccessKey, c.UserID, c.AccountID, projectID, p.AccountID)
	}
	keys, err := a.keys()
	if err != nil {
		return nil, err
	}
	token, expires, err := keys.IssueToken(c.AccessKey, projectID, a.now, o.ttl)
	if err != nil {
		return nil, err
	}
	return tokenOutput{Token: token, ExpiresAt: expires.UTC().Format(time.RFC3339), AccessKey: c.AccessKey, ProjectID: projectID}, nil
}

// liveCredential returns an access key that exists and is not revoked.
func liveCredential(ctx context.Context, st store.Store, ak string) (*store.Credential, error) {
	c, err := st.GetCredential(ctx, ak)
	if errors.Is(err, store.ErrCredentialUnknown) {
		return nil, fmt.Errorf("unknown access key %q", ak)
	}
	if err != nil {
		return nil, err
	}
	if c.Revoked {
		return nil, fmt.Errorf("access key %s is revoked", ak)
	}
	return c, nil
}

// userOutput is an access key as list-users shows it: never its secret.
type userOutput struct {
	User       string   `json:"user"`
	AccessKey  string   `json:"access_key"`
	Account    string   `json:"account"`
	Projects   []string `json:"projects"` // empty: every project of the account
	Actions    []string `json:"actions"`
	Root       bool     `json:"root"`
	Revoked    bool     `json:"revoked"`
	CreateTime string   `json:"create_time,omitempty"`
}

type usersOutput struct {
	Users []userOutput `json:"users"`
}

func listUsers(ctx context.Context, a *iamAdmin, o *iamOptions) (any, error) {
	creds, err := a.store.ListCredentials(ctx)
	if err != nil {
		return nil, err
	}
	var p *store.Project
	if o.project != "" {
		p, err = a.store.GetProject(ctx, o.project)
		if errors.Is(err, store.ErrProjectNotFound) {
			return nil, fmt.Errorf("unknown project %q", o.project)
		}
		if err != nil {
			return nil, err
		}
	}
	out := usersOutput{Users: []userOutput{}}
	for _, c := range creds {
		if p != nil && !mayUseProject(&c, p) {
			continue
		}
		u := userOutput{
			User: c.UserID, AccessKey: c.AccessKey, Account: c.AccountID,
			Projects: nonNilList(c.ProjectIDs), Actions: nonNilList(c.Actions), Root: c.Root, Revoked: c.Revoked,
		}
		if !c.CreateTime.IsZero() {
			u.CreateTime = c.CreateTime.UTC().Format(time.RFC3339)
		}
		out.Users = append(out.Users, u)
	}
	slices.SortFunc(out.Users, func(x, y userOutput) int {
		return cmp.Or(cmp.Compare(x.Account, y.Account), cmp.Compare(x.User, y.User), cmp.Compare(x.AccessKey, y.AccessKey))
	})
	return out, nil
}

// mayUseProject reports whether a key reaches project p at all, whatever its
// actions and whether or not it is revoked: the scope auth.Allowed checks.
func mayUseProject(c *store.Credential, p *store.Project) bool {
	if c.AccountID != p.AccountID {
		return false
	}
	return c.Root || len(c.ProjectIDs) == 0 || slices.Contains(c.ProjectIDs, p.ID)
}

func nonNilList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type revokeOutput struct {
	AccessKey string `json:"access_key"`
	User      string `json:"user"`
	Account   string `json:"account"`
	Revoked   bool   `json:"revoked"`
}

func revokeKey(ctx context.Context, a *iamAdmin, o *iamOptions) (any, error) {
	c, err := a.store.GetCredential(ctx, o.accessKey)
	if errors.Is(err, store.ErrCredentialUnknown) {
		return nil, fmt.Errorf("unknown access key %q", o.accessKey)
	}
	if err != nil {
		return nil, err
	}
	if !c.Revoked {
		c.Revoked = true
		if err := a.store.PutCredential(ctx, c); err != nil {
			return nil, err
		}
	}
	return revokeOutput{AccessKey: c.AccessKey, User: c.UserID, Account: c.AccountID, Revoked: true}, nil
}
