package relay

import (
	"context"
	"errors"
	"sync"

	"github.com/liverelay/liverelay/internal/media"
)

// ErrCut is what opening a destination returns after Cutoff.Cut.
var ErrCut = errors.New("destination cut off: the task stopped on this node")

// Cutoff lets the owner of a task close its destination connections at once,
// from outside the supervisor: when the node loses the task's lease, the
// destination must be free for the next holder now, not after a write that
// may be blocked for its whole timeout. Wrap the task's OpenSink with it; the
// sinks must allow Close while a write is in flight (rtmp.Conn does).
type Cutoff struct {
	mu    sync.Mutex
	sinks map[*cutSink]struct{}
	cut   bool
}

// Wrap returns open with every sink it opens registered for Cut, and
// refusing to open any after Cut.
func (c *Cutoff) Wrap(open func(ctx context.Context, rawURL string) (media.Sink, error)) func(ctx context.Context, rawURL string) (media.Sink, error) {
	return func(ctx context.Context, rawURL string) (media.Sink, error) {
		if c.isCut() {
			return nil, ErrCut
		}
		sink, err := open(ctx, rawURL)
		if err != nil {
			return nil, err
		}
		cs := &cutSink{Sink: sink, c: c}
		c.mu.Lock()
		if c.cut {
			c.mu.Unlock()
			sink.Close()
			return nil, ErrCut
		}
		if c.sinks == nil {
			c.sinks = make(map[*cutSink]struct{})
		}
		c.sinks[cs] = struct{}{}
		c.mu.Unlock()
		return cs, nil
	}
}

func (c *Cutoff) isCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// Cut closes every open sink and makes later opens fail.
func (c *Cutoff) Cut() {
	c.mu.Lock()
	c.cut = true
	sinks := make([]*cutSink, 0, len(c.sinks))
	for s := range c.sinks {
		sinks = append(sinks, s)
	}
	c.mu.Unlock()
	for _, s := range sinks {
		s.Close()
	}
}

// cutSink is a sink Cut can close; closing it twice closes it once.
type cutSink struct {
	media.Sink
	c    *Cutoff
	once sync.Once
	err  error
}

func (s *cutSink) Close() error {
	s.once.Do(func() {
		s.err = s.Sink.Close()
		s.c.mu.Lock()
		delete(s.c.sinks, s)
		s.c.mu.Unlock()
	})
	return s.err
}
