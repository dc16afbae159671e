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
// the breaker br (if any) and runs under its own timeout (if any). The first
// attempt is made here, so that a call that succeeds at once sets up nothing
// for the retries.
func (r *Retry) run(ctx context.Context, br *Breaker, timeout time.Duration, fn func(context.Context) error) error {
	if r.Budget != nil {
		r.Budget.RecordCall()
	}
	var class Class
	err := r.attempt(ctx, br, false, timeout, fn, &class)
	if err == nil {
		return nil
	}
	return r.retries(ctx, br, timeout, fn, err, class)
}

// retries goes on after the first attempt failed with err of class: between
// attempts, the call's state decides whether and how long to wait.
func (r *Retry) retries(ctx context.Context, br *Breaker, timeout time.Duration, fn func(context.Context) error, err error, class Class) error {
	c := retryCall{r: r, ctx: ctx, br: br, attempt: 1, err: err, class: class}
	for {
		wait, stop := c.plan()
		if stop == "" {
			stop = c.sleep(wait)
		}
		if stop != "" {
			return c.giveUp(stop)
		}
		c.attempt++
		if c.err = r.attempt(ctx, br, true, timeout, fn, &c.class); c.err == nil {
			return nil
		}
	}
}

// attempt makes one attempt: it asks the breaker (a retry's failure is not
// counted again while the breaker is closed, see AllowRetry), runs fn under
// the timeout, and reports the outcome to the breaker. It returns fn's error
// (or the breaker's refusal), and sets *class to that error's class.
func (r *Retry) attempt(ctx context.Context, br *Breaker, retry bool, timeout time.Duration, fn func(context.Context) error, class *Class) error {
	var permit Permit
	if br != nil {
		// A closed breaker is answered here, saving the call to allow.
		if w := br.word.Load(); State(w&3) == StateClosed {
			permit = Permit{br, w, retry}
		} else if p, err := br.allow(retry); err != nil {
			*class = r.classify(err)
			return err
		} else {
			permit = p
		}
	}
	var err error
	if timeout > 0 {
		err = callWithTimeout(ctx, timeout, fn)
	} else {
		err = fn(ctx)
	}
	if err == nil {
		permit.Done(nil, Class{})
		return nil
	}
	c := r.classify(err)
	switch {
	case permit.b == nil:
	case ctx.Err() != nil:
		// The caller's context ended: this failure says nothing of the server.
		permit.Done(err, Class{Kind: KindNone})
	default:
		permit.Done(err, c)
	}
	*class = c
	return err
}

// retryCall is the state of one call between its attempts.
type retryCall struct {
	r     *Retry
	ctx   context.Context
	br    *Breaker
	clock Clock         // set with start
	start time.Time     // the end of the first failed attempt, once a retry is due
	prev  time.Duration // the last wait

	attempt int   // the attempt that just failed, from 1
	err     error // its error
	class   Class // the verdict on err
}

// plan decides what follows the failed attempt: a wait before the next one,
// or, when stop is not empty, the reason to give up.
func (c *retryCall) plan() (wait time.Duration, stop string) {
	r, ctx := c.r, c.ctx
	switch {
	case ctx.Err() == context.Canceled:
		return 0, reasonCanceled
	case ctx.Err() != nil:
		return 0, reasonDeadline
	case !c.class.Kind.Retryable():
		return 0, reasonPermanent
	case c.attempt >= r.maxAttempts():
		return 0, reasonAttempts
	}
	if c.start.IsZero() {
		// The clock is read from the first retry on only, so a call that
		// succeeds, or fails without a retry, reads none.
		c.clock = clockOr(r.Clock)
		c.start = c.clock.Now()
	}
	var rnd float64
	if r.Backoff.Initial >= 0 && r.Backoff.Jitter != JitterNone {
		rnd = rand.Float64()
	}
	wait = r.Backoff.Delay(c.attempt, c.prev, rnd)
	if c.class.RetryAfter > 0 {
		wait = max(wait, min(c.class.RetryAfter, r.maxRetryAfter()))
	}
	now := c.start // read again below only when something needs the time
	if r.MaxElapsed > 0 || r.Budget != nil || (c.br != nil && c.br.State() == StateOpen) {
		now = c.clock.Now()
	}
	if r.MaxElapsed > 0 && now.Sub(c.start)+wait > r.MaxElapsed {
		return 0, reasonElapsed
	}
	if wait > 0 {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return 0, reasonDeadline
		}
	}
	// A breaker that opened during this call (maybe on this very failure)
	// would refuse the next attempt: fail fast instead of waiting for a
	// refusal.
	if c.br != nil && c.br.State() == StateOpen {
		if open := c.br.openErr.Load(); open != nil && open.Until.After(now.Add(wait)) {
			c.err = fmt.Errorf("%w (last failure: %w)", open, c.err)
			c.class = Class{Kind: KindPermanent, Reason: "circuit open"}
			return 0, reasonOpen
		}
	}
	if r.Budget != nil && !r.Budget.AllowRetry(now) {
		return 0, reasonBudget
	}
	return wait, ""
}

// sleep announces the retry and waits for it; it returns the reason to give
// up if the caller's context ends first.
func (c *retryCall) sleep(wait time.Duration) (stop string) {
	r, ctx := c.r, c.ctx
	if r.OnRetry != nil {
		r.OnRetry(RetryEvent{Op: r.Name, Attempt: c.attempt, Err: c.err, Class: c.class, Wait: wait})
	}
	if r.Logger != nil {
		r.Logger.LogAttrs(ctx, slog.LevelInfo, "retry", slog.String("op", r.Name),
			slog.Int("attempt", c.attempt), slog.Duration("wait", wait),
			slog.String("kind", c.class.Kind.String()), slog.String("reason", c.class.Reason),
			slog.String("error", c.err.Error()))
	}
	c.prev = wait
	if wait <= 0 {
		return ""
	}
	t := c.clock.NewTimer(wait)
	select {
	case <-ctx.Done():
		t.Stop()
		if ctx.Err() == context.Canceled {
			return reasonCanceled
		}
		return reasonDeadline
	case <-t.C():
		return ""
	}
}

// giveUp builds the call's *RetryError, and logs it.
func (c *retryCall) giveUp(reason string) error {
	r := c.r
	var elapsed time.Duration
	if !c.start.IsZero() {
		elapsed = c.clock.Now().Sub(c.start)
	}
	e := &RetryError{Op: r.Name, Attempts: c.attempt, Elapsed: elapsed, Class: c.class, Reason: reason, Last: c.err}
	if r.Logger != nil {
		r.Logger.LogAttrs(c.ctx, slog.LevelWarn, "give up", slog.String("op", r.Name),
			slog.Int("attempts", c.attempt), slog.String("reason", reason),
			slog.String("kind", c.class.Kind.String()), slog.String("error", c.err.Error()))
	}
	return e
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
