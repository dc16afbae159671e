// Package bench compares rebound's core policies with other Go resilience
// libraries on the same scenarios. It is its own module so that the main
// module never depends on the libraries it is compared with.
//
// Every scenario is a list of Cases, one per library. A Case's Build sets up
// the library's policies once (outside the measured loop) and returns one run
// of the scenario: the function the benchmark calls b.N times and the tests
// call to check that the scenario does what it says. The operation under the
// policies is passed in as op, so tests can count its calls; the adapters a
// library needs around op are built once, in Build, so no library pays for a
// closure per call that its API does not force on it.
//
// The common configuration, as close as each library allows (differences are
// noted where a Case is built):
//   - retry: at most 3 attempts in all; in Success, exponential backoff from
//     1 s, ×2, capped at 30 s, with ±20 % jitter (never reached: the call
//     succeeds); in FailTwiceThenSucceed, no wait at all;
//   - breaker: opens after 5 consecutive failures, stays open 60 s, one
//     half-open probe; in BreakerOpenReject it opens after 1 failure.
//
// Nothing here is safe to modify concurrently; the runs built for the
// breaker-closed scenario are safe to call from many goroutines as long as op
// is.
package bench

import (
	"context"
	"errors"
	"time"

	"github.com/avast/retry-go/v4"
	"github.com/cenkalti/backoff/v5"
	"github.com/eapache/go-resiliency/breaker"
	"github.com/eapache/go-resiliency/retrier"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/rebound-go/rebound"
	"github.com/sony/gobreaker/v2"
)

// ErrTransient is the failure every scenario uses: an error marked transient,
// which every library here treats as retryable and as a breaker failure (the
// others treat any error so; rebound retries a plain error too, but its
// breakers count only failures marked or recognised as the service's).
var ErrTransient = rebound.Transient(errors.New("transient failure"))

// A Case is one library's form of a scenario.
type Case struct {
	// Lib names the library; it is the sub-benchmark's name. A name with a
	// "+" is a pairing (a retry library wrapping a breaker library).
	Lib string
	// Build sets the policies up around op and returns one run of the scenario.
	Build func(op func() error) (run func() error)
	// ErrOpen, in the breaker-open scenario, is the library's rejection error
	// (errors.Is); nil elsewhere.
	ErrOpen error
}

// The shared configuration.
const (
	maxAttempts      = 3
	failureThreshold = 5
	openFor          = 60 * time.Second
	initialWait      = time.Second
	maxWait          = 30 * time.Second
	jitter           = 0.2
)

var ctx = context.Background()

// newGobreaker returns a gobreaker configured as rebound's default breaker
// (Interval 0: counts are never cleared while closed, as in consecutive mode).
func newGobreaker(threshold uint32) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		MaxRequests: 1,
		Timeout:     openFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= threshold },
	})
}

func newFailsafeBreaker(threshold uint) circuitbreaker.CircuitBreaker[any] {
	return circuitbreaker.NewBuilder[any]().
		WithFailureThreshold(threshold).
		WithDelay(openFor).
		WithSuccessThreshold(1).
		Build()
}

// Success is a successful call through Retry + Breaker.
var Success = []Case{
	{Lib: "rebound", Build: func(op func() error) func() error {
		p := rebound.Pipeline{
			Retry: rebound.Retry{MaxAttempts: maxAttempts, Backoff: rebound.Backoff{
				Initial: initialWait, Multiplier: 2, Max: maxWait, // jitter: ×[0.8, 1.2] is the zero value
			}},
			Breaker: rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: failureThreshold, FirstOpenFor: openFor, OpenFor: openFor}),
		}
		fn := func(context.Context) error { return op() }
		return func() error { return p.Do(ctx, fn) }
	}},
	{Lib: "failsafe", Build: func(op func() error) func() error {
		rp := retrypolicy.NewBuilder[any]().
			WithMaxAttempts(maxAttempts).
			WithBackoff(initialWait, maxWait).
			WithJitterFactor(jitter).
			Build()
		// With(retry, breaker) composes Retry(Breaker(fn)). The executor keeps
		// its default context (Background); a per-request WithContext would
		// copy the executor on every call, which we do not charge here.
		ex := failsafe.With[any](rp, newFailsafeBreaker(failureThreshold))
		return func() error { return ex.Run(op) }
	}},
	{Lib: "go-resiliency", Build: func(op func() error) func() error {
		// Two retries after the first attempt; jitter is ±20 % of each wait.
		r := retrier.New(retrier.LimitedExponentialBackoff(maxAttempts-1, initialWait, maxWait), nil)
		r.SetJitter(jitter)
		// go-resiliency's breaker opens after errorThreshold errors with no
		// error-free period of `timeout` between them, a near match.
		br := breaker.New(failureThreshold, 1, openFor)
		fn := func(context.Context) error { return br.Run(op) }
		return func() error { return r.RunCtx(ctx, fn) }
	}},
	{Lib: "backoff+gobreaker", Build: func(op func() error) func() error {
		// cenkalti/backoff has no breaker: it wraps gobreaker. Its
		// ExponentialBackOff is stateful and not safe to share, so each call
		// needs its own, as its documentation shows. Max elapsed time is
		// switched off (rebound has none by default).
		cb := newGobreaker(failureThreshold)
		gbOp := func() (struct{}, error) { return struct{}{}, op() }
		bop := func() (struct{}, error) { return cb.Execute(gbOp) }
		return func() error {
			b := &backoff.ExponentialBackOff{
				InitialInterval:     initialWait,
				RandomizationFactor: jitter,
				Multiplier:          2,
				MaxInterval:         maxWait,
			}
			_, err := backoff.Retry(ctx, bop, backoff.WithBackOff(b),
				backoff.WithMaxTries(maxAttempts), backoff.WithMaxElapsedTime(0))
			return err
		}
	}},
	{Lib: "retry-go+gobreaker", Build: func(op func() error) func() error {
		// retry-go has no breaker: it wraps gobreaker. Its jitter is an
		// additive random wait up to MaxJitter, not a proportional factor.
		cb := newGobreaker(failureThreshold)
		gbOp := func() (struct{}, error) { return struct{}{}, op() }
		rop := func() error { _, err := cb.Execute(gbOp); return err }
		opts := []retry.Option{
			retry.Attempts(maxAttempts),
			retry.Delay(initialWait),
			retry.MaxDelay(maxWait),
			retry.MaxJitter(time.Duration(jitter * float64(initialWait))),
			retry.DelayType(retry.CombineDelay(retry.BackOffDelay, retry.RandomDelay)),
			retry.LastErrorOnly(true),
			retry.Context(ctx),
		}
		return func() error { return retry.Do(rop, opts...) }
	}},
}

// FailTwiceThenSucceed is a call whose operation fails twice with
// ErrTransient and then succeeds, with no wait between attempts (each
// library's backoff set to zero). It measures the retry loop alone, no breaker.
var FailTwiceThenSucceed = []Case{
	{Lib: "rebound", Build: func(op func() error) func() error {
		r := rebound.Retry{MaxAttempts: maxAttempts, Backoff: rebound.NoDelay}
		fn := func(context.Context) error { return op() }
		return func() error { return r.Do(ctx, fn) }
	}},
	{Lib: "failsafe", Build: func(op func() error) func() error {
		// The default retry policy has no delay.
		ex := failsafe.With[any](retrypolicy.NewBuilder[any]().WithMaxAttempts(maxAttempts).Build())
		return func() error { return ex.Run(op) }
	}},
	{Lib: "go-resiliency", Build: func(op func() error) func() error {
		// It still starts a time.Timer of 0 for each retry.
		r := retrier.New(retrier.ConstantBackoff(maxAttempts-1, 0), nil)
		fn := func(context.Context) error { return op() }
		return func() error { return r.RunCtx(ctx, fn) }
	}},
	{Lib: "backoff", Build: func(op func() error) func() error {
		// ZeroBackOff has no state, so one is shared; backoff.Retry still
		// starts a timer of 0 for each retry.
		zero := &backoff.ZeroBackOff{}
		bop := func() (struct{}, error) { return struct{}{}, op() }
		return func() error {
			_, err := backoff.Retry(ctx, bop, backoff.WithBackOff(zero),
				backoff.WithMaxTries(maxAttempts), backoff.WithMaxElapsedTime(0))
			return err
		}
	}},
	{Lib: "retry-go", Build: func(op func() error) func() error {
		// Delay 0 with FixedDelay; it still waits on time.After(0) per retry.
		opts := []retry.Option{
			retry.Attempts(maxAttempts),
			retry.Delay(0),
			retry.DelayType(retry.FixedDelay),
			retry.LastErrorOnly(true),
			retry.Context(ctx),
		}
		return func() error { return retry.Do(op, opts...) }
	}},
}

// BreakerClosed is a successful call through a closed breaker alone. The run
// is safe for concurrent use if op is (BreakerClosedParallel).
var BreakerClosed = []Case{
	{Lib: "rebound", Build: func(op func() error) func() error {
		br := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: failureThreshold, FirstOpenFor: openFor, OpenFor: openFor})
		fn := func(context.Context) error { return op() }
		return func() error { return br.Do(ctx, fn) }
	}},
	{Lib: "failsafe", Build: func(op func() error) func() error {
		ex := failsafe.With[any](newFailsafeBreaker(failureThreshold))
		return func() error { return ex.Run(op) }
	}},
	{Lib: "gobreaker", Build: func(op func() error) func() error {
		cb := newGobreaker(failureThreshold)
		gbOp := func() (struct{}, error) { return struct{}{}, op() }
		return func() error { _, err := cb.Execute(gbOp); return err }
	}},
	{Lib: "go-resiliency", Build: func(op func() error) func() error {
		br := breaker.New(failureThreshold, 1, openFor)
		return func() error { return br.Run(op) }
	}},
}

// BreakerOpenReject is a call rejected by an open breaker: Build trips the
// breaker with one failure (threshold 1, open 60 s) before returning the run,
// which must then return ErrOpen without calling op.
var BreakerOpenReject = []Case{
	{Lib: "rebound", ErrOpen: rebound.ErrOpen, Build: func(op func() error) func() error {
		br := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 1, FirstOpenFor: openFor, OpenFor: openFor})
		_ = br.Do(ctx, func(context.Context) error { return ErrTransient })
		fn := func(context.Context) error { return op() }
		return func() error { return br.Do(ctx, fn) }
	}},
	{Lib: "failsafe", ErrOpen: circuitbreaker.ErrOpen, Build: func(op func() error) func() error {
		ex := failsafe.With[any](newFailsafeBreaker(1))
		_ = ex.Run(func() error { return ErrTransient })
		return func() error { return ex.Run(op) }
	}},
	{Lib: "gobreaker", ErrOpen: gobreaker.ErrOpenState, Build: func(op func() error) func() error {
		cb := newGobreaker(1)
		_, _ = cb.Execute(func() (struct{}, error) { return struct{}{}, ErrTransient })
		gbOp := func() (struct{}, error) { return struct{}{}, op() }
		return func() error { _, err := cb.Execute(gbOp); return err }
	}},
	{Lib: "go-resiliency", ErrOpen: breaker.ErrBreakerOpen, Build: func(op func() error) func() error {
		br := breaker.New(1, 1, openFor)
		_ = br.Run(func() error { return ErrTransient })
		return func() error { return br.Run(op) }
	}},
}

// Flaky is an operation that fails its first Fails calls with ErrTransient
// and succeeds after that; Reset starts a new round. Not safe for concurrent use.
type Flaky struct {
	Fails int // failures at the start of each round
	Calls int // calls in this round
}

// Call is the operation.
func (f *Flaky) Call() error {
	f.Calls++
	if f.Calls <= f.Fails {
		return ErrTransient
	}
	return nil
}

// Reset starts a new round.
func (f *Flaky) Reset() { f.Calls = 0 }
