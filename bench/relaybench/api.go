package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

// apiResult is what the api scenario measured.
type apiResult struct {
	rate     int // target create calls per second
	sent     int
	failed   int
	firstErr string
	achieved float64 // successful creates per second
	// Latency from the moment a call was due (open loop: a late start
	// counts), successful calls only.
	createLat []time.Duration
	svcCPU    float64 // liverelay, fraction of one core, during the creates
	benchCPU  float64 // this program (signing, HTTP), same window
	rssAfter  int64

	total                     int // tasks in the project when listing
	listFirst10, listFirst100 []time.Duration
	listLast100               []time.Duration
}

func (b *bench) api(ctx context.Context) error {
	cfg := b.cfg
	r := &apiResult{rate: cfg.createRate}
	b.res.api = r
	logf("api: starting liverelay (empty store)")
	svc, err := startService(ctx, b.ps, b.bin, b.dir+"/liverelay-api", "--task-quota", fmt.Sprint(cfg.createTasks+1000))
	if err != nil {
		return err
	}
	defer svc.stop()

	// Tasks that wait for a start time a day away: the store, the API and
	// the scheduler see them all, no relay runs.
	start := time.Now().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	end := time.Now().Add(48 * time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	body := func(i int) map[string]any {
		t := liveTask("rtmp://127.0.0.1:1/live/api-src", fmt.Sprintf("rtmp://127.0.0.1:1/live/api-%06d", i))
		t["start_time"], t["end_time"] = start, end
		return t
	}
	// Warm up the connections and the store.
	for i := range 20 {
		if _, err := svc.create(ctx, body(-1-i)); err != nil {
			return err
		}
	}

	logf("api: %d create calls at %d/s", cfg.createTasks, cfg.createRate)
	perf, err := b.startPerf(svc.proc.pid(), "api-create")
	if err != nil {
		return err
	}
	meter, err := startCPU(svc.proc.pid(), os.Getpid())
	if err != nil {
		return err
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		last time.Time
	)
	inflight := make(chan struct{}, 256)
	interval := time.Second / time.Duration(cfg.createRate)
	t0 := time.Now().Add(10 * time.Millisecond)
	for i := range cfg.createTasks {
		due := t0.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			_, err := svc.create(ctx, body(i))
			done := time.Now()
			mu.Lock()
			defer mu.Unlock()
			r.sent++
			if err != nil {
				r.failed++
				if r.firstErr == "" {
					r.firstErr = err.Error()
				}
				return
			}
			r.createLat = append(r.createLat, done.Sub(due))
			if done.After(last) {
				last = done
			}
		}()
	}
	wg.Wait()
	cpu, err := meter.stop()
	if err != nil {
		return err
	}
	b.stopPerf(perf)
	r.svcCPU, r.benchCPU = cpu.perProc[0], cpu.perProc[1]
	r.achieved = float64(len(r.createLat)) / last.Sub(t0).Seconds()
	logf("api: %d creates, %d failed, %.0f/s", r.sent, r.failed, r.achieved)

	// List pages of the project that now holds every task.
	page, err := svc.list(ctx, 0, 10)
	if err != nil {
		return err
	}
	r.total = page.Total
	lastOffset := max(r.total-100, 0)
	measure := func(offset, limit int) ([]time.Duration, error) {
		var lat []time.Duration
		for range cfg.listCalls {
			t := time.Now()
			p, err := svc.list(ctx, offset, limit)
			if err != nil {
				return nil, err
			}
			if len(p.TaskInfos) == 0 {
				return nil, fmt.Errorf("list offset %d limit %d: empty page of %d tasks", offset, limit, p.Total)
			}
			lat = append(lat, time.Since(t))
		}
		return lat, nil
	}
	logf("api: list calls in a project of %d tasks", r.total)
	if r.listFirst10, err = measure(0, 10); err != nil {
		return err
	}
	if r.listFirst100, err = measure(0, 100); err != nil {
		return err
	}
	if r.listLast100, err = measure(lastOffset, 100); err != nil {
		return err
	}
	r.rssAfter, _ = rssBytes(svc.proc.pid())
	return nil
}
