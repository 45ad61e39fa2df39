package relay

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/liverelay/liverelay/internal/media"
)

// readerMsg is what a source reader tells the supervisor: that a file was
// opened (with its duration), a batch of packets, or the end of the reader
// with the error that ended it.
type readerMsg struct {
	id       int
	opened   bool
	duration time.Duration // of an opened file
	batch    *batch
	err      error // non-nil: the reader has stopped
}

// opener opens the source a reader reads.
type opener func(ctx context.Context) (media.Source, error)

// buffered is implemented by sources that can tell whether ReadPacket would
// return without waiting for the network (RTMP, HTTP-FLV and HLS live
// sources).
type buffered interface{ Buffered() bool }

const (
	// A batch ends at whichever limit comes first.
	maxBatchPackets = 64
	maxBatchBytes   = 256 << 10
)

// reader reads one source once (no retries: the supervisor decides what to
// try next) and hands its packets to the supervisor in batches: what a
// buffered source has already received goes in one batch, and a live
// reader waits cfg.Batch after each one so the next read finds several
// messages (one read and one write syscall per batch instead of per frame).
//
// The queue to the supervisor is bounded (cfg.QueueBytes). When the
// supervisor falls behind and it is full, the reader drops whole GOPs:
// everything up to the next video keyframe, so the destination never sees
// a partial GOP; codec configuration is never dropped.
type reader struct {
	id  int
	url string
	// file readers never drop: the supervisor paces them, and a blocked
	// send just pauses reading the file.
	file   bool
	open   opener
	cancel context.CancelFunc
	done   chan struct{}
	q      *queue
}

// queue is what the readers of one supervisor share with it.
type queue struct {
	bytes   atomic.Int64  // of batches sent and not yet released
	dropped atomic.Int64  // packets dropped for a full queue
	room    chan struct{} // (capacity 1) a batch was released
}

func newQueue() *queue { return &queue{room: make(chan struct{}, 1)} }

// released gives the bytes of a written batch back.
func (q *queue) released(n int) {
	q.bytes.Add(-int64(n))
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// fileReadAhead is how far a file reader may read ahead of the paced
// writer: about 2 s of a 2 Mb/s stream, enough to ride out a slow HTTP
// range request, and what bounds a VOD task's memory.
const fileReadAhead = 512 << 10

func startReader(parent context.Context, id int, url string, file bool, open opener, cfg *Config, out chan<- readerMsg, q *queue) *reader {
	ctx, cancel := context.WithCancel(parent)
	r := &reader{id: id, url: url, file: file, open: open, cancel: cancel, done: make(chan struct{}), q: q}
	go r.run(ctx, cfg, out)
	return r
}

// stop ends the reader and waits for it.
func (r *reader) stop() {
	r.cancel()
	<-r.done
}

func (r *reader) run(ctx context.Context, cfg *Config, out chan<- readerMsg) {
	defer close(r.done)
	err := r.pump(ctx, cfg, out)
	if ctx.Err() != nil {
		return // stopped by the supervisor: it is not listening for this reader
	}
	select {
	case out <- readerMsg{id: r.id, err: err}:
	case <-ctx.Done():
	}
}

func (r *reader) pump(ctx context.Context, cfg *Config, out chan<- readerMsg) error {
	dialCtx, cancelDial := context.WithTimeout(ctx, cfg.DialTimeout)
	src, err := r.open(dialCtx)
	cancelDial()
	if err != nil {
		return &sourceError{opened: false, err: err}
	}
	defer src.Close()
	if r.file {
		var d time.Duration
		if fs, ok := src.(media.FileSource); ok {
			d = fs.Duration()
		}
		select {
		case out <- readerMsg{id: r.id, opened: true, duration: d}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	buf, _ := src.(buffered)
	var wait *time.Timer
	if buf != nil && !r.file && cfg.Batch > 0 {
		wait = time.NewTimer(time.Hour)
		wait.Stop()
		defer wait.Stop()
	}
	dropping, sawVideo := false, false
	b := newBatch()
	defer func() {
		if b != nil {
			b.release()
		}
	}()
	for {
		p, err := src.ReadPacket(ctx)
		if err == nil {
			err = checkCodec(p)
		}
		if err != nil {
			// What was read before the error goes out first.
			if len(b.pkts) > 0 && ctx.Err() == nil {
				sendErr := r.send(ctx, out, b, cfg, &dropping)
				b = nil // send owns it now
				if sendErr != nil {
					return sendErr
				}
			}
			return &sourceError{opened: true, err: err}
		}
		sawVideo = sawVideo || p.Kind == media.KindVideo
		if dropping {
			switch {
			case p.IsSequenceHeader() || p.IsMetadata():
			case p.IsVideoKeyframe():
				dropping = false
			default:
				r.q.dropped.Add(1)
				continue
			}
		}
		b.add(p)
		if buf != nil && buf.Buffered() && len(b.pkts) < maxBatchPackets && b.size < maxBatchBytes {
			continue
		}
		err = r.send(ctx, out, b, cfg, &dropping)
		b = nil // send owns it now
		if err != nil {
			return err
		}
		b = newBatch()
		dropping = dropping && sawVideo // without video there are no GOPs to skip
		if wait != nil && !buf.Buffered() {
			// Every reader of the process wakes on the same ticks, so
			// that one wakeup of the runtime serves them all.
			now := time.Now()
			wait.Reset(now.Truncate(cfg.Batch).Add(cfg.Batch).Sub(now))
			select {
			case <-wait.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// send hands b to the supervisor, or releases it. A live reader never blocks on a full
// queue: it drops the batch's frames (keeping codec configuration, which
// must never be lost) and starts dropping up to the next keyframe.
func (r *reader) send(ctx context.Context, out chan<- readerMsg, b *batch, cfg *Config, dropping *bool) error {
	if r.file {
		// A file waits for room: it is read at most fileReadAhead ahead.
		for n := r.q.bytes.Load(); n > 0 && n+int64(b.size) > fileReadAhead; n = r.q.bytes.Load() {
			select {
			case <-r.q.room:
			case <-ctx.Done():
				b.release()
				return ctx.Err()
			}
		}
		return r.sendNow(ctx, out, b)
	}
	if r.q.bytes.Load()+int64(b.size) <= int64(cfg.QueueBytes) {
		r.q.bytes.Add(int64(b.size))
		select {
		case out <- readerMsg{id: r.id, batch: b}:
			return nil
		default:
			r.q.bytes.Add(-int64(b.size))
		}
	}
	r.q.dropped.Add(int64(b.keepOnly(func(p *media.Packet) bool { return p.IsSequenceHeader() || p.IsMetadata() })))
	*dropping = true
	if len(b.pkts) == 0 {
		b.release()
		return nil
	}
	return r.sendNow(ctx, out, b)
}

// sendNow sends b, waiting as long as the supervisor takes.
func (r *reader) sendNow(ctx context.Context, out chan<- readerMsg, b *batch) error {
	r.q.bytes.Add(int64(b.size))
	select {
	case out <- readerMsg{id: r.id, batch: b}:
		return nil
	case <-ctx.Done():
		r.q.bytes.Add(-int64(b.size))
		b.release()
		return ctx.Err()
	}
}

// sourceError says whether the source was opened before it failed.
type sourceError struct {
	opened bool
	err    error
}

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
