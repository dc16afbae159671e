package rebound

import (
	"math"
	"time"
)

// Jitter selects how a backoff wait is randomised so that many clients that
// failed together do not retry together.
type Jitter uint8

const (
	// JitterProportional multiplies each wait by a random factor in
	// [JitterMin, JitterMax], by default [0.8, 1.2] (the mission's rule).
	JitterProportional Jitter = iota
	// JitterNone waits exactly Initial × Multiplier^(n-1), capped at Max.
	JitterNone
	// JitterFull waits a random time in [0, base): the most spread.
	JitterFull
	// JitterEqual waits base/2 plus a random time in [0, base/2).
	JitterEqual
	// JitterDecorrelated waits a random time in [Initial, 3 × previous wait),
	// capped at Max, ignoring Multiplier.
	JitterDecorrelated
)

// Backoff computes the wait before each retry. Its zero value is the
// mission's default: 1 s after the first failure, doubling each time, never
// more than 30 s, each wait multiplied by a random factor in [0.8, 1.2].
// A Backoff is a plain value, safe for concurrent use.
type Backoff struct {
	// Initial is the base wait after the first failure. Zero means 1 s; a
	// negative value means no wait at all (see NoDelay).
	Initial time.Duration
	// Multiplier scales the base wait after each further failure; it must be
	// at least 1. Zero means 2.
	Multiplier float64
	// Max caps every wait. Zero means 30 s.
	Max time.Duration
	// Jitter picks the randomisation; the zero value is JitterProportional.
	Jitter Jitter
	// JitterMin and JitterMax bound JitterProportional's factor. Both zero
	// mean 0.8 and 1.2; otherwise 0 <= JitterMin <= JitterMax.
	JitterMin, JitterMax float64
}

// NoDelay is a Backoff that never waits, for tests and for work whose pacing
// is set elsewhere.
var NoDelay = Backoff{Initial: -1, Jitter: JitterNone}

// Validate reports a configuration that cannot work.
func (b Backoff) Validate() error { return b.validate() }

// validate is Validate without the copy of b, for Retry.Validate, which
// runs on every call.
func (b *Backoff) validate() error {
	// Pipeline.Do and Retry.Do validate on every call, so the checks are
	// written as comparisons that NaN fails (!(x >= y)) rather than calls to
	// math.IsNaN and math.IsInf: the same verdicts, a third of the cost.
	switch {
	case b.Multiplier != 0 && !(b.Multiplier >= 1 && b.Multiplier <= math.MaxFloat64):
		return &ConfigError{"Backoff.Multiplier", "must be at least 1"}
	case b.Max < 0:
		return &ConfigError{"Backoff.Max", "negative"}
	case b.Jitter > JitterDecorrelated:
		return &ConfigError{"Backoff.Jitter", "unknown jitter mode"}
	case !(b.JitterMin >= 0 && b.JitterMax >= 0):
		return &ConfigError{"Backoff.JitterMin/JitterMax", "negative"}
	case (b.JitterMin != 0 || b.JitterMax != 0) && b.JitterMin > b.JitterMax:
		return &ConfigError{"Backoff.JitterMin/JitterMax", "bounds reversed"}
	}
	return nil
}

// Delay returns the wait before retry n (n = 1 after the first failure).
// prev is the previous wait (JitterDecorrelated uses it) and r a uniform
// random number in [0, 1); taking them as arguments keeps the maths
// deterministic under test.
func (b Backoff) Delay(n int, prev time.Duration, r float64) time.Duration {
	if b.Initial < 0 {
		return 0
	}
	initial, maxWait := b.Initial, b.Max
	if initial == 0 {
		initial = time.Second
	}
	if maxWait == 0 {
		maxWait = 30 * time.Second
	}
	if b.Jitter == JitterDecorrelated {
		hi := 3 * float64(max(prev, initial))
		return clampDur(float64(initial)+r*(hi-float64(initial)), maxWait)
	}
	mult := b.Multiplier
	if mult == 0 {
		mult = 2
	}
	base := float64(initial) * math.Pow(mult, float64(max(n-1, 0)))
	base = math.Min(base, float64(maxWait))
	switch b.Jitter {
	case JitterNone:
		return clampDur(base, maxWait)
	case JitterFull:
		return clampDur(r*base, maxWait)
	case JitterEqual:
		return clampDur(base/2+r*base/2, maxWait)
	}
	lo, hi := b.JitterMin, b.JitterMax
	if lo == 0 && hi == 0 {
		lo, hi = 0.8, 1.2
	}
	return clampDur(base*(lo+r*(hi-lo)), maxWait)
}

// clampDur converts f to a Duration no larger than limit (and no smaller than 0).
func clampDur(f float64, limit time.Duration) time.Duration {
	if !(f < float64(limit)) { // also catches NaN and +Inf
		return limit
	}
	if f <= 0 {
		return 0
	}
	return time.Duration(f)
}
