package rebound

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrOpen is matched (errors.Is) by every rejection of an open or saturated
// half-open circuit breaker. The concrete error is an *OpenError.
var ErrOpen = errors.New("circuit breaker open")

// ErrBudgetExhausted is returned (wrapped in a *RetryError) when a retry was
// due but the shared retry Budget had no allowance left.
var ErrBudgetExhausted = errors.New("retry budget exhausted")

// OpenError is the error of a call rejected by a Breaker. It matches ErrOpen.
type OpenError struct {
	// Name is the breaker's name, if it has one.
	Name string
	// Until is when the breaker lets the next probe through; zero while a
	// half-open breaker is busy with its probes.
	Until time.Time
	clock Clock
}

// Error says which breaker rejected the call and when it will try again.
func (e *OpenError) Error() string {
	var b strings.Builder
	b.WriteString("circuit breaker ")
	if e.Name != "" {
		b.WriteString(e.Name + " ")
	}
	if e.Until.IsZero() {
		b.WriteString("half-open: probe in progress")
		return b.String()
	}
	fmt.Fprintf(&b, "open: next probe in %s", e.Remaining().Round(time.Millisecond))
	return b.String()
}

// Remaining returns the time until the next probe (zero once it is due).
func (e *OpenError) Remaining() time.Duration {
	if e.Until.IsZero() {
		return 0
	}
	return max(e.Until.Sub(clockOr(e.clock).Now()), 0)
}

// Is makes errors.Is(err, ErrOpen) true.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// RetryError is the error of an operation that Retry gave up on. It unwraps
// to the last attempt's error, so errors.Is and errors.As see the cause.
type RetryError struct {
	// Op names the operation (Retry.Name), if given.
	Op string
	// Attempts is how many times the operation ran.
	Attempts int
	// Elapsed is the time, on Retry's Clock, from the end of the first
	// failed attempt to giving up: every retry and wait, not the first
	// attempt itself (so that a call that succeeds at once reads no clock).
	// It is 0 when the first failure ended the call.
	Elapsed time.Duration
	// Class is the verdict on Last.
	Class Class
	// Reason says why retrying stopped: "not retryable", "attempts
	// exhausted", "max elapsed time", "context deadline", "canceled",
	// "retry budget exhausted", "circuit open".
	Reason string
	// Last is the last attempt's error.
	Last error
}

// Error tells a person what happened: the operation, attempts, time spent,
// why retrying stopped, and the last cause with its class.
func (e *RetryError) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	if e.Attempts == 1 && e.Reason == reasonPermanent {
		// Nothing was retried: counts and time would only bury the cause.
		fmt.Fprintf(&b, "not retried, %s error", e.Class.Kind)
	} else {
		word := "attempts"
		if e.Attempts == 1 {
			word = "attempt"
		}
		fmt.Fprintf(&b, "gave up after %d %s in %s (%s): %s error",
			e.Attempts, word, e.Elapsed.Round(time.Millisecond), e.Reason, e.Class.Kind)
	}
	// "marked permanent" only repeats the kind.
	if r := e.Class.Reason; r != "" && r != "error" && r != "marked permanent" {
		b.WriteString(" (" + r + ")")
	}
	if e.Last != nil {
		b.WriteString(": " + e.Last.Error())
	}
	return b.String()
}

// Unwrap returns the last attempt's error.
func (e *RetryError) Unwrap() error { return e.Last }

// Is makes errors.Is tell what stopped the retries, as well as the last
// attempt's own error (reachable through Unwrap): ErrBudgetExhausted when the
// retry budget did, context.Canceled when the caller cancelled the context,
// and context.DeadlineExceeded when the context's deadline passed or the next
// wait would have outlived it. The Go idiom errors.Is(err, context.Canceled)
// then works as it does for a call that was not retried, even when the last
// attempt failed for another reason (a refused connection, say) and the
// context ended during the wait that followed.
func (e *RetryError) Is(target error) bool {
	switch target {
	case ErrBudgetExhausted:
		return e.Reason == reasonBudget
	case context.Canceled:
		return e.Reason == reasonCanceled
	case context.DeadlineExceeded:
		return e.Reason == reasonDeadline
	}
	return false
}

// Timeout reports whether the last attempt failed by a timeout. net/http's
// *url.Error.Timeout (and so net.Error checks on an http.Client's error)
// asks only the error it wraps, so without this a RoundTripper that retries
// would hide its timeouts from them.
func (e *RetryError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Last, &t) && t.Timeout()
}

// ConfigError reports an invalid policy configuration, found before any call.
type ConfigError struct {
	// Field names the setting, e.g. "Retry.MaxAttempts".
	Field string
	// Reason says what is wrong with it, e.g. "negative".
	Reason string
}

// Error names the field and what is wrong with it.
func (e *ConfigError) Error() string {
	return "rebound: invalid config: " + e.Field + ": " + e.Reason
}
