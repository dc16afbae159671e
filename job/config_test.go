package job

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/reboundtest"
)

// A negative setting is a *rebound.ConfigError naming the field, never
// silently the default.
func TestConfigNegativesAreErrors(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	for field, set := range map[string]func(*Config){
		"job.Config.Concurrency":  func(c *Config) { c.Concurrency = -1 },
		"job.Config.MaxAttempts":  func(c *Config) { c.MaxAttempts = -1 },
		"job.Config.Timeout":      func(c *Config) { c.Timeout = -1 },
		"job.Config.LeaseTTL":     func(c *Config) { c.LeaseTTL = -1 },
		"job.Config.Grace":        func(c *Config) { c.Grace = -1 },
		"job.Config.PollInterval": func(c *Config) { c.PollInterval = -1 },
	} {
		cfg := Config{Job: "j", Store: st}
		set(&cfg)
		_, err := Run(context.Background(), cfg, func(context.Context, *Task) error { return nil })
		var ce *rebound.ConfigError
		if !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%s negative: %v, want a *rebound.ConfigError for it", field, err)
		}
	}
}

// Retry's Clock and Budget are not silently replaced by the job's: nil in
// one place takes the other, and a conflict is refused.
func TestConfigRetryClockAndBudgetOneSource(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	addJob(t, st, "a")
	b1, _ := rebound.NewBudget(rebound.BudgetConfig{})
	b2, _ := rebound.NewBudget(rebound.BudgetConfig{})
	clock := reboundtest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ok := func(context.Context, *Task) error { return nil }
	for field, cfg := range map[string]Config{
		"job.Config.Retry.Clock":  {Clock: clock, Retry: rebound.Retry{Clock: clock}},
		"job.Config.Retry.Budget": {Budget: b1, Retry: rebound.Retry{Budget: b2}},
	} {
		cfg.Job, cfg.Store = "j", st
		_, err := Run(context.Background(), cfg, ok)
		var ce *rebound.ConfigError
		if !errors.As(err, &ce) || ce.Field != field {
			t.Errorf("%s conflict: %v, want a *rebound.ConfigError", field, err)
		}
	}
	// Retry's own clock drives the run when the job's is nil: the item's
	// retry waits an hour that only that clock skips.
	skip := &hourSkipper{}
	retry := rebound.Retry{Clock: skip, Backoff: rebound.Backoff{Initial: time.Hour, Max: time.Hour, Jitter: rebound.JitterNone}}
	// (Without it, the run would sit out the hour: the test times out.)
	calls := 0
	_, err := Run(context.Background(), Config{Job: "j", Store: st, Retry: retry, Concurrency: 1}, func(context.Context, *Task) error {
		calls++
		if calls == 1 {
			return rebound.Transient(errors.New("once"))
		}
		return nil
	})
	if err != nil || calls != 2 || skip.skipped.Load() != 1 {
		t.Fatalf("err %v after %d calls, %d hour waits on Retry.Clock; want the retry's wait on it", err, calls, skip.skipped.Load())
	}
}

// hourSkipper is the real clock, except that a wait of an hour or more ends
// at once.
type hourSkipper struct {
	rebound.SystemClock
	skipped atomic.Int64
}

func (c *hourSkipper) NewTimer(d time.Duration) rebound.Timer {
	if d >= time.Hour {
		c.skipped.Add(1)
		d = 0
	}
	return c.SystemClock.NewTimer(d)
}
