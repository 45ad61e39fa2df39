package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// failoverTrial is one failover: the primary's publisher is killed while a
// liverelay task (primary + backup) and an ffmpeg relay (restarted on the
// backup as soon as it exits, as a per-task ffmpeg supervisor would) read
// it. Gaps run from the last frame before the pause to the first frame (and
// the first keyframe) after it, at each destination. Zero: none arrived.
type failoverTrial struct {
	lr, lrKey  time.Duration
	lrDTS      time.Duration // step of the output timestamps across the pause
	ff, ffKey  time.Duration
	ffRejoined bool          // the destination's player had to subscribe again
	ffExit     time.Duration // kill → the ffmpeg on the primary exited
}

// ffmpegWatchArgs make the ffmpeg of the failover scenario notice a source
// that stops: without a read timeout, ffmpeg 5.1 waits forever on an
// nginx-rtmp stream whose publisher is gone. 3 s is liverelay's default
// --no-media-timeout.
var ffmpegWatchArgs = []string{"-rw_timeout", "3000000"}

func (b *bench) failover(ctx context.Context) error {
	for i := range b.cfg.failovers {
		tr, err := b.failoverTrial(ctx, i)
		if err != nil {
			return err
		}
		logf("failover %d: liverelay gap %v (keyframe %v, output DTS step %v), ffmpeg gap %v (keyframe %v, exited %v after the kill)",
			i, ms(tr.lr), ms(tr.lrKey), ms(tr.lrDTS), ms(tr.ff), ms(tr.ffKey), ms(tr.ffExit))
		b.res.failovers = append(b.res.failovers, tr)
	}
	return nil
}

func (b *bench) failoverTrial(ctx context.Context, i int) (failoverTrial, error) {
	var tr failoverTrial
	primaryName := fmt.Sprintf("primary%02d", i)
	primary, backup := b.src.url(primaryName), b.src.url("src")
	lrDst, ffDst := b.dst.url(fmt.Sprintf("fo-lr%02d", i)), b.dst.url(fmt.Sprintf("fo-ff%02d", i))

	pub, err := publish(b.ps, b.clip, primary)
	if err != nil {
		return tr, err
	}
	defer pub.kill()
	if err := b.waitPublishing(ctx, b.src, []string{primaryName}, 20*time.Second); err != nil {
		return tr, err
	}

	lrPlay, err := startPlayer(ctx, lrDst, false)
	if err != nil {
		return tr, err
	}
	defer lrPlay.stop()
	ffPlay, err := startPlayer(ctx, ffDst, true)
	if err != nil {
		return tr, err
	}
	defer ffPlay.stop()

	id, err := b.svc.create(ctx, liveTask(primary, lrDst, backup))
	if err != nil {
		return tr, err
	}
	defer b.svc.deleteTask(context.WithoutCancel(ctx), id)

	// The ffmpeg side: one process on the primary, another on the backup
	// the moment the first exits.
	var (
		mu       sync.Mutex
		current  *proc
		exitedAt time.Time
	)
	ffCtx, stopFF := context.WithCancel(ctx)
	ffDone := make(chan struct{})
	defer func() {
		stopFF()
		<-ffDone
		mu.Lock()
		if current != nil {
			current.stop(syscall.SIGINT, 5*time.Second)
		}
		mu.Unlock()
	}()
	first, err := ffmpegRelay(b.ps, primary, ffDst, ffmpegWatchArgs...)
	if err != nil {
		close(ffDone)
		return tr, err
	}
	current = first
	go func() {
		defer close(ffDone)
		select {
		case <-ffCtx.Done():
			return
		case <-first.done:
		}
		mu.Lock()
		exitedAt = time.Now()
		mu.Unlock()
		next, err := ffmpegRelay(b.ps, backup, ffDst, ffmpegWatchArgs...)
		if err != nil {
			logf("failover %d: restart ffmpeg on the backup: %v", i, err)
			return
		}
		mu.Lock()
		current = next
		mu.Unlock()
	}()

	// Both destinations steady for 3 s.
	steadyFrom := time.Now()
	deadline := steadyFrom.Add(30 * time.Second)
	for lrPlay.framesSince(steadyFrom) < 90 || ffPlay.framesSince(steadyFrom) < 90 {
		if time.Now().After(deadline) {
			return tr, fmt.Errorf("destinations not receiving before the failover (liverelay %d, ffmpeg %d frames in 30 s)",
				lrPlay.framesSince(steadyFrom), ffPlay.framesSince(steadyFrom))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return tr, err
		}
	}

	// A random phase against the backup's 2 s GOP.
	if err := sleep(ctx, time.Duration(rand.IntN(2000))*time.Millisecond); err != nil {
		return tr, err
	}
	kill := time.Now()
	pub.kill()
	// Wait until frames flow again on both sides, at most 20 s.
	deadline = kill.Add(20 * time.Second)
	for {
		_, _, lrOK := pause(lrPlay.snapshot(), kill, false)
		_, _, ffOK := pause(ffPlay.snapshot(), kill, true)
		if lrOK && ffOK || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return tr, err
		}
	}

	if prev, next, ok := pause(lrPlay.snapshot(), kill, false); ok {
		tr.lr = next.at.Sub(prev.at)
		tr.lrDTS = next.dts - prev.dts
		if k := firstKeyAfter(lrPlay.snapshot(), next.at); !k.IsZero() {
			tr.lrKey = k.Sub(prev.at)
		}
	}
	if prev, next, ok := pause(ffPlay.snapshot(), kill, true); ok {
		tr.ff = next.at.Sub(prev.at)
		if k := firstKeyAfter(ffPlay.snapshot(), next.at); !k.IsZero() {
			tr.ffKey = k.Sub(prev.at)
		}
	}
	ffPlay.mu.Lock()
	tr.ffRejoined = ffPlay.rejoin > 0
	ffPlay.mu.Unlock()
	mu.Lock()
	if !exitedAt.IsZero() {
		tr.ffExit = exitedAt.Sub(kill)
	}
	mu.Unlock()
	return tr, nil
}

// pause finds the pause in the frames a destination received when the
// primary was killed: prev is the last frame of the steady flow (which ends
// at the first gap of more than 300 ms after the kill, give or take frames
// in flight), next the first frame of the backup. With newSession the
// backup must come in a later play session (the destination's publisher
// changed): frames of the old one that arrive late (an exiting ffmpeg
// flushes its interleaving queue) are not the backup. It counts only once
// frames have flowed for 2 s after next.
func pause(frames []arrival, kill time.Time, newSession bool) (prev, next arrival, ok bool) {
	pi := -1
	for i := 1; i < len(frames); i++ {
		if !frames[i-1].at.Before(kill.Add(-500*time.Millisecond)) && frames[i].at.Sub(frames[i-1].at) > 300*time.Millisecond {
			pi = i - 1
			break
		}
	}
	if pi < 0 {
		return prev, next, false
	}
	prev = frames[pi]
	for _, f := range frames[pi+1:] {
		if !newSession || f.session > prev.session {
			next, ok = f, true
			break
		}
	}
	if ok && frames[len(frames)-1].at.Sub(next.at) < 2*time.Second {
		ok = false
	}
	return prev, next, ok
}

func firstKeyAfter(frames []arrival, t time.Time) time.Time {
	for _, a := range frames {
		if a.key && !a.at.Before(t) {
			return a.at
		}
	}
	return time.Time{}
}
