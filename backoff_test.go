package rebound_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
)

const almostOne = 0.9999999999

func TestBackoffJitterNoneSequence(t *testing.T) {
	b := rebound.Backoff{Jitter: rebound.JitterNone}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i, w := range want {
		if got := b.Delay(i+1, 0, 0.5); got != w*time.Second {
			t.Errorf("Delay(%d) = %s, want %s", i+1, got, w*time.Second)
		}
	}
	// Far past the cap the maths must not overflow.
	for _, n := range []int{64, 1000, math.MaxInt32} {
		if got := b.Delay(n, 0, 0.5); got != 30*time.Second {
			t.Errorf("Delay(%d) = %s, want 30s", n, got)
		}
	}
	// n <= 0 is treated as the first retry.
	if got := b.Delay(0, 0, 0); got != time.Second {
		t.Errorf("Delay(0) = %s, want 1s", got)
	}
	custom := rebound.Backoff{Initial: 100 * time.Millisecond, Multiplier: 3, Max: time.Second, Jitter: rebound.JitterNone}
	for i, w := range []time.Duration{100, 300, 900, 1000} {
		if got := custom.Delay(i+1, 0, 0); got != w*time.Millisecond {
			t.Errorf("custom Delay(%d) = %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	rs := []float64{0, 0.5, almostOne}
	for n := 1; n <= 8; n++ {
		base := min(time.Second<<(n-1), 30*time.Second)
		fb := float64(base)
		for _, r := range rs {
			check := func(name string, got time.Duration, lo, hi float64) {
				t.Helper()
				if float64(got) < lo-1 || float64(got) > hi+1 {
					t.Errorf("%s n=%d r=%v: %s outside [%s, %s]", name, n, r, got, time.Duration(lo), time.Duration(hi))
				}
			}
			check("proportional", rebound.Backoff{}.Delay(n, 0, r), math.Min(0.8*fb, 30e9), math.Min(1.2*fb, 30e9))
			check("full", rebound.Backoff{Jitter: rebound.JitterFull}.Delay(n, 0, r), 0, fb)
			check("equal", rebound.Backoff{Jitter: rebound.JitterEqual}.Delay(n, 0, r), fb/2, fb)
			prev := base
			check("decorrelated", rebound.Backoff{Jitter: rebound.JitterDecorrelated}.Delay(n, prev, r), 1e9, math.Min(3*float64(prev), 30e9))
		}
	}
	// Exact points: r=0 gives the low bound, r=0.5 the middle.
	if got := (rebound.Backoff{}).Delay(1, 0, 0); got != 800*time.Millisecond {
		t.Errorf("proportional r=0: %s, want 800ms", got)
	}
	if got := (rebound.Backoff{}).Delay(1, 0, 0.5); got != time.Second {
		t.Errorf("proportional r=0.5: %s, want 1s", got)
	}
	if got := (rebound.Backoff{Jitter: rebound.JitterFull}).Delay(3, 0, 0); got != 0 {
		t.Errorf("full r=0: %s, want 0", got)
	}
	if got := (rebound.Backoff{Jitter: rebound.JitterEqual}).Delay(3, 0, 0); got != 2*time.Second {
		t.Errorf("equal r=0: %s, want 2s", got)
	}
	if got := (rebound.Backoff{Jitter: rebound.JitterDecorrelated}).Delay(1, 0, 0.5); got != 2*time.Second {
		t.Errorf("decorrelated first, r=0.5: %s, want 2s (between 1s and 3s)", got)
	}
	// The proportional cap applies after jitter too.
	if got := (rebound.Backoff{}).Delay(10, 0, almostOne); got != 30*time.Second {
		t.Errorf("proportional at the cap: %s, want 30s", got)
	}
	// Custom bounds.
	b := rebound.Backoff{JitterMin: 0.5, JitterMax: 1.5, Jitter: rebound.JitterProportional}
	if lo, hi := b.Delay(1, 0, 0), b.Delay(1, 0, almostOne); lo != 500*time.Millisecond || hi < 1499*time.Millisecond || hi > 1500*time.Millisecond {
		t.Errorf("custom jitter bounds: %s..%s, want 500ms..1.5s", lo, hi)
	}
	if got := rebound.NoDelay.Delay(3, time.Second, 0.7); got != 0 {
		t.Errorf("NoDelay waits %s", got)
	}
}

// TestBackoffProportionalSpread draws 10,000 waits with a seeded source: they
// stay within [0.8, 1.2] × base, cover the range, and average to the base.
func TestBackoffProportionalSpread(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := rebound.Backoff{}
	for _, n := range []int{1, 3, 5} {
		base := float64(time.Second << (n - 1))
		lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
		const draws = 10000
		for range draws {
			f := float64(b.Delay(n, 0, rng.Float64())) / base
			lo, hi, sum = math.Min(lo, f), math.Max(hi, f), sum+f
		}
		mean := sum / draws
		t.Logf("n=%d: min %.4f max %.4f mean %.4f (× base)", n, lo, hi, mean)
		if lo < 0.8 || hi > 1.2 {
			t.Errorf("n=%d: factor range [%.4f, %.4f] leaves [0.8, 1.2]", n, lo, hi)
		}
		if lo >= 0.82 || hi <= 1.18 {
			t.Errorf("n=%d: factor range [%.4f, %.4f] does not spread", n, lo, hi)
		}
		if math.Abs(mean-1) > 0.02 {
			t.Errorf("n=%d: mean factor %.4f, want within 2%% of 1", n, mean)
		}
	}
}

func TestBackoffValidate(t *testing.T) {
	bad := map[string]rebound.Backoff{
		"multiplier < 1":  {Multiplier: 0.5},
		"multiplier NaN":  {Multiplier: math.NaN()},
		"multiplier +Inf": {Multiplier: math.Inf(1)},
		"negative Max":    {Max: -time.Second},
		"reversed bounds": {JitterMin: 1.2, JitterMax: 0.8},
		"negative bound":  {JitterMin: -0.1, JitterMax: 1},
		"NaN bound":       {JitterMin: math.NaN(), JitterMax: 1},
		"NaN upper bound": {JitterMin: 0.5, JitterMax: math.NaN()},
		"unknown jitter":  {Jitter: rebound.JitterDecorrelated + 1},
	}
	for name, b := range bad {
		var ce *rebound.ConfigError
		if err := b.Validate(); !errors.As(err, &ce) {
			t.Errorf("%s: Validate() = %v, want *ConfigError", name, err)
		} else if ce.Field == "" || ce.Error() == "" {
			t.Errorf("%s: ConfigError without a field", name)
		}
	}
	for name, b := range map[string]rebound.Backoff{"zero": {}, "NoDelay": rebound.NoDelay, "multiplier 1": {Multiplier: 1}, "equal bounds": {JitterMin: 1, JitterMax: 1}} {
		if err := b.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v, want nil", name, err)
		}
	}
}

func TestInvalidConfigNeverCallsFn(t *testing.T) {
	for name, p := range map[string]rebound.Pipeline{
		"backoff":     {Retry: rebound.Retry{Backoff: rebound.Backoff{Multiplier: 0.5}}},
		"attempts":    {Retry: rebound.Retry{MaxAttempts: -1}},
		"max elapsed": {Retry: rebound.Retry{MaxElapsed: -1}},
		"retry-after": {Retry: rebound.Retry{MaxRetryAfter: -1}},
		"timeout":     {Timeout: -time.Second},
	} {
		called := false
		err := p.Do(context.Background(), func(context.Context) error { called = true; return nil })
		var ce *rebound.ConfigError
		if !errors.As(err, &ce) || called {
			t.Errorf("%s: Do = %v (fn called: %v), want a *ConfigError and no call", name, err, called)
		}
	}
}
