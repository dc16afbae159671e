package bench

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestScenarios checks that every case of every scenario does what the
// benchmarks claim it measures, several runs in a row (a run must leave the
// policies ready for the next one, as in the benchmark loop).
func TestScenarios(t *testing.T) {
	const runs = 3
	check := func(t *testing.T, cases []Case, fails, wantCalls int, wantErr func(Case, error) bool) {
		t.Helper()
		for _, c := range cases {
			t.Run(c.Lib, func(t *testing.T) {
				f := &Flaky{Fails: fails}
				run := c.Build(f.Call)
				for i := range runs {
					f.Reset()
					err := run()
					if !wantErr(c, err) {
						t.Fatalf("run %d: unexpected error %v", i, err)
					}
					if f.Calls != wantCalls {
						t.Fatalf("run %d: op called %d times, want %d", i, f.Calls, wantCalls)
					}
				}
			})
		}
	}
	isNil := func(_ Case, err error) bool { return err == nil }

	t.Run("Success", func(t *testing.T) { check(t, Success, 0, 1, isNil) })
	t.Run("FailTwiceThenSucceed", func(t *testing.T) { check(t, FailTwiceThenSucceed, 2, 3, isNil) })
	t.Run("BreakerClosed", func(t *testing.T) { check(t, BreakerClosed, 0, 1, isNil) })
	t.Run("BreakerOpenReject", func(t *testing.T) {
		check(t, BreakerOpenReject, 0, 0, func(c Case, err error) bool {
			return c.ErrOpen != nil && errors.Is(err, c.ErrOpen)
		})
	})
}

// TestRetryStopsAfterThreeAttempts checks that the retry cases share the
// attempt limit: an operation that fails three times gives up with its error
// after exactly three calls, so no library does more work than another.
func TestRetryStopsAfterThreeAttempts(t *testing.T) {
	for _, c := range FailTwiceThenSucceed {
		t.Run(c.Lib, func(t *testing.T) {
			f := &Flaky{Fails: 3}
			err := c.Build(f.Call)()
			if !errors.Is(err, ErrTransient) {
				t.Fatalf("err = %v, want ErrTransient", err)
			}
			if f.Calls != maxAttempts {
				t.Fatalf("op called %d times, want %d", f.Calls, maxAttempts)
			}
		})
	}
}

// TestBreakerClosedConcurrent runs each closed breaker from several
// goroutines, as BenchmarkBreakerClosedParallel does, and checks that every
// call went through and succeeded.
func TestBreakerClosedConcurrent(t *testing.T) {
	const goroutines, perG = 4, 200
	for _, c := range BreakerClosed {
		t.Run(c.Lib, func(t *testing.T) {
			var calls, failed atomic.Int64
			run := c.Build(func() error { calls.Add(1); return nil })
			var wg sync.WaitGroup
			for range goroutines {
				wg.Go(func() {
					for range perG {
						if run() != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if calls.Load() != goroutines*perG || failed.Load() != 0 {
				t.Fatalf("calls %d, failed %d; want %d, 0", calls.Load(), failed.Load(), goroutines*perG)
			}
		})
	}
}
