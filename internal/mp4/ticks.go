package mp4

import (
	"math"
	"math/bits"
	"time"
)

// Times inside an MP4 are integer ticks of a track's timescale. They stay
// integers until the moment a packet gets its millisecond timestamp, so
// nothing accumulates rounding errors over a long file.

// maxSeconds bounds every time of a file. Files claiming more are corrupt,
// and the bound keeps the tick arithmetic below far from overflow.
const maxSeconds = 1 << 32

// tickLimit is the most ticks of timescale a time of a file may have:
// maxSeconds, and less than 2^60 so that sums of a few stay in an int64.
func tickLimit(timescale uint32) uint64 {
	return min(uint64(maxSeconds)*uint64(timescale), 1<<60)
}

// ticksToMs converts ticks to milliseconds, rounding to the nearest
// (halves up). The function is monotonic: ticks that do not decrease give
// milliseconds that do not decrease.
func ticksToMs(t int64, timescale uint32) int64 {
	ts := int64(timescale)
	q, r := t/ts, t%ts
	if r < 0 {
		q, r = q-1, r+ts
	}
	// 0 <= r < ts < 2^32: 2000*r cannot overflow.
	return q*1000 + (2000*r+ts)/(2*ts)
}

// msDuration turns milliseconds into a time.Duration.
func msDuration(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }

// mulDiv returns t*num/den rounded down (toward minus infinity), with a
// 128-bit intermediate product, saturating at the int64 range.
func mulDiv(t int64, num, den uint64) int64 {
	if den == 0 {
		return 0
	}
	neg := t < 0
	u := uint64(t)
	if neg {
		u = -u
	}
	hi, lo := bits.Mul64(u, num)
	if hi >= den {
		if neg {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	q, rem := bits.Div64(hi, lo, den)
	if neg {
		if rem != 0 {
			q++
		}
		if q > 1<<63 {
			return math.MinInt64
		}
		return -int64(q)
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// durationToTicks converts d to ticks of timescale, rounded down.
func durationToTicks(d time.Duration, timescale uint32) int64 {
	return mulDiv(int64(d), uint64(timescale), uint64(time.Second))
}

// ticksToDuration converts ticks to a time.Duration, rounded down.
func ticksToDuration(t int64, timescale uint32) time.Duration {
	return time.Duration(mulDiv(t, uint64(time.Second), uint64(timescale)))
}
