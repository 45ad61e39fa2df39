// Package backoff spaces out retries: capped, jittered exponential delays
// that start again from the minimum after a success.
//
// A typical owner retries until it gets somewhere, and resets once it has:
//
//	b := backoff.New(time.Second, time.Minute)
//	for {
//		err := connect(ctx)
//		if err == nil {
//			b.Reset() // the next failure starts again at Min
//			err = run(ctx)
//		}
//		if b.Wait(ctx) != nil {
//			return
//		}
//	}
package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// DefaultJitter is the Jitter New sets: each delay varies by up to ±20%, so
// that relays that failed together do not retry together.
const DefaultJitter = 0.2

// Backoff yields successive retry delays Min, Min*Factor, Min*Factor², ...
// capped at Max, each varied at random by up to ±Jitter of itself.
//
// A Backoff is not safe for concurrent use: it belongs to one retry loop.
// Fields may be set before the first call to Next or Wait.
type Backoff struct {
	Min, Max time.Duration // Max below Min counts as Min; Min <= 0 gives no delay

	// Factor multiplies the delay after each attempt; below 1 (including
	// the zero value) it counts as 2. A Factor of 1 gives a constant delay.
	Factor float64

	// Jitter is the fraction of each delay that is randomised, from 0 (none)
	// to 1: a delay d becomes a uniform draw from [d*(1-Jitter), d*(1+Jitter)).
	// Values outside [0, 1] are clamped.
	Jitter float64

	// Rand returns a float in [0, 1); nil means math/rand/v2.Float64.
	// Tests set a seeded source to make delays deterministic.
	Rand func() float64

	// After is the clock Wait sleeps on, as time.After; nil means a real
	// timer. Tests set it so that they never sleep.
	After func(time.Duration) <-chan time.Time

	attempts int
}

// New returns a Backoff from min to max with Factor 2 and DefaultJitter.
// It panics if min is not positive or max is below min.
func New(min, max time.Duration) *Backoff {
	if min <= 0 || max < min {
		panic("backoff: New needs 0 < min <= max")
	}
	return &Backoff{Min: min, Max: max, Factor: 2, Jitter: DefaultJitter}
}

// Next returns the delay before the next attempt and counts the attempt.
// The result is never negative and never above max(Min, Max)*(1+Jitter).
func (b *Backoff) Next() time.Duration {
	d := b.base(b.attempts)
	b.attempts++
	return b.jitter(d)
}

// base returns the delay for attempt n (from 0) before jitter.
func (b *Backoff) base(n int) float64 {
	factor := b.Factor
	if factor < 1 || math.IsNaN(factor) {
		factor = 2
	}
	if b.Min <= 0 {
		return 0
	}
	lo := float64(b.Min)
	hi := max(float64(b.Max), lo)
	// Pow overflows to +Inf long before n does, and the cap takes it.
	return min(lo*math.Pow(factor, float64(n)), hi)
}

func (b *Backoff) jitter(d float64) time.Duration {
	j := b.Jitter
	if !(j > 0) { // also NaN
		j = 0
	}
	j = min(j, 1)
	if j > 0 {
		random := rand.Float64
		if b.Rand != nil {
			random = b.Rand
		}
		r := random()
		if !(r >= 0) { // also NaN from a broken source
			r = 0
		}
		r = min(r, 1)
		d *= 1 + j*(2*r-1)
	}
	d = max(d, 0)
	if d >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(d)
}

// Reset starts the delays again from Min; call it after a success.
func (b *Backoff) Reset() { b.attempts = 0 }

// Attempts returns how many delays Next (or Wait) has handed out since the
// last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Wait sleeps for Next() and returns nil, or returns ctx.Err() as soon as
// ctx ends. A ctx that has already ended returns at once without counting
// an attempt; an attempt cut short by ctx still counts.
func (b *Backoff) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := b.Next()
	var fire <-chan time.Time
	if b.After != nil {
		fire = b.After(d)
	} else {
		t := time.NewTimer(d)
		defer t.Stop()
		fire = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-fire:
		return nil
	}
}
