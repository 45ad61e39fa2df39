package hls

import (
	"sort"
	"time"

	"github.com/liverelay/liverelay/internal/media"
)

// Track indexes of the merge.
const (
	trackVideo = 0
	trackAudio = 1
)

// item is a converted packet on its way through the merge.
type item struct {
	track  int
	out    out
	seq    uint64    // arrival order, the last tie-breaker
	arrive time.Time // when it was pushed
}

// merger interleaves the packets of the video and audio tracks, which
// gohlslib delivers from one goroutine each, into one sequence in DTS order.
// Each track arrives in its own DTS order, so a packet can go out once every
// other track has reached its DTS: nothing earlier can come from them any
// more. A track that lags (or is silent) holds packets back for at most
// maxWait, and never more than maxLen packets are held: past either bound
// the earliest packet goes out anyway, and order across tracks is then best
// effort (each track stays in order).
//
// At equal DTS a sequence header goes before frames, so a decoder has the
// configuration before it needs it.
//
// Once the tracks have ended (finish), nothing more can come from them:
// every packet held is ready, and goes out in order without waiting.
type merger struct {
	active   [2]bool
	maxWait  time.Duration
	maxLen   int
	finished bool

	seen  [2]bool
	last  [2]time.Duration // DTS the track has reached
	queue []item           // sorted by (DTS, config first, seq)
	seq   uint64
}

func (m *merger) push(track int, o out, now time.Time) {
	if !m.seen[track] || o.pkt.DTS > m.last[track] {
		m.last[track] = o.pkt.DTS
	}
	m.seen[track] = true
	if o.pkt.Body == nil {
		return // clock only
	}
	m.seq++
	it := item{track: track, out: o, seq: m.seq, arrive: now}
	i := sort.Search(len(m.queue), func(i int) bool { return less(it, m.queue[i]) })
	m.queue = append(m.queue, item{})
	copy(m.queue[i+1:], m.queue[i:])
	m.queue[i] = it
}

func less(a, b item) bool {
	if a.out.pkt.DTS != b.out.pkt.DTS {
		return a.out.pkt.DTS < b.out.pkt.DTS
	}
	if a.out.config != b.out.config {
		return a.out.config
	}
	return a.seq < b.seq
}

// pop returns the next packet if it may go out now.
func (m *merger) pop(now time.Time) (media.Packet, bool) {
	if !m.canPop(now) {
		return media.Packet{}, false
	}
	head := m.queue[0]
	m.queue[0] = item{}
	m.queue = m.queue[1:]
	return head.out.pkt, true
}

// canPop reports whether pop(now) would return a packet.
func (m *merger) canPop(now time.Time) bool {
	if len(m.queue) == 0 {
		return false
	}
	return m.ready(m.queue[0]) || now.Sub(m.queue[0].arrive) >= m.maxWait || len(m.queue) > m.maxLen
}

// finish tells the merge that no packet will be pushed any more.
func (m *merger) finish() { m.finished = true }

func (m *merger) ready(head item) bool {
	if m.finished {
		return true
	}
	for t := range m.active {
		if t == head.track || !m.active[t] {
			continue
		}
		if !m.seen[t] || m.last[t] < head.out.pkt.DTS {
			return false
		}
	}
	return true
}

// deadline returns when the head must go out even if the other track has
// not caught up.
func (m *merger) deadline() (time.Time, bool) {
	if len(m.queue) == 0 {
		return time.Time{}, false
	}
	return m.queue[0].arrive.Add(m.maxWait), true
}
