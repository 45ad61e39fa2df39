package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// startTrial is one start-latency trial: from the moment the create call is
// sent and the ffmpeg relay is started (together) to the first video frame,
// and the first keyframe, at each destination. Zero: never arrived.
type startTrial struct {
	lr, lrKey, ff, ffKey time.Duration
	create               time.Duration // the create call itself
}

func (b *bench) startLatency(ctx context.Context) error {
	for i := range b.cfg.starts {
		// A random phase against the source's 2 s GOP.
		if err := sleep(ctx, time.Duration(500+rand.IntN(2000))*time.Millisecond); err != nil {
			return err
		}
		tr, err := b.startTrial(ctx, i)
		if err != nil {
			return err
		}
		logf("start %d: liverelay %v (keyframe %v), ffmpeg %v (keyframe %v)", i, ms(tr.lr), ms(tr.lrKey), ms(tr.ff), ms(tr.ffKey))
		b.res.starts = append(b.res.starts, tr)
	}
	return nil
}

func (b *bench) startTrial(ctx context.Context, i int) (startTrial, error) {
	var tr startTrial
	lrDst, ffDst := b.dst.url(fmt.Sprintf("start-lr%02d", i)), b.dst.url(fmt.Sprintf("start-ff%02d", i))
	lrPlay, err := startPlayer(ctx, lrDst, false)
	if err != nil {
		return tr, err
	}
	defer lrPlay.stop()
	ffPlay, err := startPlayer(ctx, ffDst, false)
	if err != nil {
		return tr, err
	}
	defer ffPlay.stop()

	var (
		wg     sync.WaitGroup
		taskID string
		ff     *proc
		cerr   error
		ferr   error
	)
	t0 := time.Now()
	wg.Add(2)
	go func() {
		defer wg.Done()
		taskID, cerr = b.svc.create(ctx, liveTask(b.src.url("src"), lrDst))
		tr.create = time.Since(t0)
	}()
	go func() {
		defer wg.Done()
		ff, ferr = ffmpegRelay(b.ps, b.src.url("src"), ffDst)
	}()
	wg.Wait()
	if ff != nil {
		defer ff.stop(syscall.SIGINT, 5*time.Second)
	}
	if cerr != nil {
		return tr, cerr
	}
	defer b.svc.deleteTask(context.WithoutCancel(ctx), taskID)
	if ferr != nil {
		return tr, ferr
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		_, lk := lrPlay.firstFrame()
		_, fk := ffPlay.firstFrame()
		if !lk.IsZero() && !fk.IsZero() || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return tr, err
		}
	}
	since := func(t time.Time) time.Duration {
		if t.IsZero() {
			return 0
		}
		return t.Sub(t0)
	}
	f, k := lrPlay.firstFrame()
	tr.lr, tr.lrKey = since(f), since(k)
	f, k = ffPlay.firstFrame()
	tr.ff, tr.ffKey = since(f), since(k)
	return tr, nil
}

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}
