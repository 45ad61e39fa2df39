//go:build unix

package testpeer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresBin is where Debian's postgresql-15 package installs the server
// programs (they are not in PATH).
const postgresBin = "/usr/lib/postgresql/15/bin"

// postgresHint names the command that installs PostgreSQL.
const postgresHint = "run the test command from README.md (./scripts/test.sh, as CI does), which installs it " +
	"with `apt-get install -y postgresql`"

const (
	postgresStartAttempts = 8
	postgresStartTimeout  = 30 * time.Second
	// postgresDirPrefix names every cluster directory under os.TempDir(), so
	// the ones left by a test binary that died can be found and removed.
	postgresDirPrefix = "liverelay-postgres-"
	// ownerFile, in a cluster directory, holds the pid of the test binary
	// that made it.
	ownerFile = "owner.pid"
)

// Postgres is a private PostgreSQL 15 cluster: its own data directory under
// a temporary directory, listening on 127.0.0.1 on a free port and on a unix
// socket in that directory, run as the postgres OS user when the tests run
// as root (initdb and the server refuse to run as root).
//
// The server is a child of the test binary, not a daemon started by
// pg_ctl start: when the binary dies (a timeout, a panic), the kernel kills
// the server too (Pdeathsig), so no cluster outlives its tests. pg_ctl stops it.
type Postgres struct {
	Port int
	Dir  string // owned by the server's user: data/, the socket

	data string
	conf string // postgresql.conf as initdb wrote it, before our settings
	cred *syscall.Credential
	proc *Proc
}

var shared struct {
	mu  sync.Mutex
	pg  *Postgres
	err error // why the shared cluster could not start; every later caller fails with it
}

var databaseSeq atomic.Int64

// StartPostgres returns the DSN of a new, empty database for this test, on
// the test binary's shared cluster, which the first call starts (initdb and
// a start take a second or two; a database, a fifth of one). The database
// is dropped when the test ends. It fails the test (never skips it) when
// PostgreSQL is missing.
//
// A package whose tests call it stops the shared cluster in TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testpeer.StopSharedPostgres()
//		os.Exit(code)
//	}
//
// Without that, the server still dies with the test binary; its directory is
// removed by the next run.
func StartPostgres(t testing.TB) (dsn string) {
	t.Helper()
	shared.mu.Lock()
	if shared.pg == nil && shared.err == nil {
		shared.pg, shared.err = newPostgres()
		if shared.err == nil {
			t.Logf("testpeer: shared PostgreSQL cluster on 127.0.0.1:%d in %s", shared.pg.Port, shared.pg.Dir)
		}
	}
	pg, err := shared.pg, shared.err
	shared.mu.Unlock()
	if err != nil {
		t.Fatalf("testpeer: PostgreSQL: %v", err)
	}
	return pg.CreateDatabase(t)
}

// StopSharedPostgres stops the cluster StartPostgres started, if any, and
// removes its directory.
func StopSharedPostgres() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg != nil {
		if err := shared.pg.destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "testpeer: stop shared PostgreSQL: %v\n", err)
		}
		shared.pg = nil
	}
}

// StartPostgresCluster starts a cluster of the test's own, for tests that
// stop and start the server; it is stopped (pg_ctl stop -m immediate) and
// its directory removed when the test ends.
func StartPostgresCluster(t testing.TB) *Postgres {
	t.Helper()
	pg, err := newPostgres()
	if err != nil {
		t.Fatalf("testpeer: PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.destroy(); err != nil {
			t.Errorf("testpeer: %v", err)
		}
	})
	return pg
}

// CreateDatabase creates an empty database and returns its DSN; the
// database is dropped when the test ends, closing connections left open.
func (pg *Postgres) CreateDatabase(t testing.TB) (dsn string) {
	t.Helper()
	name := databaseName(t.Name())
	if err := pg.admin(fmt.Sprintf(`CREATE DATABASE %q`, name)); err != nil {
		t.Fatalf("testpeer: create database %s: %v\nserver output:\n%s", name, err, pg.Output())
	}
	t.Cleanup(func() {
		if !pg.Running() {
			return // stopped by the test; the directory goes with the cluster
		}
		if err := pg.admin(fmt.Sprintf(`DROP DATABASE %q WITH (FORCE)`, name)); err != nil {
			t.Errorf("testpeer: drop database %s: %v", name, err)
		}
	})
	return pg.DSN(name)
}

// DSN returns the URL of database db, as the superuser postgres (trusted:
// only this machine can connect).
func (pg *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.Port, db)
}

// Crash stops the server the way a power cut would stop a process:
// pg_ctl stop -m immediate ends every server process without a checkpoint,
// so the next start recovers from the WAL.
func (pg *Postgres) Crash(t testing.TB) {
	t.Helper()
	if err := pg.stop("immediate"); err != nil {
		t.Fatalf("testpeer: %v", err)
	}
}

// Start starts a stopped server again, on the same port and data directory.
func (pg *Postgres) Start(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(postgresStartTimeout)
	for {
		err := pg.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errBind) || time.Now().After(deadline) {
			t.Fatalf("testpeer: restart PostgreSQL on port %d: %v", pg.Port, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Running reports whether the server process is up.
func (pg *Postgres) Running() bool { return pg.proc != nil && !pg.proc.Exited() }

// Output returns what the server logged (the last MiB).
func (pg *Postgres) Output() string {
	if pg.proc == nil {
		return ""
	}
	return pg.proc.Output()
}

// newPostgres runs initdb in a new directory and starts the server on a
// free port, trying other ports when another program takes the one chosen.
func newPostgres() (_ *Postgres, err error) {
	for _, prog := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(postgresBin, prog)); err != nil {
			return nil, fmt.Errorf("%s/%s is missing: %s", postgresBin, prog, postgresHint)
		}
	}
	removeOrphanedClusters()

	pg := &Postgres{}
	if os.Geteuid() == 0 {
		if pg.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	if pg.Dir, err = os.MkdirTemp(clusterParent(), postgresDirPrefix); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, pg.destroy())
		}
	}()
	if err := os.WriteFile(filepath.Join(pg.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	if pg.cred != nil {
		if err := os.Chown(pg.Dir, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			return nil, err
		}
	}
	pg.data = filepath.Join(pg.Dir, "data")
	// trust: only 127.0.0.1 and a socket in a directory of the server's user
	// reach it. --locale=C: the store must not depend on the locale, and C
	// is the one every machine has.
	out, err := pg.run("initdb", "-D", pg.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions")
	if err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf, err := os.ReadFile(filepath.Join(pg.data, "postgresql.conf"))
	if err != nil {
		return nil, err
	}
	pg.conf = string(conf)

	for range postgresStartAttempts {
		if pg.Port, err = freePort(); err != nil {
			return nil, err
		}
		if err = pg.start(); !errors.Is(err, errBind) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return pg, nil
}

// postgresUser returns the credentials of the postgres OS user, which
// Debian's package creates.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("the tests run as root and the server must not: look up user postgres: %w; %s", err, postgresHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// start writes the settings for pg.Port and starts the server, returning
// once it accepts connections.
func (pg *Postgres) start() error {
	settings := fmt.Sprintf(`
# liverelay tests
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 300
fsync = on
synchronous_commit = on
full_page_writes = on
logging_collector = off
`, pg.Port, pg.Dir)
	if err := pg.writeFile(filepath.Join(pg.data, "postgresql.conf"), pg.conf+settings); err != nil {
		return err
	}
	cmd := pg.command("postgres", "-D", pg.data)
	p, err := startCmd(cmd)
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	pg.proc = p

	deadline := time.Now().Add(postgresStartTimeout)
	for {
		if p.Exited() {
			out := p.Output()
			if strings.Contains(out, "Address already in use") {
				return fmt.Errorf("%w: %s", errBind, firstLine(out, "Address already in use"))
			}
			return fmt.Errorf("postgres exited (%v):\n%s", p.Err(), out)
		}
		if pg.ready() {
			return nil
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("postgres not accepting connections after %v:\n%s", postgresStartTimeout, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether our server accepts queries. Connecting over the
// socket in our directory proves the server is ours, not another program's
// on the same port; the TCP check then proves it listens there too.
func (pg *Postgres) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", pg.Dir, pg.Port))
	if err != nil {
		return false
	}
	c.Close(ctx)
	return portOpen(pg.Port)
}

// admin runs one statement in the postgres database.
func (pg *Postgres) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}

// stop runs pg_ctl stop in the given mode and waits for the server to exit.
func (pg *Postgres) stop(mode string) error {
	if !pg.Running() {
		return nil
	}
	out, err := pg.run("pg_ctl", "stop", "-D", pg.data, "-m", mode, "-w", "-t", "30")
	if err != nil {
		pg.proc.Kill()
		return fmt.Errorf("pg_ctl stop -m %s: %w\n%s", mode, err, out)
	}
	select {
	case <-pg.proc.Done():
	case <-time.After(10 * time.Second):
		pg.proc.Kill()
		return errors.New("postgres still running 10s after pg_ctl stop")
	}
	return nil
}

// destroy stops the server at once and removes its directory.
func (pg *Postgres) destroy() error {
	err := pg.stop("immediate")
	if pg.Dir != "" {
		err = errors.Join(err, os.RemoveAll(pg.Dir))
	}
	return err
}

// command returns a command running one of the server programs as the
// server's user, in its directory, without the caller's PG* variables
// (PGDATA, PGPORT, ... would override what we pass).
func (pg *Postgres) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(postgresBin, prog), args...)
	cmd.Dir = pg.Dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	setDeathSignal(cmd)
	if pg.cred != nil {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Credential = pg.cred
	}
	return cmd
}

// run runs a server program to completion and returns its output.
func (pg *Postgres) run(prog string, args ...string) (string, error) {
	out, err := pg.command(prog, args...).CombinedOutput()
	return string(out), err
}

// writeFile writes a file the server reads, owned by the server's user.
func (pg *Postgres) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if pg.cred != nil {
		return os.Chown(path, int(pg.cred.Uid), int(pg.cred.Gid))
	}
	return nil
}

// startCmd starts cmd with its output captured, as startProc does.
func startCmd(cmd *exec.Cmd) (*Proc, error) {
	out := &tailBuffer{max: 1 << 20}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{name: cmd.Path, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// freePort is FreePort without a test to fail.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// clusterParent is the directory cluster directories are made in. The
// socket's path must fit in a sockaddr_un (108 bytes): a long TMPDIR would not do.
func clusterParent() string {
	if dir := os.TempDir(); len(dir) <= 60 {
		return dir
	}
	return "/tmp"
}

// removeOrphanedClusters removes the cluster directories of test binaries
// that are gone (their servers died with them).
func removeOrphanedClusters() {
	dirs, _ := filepath.Glob(filepath.Join(clusterParent(), postgresDirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // being created, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(dir)
		}
	}
}

// databaseName returns a new database name that shows which test it is for.
func databaseName(test string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(test) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := fmt.Sprintf("t%d_%s", databaseSeq.Add(1), b.String())
	return name[:min(len(name), 63)] // NAMEDATALEN - 1
}
