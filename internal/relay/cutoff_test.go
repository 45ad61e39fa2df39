package relay

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/liverelay/liverelay/internal/media"
)

// blockingSink blocks every write until it is closed, like a destination
// that stopped reading.
type blockingSink struct {
	closed chan struct{}
	closes atomic.Int32
}

func (b *blockingSink) WritePacket(*media.Packet) error {
	<-b.closed
	return errors.New("closed")
}
func (b *blockingSink) Flush() error {
	<-b.closed
	return errors.New("closed")
}
func (b *blockingSink) BytesWritten() uint64 { return 0 }
func (b *blockingSink) Close() error {
	if b.closes.Add(1) == 1 {
		close(b.closed)
	}
	return nil
}

func TestCutoffClosesABlockedSinkAndRefusesNewOnes(t *testing.T) {
	var c Cutoff
	raw := &blockingSink{closed: make(chan struct{})}
	open := c.Wrap(func(context.Context, string) (media.Sink, error) { return raw, nil })
	sink, err := open(context.Background(), "rtmp://h/a/s")
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan error, 1)
	go func() { wrote <- sink.WritePacket(&media.Packet{}) }()
	time.Sleep(20 * time.Millisecond)
	c.Cut()
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("the blocked write succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Cut did not end the blocked write")
	}
	sink.Close() // the supervisor closes it too: once is enough
	if n := raw.closes.Load(); n != 1 {
		t.Fatalf("sink closed %d times", n)
	}
	if _, err := open(context.Background(), "rtmp://h/a/s"); !errors.Is(err, ErrCut) {
		t.Fatalf("open after Cut: %v, want ErrCut", err)
	}
}
