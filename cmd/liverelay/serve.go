package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/liverelay/liverelay/internal/api"
	"github.com/liverelay/liverelay/internal/auth"
	"github.com/liverelay/liverelay/internal/callback"
	"github.com/liverelay/liverelay/internal/cluster"
	"github.com/liverelay/liverelay/internal/files"
	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/metrics"
	"github.com/liverelay/liverelay/internal/netguard"
	"github.com/liverelay/liverelay/internal/redact"
	"github.com/liverelay/liverelay/internal/relay"
	"github.com/liverelay/liverelay/internal/rtmp"
	"github.com/liverelay/liverelay/internal/scheduler"
	"github.com/liverelay/liverelay/internal/source"
	"github.com/liverelay/liverelay/internal/store"
	"github.com/liverelay/liverelay/internal/task"
)

type serveConfig struct {
	listen        string
	metricsListen string
	debugListen   string
	dataDir       string
	storeURL      string
	regions       listFlag
	domainsFile   string
	maxWindow     time.Duration
	taskQuota     int
	denyNetworks  string
	noMedia       time.Duration
	failbackHold  time.Duration
	relayBatch    time.Duration
	authMode      string
	fileRoots     listFlag
	cbKey         string
	cbTimeout     time.Duration
	cbRetry       time.Duration
	logFormat     string
	logLevel      string
	nodeID        string
	maxTasks      int
	leaseTTL      time.Duration
}

// relayBatchDefault trades a little latency for CPU: see docs/performance.md.
const relayBatchDefault = 50 * time.Millisecond

func serve(args []string) error {
	cfg := serveConfig{regions: listFlag{}}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address of the API (and /healthz, /metrics)")
	fs.StringVar(&cfg.metricsListen, "metrics-listen", "", "serve /metrics on this address instead of the API listener")
	fs.StringVar(&cfg.debugListen, "debug-listen", "", "serve Go's profiles (/debug/pprof/) on this address, without authentication: keep it on loopback (default: off)")
	fs.StringVar(&cfg.dataDir, "data-dir", "./liverelay-data", "directory of the store and the bootstrap credentials (created if absent)")
	fs.StringVar(&cfg.storeURL, "store", "", storeUsage)
	fs.Var(&cfg.regions, "region", "comma-separated regions this node serves; the first is the default region of new projects (default local)")
	fs.StringVar(&cfg.domainsFile, "domains", "", `JSON file of ingest domains: {"domains":[{"name":"publish.example.com","region":"local","ingest":"rtmp://127.0.0.1:1935"}]}`)
	fs.DurationVar(&cfg.maxWindow, "max-window", 7*24*time.Hour, "longest allowed end_time - start_time")
	fs.IntVar(&cfg.taskQuota, "task-quota", 200, "most tasks per project")
	fs.StringVar(&cfg.denyNetworks, "deny-networks", "", "comma-separated CIDRs that sources and callbacks may not reach, besides link-local, unspecified and multicast (e.g. 10.0.0.0/8,127.0.0.0/8)")
	fs.DurationVar(&cfg.noMedia, "no-media-timeout", 3*time.Second, "a source that sends no media for this long is interrupted")
	fs.DurationVar(&cfg.failbackHold, "failback-hold", 5*time.Second, "how long a recovered primary must deliver media before the task switches back to it")
	fs.DurationVar(&cfg.relayBatch, "relay-batch", relayBatchDefault, "how long a relay gathers frames before writing them on: fewer syscalls and wakeups per frame, for that much added latency (0: every frame at once)")
	fs.Var(&cfg.fileRoots, "allow-file-root", "a directory whose files PullVodPushLive tasks may play as file:// URLs (repeatable, or comma-separated); none: file:// is refused")
	fs.StringVar(&cfg.authMode, "auth", "iam", "authentication: iam (AK/SK signatures and tokens) or none (every request is its project's root user; trusted networks only)")
	fs.StringVar(&cfg.cbKey, "callback-signing-key", "", "server-wide key for X-Liverelay-Signature on callbacks (a project's own key wins); empty: unsigned unless the project has one")
	fs.DurationVar(&cfg.cbTimeout, "callback-timeout", callback.DefaultTimeout, "a callback receiver that has not answered in this time is retried")
	fs.DurationVar(&cfg.cbRetry, "callback-retry-window", callback.DefaultRetryWindow, "how long an undelivered callback event is retried before it is given up")
	fs.StringVar(&cfg.nodeID, "node-id", "", "this node's ID (1-64 of A-Z a-z 0-9 . _ -); empty: generated once and kept in --data-dir")
	fs.IntVar(&cfg.maxTasks, "max-tasks", 0, "most tasks this node runs at once; 0: no limit")
	fs.DurationVar(&cfg.leaseTTL, "lease-ttl", cluster.DefaultTTL, "with --store postgres://...: how long a node's claim on a task lasts without renewal (renewed every third of it); a dead node's tasks move after it. Use the same value on every node")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(cfg.regions) == 0 {
		cfg.regions = listFlag{"local"}
	}
	log, err := newLogger(cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	if cfg.taskQuota < 1 {
		return fmt.Errorf("--task-quota must be at least 1, got %d", cfg.taskQuota)
	}
	if cfg.maxWindow <= 0 {
		return fmt.Errorf("--max-window must be positive, got %s", cfg.maxWindow)
	}
	if cfg.relayBatch < 0 || cfg.relayBatch > time.Second {
		return fmt.Errorf("--relay-batch must be between 0 and 1s, got %s", cfg.relayBatch)
	}
	if cfg.maxTasks < 0 {
		return fmt.Errorf("--max-tasks must be 0 (no limit) or more, got %d", cfg.maxTasks)
	}
	if cfg.leaseTTL < time.Second {
		return fmt.Errorf("--lease-ttl must be at least 1s, got %s", cfg.leaseTTL)
	}
	domains, err := loadDomains(cfg.domainsFile)
	if err != nil {
		return err
	}
	extra, err := netguard.ParsePrefixes(cfg.denyNetworks)
	if err != nil {
		return fmt.Errorf("--deny-networks: %w", err)
	}
	guard := netguard.New(extra)

	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	nodeID, err := resolveNodeID(cfg.nodeID, cfg.dataDir)
	if err != nil {
		return err
	}
	st, err := openStore(context.Background(), cfg.storeURL, cfg.dataDir, false)
	if err != nil {
		return err
	}
	defer st.Close()
	// A store several nodes share makes this node one of a cluster.
	var node *cluster.Node
	if cs, ok := st.(store.Cluster); ok {
		node = cluster.New(cs, store.Node{ID: nodeID, Regions: cfg.regions, MaxTasks: cfg.maxTasks, Listen: cfg.listen}, cfg.leaseTTL, log)
		regCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := node.Register(regCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("register node %s: %w", nodeID, err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	keyring, err := auth.LoadKeyring(cfg.dataDir)
	if err != nil {
		return err
	}
	if err := bootstrap(ctx, st, keyring, cfg.dataDir, cfg.regions[0], os.Stdout, log); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}

	var authorizer auth.Authorizer
	switch cfg.authMode {
	case "iam":
		authorizer = auth.NewVerifier(st, keyring, time.Now)
	case "none":
		authorizer = auth.Open{}
		log.Warn("authentication is off (--auth=none): every request acts as its project's root user")
	default:
		return fmt.Errorf("--auth must be iam or none, got %q", cfg.authMode)
	}

	roots, err := fileRoots(cfg.fileRoots)
	if err != nil {
		return err
	}
	httpClient := &http.Client{Transport: &http.Transport{
		Proxy:                 nil, // every connection goes through the guard's dialer
		DialContext:           guard.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		MaxIdleConnsPerHost:   4,
	}}
	fileOpener := &files.Opener{Client: httpClient, DialContext: guard.DialContext, Roots: roots, UnsupportedCodec: relay.ErrUnsupportedCodec}

	relayCfg := relay.Config{
		NoMediaTimeout: cfg.noMedia,
		HoldTime:       cfg.failbackHold,
		Batch:          cfg.relayBatch,
		Redact:         redact.URL,
		Logger:         log,
		OpenSource: func(ctx context.Context, rawURL string) (media.Source, error) {
			return source.Open(ctx, rawURL, source.Options{Guard: guard, ReadTimeout: cfg.noMedia, Logger: log})
		},
		OpenFile: fileOpener.Open,
		OpenSink: func(ctx context.Context, rawURL string) (media.Sink, error) {
			return rtmp.Publish(ctx, rawURL, rtmp.Options{DialContext: guard.DialContext, WriteTimeout: 5 * time.Second})
		},
	}

	delivOpt := callback.Options{
		Store:       st,
		Guard:       guard,
		ServerKey:   []byte(cfg.cbKey),
		Keyring:     keyring,
		Timeout:     cfg.cbTimeout,
		RetryWindow: cfg.cbRetry,
		Logger:      log,
		NodeID:      nodeID,
	}
	if node != nil {
		delivOpt.Claims = st.(store.Cluster)
	}
	deliverer := callback.NewDeliverer(delivOpt)

	var sched *scheduler.Scheduler
	m := metrics.New(func() map[string]int { return sched.StateCounts() })
	schedOpt := scheduler.Options{
		Store:    st,
		Regions:  cfg.regions,
		NodeID:   nodeID,
		MaxTasks: cfg.maxTasks,
		NewRunner: func(t *task.Task, rep relay.Reporter, resume task.RunState) scheduler.Runner {
			// The scheduler cuts the destination of a task whose lease
			// is lost, without waiting for the supervisor.
			cut := &relay.Cutoff{}
			c := relayCfg
			c.OpenSink = cut.Wrap(relayCfg.OpenSink)
			return cutRunner{relay.NewSupervisor(t, c, rep, resume), cut}
		},
		Logger:   log,
		OnReport: m.ObserveRunState,
		OnEvents: deliverer.Notify,
	}
	if node != nil {
		schedOpt.Leases = node
	}
	sched = scheduler.New(schedOpt)

	apiServer := &api.Server{
		Store:     st,
		Auth:      authorizer,
		Scheduler: sched,
		OnEvents:  deliverer.Notify,
		Guard:     guard,
		Metrics:   m,
		Logger:    log,
		Quota:     cfg.taskQuota,
		Now:       time.Now,
		Rules: func(projectRegion string, now time.Time) *task.Rules {
			return &task.Rules{
				Now:                now,
				MaxWindow:          cfg.maxWindow,
				Regions:            cfg.regions,
				DefaultRegion:      projectRegion,
				Domains:            domains,
				LiveSourceSchemes:  source.Schemes(),
				AllowFileRoots:     roots,
				VODSupported:       true,
				VODBackupSupported: true,
			}
		},
	}

	mux := http.NewServeMux()
	mux.Handle("/", apiServer.Handler())
	metricsHandler := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
	if cfg.metricsListen == "" {
		mux.Handle("GET /metrics", metricsHandler)
	}

	servers := []*http.Server{{Addr: cfg.listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	if cfg.metricsListen != "" {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", metricsHandler)
		servers = append(servers, &http.Server{Addr: cfg.metricsListen, Handler: mm, ReadHeaderTimeout: 10 * time.Second})
	}
	if cfg.debugListen != "" {
		servers = append(servers, &http.Server{Addr: cfg.debugListen, Handler: pprofHandler(), ReadHeaderTimeout: 10 * time.Second})
	}
	var listeners []net.Listener
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", srv.Addr, err)
		}
		listeners = append(listeners, ln)
	}

	// Run the parts; the first to stop (or a signal) stops the rest.
	errc := make(chan error, len(servers)+2)
	delivCtx, stopDeliv := context.WithCancel(context.Background())
	delivDone := make(chan struct{})
	go func() {
		defer close(delivDone)
		if err := deliverer.Run(delivCtx); err != nil && delivCtx.Err() == nil {
			errc <- fmt.Errorf("callback delivery: %w", err)
		}
	}()
	schedCtx, stopSched := context.WithCancel(context.Background())
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		errc <- sched.Run(schedCtx)
	}()
	relayCtx, stopRelay := context.WithCancel(context.Background())
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		if node != nil {
			// Writes made on other nodes reach this one at once.
			node.Relay(relayCtx, st, sched)
		}
	}()
	for i, srv := range servers {
		go func() {
			if err := srv.Serve(listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http server %s: %w", srv.Addr, err)
			}
		}()
	}
	log.Info("liverelay serving", "listen", listeners[0].Addr().String(), "regions", cfg.regions, "data_dir", cfg.dataDir,
		"node_id", nodeID, "cluster", node != nil)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(shutdownCtx)
	}
	// In a cluster the scheduler hands its tasks over to the other nodes
	// as it stops.
	stopSched()
	<-schedDone
	stopRelay()
	<-relayDone
	// After the scheduler: the last TaskExit events are in the store, and
	// whatever is undelivered goes out after the next start.
	stopDeliv()
	<-delivDone
	return err
}

// cutRunner is a task's supervisor with its destination cutoff.
type cutRunner struct {
	*relay.Supervisor
	cut *relay.Cutoff
}

// Cut implements scheduler.Cutter.
func (r cutRunner) Cut() { r.cut.Cut() }

// fileRoots makes the --allow-file-root directories absolute and clean, and
// checks that they exist.
func fileRoots(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("--allow-file-root %s: %w", d, err)
		}
		if st, err := os.Stat(abs); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("--allow-file-root %s: not a directory", d)
		}
		out = append(out, filepath.Clean(abs))
	}
	return out, nil
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
}

type domainsFile struct {
	Domains []task.Domain `json:"domains"`
}

// loadDomains reads the --domains file. Every ingest must be an rtmp or
// rtmps URL; names must be unique.
func loadDomains(path string) (map[string]task.Domain, error) {
	out := map[string]task.Domain{}
	if path == "" {
		return out, nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--domains: %w", err)
	}
	var f domainsFile
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("--domains %s: %w", path, err)
	}
	for i, d := range f.Domains {
		if d.Name == "" || d.Region == "" {
			return nil, fmt.Errorf("--domains %s: domains[%d] needs a name and a region", path, i)
		}
		u, err := url.Parse(d.Ingest)
		if err != nil || (u.Scheme != "rtmp" && u.Scheme != "rtmps") || u.Host == "" {
			return nil, fmt.Errorf("--domains %s: domains[%d] (%s): ingest must be an rtmp:// or rtmps:// URL, got %q", path, i, d.Name, d.Ingest)
		}
		key := strings.ToLower(d.Name)
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("--domains %s: domain %s is listed twice", path, d.Name)
		}
		out[key] = d
	}
	return out, nil
}

// pprofHandler serves the runtime's profiles, as net/http/pprof registers
// them, on a mux of its own (never on the API's).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
