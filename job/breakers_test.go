package job

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
)

// runBadItems runs bad + 18 items, one at a time, the first bad of which
// always fail with err; it returns the summary and how many deferrals (EventFailed)
// the other 18 got. The run is interrupted at the first such deferral, so
// that no test waits out an open breaker.
func runBadItems(t *testing.T, cfg Config, bad int, err error) (Summary, int64) {
	t.Helper()
	st := memory.New(checkpoint.Config{})
	var ids []string
	for i := range bad {
		ids = append(ids, fmt.Sprintf("bad%d", i))
	}
	for i := range 18 {
		ids = append(ids, fmt.Sprintf("ok%02d", i))
	}
	addJob(t, st, ids...)
	var deferred atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Job, cfg.Store, cfg.Concurrency, cfg.Retry = "j", st, 1, fastRetry()
	cfg.OnEvent = func(e Event) {
		if e.Type == EventFailed && !strings.HasPrefix(e.ID, "bad") {
			deferred.Add(1)
			cancel()
		}
	}
	sum, runErr := Run(ctx, cfg, func(_ context.Context, task *Task) error {
		if strings.HasPrefix(task.ID, "bad") {
			return err
		}
		return nil
	})
	if runErr != nil && !(errors.Is(runErr, ErrInterrupted) && deferred.Load() > 0) {
		t.Fatal(runErr)
	}
	return sum, deferred.Load()
}

// The review's example: one item failing with a plain application error
// deferred 18 healthy items, through the job-wide breaker a nil BreakerKey
// meant. By default a job now has no breaker at all: even 5 items failing
// with a 503 (which would open a default breaker) defer no healthy one.
func TestRunHasNoJobWideBreakerByDefault(t *testing.T) {
	for _, tc := range []struct {
		bad int
		err error
	}{{1, errors.New("app bug")}, {5, rebound.Transient(errors.New("503"))}} {
		sum, deferred := runBadItems(t, Config{}, tc.bad, tc.err)
		if sum.Done != 18 || sum.Dead != int64(tc.bad) || deferred != 0 {
			t.Errorf("%d × %v: summary %+v, %d healthy items deferred; want 18 done, none deferred", tc.bad, tc.err, sum, deferred)
		}
	}
}

// With breakers asked for (one key for all items), an error nobody
// classified still does not count against the service the way a 503 does.
func TestRunUnknownErrorsDoNotOpenBreakers(t *testing.T) {
	oneService := func(checkpoint.Item) string { return "svc" }
	bs, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Each(func(_ string, b *rebound.Breaker) { b.Stop() })
	sum, deferred := runBadItems(t, Config{Breakers: bs, BreakerKey: oneService}, 1, errors.New("app bug"))
	if sum.Done != 18 || deferred != 0 {
		t.Fatalf("summary %+v, %d healthy items deferred; an unknown error opened the breaker", sum, deferred)
	}
	bs2, _ := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 1}, 0)
	defer bs2.Each(func(_ string, b *rebound.Breaker) { b.Stop() })
	_, deferred = runBadItems(t, Config{Breakers: bs2, BreakerKey: oneService}, 1, rebound.Transient(errors.New("503")))
	if deferred == 0 {
		t.Fatal("a transient failure did not open the service's breaker")
	}
}

// One source of truth for an item's attempts: Retry.MaxAttempts is used when
// Config.MaxAttempts is zero, and a conflict is refused, never overridden.
func TestRunMaxAttemptsOneSource(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	addJob(t, st, "a")
	calls := 0
	retry := fastRetry()
	retry.MaxAttempts = 2
	sum, err := Run(context.Background(), Config{Job: "j", Store: st, Retry: retry}, func(context.Context, *Task) error {
		calls++
		return rebound.Transient(errors.New("down"))
	})
	if err != nil || sum.Dead != 1 || calls != 2 {
		t.Fatalf("Retry.MaxAttempts 2: err %v, summary %+v after %d calls; want dead after 2", err, sum, calls)
	}
	_, err = Run(context.Background(), Config{Job: "j", Store: st, Retry: retry, MaxAttempts: 3}, func(context.Context, *Task) error { return nil })
	var ce *rebound.ConfigError
	if !errors.As(err, &ce) || ce.Field != "job.Config.Retry.MaxAttempts" {
		t.Fatalf("MaxAttempts 3 with Retry.MaxAttempts 2: %v, want a *ConfigError", err)
	}
	if _, err := Run(context.Background(), Config{Job: "j", Store: st, Retry: retry, MaxAttempts: 2}, func(context.Context, *Task) error { return nil }); err != nil {
		t.Fatalf("the same count in both: %v", err)
	}
}
