package rebound

import (
	"context"
	"errors"
	"time"
)

// Pipeline composes the policies around a call, reading as a formula:
//
//	Fallback(Retry(Breaker(Timeout(call))))
//
// Each attempt asks the breaker, runs under its own timeout, and reports to
// the breaker; Retry decides whether and when to try again; Fallback turns a
// final failure into a degraded answer. Its zero value is Retry's defaults
// with no breaker, no per-attempt timeout and no fallback. A Pipeline is safe
// for concurrent use as long as it is not modified.
type Pipeline struct {
	// Retry is the retry policy; its zero value is the mission's default.
	Retry Retry
	// Breaker, if set, guards every attempt (a zero Breaker has the default
	// settings; NewBreaker chooses others). Share it between all the
	// pipelines that call the same service.
	Breaker *Breaker
	// Timeout bounds each attempt (not the whole call; use the context for
	// that); 0 means none. It costs a context and a timer per attempt.
	Timeout time.Duration
	// Fallback, if set, is called with the final error (not when the caller's
	// own context ended); what it returns is what Do returns, so nil means a
	// degraded success. GetOr refuses a Pipeline with a Fallback: it has a
	// fallback of its own, which returns a value.
	Fallback func(ctx context.Context, err error) error
}

// Validate reports a configuration that cannot work.
func (p *Pipeline) Validate() error {
	if p.Timeout < 0 {
		return &ConfigError{"Pipeline.Timeout", "negative"}
	}
	return p.Retry.Validate()
}

// Do runs fn through the pipeline. The error is nil, a *ConfigError, the
// fallback's result, or a *RetryError wrapping fn's last error (an
// *OpenError when the breaker refused).
func (p *Pipeline) Do(ctx context.Context, fn func(context.Context) error) error {
	if err := p.Validate(); err != nil {
		return err
	}
	err := p.Retry.run(ctx, p.Breaker, p.Timeout, fn)
	if err != nil && p.Fallback != nil && ctx.Err() == nil {
		return p.Fallback(ctx, err)
	}
	return err
}

// Get runs fn through p and returns the value of its successful attempt.
// A failed attempt's value is never returned: when every attempt failed, Get
// returns T's zero value, also when p.Fallback turned the failure into a nil
// error (use GetOr to degrade to a value).
func Get[T any](ctx context.Context, p *Pipeline, fn func(context.Context) (T, error)) (T, error) {
	var v T
	err := p.Do(ctx, func(ctx context.Context) error {
		x, err := fn(ctx)
		if err == nil {
			v = x
		}
		return err
	})
	return v, err
}

// GetOr is Get with a fallback value: when every attempt failed (and the
// caller's context is still live), it returns fallback(ctx, err) instead.
// A Pipeline with its own Fallback is refused with a *ConfigError: that
// fallback would turn the failure into a nil error with no value, and GetOr
// would return T's zero value as if it were the answer.
func GetOr[T any](ctx context.Context, p *Pipeline, fn func(context.Context) (T, error), fallback func(context.Context, error) (T, error)) (T, error) {
	if p.Fallback != nil {
		var zero T
		return zero, &ConfigError{"Pipeline.Fallback", "set along with GetOr's fallback: use one of the two"}
	}
	v, err := Get(ctx, p, fn)
	if err != nil && ctx.Err() == nil {
		var cfg *ConfigError
		if !errors.As(err, &cfg) {
			return fallback(ctx, err)
		}
	}
	return v, err
}
