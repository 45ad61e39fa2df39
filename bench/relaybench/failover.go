package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// failoverTrial is one failover: the primary (of kind) is killed while a
// liverelay task (primary + backup) and, for the kinds ffmpeg is compared
// on, an ffmpeg relay (restarted on the backup as soon as it exits, as a
// per-task ffmpeg supervisor would) read it. Gaps run from the last frame
// before the pause to the first frame (and the first keyframe) after it,
// at each destination. Zero: none arrived (or not compared).
type failoverTrial struct {
	kind       string
	lr, lrKey  time.Duration
	lrDTS      time.Duration // step of the output timestamps across the pause
	lrDetect   time.Duration // kill → liverelay logged the source lost
	lrTail     time.Duration // kill → the primary's last frame at the destination (< 0: before the kill)
	lrTailOK   bool
	ff, ffKey  time.Duration
	ffRejoined bool          // the destination's player had to subscribe again
	ffExit     time.Duration // kill → the ffmpeg on the primary exited
	segment    time.Duration // HLS: the playlist's target duration
}

// ffmpegWatchArgs make the ffmpeg of the failover scenario notice a source
// that stops: without a read timeout, ffmpeg 5.1 waits forever on an
// nginx-rtmp stream whose publisher is gone. The same 3 s as liverelay's
// --no-media-timeout.
var ffmpegWatchArgs = []string{"-rw_timeout", fmt.Sprint(noMediaTimeout.Microseconds())}

func (b *bench) failover(ctx context.Context) error {
	for _, kind := range b.cfg.failoverKinds {
		for i := range b.cfg.failovers {
			tr, err := b.failoverTrial(ctx, kind, i)
			if err != nil {
				return fmt.Errorf("%s %d: %w", kind, i, err)
			}
			logf("failover %s %d: liverelay gap %v (keyframe %v, output DTS step %v, loss logged %v after the kill), ffmpeg gap %v (keyframe %v, exited %v after the kill)",
				kind, i, ms(tr.lr), ms(tr.lrKey), ms(tr.lrDTS), ms(tr.lrDetect), ms(tr.ff), ms(tr.ffKey), ms(tr.ffExit))
			b.res.failovers = append(b.res.failovers, tr)
		}
	}
	return nil
}

func (b *bench) failoverTrial(ctx context.Context, kind string, i int) (failoverTrial, error) {
	tr := failoverTrial{kind: kind}
	backup := b.src.url("src")
	lrDst := b.dst.url(fmt.Sprintf("fo-%s-lr%02d", kind, i))
	ffDst := b.dst.url(fmt.Sprintf("fo-%s-ff%02d", kind, i))

	prim, err := b.startPrimary(ctx, kind, i)
	if err != nil {
		return tr, err
	}
	defer prim.kill()
	tr.segment = prim.segment

	lrPlay, err := startPlayer(ctx, lrDst, false)
	if err != nil {
		return tr, err
	}
	defer lrPlay.stop()
	var ffPlay *player
	if prim.ffURL != "" {
		if ffPlay, err = startPlayer(ctx, ffDst, true); err != nil {
			return tr, err
		}
		defer ffPlay.stop()
	}

	id, err := b.svc.create(ctx, liveTask(prim.lrURL, lrDst, backup))
	if err != nil {
		return tr, err
	}
	defer b.svc.deleteTask(context.WithoutCancel(ctx), id)
	var ff *ffmpegFailover
	if prim.ffURL != "" {
		if ff, err = startFFmpegFailover(ctx, b.ps, i, prim.ffURL, backup, ffDst); err != nil {
			return tr, err
		}
		defer ff.stop()
	}

	// Both destinations steady for 3 s, the task still on its primary.
	steadyFrom := time.Now()
	deadline := steadyFrom.Add(30 * time.Second)
	for lrPlay.framesSince(steadyFrom) < 90 || ffPlay != nil && ffPlay.framesSince(steadyFrom) < 90 {
		if time.Now().After(deadline) {
			ffFrames := 0
			if ffPlay != nil {
				ffFrames = ffPlay.framesSince(steadyFrom)
			}
			return tr, fmt.Errorf("destinations not receiving before the failover (liverelay %d, ffmpeg %d frames in 30 s)",
				lrPlay.framesSince(steadyFrom), ffFrames)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return tr, err
		}
	}
	if info, err := b.svc.show(ctx, id); err != nil {
		return tr, err
	} else if info.OnBackup || info.Failovers > 0 {
		return tr, fmt.Errorf("the task left its primary before the kill (on_backup %v, failovers %d)", info.OnBackup, info.Failovers)
	}

	// A random phase against the backup's 2 s GOP.
	if err := sleep(ctx, time.Duration(rand.IntN(2000))*time.Millisecond); err != nil {
		return tr, err
	}
	kill := time.Now()
	prim.kill()
	// Wait until frames flow again on both sides, at most 30 s: an HLS
	// primary first plays out the segments its reader holds.
	deadline = kill.Add(30 * time.Second)
	var detected time.Time
	for {
		if detected.IsZero() {
			detected = b.svc.loggedAt(id, "source interrupted", kill)
		}
		// liverelay's pause is found around its log line: wait for it.
		_, _, lrOK := lrPause(lrPlay.snapshot(), kill, detected)
		lrOK = lrOK && !detected.IsZero()
		ffOK := true
		if ffPlay != nil {
			_, _, ffOK = pause(ffPlay.snapshot(), kill, true)
		}
		if lrOK && ffOK || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return tr, err
		}
	}

	if !detected.IsZero() {
		tr.lrDetect = detected.Sub(kill)
	}
	if prev, next, ok := lrPause(lrPlay.snapshot(), kill, detected); ok {
		tr.lr = next.at.Sub(prev.at)
		tr.lrDTS = next.dts - prev.dts
		tr.lrTail, tr.lrTailOK = prev.at.Sub(kill), true
		if k := firstKeyAfter(lrPlay.snapshot(), next.at); !k.IsZero() {
			tr.lrKey = k.Sub(prev.at)
		}
	}
	if ffPlay != nil {
		if prev, next, ok := pause(ffPlay.snapshot(), kill, true); ok {
			tr.ff = next.at.Sub(prev.at)
			if k := firstKeyAfter(ffPlay.snapshot(), next.at); !k.IsZero() {
				tr.ffKey = k.Sub(prev.at)
			}
		}
		ffPlay.mu.Lock()
		tr.ffRejoined = ffPlay.rejoin > 0
		ffPlay.mu.Unlock()
		if at := ff.exited(); !at.IsZero() {
			tr.ffExit = at.Sub(kill)
		}
	}
	return tr, nil
}

// ffmpegFailover is the ffmpeg side of a trial: one process on the
// primary, another on the backup the moment the first exits.
type ffmpegFailover struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once the restart is done or given up

	mu       sync.Mutex
	current  *proc
	exitedAt time.Time
}

func startFFmpegFailover(ctx context.Context, ps *procs, i int, primary, backup, dst string) (*ffmpegFailover, error) {
	first, err := ffmpegRelay(ps, primary, dst, ffmpegWatchArgs...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &ffmpegFailover{cancel: cancel, done: make(chan struct{}), current: first}
	go func() {
		defer close(f.done)
		select {
		case <-ctx.Done():
			return
		case <-first.done:
		}
		f.mu.Lock()
		f.exitedAt = time.Now()
		f.mu.Unlock()
		next, err := ffmpegRelay(ps, backup, dst, ffmpegWatchArgs...)
		if err != nil {
			logf("failover %d: restart ffmpeg on the backup: %v", i, err)
			return
		}
		f.mu.Lock()
		f.current = next
		f.mu.Unlock()
	}()
	return f, nil
}

// exited returns when the ffmpeg on the primary exited, zero if it has not.
func (f *ffmpegFailover) exited() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exitedAt
}

// stop ends the restart watch, then the ffmpeg running.
func (f *ffmpegFailover) stop() {
	f.cancel()
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	f.current.stop(syscall.SIGINT, 5*time.Second)
}

// lrPause finds the pause at liverelay's destination: around the moment
// the task logged its source lost, or as pause does if it never did.
func lrPause(frames []arrival, kill, detected time.Time) (prev, next arrival, ok bool) {
	if detected.IsZero() {
		return pause(frames, kill, false)
	}
	return pauseAround(frames, detected)
}

// pauseAround finds the switch in the frames a liverelay destination
// received around the moment the task noticed its source lost (detected):
// of the gaps between two frames from a second before it to one GOP and a
// second after it, the one across which the timestamps step the most.
// liverelay's timeline carries the wall-clock pause of a switch into the
// output timestamps, while a delivery hiccup of a busy machine delays
// frames without a step. The first gap over a threshold (pause) would miss
// a short switch: frames arrive in batches up to 100 ms apart. It counts
// only once frames have flowed for 2 s after next and past the window.
func pauseAround(frames []arrival, detected time.Time) (prev, next arrival, ok bool) {
	from, to := detected.Add(-time.Second), detected.Add(clipGOP+time.Second)
	step := time.Duration(math.MinInt64)
	for i := 1; i < len(frames); i++ {
		if frames[i].at.Before(from) || frames[i-1].at.After(to) {
			continue
		}
		if d := frames[i].dts - frames[i-1].dts; d > step {
			step, prev, next = d, frames[i-1], frames[i]
		}
	}
	if step == math.MinInt64 {
		return prev, next, false
	}
	last := frames[len(frames)-1].at
	return prev, next, last.After(to) && last.Sub(next.at) >= 2*time.Second
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
