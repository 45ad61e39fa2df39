// Command relaybench measures what a live relay costs in liverelay against
// the ffmpeg process per relay it replaces, side by side, in one run, on
// the same machine and the same stream.
//
// It encodes a 2.2 Mb/s 720p30 H.264/AAC clip once, publishes it in a loop
// (-re -stream_loop -1 -c copy) to a source nginx-rtmp, and relays it to a
// destination nginx-rtmp, every program on 127.0.0.1 and free ports:
//
//   - steady: N liverelay tasks and K `ffmpeg -i SRC -c copy -f flv DST`
//     processes relay the stream at the same time; over a window it reads
//     CPU (utime+stime from /proc/<pid>/stat), memory (VmRSS, and PSS for
//     ffmpeg), whether every destination receives at full rate (nginx
//     /stat), and the latency of the list call meanwhile;
//   - start: a task is created and an ffmpeg relay started at the same
//     moment; time until the first video frame at each destination;
//   - failover: a task with a backup and an ffmpeg restarted on the backup
//     when it exits read one primary, which is killed; the pause between
//     the primary's last frame and the backup's first at each destination,
//     per kind of primary (--failover-kinds): RTMP (published to the source
//     nginx), HTTP-FLV (ffmpeg's HTTP server) and HLS (ffmpeg's HLS muxer,
//     served by the source nginx; liverelay only), the backup always the
//     RTMP source stream;
//   - api: create calls at a fixed rate (open loop) into an empty store,
//     then list calls in the project that now holds those tasks.
//
// It prints one Markdown table. Run it from the module:
//
//	go run ./bench/relaybench [--n 20] [--window 30s] ...
//
// Every program it starts is stopped before it returns (and killed by the
// kernel if it dies: Pdeathsig); --timeout bounds the whole run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	n           int
	ffmpegN     int
	window      time.Duration
	warmup      time.Duration
	starts      int
	failovers   int
	createRate  int
	createTasks int
	listCalls   int
	clipSeconds int
	bin         string
	perf        string
	scenarios   map[string]bool
	timeout     time.Duration
	keep        bool

	// failoverKinds are the kinds of primary of the failover scenario.
	failoverKinds []string
}

func parseConfig() config {
	var c config
	var scen, kinds string
	flag.IntVar(&c.n, "n", 20, "live relays held by liverelay in the steady scenario")
	flag.IntVar(&c.ffmpegN, "ffmpeg-n", 0, "ffmpeg relays run beside them (0: min(n, 20))")
	flag.DurationVar(&c.window, "window", 30*time.Second, "measurement window of the steady scenario")
	flag.DurationVar(&c.warmup, "warmup", 5*time.Second, "time every relay runs before the window opens")
	flag.IntVar(&c.starts, "starts", 5, "start-latency trials")
	flag.IntVar(&c.failovers, "failovers", 3, "failover trials per kind of primary")
	flag.StringVar(&kinds, "failover-kinds", strings.Join(failoverKinds, ","), "kinds of primary killed in the failover scenario")
	flag.IntVar(&c.createRate, "create-rate", 500, "create calls per second in the api scenario")
	flag.IntVar(&c.createTasks, "create-tasks", 10000, "create calls in the api scenario (the project then lists that many tasks)")
	flag.IntVar(&c.listCalls, "list-calls", 200, "list calls per page shape in the api scenario")
	flag.IntVar(&c.clipSeconds, "clip-seconds", 20, "length of the source clip, which is published in a loop")
	flag.StringVar(&c.bin, "bin", "", "liverelay binary (default: build ./cmd/liverelay of this module)")
	flag.StringVar(&c.perf, "perf", "", "directory: record `perf record -g` of liverelay during the steady window (steady.data) and the creates (api-create.data)")
	flag.StringVar(&scen, "scenarios", "steady,start,failover,api", "scenarios to run")
	flag.DurationVar(&c.timeout, "timeout", 20*time.Minute, "bound of the whole run")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory (logs, nginx configs)")
	flag.Parse()
	if c.ffmpegN <= 0 {
		c.ffmpegN = min(c.n, 20)
	}
	c.scenarios = map[string]bool{}
	for _, s := range strings.Split(scen, ",") {
		switch s = strings.TrimSpace(s); s {
		case "steady", "start", "failover", "api":
			c.scenarios[s] = true
		case "":
		default:
			fmt.Fprintf(os.Stderr, "relaybench: unknown scenario %q (steady, start, failover, api)\n", s)
			os.Exit(2)
		}
	}
	for _, k := range strings.Split(kinds, ",") {
		switch k = strings.TrimSpace(k); {
		case slices.Contains(failoverKinds, k) && !slices.Contains(c.failoverKinds, k):
			c.failoverKinds = append(c.failoverKinds, k)
		case k == "" || slices.Contains(c.failoverKinds, k):
		default:
			fmt.Fprintf(os.Stderr, "relaybench: unknown failover kind %q (%s)\n", k, strings.Join(failoverKinds, ", "))
			os.Exit(2)
		}
	}
	if c.n < 1 || c.window < time.Second || c.createRate < 1 || c.createTasks < 1 {
		fmt.Fprintln(os.Stderr, "relaybench: --n, --create-rate and --create-tasks must be >= 1, --window >= 1s")
		os.Exit(2)
	}
	return c
}

func main() {
	cfg := parseConfig()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "relaybench:", err)
		os.Exit(1)
	}
}

// logf reports progress on stderr; the table goes to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// bench holds the peers shared by the scenarios.
type bench struct {
	cfg  config
	ps   *procs
	dir  string
	bin  string
	clip string
	src  *nginx // the source: the published clip, fanned out to every relay
	dst  *nginx // the destinations: one stream per relay
	pub  *proc  // publisher of src/live/src
	svc  *service

	res results
}

func run(ctx context.Context, cfg config) (err error) {
	dir, err := os.MkdirTemp("", "relaybench-")
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, ps: &procs{}, dir: dir}
	defer func() {
		b.ps.stopAll(5 * time.Second)
		if cfg.keep {
			logf("work directory kept: %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if cfg.perf != "" && !hasPerf() {
		return fmt.Errorf("--perf: perf is not installed")
	}
	b.res.machine = describeMachine()
	b.res.loadStart = loadAvg()
	b.res.cfg = cfg
	logf("load average at start: %s", b.res.loadStart)

	if b.bin = cfg.bin; b.bin == "" {
		logf("building ./cmd/liverelay")
		if b.bin, err = buildService(ctx, dir); err != nil {
			return err
		}
	}
	logf("source clip (%ds, encoded once per machine)", cfg.clipSeconds)
	if b.clip, err = sourceClip(ctx, b.ps, cfg.clipSeconds); err != nil {
		return err
	}
	failovers := cfg.failovers * len(cfg.failoverKinds)
	maxConns := 2*(cfg.n+cfg.ffmpegN) + 4*(cfg.starts+failovers) + 64
	if b.src, err = startNginx(ctx, b.ps, "src", dir+"/nginx-src", maxConns); err != nil {
		return err
	}
	if b.dst, err = startNginx(ctx, b.ps, "dst", dir+"/nginx-dst", maxConns); err != nil {
		return err
	}
	if b.pub, err = publish(b.ps, b.clip, b.src.url("src")); err != nil {
		return err
	}
	if err := b.waitPublishing(ctx, b.src, []string{"src"}, 20*time.Second); err != nil {
		return fmt.Errorf("source publisher: %w: %s", err, b.pub.output())
	}

	if cfg.scenarios["steady"] || cfg.scenarios["start"] || cfg.scenarios["failover"] {
		logf("starting liverelay (relays)")
		if b.svc, err = startService(ctx, b.ps, b.bin, dir+"/liverelay-relays", "--task-quota", fmt.Sprint(cfg.n+cfg.starts+failovers+100)); err != nil {
			return err
		}
		if cfg.scenarios["steady"] {
			if err := b.steady(ctx); err != nil {
				return fmt.Errorf("steady: %w\nliverelay output:\n%s", err, tail(b.svc.proc.output(), 4000))
			}
		}
		if cfg.scenarios["start"] {
			if err := b.startLatency(ctx); err != nil {
				return fmt.Errorf("start: %w", err)
			}
		}
		if cfg.scenarios["failover"] {
			if err := b.failover(ctx); err != nil {
				return fmt.Errorf("failover: %w", err)
			}
		}
		b.svc.stop()
	}
	if cfg.scenarios["api"] {
		if err := b.api(ctx); err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	b.res.loadEnd = loadAvg()
	logf("load average at end: %s", b.res.loadEnd)
	b.res.print(os.Stdout)
	return nil
}

// waitPublishing waits until each stream of n has a publisher and bytes.
func (b *bench) waitPublishing(ctx context.Context, n *nginx, streams []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := n.stat()
		missing := 0
		if err == nil {
			for _, name := range streams {
				s, ok := st[name]
				if _, pub := s.publisher(); !ok || !pub || s.BytesIn == 0 {
					missing++
				}
			}
		}
		if err == nil && missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("%d of %d streams on nginx %s not published after %v", missing, len(streams), n.name, timeout)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// liveTask is the body of a PullLivePushLive task.
func liveTask(src, dst string, backups ...string) map[string]any {
	body := map[string]any{
		"source_type":     "PullLivePushLive",
		"source_urls":     []string{src},
		"destination_url": dst,
	}
	if len(backups) > 0 {
		body["backup_source_urls"] = backups
	}
	return body
}
