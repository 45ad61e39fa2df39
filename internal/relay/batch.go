package relay

import (
	"sync"

	"github.com/liverelay/liverelay/internal/media"
)

// batch is the packets a reader hands to the supervisor at once, with their
// bodies copied into pooled blocks: the source may reuse its buffers as soon
// as it is read again, and a steady relay allocates nothing per packet.
// The supervisor releases a batch once it has written it.
type batch struct {
	pkts   []media.Packet
	blocks []*block
	size   int // bytes of packet bodies
}

type block struct{ b []byte }

// Block sizes are powers of two from minBlock to 1 MiB; a body larger than
// that gets a buffer of its own, left to the garbage collector.
const minBlock = 1 << 10

var (
	batchPool  = sync.Pool{New: func() any { return new(batch) }}
	blockPools [blockClasses]sync.Pool
)

const blockClasses = 11 // 1 KiB .. 1 MiB

func newBatch() *batch { return batchPool.Get().(*batch) }

// add appends a copy of p.
func (b *batch) add(p *media.Packet) {
	n := len(p.Body)
	var blk *block
	if k := len(b.blocks); k > 0 && cap(b.blocks[k-1].b)-len(b.blocks[k-1].b) >= n {
		blk = b.blocks[k-1]
	} else {
		// Blocks grow with the batch: a one-frame batch (a paced file)
		// takes little more than its frame, a burst few blocks.
		blk = getBlock(max(n, b.size))
		b.blocks = append(b.blocks, blk)
	}
	start := len(blk.b)
	blk.b = append(blk.b, p.Body...)
	b.pkts = append(b.pkts, media.Packet{Kind: p.Kind, DTS: p.DTS, Body: blk.b[start:len(blk.b):len(blk.b)]})
	b.size += n
}

// keepOnly drops every packet keep refuses and returns how many it dropped.
// The blocks stay: the bodies kept live in them.
func (b *batch) keepOnly(keep func(*media.Packet) bool) int {
	kept := b.pkts[:0]
	size := 0
	for i := range b.pkts {
		if keep(&b.pkts[i]) {
			kept = append(kept, b.pkts[i])
			size += len(b.pkts[i].Body)
		}
	}
	dropped := len(b.pkts) - len(kept)
	clear(b.pkts[len(kept):])
	b.pkts, b.size = kept, size
	return dropped
}

// release returns the batch and its blocks to their pools. The packets'
// bodies must not be used afterwards.
func (b *batch) release() {
	for _, blk := range b.blocks {
		putBlock(blk)
	}
	clear(b.blocks)
	clear(b.pkts)
	b.blocks, b.pkts, b.size = b.blocks[:0], b.pkts[:0], 0
	batchPool.Put(b)
}

func blockClass(n int) int {
	c := 0
	for size := minBlock; size < n; size <<= 1 {
		c++
	}
	return c
}

// getBlock returns an empty block with room for at least n bytes.
func getBlock(n int) *block {
	c := blockClass(n)
	if c >= blockClasses {
		return &block{b: make([]byte, 0, n)}
	}
	if v := blockPools[c].Get(); v != nil {
		return v.(*block)
	}
	return &block{b: make([]byte, 0, minBlock<<c)}
}

func putBlock(blk *block) {
	c := blockClass(cap(blk.b))
	if c >= blockClasses || cap(blk.b) != minBlock<<c {
		return
	}
	blk.b = blk.b[:0]
	blockPools[c].Put(blk)
}
