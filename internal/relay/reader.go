package relay

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/liverelay/liverelay/internal/media"
)

// readerMsg is what a source reader tells the supervisor: that a file was
// opened (with its duration), a packet, or the end of the reader with the
// error that ended it.
type readerMsg struct {
	id       int
	opened   bool
	duration time.Duration // of an opened file
	pkt      *media.Packet
	err      error // non-nil: the reader has stopped
}

// opener opens the source a reader reads.
type opener func(ctx context.Context) (media.Source, error)

// reader reads one source once (no retries: the supervisor decides what to
// try next) and forwards copies of its packets. When the supervisor falls
// behind and the queue is full, it drops whole GOPs: everything up to the
// next video keyframe, so the destination never sees a partial GOP.
type reader struct {
	id  int
	url string
	// file readers never drop: the supervisor paces them, and a blocked
	// send just pauses reading the file.
	file   bool
	open   opener
	cancel context.CancelFunc
	done   chan struct{}
	// dropped counts packets dropped for a full queue.
	dropped atomic.Int64
}

func startReader(parent context.Context, id int, url string, file bool, open opener, cfg *Config, out chan<- readerMsg) *reader {
	ctx, cancel := context.WithCancel(parent)
	r := &reader{id: id, url: url, file: file, open: open, cancel: cancel, done: make(chan struct{})}
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

	dropping, sawVideo := false, false
	for {
		p, err := src.ReadPacket(ctx)
		if err != nil {
			return &sourceError{opened: true, err: err}
		}
		if err := checkCodec(p); err != nil {
			return &sourceError{opened: true, err: err}
		}
		sawVideo = sawVideo || p.Kind == media.KindVideo
		if dropping {
			if !p.IsVideoKeyframe() || p.IsSequenceHeader() {
				if !p.IsSequenceHeader() && !p.IsMetadata() {
					r.dropped.Add(1)
					continue
				}
			} else {
				dropping = false
			}
		}
		cp := &media.Packet{Kind: p.Kind, DTS: p.DTS, Body: append([]byte(nil), p.Body...)}
		if r.file {
			select {
			case out <- readerMsg{id: r.id, pkt: cp}:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		select {
		case out <- readerMsg{id: r.id, pkt: cp}:
		default:
			// Codec configuration must never be lost; media may be.
			if p.IsSequenceHeader() || p.IsMetadata() {
				select {
				case out <- readerMsg{id: r.id, pkt: cp}:
				case <-ctx.Done():
					return ctx.Err()
				}
				continue
			}
			r.dropped.Add(1)
			// Without video there are no GOPs: drop just this packet.
			dropping = sawVideo
		}
	}
}

// sourceError says whether the source was opened before it failed.
type sourceError struct {
	opened bool
	err    error
}

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
