package rebound

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Retry runs an operation again after transient failures, waiting with
// jittered exponential backoff. Its zero value is the mission's default: 5
// attempts in all, waits of ~1 s, 2 s, 4 s, 8 s (×[0.8, 1.2], capped at 30 s),
// Retry-After honoured up to 5 min, and never a wait that would outlive the
// context's deadline. A Retry is a value; it is safe for concurrent use as
// long as it is not modified.
//
// A successful first attempt reads no clock, starts no timer and allocates
// nothing.
type Retry struct {
	// Name names the operation in errors and logs.
	Name string
	// MaxAttempts is the most attempts in all, the first included; 0 means 5,
	// 1 means no retries.
	MaxAttempts int
	// MaxElapsed stops retrying when the next wait would end more than
	// MaxElapsed after the first failure; 0 means no limit but the context's.
	MaxElapsed time.Duration
	// Backoff computes the waits; its zero value is the mission's default.
	Backoff Backoff
	// MaxRetryAfter caps a server's Retry-After; 0 means 5 min. A longer
	// Retry-After is clamped to it, and a wait still never outlives the
	// context's deadline.
	MaxRetryAfter time.Duration
	// Classify judges each failure; nil means Classify.
	Classify Classifier
	// Budget, if set, is a retry budget shared with other callers of the same
	// service; a retry it refuses ends the operation (ErrBudgetExhausted).
	Budget *Budget
	// OnRetry, if set, is called before each wait.
	OnRetry func(RetryEvent)
	// Logger, if set, receives a record for each retry (Info) and give-up (Warn).
	Logger *slog.Logger
	// Clock is the time source for waits; nil means the system clock.
	Clock Clock
}

// RetryEvent describes a retry about to happen.
type RetryEvent struct {
	Op      string        // the operation's name (Retry.Name); may be empty
	Attempt int           // the attempt that failed, from 1
	Err     error         // its error
	Class   Class         // the verdict on Err
	Wait    time.Duration // the wait before the next attempt
}

// Why retrying stopped, as RetryError.Reason says it.
const (
	reasonPermanent = "not retryable"
	reasonAttempts  = "attempts exhausted"
	reasonElapsed   = "max elapsed time"
	reasonDeadline  = "context deadline"
	reasonCanceled  = "canceled"
	reasonBudget    = "retry budget exhausted"
	reasonOpen      = "circuit open"
)

// Validate reports a configuration that cannot work.
func (r *Retry) Validate() error {
	switch {
	case r.MaxAttempts < 0:
		return &ConfigError{"Retry.MaxAttempts", "negative"}
	case r.MaxElapsed < 0:
		return &ConfigError{"Retry.MaxElapsed", "negative"}
	case r.MaxRetryAfter < 0:
		return &ConfigError{"Retry.MaxRetryAfter", "negative"}
	}
	return r.Backoff.validate()
}

// Do runs fn until it succeeds, fails permanently, or retrying must stop.
// The error is nil, a *ConfigError, or a *RetryError wrapping fn's last error.
func (r *Retry) Do(ctx context.Context, fn func(context.Context) error) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return r.run(ctx, nil, 0, fn)
}

// run is the attempt loop shared by Retry and Pipeline: each attempt passes
// the breaker br (if any) and runs under its own timeout (if any).
func (r *Retry) run(ctx context.Context, br *Breaker, timeout time.Duration, fn func(context.Context) error) error {
	if r.Budget != nil {
		r.Budget.RecordCall()
	}
	var (
		start time.Time // the first failure's time, read only when needed
		prev  time.Duration
	)
	for attempt := 1; ; attempt++ {
		var permit Permit
		var err error
		if br != nil {
			// A closed breaker is answered here, saving the call to Allow.
			if w := br.word.Load(); State(w&3) == StateClosed {
				permit = Permit{br, w}
			} else {
				permit, err = br.Allow()
			}
		}
		if err == nil {
			if timeout > 0 {
				err = callWithTimeout(ctx, timeout, fn)
			} else {
				err = fn(ctx)
			}
			if err == nil {
				permit.Done(nil, Class{})
				return nil
			}
		}
		class := r.classify(err)
		if ctx.Err() != nil {
			// The caller's context ended: this failure says nothing of the server.
			permit.Done(err, Class{Kind: KindNone})
		} else {
			permit.Done(err, class)
		}

		clock := clockOr(r.Clock)
		giveUp := func(reason string) error {
			var elapsed time.Duration
			if !start.IsZero() {
				elapsed = clock.Now().Sub(start)
			}
			e := &RetryError{Op: r.Name, Attempts: attempt, Elapsed: elapsed, Class: class, Reason: reason, Last: err}
			if r.Logger != nil {
				r.Logger.LogAttrs(ctx, slog.LevelWarn, "give up", slog.String("op", r.Name),
					slog.Int("attempts", attempt), slog.String("reason", reason),
					slog.String("kind", class.Kind.String()), slog.String("error", err.Error()))
			}
			return e
		}
		switch {
		case ctx.Err() == context.Canceled:
			return giveUp(reasonCanceled)
		case ctx.Err() != nil:
			return giveUp(reasonDeadline)
		case !class.Kind.Retryable():
			return giveUp(reasonPermanent)
		case attempt >= r.maxAttempts():
			return giveUp(reasonAttempts)
		}

		var rnd float64
		if r.Backoff.Initial >= 0 && r.Backoff.Jitter != JitterNone {
			rnd = rand.Float64()
		}
		wait := r.Backoff.Delay(attempt, prev, rnd)
		if class.RetryAfter > 0 {
			wait = max(wait, min(class.RetryAfter, r.maxRetryAfter()))
		}
		// The clock is read only when something needs it, so back-to-back
		// retries with no wait read none.
		if start.IsZero() && (wait > 0 || r.MaxElapsed > 0 || r.Budget != nil) {
			start = clock.Now()
		}
		if r.MaxElapsed > 0 && clock.Now().Sub(start)+wait > r.MaxElapsed {
			return giveUp(reasonElapsed)
		}
		if wait > 0 {
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
				return giveUp(reasonDeadline)
			}
		}
		// A breaker that opened during this call (maybe on this very
		// failure) would refuse the next attempt: fail fast instead of
		// waiting for a refusal.
		if br != nil && br.State() == StateOpen {
			if open := br.openErr.Load(); open != nil && open.Until.After(clock.Now().Add(wait)) {
				err = fmt.Errorf("%w (last failure: %w)", open, err)
				class = Class{Kind: KindPermanent, Reason: "circuit open"}
				return giveUp(reasonOpen)
			}
		}
		if r.Budget != nil && !r.Budget.AllowRetry(clock.Now()) {
			return giveUp(reasonBudget)
		}
		if r.OnRetry != nil {
			r.OnRetry(RetryEvent{Op: r.Name, Attempt: attempt, Err: err, Class: class, Wait: wait})
		}
		if r.Logger != nil {
			r.Logger.LogAttrs(ctx, slog.LevelInfo, "retry", slog.String("op", r.Name),
				slog.Int("attempt", attempt), slog.Duration("wait", wait),
				slog.String("kind", class.Kind.String()), slog.String("reason", class.Reason),
				slog.String("error", err.Error()))
		}
		prev = wait
		if wait > 0 {
			t := clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				if ctx.Err() == context.Canceled {
					return giveUp(reasonCanceled)
				}
				return giveUp(reasonDeadline)
			case <-t.C():
			}
		}
	}
}

func (r *Retry) classify(err error) Class {
	if r.Classify != nil {
		return r.Classify(err)
	}
	return Classify(err)
}

func (r *Retry) maxAttempts() int {
	if r.MaxAttempts == 0 {
		return 5
	}
	return r.MaxAttempts
}

func (r *Retry) maxRetryAfter() time.Duration {
	if r.MaxRetryAfter == 0 {
		return 5 * time.Minute
	}
	return r.MaxRetryAfter
}

// callWithTimeout runs fn under a context that ends after d. The attempt's
// own deadline uses the real clock, as context deadlines do.
func callWithTimeout(ctx context.Context, d time.Duration, fn func(context.Context) error) error {
	actx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return fn(actx)
}
