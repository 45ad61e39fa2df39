package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// steadyResult is what the steady scenario measured.
type steadyResult struct {
	n, k int
	wall time.Duration

	// CPU as a fraction of one core, over the window.
	lrCPU       float64 // the liverelay process
	ffCPU       float64 // all ffmpeg relays together
	srcNginxCPU float64
	dstNginxCPU float64
	pubCPU      float64
	machineBusy float64 // of all cores, every program of the machine included

	// liverelay memory: before any task, when the window opens, when it
	// closes; and the slope of RSS over the window.
	rssIdle, rssStart, rssEnd int64
	rssSlope                  float64 // bytes per minute
	goIdle, goStart, goEnd    map[string]float64

	// ffmpeg memory, per process.
	ffRSS, ffPSS float64

	// Delivery per destination over the window: bytes received by the
	// destination / bytes the source received, and advance of the
	// publisher's timestamp / wall time.
	lrBytes, lrTS, ffBytes, ffTS []float64
	srcBitrate                   float64 // b/s of the source stream
	dropped                      int64   // messages the source nginx dropped for slow players in the window

	fps     []float64       // per task, from list
	listLat []time.Duration // list calls (one page of 100) during the window
}

func (b *bench) steady(ctx context.Context) error {
	cfg := b.cfg
	r := &steadyResult{n: cfg.n, k: cfg.ffmpegN}
	b.res.steady = r
	svcPID := b.svc.proc.pid()

	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	var err error
	if r.rssIdle, err = rssBytes(svcPID); err != nil {
		return err
	}
	r.goIdle, _ = b.svc.goMetrics(ctx)

	logf("steady: creating %d liverelay tasks", cfg.n)
	lrNames := make([]string, cfg.n)
	for i := range cfg.n {
		lrNames[i] = fmt.Sprintf("lr%04d", i)
		if _, err := b.svc.create(ctx, liveTask(b.src.url("src"), b.dst.url(lrNames[i]))); err != nil {
			return err
		}
	}
	timeout := 60*time.Second + time.Duration(cfg.n)*200*time.Millisecond
	if err := b.waitRunning(ctx, cfg.n, timeout); err != nil {
		return err
	}
	if err := b.waitPublishing(ctx, b.dst, lrNames, timeout); err != nil {
		return err
	}

	logf("steady: starting %d ffmpeg relays", cfg.ffmpegN)
	ffNames := make([]string, cfg.ffmpegN)
	ffProcs := make([]*proc, cfg.ffmpegN)
	defer func() {
		for _, p := range ffProcs {
			if p != nil {
				p.stop(syscall.SIGINT, 5*time.Second)
			}
		}
	}()
	for i := range cfg.ffmpegN {
		ffNames[i] = fmt.Sprintf("ff%04d", i)
		if ffProcs[i], err = ffmpegRelay(b.ps, b.src.url("src"), b.dst.url(ffNames[i])); err != nil {
			return err
		}
	}
	if err := b.waitPublishing(ctx, b.dst, ffNames, 60*time.Second); err != nil {
		return err
	}

	logf("steady: warm-up %v, then a %v window", cfg.warmup, cfg.window)
	if err := sleep(ctx, cfg.warmup); err != nil {
		return err
	}
	for _, p := range ffProcs {
		if p.exited() {
			return fmt.Errorf("an ffmpeg relay exited: %v: %s", p.err, p.output())
		}
	}

	// The window.
	if r.rssStart, err = rssBytes(svcPID); err != nil {
		return err
	}
	r.goStart, _ = b.svc.goMetrics(ctx)
	pids := []int{svcPID, b.src.proc.pid(), b.dst.proc.pid(), b.pub.pid()}
	for _, p := range ffProcs {
		pids = append(pids, p.pid())
	}
	src0, err := b.src.stat()
	if err != nil {
		return err
	}
	dst0, err := b.dst.stat()
	if err != nil {
		return err
	}
	t0 := time.Now()
	meter, err := startCPU(pids...)
	if err != nil {
		return err
	}

	perf, err := b.startPerf(svcPID, "steady")
	if err != nil {
		return err
	}

	// Meanwhile: list calls twice a second, RSS every second.
	winCtx, stopWin := context.WithTimeout(ctx, cfg.window)
	defer stopWin()
	var wg sync.WaitGroup
	var mu sync.Mutex
	type sample struct {
		t   time.Duration
		rss int64
	}
	var samples []sample
	wg.Add(2)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-winCtx.Done():
				return
			case <-tick.C:
			}
			start := time.Now()
			if _, err := b.svc.list(winCtx, 0, 100); err == nil {
				mu.Lock()
				r.listLat = append(r.listLat, time.Since(start))
				mu.Unlock()
			}
		}
	}()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if rss, err := rssBytes(svcPID); err == nil {
				mu.Lock()
				samples = append(samples, sample{time.Since(t0), rss})
				mu.Unlock()
			}
			select {
			case <-winCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	<-winCtx.Done()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	cpu, err := meter.stop()
	if err != nil {
		return err
	}
	src1, err := b.src.stat()
	if err != nil {
		return err
	}
	dst1, err := b.dst.stat()
	if err != nil {
		return err
	}
	t1 := time.Now()
	wg.Wait()
	b.stopPerf(perf)
	if r.rssEnd, err = rssBytes(svcPID); err != nil {
		return err
	}
	r.goEnd, _ = b.svc.goMetrics(ctx)

	r.wall = cpu.wall
	r.lrCPU, r.srcNginxCPU, r.dstNginxCPU, r.pubCPU = cpu.perProc[0], cpu.perProc[1], cpu.perProc[2], cpu.perProc[3]
	for _, c := range cpu.perProc[4:] {
		r.ffCPU += c
	}
	r.machineBusy = cpu.machine
	xs, ys := make([]float64, len(samples)), make([]float64, len(samples))
	for i, s := range samples {
		xs[i], ys[i] = s.t.Minutes(), float64(s.rss)
	}
	r.rssSlope = slope(xs, ys)

	for _, p := range ffProcs {
		if rss, err := rssBytes(p.pid()); err == nil {
			r.ffRSS += float64(rss) / float64(len(ffProcs))
		}
		if pss, err := pssBytes(p.pid()); err == nil {
			r.ffPSS += float64(pss) / float64(len(ffProcs))
		}
	}

	srcDelta := float64(src1["src"].BytesIn - src0["src"].BytesIn)
	wallMS := float64(t1.Sub(t0).Milliseconds())
	r.srcBitrate = srcDelta * 8 / t1.Sub(t0).Seconds()
	delivery := func(names []string) (bytes, ts []float64) {
		for _, name := range names {
			s0, s1 := dst0[name], dst1[name]
			bytes = append(bytes, float64(s1.BytesIn-s0.BytesIn)/srcDelta)
			p0, ok0 := s0.publisher()
			p1, ok1 := s1.publisher()
			if ok0 && ok1 && p0.ID == p1.ID {
				ts = append(ts, float64(p1.Timestamp-p0.Timestamp)/wallMS)
			} else {
				ts = append(ts, 0) // the publisher changed: a reconnect
			}
		}
		return bytes, ts
	}
	r.lrBytes, r.lrTS = delivery(lrNames)
	r.ffBytes, r.ffTS = delivery(ffNames)
	for _, c := range src1["src"].Clients {
		r.dropped += c.Dropped
	}
	for _, c := range src0["src"].Clients {
		r.dropped -= c.Dropped
	}

	infos, err := b.svc.listAll(ctx)
	if err != nil {
		return err
	}
	for _, t := range infos {
		r.fps = append(r.fps, t.FPS)
	}
	slices.Sort(r.fps)
	logf("steady: liverelay %.1f%% of a core for %d relays, ffmpeg %.1f%% for %d", 100*r.lrCPU, r.n, 100*r.ffCPU, r.k)

	// Stop the ffmpeg relays (the deferred stop is for early returns) and
	// delete the tasks, so the next scenarios run on a quiet machine.
	for i, p := range ffProcs {
		p.stop(syscall.SIGINT, 5*time.Second)
		ffProcs[i] = nil
	}
	for _, t := range infos {
		if err := b.svc.deleteTask(ctx, t.TaskID); err != nil {
			return err
		}
	}
	return nil
}

// waitRunning waits until n tasks of the service are running.
func (b *bench) waitRunning(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		infos, err := b.svc.listAll(ctx)
		running := 0
		for _, t := range infos {
			if t.RunState == "running" {
				running++
			}
		}
		if err == nil && running >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d tasks running after %v (list error: %v)", running, n, timeout, err)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// hasPerf reports whether perf is installed.
func hasPerf() bool {
	_, err := exec.LookPath("perf")
	return err == nil
}

// startPerf records the call stacks of pid into <--perf>/<name>.data until
// stopPerf; nothing without --perf.
func (b *bench) startPerf(pid int, name string) (*proc, error) {
	if b.cfg.perf == "" {
		return nil, nil
	}
	if err := os.MkdirAll(b.cfg.perf, 0o755); err != nil {
		return nil, err
	}
	out := filepath.Join(b.cfg.perf, name+".data")
	p, err := b.ps.start("perf", nil, "perf", "record", "-F", "499", "-g", "-p", fmt.Sprint(pid), "-o", out)
	if err != nil {
		return nil, err
	}
	logf("perf: recording liverelay into %s", out)
	return p, nil
}

func (b *bench) stopPerf(p *proc) {
	if p == nil {
		return
	}
	p.stop(syscall.SIGINT, 30*time.Second)
	if !strings.Contains(p.output(), "Captured and wrote") {
		logf("perf: %v: %s", p.err, tail(p.output(), 500))
	}
}
