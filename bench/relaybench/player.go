package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/rtmp"
)

// arrival is one video frame as a player received it.
type arrival struct {
	at      time.Time
	key     bool
	dts     time.Duration
	session int // plays started before this one (rejoins)
}

// player plays a stream and records when each video frame arrives.
type player struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	frames []arrival
	rejoin int // plays started again after the publisher left
	err    error
}

// startPlayer subscribes to url and returns once the server accepted the
// play (nginx-rtmp accepts it before anyone publishes: frames then come
// when a publisher does). With rejoin, the player subscribes again when the
// publisher leaves, the way a viewer's player retries.
func startPlayer(ctx context.Context, url string, rejoin bool) (*player, error) {
	opt := rtmp.Options{ReadTimeout: 60 * time.Second}
	c, err := rtmp.Play(ctx, url, opt)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &player{url: url, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			err := p.read(ctx, c)
			c.Close()
			if ctx.Err() != nil {
				return
			}
			if !rejoin || !errors.Is(err, rtmp.ErrUnpublished) {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
				return
			}
			for {
				if c, err = rtmp.Play(ctx, url, opt); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
			p.mu.Lock()
			p.rejoin++
			p.mu.Unlock()
		}
	}()
	return p, nil
}

func (p *player) read(ctx context.Context, c *rtmp.Conn) error {
	for {
		pkt, err := c.ReadPacket(ctx)
		if err != nil {
			return err
		}
		if pkt.Kind != media.KindVideo || pkt.IsSequenceHeader() {
			continue
		}
		a := arrival{at: time.Now(), key: pkt.IsVideoKeyframe(), dts: pkt.DTS}
		p.mu.Lock()
		a.session = p.rejoin
		p.frames = append(p.frames, a)
		p.mu.Unlock()
	}
}

func (p *player) stop() {
	p.cancel()
	<-p.done
}

// snapshot returns the frames received so far.
func (p *player) snapshot() []arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]arrival(nil), p.frames...)
}

// firstFrame returns the arrival of the first video frame, and of the first
// keyframe, if any.
func (p *player) firstFrame() (first, firstKey time.Time) {
	for _, a := range p.snapshot() {
		if first.IsZero() {
			first = a.at
		}
		if a.key {
			return first, a.at
		}
	}
	return first, time.Time{}
}

// framesSince counts the frames received after t.
func (p *player) framesSince(t time.Time) int {
	n := 0
	for _, a := range p.snapshot() {
		if a.at.After(t) {
			n++
		}
	}
	return n
}
