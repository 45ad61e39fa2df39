package auth

import (
	"container/heap"
	"crypto/sha256"
	"sync"
	"time"
)

// replayCapacity bounds the replay cache. A signature stays in it for at
// most 30 minutes (its date may be 15 minutes ahead of the clock and stays
// acceptable until 15 minutes after it), so this allows ~70 signed requests
// a second, sustained, in about 10 MB.
const replayCapacity = 1 << 17

// replayCache remembers the signatures accepted while their date is still
// inside the skew window, so none is accepted twice.
type replayCache struct {
	capacity int

	mu    sync.Mutex
	seen  map[[sha256.Size]byte]struct{}
	queue expiryQueue
	// high is the latest clock reading seen: pruning by it, not by the
	// reading at hand, means a clock stepping back cannot forget a
	// signature that became valid again.
	high int64
}

func newReplayCache(capacity int) *replayCache {
	return &replayCache{capacity: capacity, seen: make(map[[sha256.Size]byte]struct{})}
}

// add records sig, acceptable until until, and reports whether it was new
// and there was room for it.
func (c *replayCache) add(sig []byte, until, now time.Time) (fresh, room bool) {
	key := [sha256.Size]byte(sig)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.high = max(c.high, now.Unix())
	for len(c.queue) > 0 && c.queue[0].until < c.high {
		e := heap.Pop(&c.queue).(expiry)
		delete(c.seen, e.sig)
	}
	if _, dup := c.seen[key]; dup {
		return false, true
	}
	if len(c.seen) >= c.capacity {
		return true, false
	}
	c.seen[key] = struct{}{}
	heap.Push(&c.queue, expiry{until: until.Unix(), sig: key})
	return true, true
}

type expiry struct {
	until int64
	sig   [sha256.Size]byte
}

// expiryQueue is a min-heap of expiry by until.
type expiryQueue []expiry

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].until < q[j].until }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(expiry)) }
func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}
