package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results gathers every scenario's measurements for the table.
type results struct {
	cfg       config
	machine   string
	loadStart string
	loadEnd   string
	steady    *steadyResult
	starts    []startTrial
	failovers []failoverTrial
	api       *apiResult
}

// describeMachine names the CPU, cores, memory, kernel and peer versions.
func describeMachine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "?"
	if kb, err := procKB("/proc/meminfo", "MemTotal:"); err == nil {
		mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<30))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "?"
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		return line
	}
	return fmt.Sprintf("%d CPUs (%s), %s RAM, Linux %s, %s; %s; %s",
		runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)), runtime.Version(),
		first("ffmpeg", "-version"), first(nginxPath(), "-v"))
}

func nginxPath() string {
	p, err := lookNginx()
	if err != nil {
		return "nginx"
	}
	return p
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func fquantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func fmin(xs []float64) float64 { return fquantile(xs, 0) }

func mib(b float64) string { return fmt.Sprintf("%.2f MiB", b/(1<<20)) }

func pct(f float64) string { return fmt.Sprintf("%.2f %%", 100*f) }

func msf(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// latencies formats p50 / p99 / max of a sample.
func latencies(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("p50 %s, p99 %s, max %s (%d calls)", msf(quantile(ds, .5)), msf(quantile(ds, .99)), msf(quantile(ds, 1)), len(ds))
}

// medianMax formats the median and the maximum of trial durations, and how
// many trials had none (the event never came).
func medianMax(ds []time.Duration) string {
	var got []time.Duration
	for _, d := range ds {
		if d > 0 {
			got = append(got, d)
		}
	}
	if len(got) == 0 {
		return "never"
	}
	s := fmt.Sprintf("%s (max %s)", ms(quantile(got, .5)), ms(quantile(got, 1)))
	if miss := len(ds) - len(got); miss > 0 {
		s += fmt.Sprintf(", %d of %d never", miss, len(ds))
	}
	return s
}

// signedMedianMax formats the median and the maximum of durations that may
// be negative (before the moment they are counted from).
func signedMedianMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "never"
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%+d ms", d.Milliseconds()) }
	return fmt.Sprintf("%s (max %s)", f(quantile(ds, .5)), f(quantile(ds, 1)))
}

func (r *results) print(w io.Writer) {
	fmt.Fprintf(w, "\nmachine: %s\n", r.machine)
	fmt.Fprintf(w, "date: %s; load average at start %s, at end %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), r.loadStart, r.loadEnd)
	c := r.cfg
	fmt.Fprintf(w, "run: --n %d --ffmpeg-n %d --window %v --warmup %v --starts %d --failovers %d --failover-kinds %s --create-rate %d --create-tasks %d\n\n",
		c.n, c.ffmpegN, c.window, c.warmup, c.starts, c.failovers, strings.Join(c.failoverKinds, ","), c.createRate, c.createTasks)

	fmt.Fprintln(w, "| measure | liverelay | ffmpeg (one process per relay) | goal |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(cells ...string) { fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | ")) }

	if s := r.steady; s != nil {
		lr, ff := s.lrCPU/float64(s.n), s.ffCPU/float64(s.k)
		row("relays running side by side", fmt.Sprint(s.n), fmt.Sprint(s.k), "")
		row(fmt.Sprintf("CPU per relay, %% of one core (%v window)", s.wall.Round(time.Second)),
			pct(lr), pct(ff), fmt.Sprintf("liverelay ≤ ffmpeg/5: ratio %.2f, %s", lr/ff, verdict(lr <= ff/5)))
		perTask := float64(s.rssStart-s.rssIdle) / float64(s.n)
		row("memory per relay",
			fmt.Sprintf("%s (RSS %s idle → %s with %d tasks)", mib(perTask), mib(float64(s.rssIdle)), mib(float64(s.rssStart)), s.n),
			fmt.Sprintf("%s RSS, %s PSS per process", mib(s.ffRSS), mib(s.ffPSS)),
			fmt.Sprintf("≤ 1 MiB: %s", verdict(perTask <= 1<<20)))
		heap := func(m map[string]float64) string {
			return fmt.Sprintf("live heap %s, %.0f goroutines", mib(m["go_memstats_heap_alloc_bytes"]), m["go_goroutines"])
		}
		row("liverelay runtime after a GC: idle → tasks started → window end",
			fmt.Sprintf("%s → %s → %s", heap(s.goIdle), heap(s.goStart), heap(s.goEnd)), "", "")
		row("memory growth over the window",
			fmt.Sprintf("live heap %+.2f MiB; RSS %+.2f MiB (slope %+.2f MiB/min)",
				(s.goEnd["go_memstats_heap_alloc_bytes"]-s.goStart["go_memstats_heap_alloc_bytes"])/(1<<20),
				float64(s.rssEnd-s.rssStart)/(1<<20), s.rssSlope/(1<<20)),
			"", "none")
		// Less the collection forced before the reading at the end.
		gcs := s.goEnd["go_gc_duration_seconds_count"] - s.goStart["go_gc_duration_seconds_count"] - 1
		row("liverelay garbage collections in the window",
			fmt.Sprintf("%.0f, stop-the-world pauses %.1f ms in all; %.2f MiB allocated per second", gcs,
				(s.goEnd["go_gc_duration_seconds_sum"]-s.goStart["go_gc_duration_seconds_sum"])*1000,
				(s.goEnd["go_memstats_alloc_bytes_total"]-s.goStart["go_memstats_alloc_bytes_total"])/(1<<20)/s.wall.Seconds()), "", "")
		del := func(bytes, ts []float64) string {
			return fmt.Sprintf("bytes %.3f / %.3f, clock %.3f / %.3f", fmin(bytes), fquantile(bytes, .5), fmin(ts), fquantile(ts, .5))
		}
		full := fmin(s.lrBytes) >= 0.95 && fmin(s.lrTS) >= 0.95
		row("delivery per destination vs source (min / median)", del(s.lrBytes, s.lrTS), del(s.ffBytes, s.ffTS),
			fmt.Sprintf("every destination at full rate: %s", verdict(full)))
		row("fps per task from list (min / median)", fmt.Sprintf("%.1f / %.1f", fmin(s.fps), fquantile(s.fps, .5)), "", "30")
		row("list, page of 100, while relaying", latencies(s.listLat), "",
			fmt.Sprintf("p99 < 50 ms: %s", verdict(len(s.listLat) > 0 && quantile(s.listLat, .99) < 50*time.Millisecond)))
	}
	if len(r.starts) > 0 {
		pick := func(f func(startTrial) time.Duration) []time.Duration {
			var out []time.Duration
			for _, t := range r.starts {
				out = append(out, f(t))
			}
			return out
		}
		row(fmt.Sprintf("start: create call / process start → first video frame at the destination, median (max) of %d", len(r.starts)),
			medianMax(pick(func(t startTrial) time.Duration { return t.lr })),
			medianMax(pick(func(t startTrial) time.Duration { return t.ff })), "")
		row("start: → first keyframe at the destination",
			medianMax(pick(func(t startTrial) time.Duration { return t.lrKey })),
			medianMax(pick(func(t startTrial) time.Duration { return t.ffKey })), "")
		row("start: the create call itself", medianMax(pick(func(t startTrial) time.Duration { return t.create })), "", "")
	}
	for _, kind := range c.failoverKinds {
		r.printFailovers(row, kind)
	}
	if a := r.api; a != nil {
		p99 := quantile(a.createLat, .99)
		row(fmt.Sprintf("create at %d/s (open loop, %d calls, from the moment each was due)", a.rate, a.sent),
			fmt.Sprintf("%.0f/s achieved, %d failed; %s; liverelay %s of a core, this client %s",
				a.achieved, a.failed, latencies(a.createLat), pct(a.svcCPU), pct(a.benchCPU)), "",
			fmt.Sprintf("p99 < 20 ms at %d/s: %s", a.rate, verdict(a.failed == 0 && p99 < 20*time.Millisecond && a.achieved >= 0.98*float64(a.rate))))
		ok := func(ds []time.Duration) string {
			return fmt.Sprintf("< 20 ms: %s", verdict(len(ds) > 0 && quantile(ds, .99) < 20*time.Millisecond))
		}
		row(fmt.Sprintf("list, %d tasks, first page of 10", a.total), latencies(a.listFirst10), "", ok(a.listFirst10))
		row(fmt.Sprintf("list, %d tasks, first page of 100", a.total), latencies(a.listFirst100), "", ok(a.listFirst100))
		row(fmt.Sprintf("list, %d tasks, last page of 100", a.total), latencies(a.listLast100), "", ok(a.listLast100))
		row(fmt.Sprintf("liverelay RSS holding %d waiting tasks", a.total), mib(float64(a.rssAfter)), "", "")
		if a.firstErr != "" {
			fmt.Fprintf(w, "\nfirst create error: %s\n", a.firstErr)
		}
	}
	if s := r.steady; s != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| shared costs during the steady window | |")
		fmt.Fprintln(w, "|---|---|")
		relays := float64(s.n + s.k)
		row("source stream", fmt.Sprintf("%.2f Mb/s", s.srcBitrate/1e6))
		row(fmt.Sprintf("nginx source (fans out to %d relays), %% of one core", s.n+s.k),
			fmt.Sprintf("%s (%s per relay)", pct(s.srcNginxCPU), pct(s.srcNginxCPU/relays)))
		row(fmt.Sprintf("nginx destination (%d streams in), %% of one core", s.n+s.k),
			fmt.Sprintf("%s (%s per relay)", pct(s.dstNginxCPU), pct(s.dstNginxCPU/relays)))
		row("ffmpeg publisher of the source", pct(s.pubCPU))
		row("messages the source nginx dropped for slow players", fmt.Sprint(s.dropped))
		row(fmt.Sprintf("machine busy, all %d CPUs, every program included", runtime.NumCPU()), pct(s.machineBusy))
	}
}

// printFailovers writes the rows of the failover trials of one kind of
// primary. The goal is the issue's: the gap at most the detection time of
// the kind plus one GOP of the backup.
func (r *results) printFailovers(row func(...string), kind string) {
	var trials []failoverTrial
	for _, t := range r.failovers {
		if t.kind == kind {
			trials = append(trials, t)
		}
	}
	if len(trials) == 0 {
		return
	}
	pick := func(f func(failoverTrial) time.Duration) []time.Duration {
		var out []time.Duration
		for _, t := range trials {
			out = append(out, f(t))
		}
		return out
	}
	k := describeKind(kind)
	lrGaps := pick(func(t failoverTrial) time.Duration { return t.lr })
	bound := k.detection + clipGOP
	met := !slices.Contains(lrGaps, 0) && quantile(lrGaps, 1) <= bound
	ffGap, ffKey, ffExit := "not compared (ffmpeg: RTMP and HTTP-FLV primaries only)", "", ""
	if k.ffmpeg {
		rejoined := 0
		for _, t := range trials {
			if t.ffRejoined {
				rejoined++
			}
		}
		ffGap = medianMax(pick(func(t failoverTrial) time.Duration { return t.ff })) +
			fmt.Sprintf("; the viewer was disconnected in %d of %d", rejoined, len(trials))
		ffKey = medianMax(pick(func(t failoverTrial) time.Duration { return t.ffKey }))
		ffExit = "exited " + medianMax(pick(func(t failoverTrial) time.Duration { return t.ffExit })) +
			fmt.Sprintf(" (-rw_timeout %v)", noMediaTimeout)
	}
	row(fmt.Sprintf("failover, %s: its last frame → the backup's first frame at the destination, median (max) of %d", k.title, len(trials)),
		medianMax(lrGaps), ffGap,
		fmt.Sprintf("≤ detection %v + one GOP %v = %v: %s", k.detection, clipGOP, bound, verdict(met)))
	row(fmt.Sprintf("failover, %s: → first keyframe", kind),
		medianMax(pick(func(t failoverTrial) time.Duration { return t.lrKey })), ffKey, "")
	var tails []time.Duration
	for _, t := range trials {
		if t.lrTailOK {
			tails = append(tails, t.lrTail)
		}
	}
	how := "detection: " + k.how
	if kind == kindHLS {
		how += fmt.Sprintf("; segments of %v (one GOP: a copied stream is cut at keyframes)", trials[0].segment)
	}
	row(fmt.Sprintf("failover, %s: after the kill, the loss noticed (liverelay: its \"source interrupted\" log line; ffmpeg: the process on the primary exited), and the primary's last frame at the destination", kind),
		"noticed "+medianMax(pick(func(t failoverTrial) time.Duration { return t.lrDetect }))+"; last frame "+signedMedianMax(tails),
		ffExit, how)
	row(fmt.Sprintf("failover, %s: output DTS step across the pause", kind),
		medianMax(pick(func(t failoverTrial) time.Duration { return t.lrDTS })), "", "≈ the pause")
}
