package backoff

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

func noJitter(min, max time.Duration) *Backoff {
	b := New(min, max)
	b.Jitter = 0
	return b
}

func draw(b *Backoff, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = b.Next()
	}
	return out
}

func TestGrowthAndCap(t *testing.T) {
	b := noJitter(100*time.Millisecond, 2*time.Second)
	got := draw(b, 8)
	want := []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 2 * time.Second, 2 * time.Second, 2 * time.Second,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
	if b.Attempts() != 8 {
		t.Errorf("Attempts() = %d, want 8", b.Attempts())
	}
}

func TestFactor(t *testing.T) {
	b := noJitter(time.Second, time.Hour)
	b.Factor = 3
	if got, want := draw(b, 4), []time.Duration{time.Second, 3 * time.Second, 9 * time.Second, 27 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("factor 3: %v, want %v", got, want)
	}
	b = noJitter(time.Second, time.Hour)
	b.Factor = 1
	if got, want := draw(b, 3), []time.Duration{time.Second, time.Second, time.Second}; !slices.Equal(got, want) {
		t.Errorf("factor 1: %v, want %v", got, want)
	}
	// A struct literal without Factor doubles.
	b = &Backoff{Min: time.Second, Max: time.Hour}
	if got, want := draw(b, 3), []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("zero factor: %v, want %v", got, want)
	}
}

func TestOddSettings(t *testing.T) {
	// Max below Min: constant Min.
	b := &Backoff{Min: time.Second, Max: time.Millisecond}
	if got, want := draw(b, 3), []time.Duration{time.Second, time.Second, time.Second}; !slices.Equal(got, want) {
		t.Errorf("max < min: %v, want %v", got, want)
	}
	// Zero Min: no delay, even with an infinite factor.
	b = &Backoff{Max: time.Second, Factor: math.Inf(1), Jitter: 0.5}
	if got, want := draw(b, 3), []time.Duration{0, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("zero min: %v, want %v", got, want)
	}
	// Jitter above 1 counts as 1; a broken source cannot push a delay
	// out of bounds.
	for _, r := range []float64{math.NaN(), -5, 7, math.Inf(1)} {
		b = &Backoff{Min: time.Second, Max: time.Second, Jitter: 3, Rand: func() float64 { return r }}
		if d := b.Next(); d < 0 || d > 2*time.Second {
			t.Errorf("Rand returning %v: delay %v out of [0, 2s]", r, d)
		}
	}
	// The cap holds after more attempts than a float can count.
	b = noJitter(time.Second, time.Minute)
	b.attempts = math.MaxInt
	if d := b.Next(); d != time.Minute {
		t.Errorf("after MaxInt attempts: %v, want 1m", d)
	}
	// A huge Max with jitter does not overflow.
	b = New(time.Duration(math.MaxInt64), time.Duration(math.MaxInt64))
	b.Rand = func() float64 { return 0.999 }
	if d := b.Next(); d != time.Duration(math.MaxInt64) {
		t.Errorf("max duration with jitter: %v, want %v", d, time.Duration(math.MaxInt64))
	}
}

func TestNewPanics(t *testing.T) {
	for _, tt := range []struct{ min, max time.Duration }{{0, time.Second}, {-1, time.Second}, {time.Second, time.Millisecond}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%v, %v) did not panic", tt.min, tt.max)
				}
			}()
			New(tt.min, tt.max)
		}()
	}
}

func TestJitterBounds(t *testing.T) {
	const minD, maxD = 100 * time.Millisecond, 3 * time.Second
	for _, jitter := range []float64{0.2, 0.5, 1} {
		b := New(minD, maxD)
		b.Jitter = jitter
		b.Rand = rand.New(rand.NewPCG(1, 2)).Float64
		lowest, highest := time.Duration(math.MaxInt64), time.Duration(0)
		for range 200 {
			b.Reset()
			for i := range 10 {
				base := float64(minD) * math.Pow(2, float64(i))
				base = math.Min(base, float64(maxD))
				d := b.Next()
				lo := time.Duration(base * (1 - jitter))
				hi := time.Duration(base * (1 + jitter))
				if d < lo || d > hi || d < 0 {
					t.Fatalf("jitter %v attempt %d: %v outside [%v, %v]", jitter, i, d, lo, hi)
				}
				if i == 9 { // capped
					lowest, highest = min(lowest, d), max(highest, d)
				}
			}
		}
		// The draws really spread over the band, not just stay inside it.
		spread := time.Duration(float64(maxD) * jitter)
		if lowest > maxD-spread*8/10 || highest < maxD+spread*8/10 {
			t.Errorf("jitter %v: capped delays only spanned [%v, %v] of [%v, %v]",
				jitter, lowest, highest, maxD-spread, maxD+spread)
		}
	}
}

func TestDeterministicWithSeed(t *testing.T) {
	mk := func() *Backoff {
		b := New(time.Second, time.Minute)
		b.Rand = rand.New(rand.NewPCG(42, 7)).Float64
		return b
	}
	a, b := draw(mk(), 10), draw(mk(), 10)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different delays: %v vs %v", a, b)
	}
	// Jitter must actually change the delays.
	if a[0] == time.Second && a[1] == 2*time.Second && a[2] == 4*time.Second {
		t.Fatalf("delays %v carry no jitter", a[:3])
	}
}

func TestReset(t *testing.T) {
	b := noJitter(time.Second, time.Minute)
	draw(b, 5)
	b.Reset()
	if b.Attempts() != 0 {
		t.Fatalf("Attempts() after Reset = %d", b.Attempts())
	}
	if got, want := draw(b, 2), []time.Duration{time.Second, 2 * time.Second}; !slices.Equal(got, want) {
		t.Fatalf("after Reset: %v, want %v", got, want)
	}
}

// fakeClock hands Wait a channel per call and records the delays asked for.
type fakeClock struct {
	asked chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{asked: make(chan time.Duration, 10), fire: make(chan time.Time)}
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.asked <- d
	return c.fire
}

func TestWaitFakeClock(t *testing.T) {
	clock := newFakeClock()
	b := noJitter(time.Second, time.Minute)
	b.After = clock.After

	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		done := make(chan error, 1)
		go func() { done <- b.Wait(context.Background()) }()
		if got := <-clock.asked; got != want {
			t.Fatalf("wait %d asked the clock for %v, want %v", i, got, want)
		}
		select {
		case err := <-done:
			t.Fatalf("wait %d returned %v before the clock fired", i, err)
		case <-time.After(20 * time.Millisecond):
		}
		clock.fire <- time.Now()
		if err := <-done; err != nil {
			t.Fatalf("wait %d: %v", i, err)
		}
	}
	if b.Attempts() != 3 {
		t.Errorf("Attempts() = %d, want 3", b.Attempts())
	}
}

func TestWaitCancel(t *testing.T) {
	clock := newFakeClock()
	b := New(time.Second, time.Minute)
	b.After = clock.After // never fires unless told

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	<-clock.asked
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel = %v, want context.Canceled", err)
	}
	if b.Attempts() != 1 {
		t.Errorf("an attempt cut short still counts: Attempts() = %d, want 1", b.Attempts())
	}

	// An already ended ctx returns at once and counts nothing.
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with an ended ctx = %v", err)
	}
	if b.Attempts() != 1 || len(clock.asked) != 0 {
		t.Errorf("Wait with an ended ctx counted an attempt or asked the clock")
	}
}

// TestWaitRealTimer runs the default timer path in a synctest bubble, where
// time is fake and the test does not sleep.
func TestWaitRealTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := noJitter(time.Second, 4*time.Second)
		for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
			start := time.Now()
			if err := b.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != want {
				t.Fatalf("waited %v, want %v", got, want)
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		b.Reset()
		b.Next() // the next wait is 2s, longer than ctx lasts
		start := time.Now()
		if err := b.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %v, want DeadlineExceeded", err)
		}
		if got := time.Since(start); got != 1500*time.Millisecond {
			t.Fatalf("Wait returned after %v, want 1.5s", got)
		}
	})
}
