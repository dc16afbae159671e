package rebound

import (
	"sync"
	"sync/atomic"
	"time"
)

// BudgetConfig sets a retry Budget. Its zero value is the default: retries may
// add at most 20% to the calls of the last 10 s, or 10 retries/s when that is
// more, so a quiet client can still retry.
type BudgetConfig struct {
	// Ratio is the most retries per call over the window; 0 means 0.2.
	Ratio float64
	// Window is how far back calls and retries count; 0 means 10 s.
	Window time.Duration
	// MinPerSecond is the retry rate always allowed; 0 means 10. A negative
	// value means no floor.
	MinPerSecond float64
	// Clock is read once, by NewBudget, to mark when the budget began, so the
	// calls recorded before the first retry decision are spread over the time
	// since then; nil means the system clock. AllowRetry takes its time as an
	// argument; pass times from the same clock.
	Clock Clock
}

const budgetBuckets = 10

// Budget caps retries across many calls so an outage does not multiply the
// load on a dying server: when every call fails, callers see ~1.2 attempts per
// call instead of 5. Share one Budget between all the Retry policies that call
// the same service. Safe for concurrent use.
//
// Make it with NewBudget. A zero Budget (new(Budget)) is the default budget,
// but, knowing no start time, it counts calls only from its first retry
// decision on, so until then only the floor of 10 retries/s applies.
//
// Recording a call is one atomic add and reads no clock; the calls recorded
// since the last retry decision are spread over the time between the two
// decisions when the clock is next read. The estimate is exact for a steady
// call rate and errs by at most one window's spread otherwise.
type Budget struct {
	ratio    float64
	minRetry float64 // retries always allowed per window
	bucket   time.Duration

	pending atomic.Int64 // calls recorded since the last rotation
	_       [56]byte     // keep the hot counter on its own cache line

	mu      sync.Mutex
	last    int64 // index of the newest bucket (at first, the one NewBudget began in)
	calls   [budgetBuckets]float64
	retries [budgetBuckets]float64
}

// NewBudget returns a Budget, or a *ConfigError for a negative or NaN setting.
func NewBudget(cfg BudgetConfig) (*Budget, error) {
	if cfg.Ratio < 0 || cfg.Ratio != cfg.Ratio {
		return nil, &ConfigError{"BudgetConfig.Ratio", "negative"}
	}
	if cfg.Window < 0 {
		return nil, &ConfigError{"BudgetConfig.Window", "negative"}
	}
	if cfg.MinPerSecond != cfg.MinPerSecond {
		return nil, &ConfigError{"BudgetConfig.MinPerSecond", "NaN"}
	}
	if cfg.Ratio == 0 {
		cfg.Ratio = 0.2
	}
	if cfg.Window == 0 {
		cfg.Window = 10 * time.Second
	}
	switch {
	case cfg.MinPerSecond == 0:
		cfg.MinPerSecond = 10
	case cfg.MinPerSecond < 0:
		cfg.MinPerSecond = 0
	}
	bucket := cfg.Window / budgetBuckets
	if bucket <= 0 {
		bucket = 1
	}
	return &Budget{
		ratio:    cfg.Ratio,
		minRetry: cfg.MinPerSecond * cfg.Window.Seconds(),
		bucket:   bucket,
		// Start the window now: calls recorded before the first retry
		// decision are then spread over the time since, not piled into one
		// bucket (which let a long-healthy client's first outage retry
		// without limit).
		last: clockOr(cfg.Clock).Now().UnixNano() / int64(bucket),
	}, nil
}

// RecordCall counts one logical call (not a retry). Retry calls it once per
// Do; callers that run their own loops call it themselves.
func (b *Budget) RecordCall() { b.pending.Add(1) }

// AllowRetry reports whether a retry at time now fits the budget, and if so
// counts it.
func (b *Budget) AllowRetry(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bucket == 0 {
		b.setDefault(now)
	}
	b.rotate(now)
	var calls, retries float64
	for i := range budgetBuckets {
		calls += b.calls[i]
		retries += b.retries[i]
	}
	if retries+1 > max(b.ratio*calls, b.minRetry) {
		return false
	}
	b.retries[b.last%budgetBuckets]++
	return true
}

// setDefault makes a zero Budget the default one, its window starting at now.
// The calls recorded before now are dropped: they may span any time, and
// counting them in this window could allow a burst of retries.
func (b *Budget) setDefault(now time.Time) {
	b.ratio = 0.2
	b.minRetry = 10 * 10 // 10 retries/s over a 10 s window
	b.bucket = 10 * time.Second / budgetBuckets
	b.last = now.UnixNano() / int64(b.bucket)
	b.pending.Store(0)
}

// rotate moves the window to now and spreads the pending calls over the
// buckets that passed since the previous rotation.
func (b *Budget) rotate(now time.Time) {
	idx := now.UnixNano() / int64(b.bucket)
	p := float64(b.pending.Swap(0))
	gap := idx - b.last
	if gap <= 0 { // same bucket, or the clock went back
		b.calls[b.last%budgetBuckets] += p
		return
	}
	fresh := min(gap, budgetBuckets)
	share := p / float64(gap) // calls that fall in each passed bucket
	for i := idx - fresh + 1; i <= idx; i++ {
		b.calls[i%budgetBuckets] = share
		b.retries[i%budgetBuckets] = 0
	}
	b.last = idx
}
