package mp4

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/Eyevinn/mp4ff/mp4"
)

// maxSampleSize bounds one sample (a 4K keyframe is a few MiB). A sample
// table claiming more is corrupt, and the bound keeps one read's memory
// small whatever the file says.
const maxSampleSize = 64 << 20

// sampleTable is one track's sample tables as the moov stores them
// (run-length coded, O(entries) memory): nothing is expanded per sample.
// A cursor walks it one sample at a time.
type sampleTable struct {
	count uint32 // playable samples: what stts, stsz and stsc all describe

	sttsCount, sttsDelta []uint32

	cttsEnd []uint32 // cttsEnd[i+1] is one past the last sample of entry i
	cttsOff []int32

	runs     []chunkRun
	chunks32 []uint32 // stco, or
	chunks64 []uint64 // co64

	uniformSize uint32
	sizes       []uint32

	sync    []uint32 // stss: 1-based sample numbers, ascending
	allSync bool     // no stss: every sample is a sync sample
}

// chunkRun is one stsc entry: chunks in a row with the same number of
// samples each.
type chunkRun struct {
	firstChunk  uint32 // 0-based index into the chunk offsets
	chunks      uint32
	perChunk    uint32 // > 0
	firstSample uint32 // 0-based index of the run's first sample
}

var errNoSamples = errors.New("no samples")

// newSampleTable checks a track's stbl and keeps its tables. maxTicks
// bounds the track's total duration.
func newSampleTable(stbl *mp4.StblBox, maxTicks uint64, isAudio bool) (*sampleTable, error) {
	if stbl.Stts == nil || stbl.Stsz == nil || stbl.Stsc == nil || (stbl.Stco == nil && stbl.Co64 == nil) {
		return nil, errors.New("sample table incomplete (stts, stsz, stsc and stco/co64 are required)")
	}
	t := &sampleTable{
		sttsCount:   stbl.Stts.SampleCount,
		sttsDelta:   stbl.Stts.SampleTimeDelta,
		uniformSize: stbl.Stsz.SampleUniformSize,
		sizes:       stbl.Stsz.SampleSize,
	}
	if len(t.sttsCount) != len(t.sttsDelta) {
		return nil, errors.New("stts: corrupt")
	}
	var sttsTotal, ticks uint64
	for i, n := range t.sttsCount {
		sttsTotal += uint64(n)
		ticks += uint64(n) * uint64(t.sttsDelta[i])
		if ticks > maxTicks || sttsTotal > 1<<32 {
			return nil, errors.New("stts: duration out of range")
		}
	}

	if t.uniformSize > maxSampleSize {
		return nil, fmt.Errorf("stsz: sample size %d out of range", t.uniformSize)
	}
	for _, s := range t.sizes {
		if s > maxSampleSize {
			return nil, fmt.Errorf("stsz: sample size %d out of range", s)
		}
	}
	stszTotal := uint64(stbl.Stsz.SampleNumber)

	var numChunks uint32
	if stbl.Co64 != nil {
		t.chunks64 = stbl.Co64.ChunkOffset
		numChunks = uint32(len(t.chunks64))
	} else {
		t.chunks32 = stbl.Stco.ChunkOffset
		numChunks = uint32(len(t.chunks32))
	}
	stscTotal, err := t.buildRuns(stbl.Stsc.Entries, numChunks)
	if err != nil {
		return nil, err
	}

	if c := stbl.Ctts; c != nil {
		if len(c.EndSampleNr) != len(c.SampleOffset)+1 || !slices.IsSorted(c.EndSampleNr) {
			return nil, errors.New("ctts: corrupt")
		}
		t.cttsEnd, t.cttsOff = c.EndSampleNr, c.SampleOffset
	}

	t.allSync = stbl.Stss == nil || isAudio
	if !t.allSync {
		t.sync = stbl.Stss.SampleNumber
		for i, n := range t.sync {
			if n == 0 || (i > 0 && n <= t.sync[i-1]) {
				return nil, errors.New("stss: corrupt")
			}
		}
	}

	t.count = uint32(min(sttsTotal, stszTotal, stscTotal, 1<<32-1))
	if t.count == 0 {
		return nil, errNoSamples
	}
	return t, nil
}

// buildRuns turns stsc entries into chunk runs and returns how many samples
// they hold. Entries for chunks that do not exist are dropped; runs of
// empty chunks are kept out (they hold no sample).
func (t *sampleTable) buildRuns(entries []mp4.StscEntry, numChunks uint32) (uint64, error) {
	var total uint64
	for i, e := range entries {
		if e.FirstChunk == 0 || (i > 0 && e.FirstChunk <= entries[i-1].FirstChunk) {
			return 0, errors.New("stsc: corrupt")
		}
		if e.FirstChunk > numChunks {
			break
		}
		end := numChunks + 1
		if i+1 < len(entries) && entries[i+1].FirstChunk < end {
			end = entries[i+1].FirstChunk
		}
		chunks := end - e.FirstChunk
		if e.SamplesPerChunk == 0 {
			continue
		}
		if total >= 1<<32 {
			break
		}
		t.runs = append(t.runs, chunkRun{
			firstChunk:  e.FirstChunk - 1,
			chunks:      chunks,
			perChunk:    e.SamplesPerChunk,
			firstSample: uint32(total),
		})
		total += uint64(chunks) * uint64(e.SamplesPerChunk)
	}
	return total, nil
}

func (t *sampleTable) size(n uint32) uint32 {
	if t.sizes == nil {
		return t.uniformSize
	}
	return t.sizes[n]
}

func (t *sampleTable) chunkOffset(chunk uint32) uint64 {
	if t.chunks64 != nil {
		return t.chunks64[chunk]
	}
	return uint64(t.chunks32[chunk])
}

// firstAtOrAfter returns the first sample whose decode time is at or after
// ticks, or t.count if there is none.
func (t *sampleTable) firstAtOrAfter(ticks int64) uint32 {
	var base uint64
	var dts int64
	for i, cnt := range t.sttsCount {
		if cnt == 0 {
			continue
		}
		if ticks <= dts {
			return uint32(min(base, uint64(t.count)))
		}
		if delta := int64(t.sttsDelta[i]); delta > 0 {
			if j := (ticks - dts + delta - 1) / delta; j < int64(cnt) {
				return uint32(min(base+uint64(j), uint64(t.count)))
			}
		}
		base += uint64(cnt)
		dts += int64(cnt) * int64(t.sttsDelta[i])
	}
	return t.count
}

// syncAtOrBefore returns the last sync sample at or before sample n, and
// false if there is none.
func (t *sampleTable) syncAtOrBefore(n uint32) (uint32, bool) {
	if t.allSync {
		return n, true
	}
	i := sort.Search(len(t.sync), func(i int) bool { return t.sync[i] > n+1 })
	if i == 0 {
		return 0, false
	}
	return t.sync[i-1] - 1, true
}

// firstSync returns the first sync sample, or 0 if the track has none.
func (t *sampleTable) firstSync() uint32 {
	if t.allSync || len(t.sync) == 0 || t.sync[0]-1 >= t.count {
		return 0
	}
	return t.sync[0] - 1
}

// cursor is a position in a sample table: sample n with its decode time,
// file offset, and where it sits in each table, so that advancing is O(1).
type cursor struct {
	t        *sampleTable
	n        uint32 // current sample; t.count when past the end
	dts      int64  // decode time of sample n, in media ticks
	stts     int    // entry holding n
	sttsLeft uint32 // samples of that entry from n on
	ctts     int    // first entry that may hold n
	run      int
	chunk    uint32 // chunk of n, within its run
	inChunk  uint32 // index of n within its chunk
	offset   uint64 // file offset of sample n
	sync     int    // first index of t.sync at or after n
}

// cursorAt returns a cursor on sample n, in O(entries) time.
func (t *sampleTable) cursorAt(n uint32) cursor {
	c := cursor{t: t, n: min(n, t.count)}
	if c.n == t.count {
		return c
	}
	var base uint64
	for i, cnt := range t.sttsCount {
		if uint64(n)-base < uint64(cnt) {
			c.stts, c.sttsLeft = i, cnt-uint32(uint64(n)-base)
			c.dts += int64(uint64(n)-base) * int64(t.sttsDelta[i])
			break
		}
		base += uint64(cnt)
		c.dts += int64(cnt) * int64(t.sttsDelta[i])
	}
	c.ctts = sort.Search(len(t.cttsOff), func(i int) bool { return t.cttsEnd[i+1] > n })

	c.run = sort.Search(len(t.runs), func(i int) bool { return t.runs[i].firstSample > n }) - 1
	r := t.runs[c.run]
	rel := n - r.firstSample
	c.chunk, c.inChunk = rel/r.perChunk, rel%r.perChunk
	c.offset = t.chunkOffset(r.firstChunk + c.chunk)
	for i := n - c.inChunk; i < n; i++ {
		c.offset += uint64(t.size(i))
	}
	c.sync = sort.Search(len(t.sync), func(i int) bool { return t.sync[i] >= n+1 })
	return c
}

func (c *cursor) done() bool { return c.n >= c.t.count }

func (c *cursor) size() uint32 { return c.t.size(c.n) }

// cto returns the composition offset of the current sample, in ticks.
func (c *cursor) cto() int64 {
	t := c.t
	if c.ctts < len(t.cttsOff) && t.cttsEnd[c.ctts] <= c.n && c.n < t.cttsEnd[c.ctts+1] {
		return int64(t.cttsOff[c.ctts])
	}
	return 0
}

func (c *cursor) isSync() bool {
	return c.t.allSync || (c.sync < len(c.t.sync) && c.t.sync[c.sync] == c.n+1)
}

// advance moves to the next sample.
func (c *cursor) advance() {
	t := c.t
	if c.done() {
		return
	}
	size := uint64(t.size(c.n))
	c.n++
	if c.done() {
		return
	}
	// The table was checked to describe at least t.count samples, so the
	// loops below stay inside their slices.
	c.dts += int64(t.sttsDelta[c.stts])
	c.sttsLeft--
	for c.sttsLeft == 0 {
		c.stts++
		c.sttsLeft = t.sttsCount[c.stts]
	}
	for c.ctts < len(t.cttsOff) && t.cttsEnd[c.ctts+1] <= c.n {
		c.ctts++
	}
	c.inChunk++
	if c.inChunk < t.runs[c.run].perChunk {
		c.offset += size
	} else {
		c.inChunk = 0
		c.chunk++
		if c.chunk >= t.runs[c.run].chunks {
			c.run++
			c.chunk = 0
		}
		c.offset = t.chunkOffset(t.runs[c.run].firstChunk + c.chunk)
	}
	for c.sync < len(t.sync) && t.sync[c.sync] < c.n+1 {
		c.sync++
	}
}
