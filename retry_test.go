package rebound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundtest"
)

// errReset is what a real reset looks like after net wraps it.
var errReset = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}

// waitCtx bounds how long a test waits for a goroutine to reach a timer; it
// only fails a test that is broken, never a slow machine.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// runAsync runs r.Do(ctx, fn) in a goroutine and returns its result channel.
func runAsync(ctx context.Context, r *rebound.Retry, fn func(context.Context) error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- r.Do(ctx, fn) }()
	return ch
}

// advanceWaits lets the retry loop reach each wait and moves the clock past it.
func advanceWaits(t *testing.T, clk *reboundtest.Clock, waits ...time.Duration) {
	t.Helper()
	for _, w := range waits {
		if err := clk.BlockUntil(waitCtx(t), 1); err != nil {
			t.Fatalf("no wait started: %v", err)
		}
		clk.Advance(w)
	}
}

func TestRetryAttemptsAndWaits(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	var waits []time.Duration
	var attempts []int
	r := rebound.Retry{
		Name:    "fetch",
		Backoff: rebound.Backoff{Jitter: rebound.JitterNone},
		Clock:   clk,
		OnRetry: func(e rebound.RetryEvent) {
			waits = append(waits, e.Wait)
			attempts = append(attempts, e.Attempt)
			if e.Op != "fetch" || e.Class.Kind != rebound.KindTransient || !errors.Is(e.Err, syscall.ECONNRESET) {
				t.Errorf("bad event %+v", e)
			}
		},
	}
	calls := 0
	ch := runAsync(context.Background(), &r, func(context.Context) error { calls++; return errReset })
	advanceWaits(t, clk, time.Second, 2*time.Second, 4*time.Second, 8*time.Second)
	err := <-ch

	if calls != 5 {
		t.Errorf("calls = %d, want 5", calls)
	}
	wantWaits := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	if !equalDurations(waits, wantWaits) {
		t.Errorf("waits %v, want %v", waits, wantWaits)
	}
	if len(attempts) != 4 || attempts[0] != 1 || attempts[3] != 4 {
		t.Errorf("event attempts %v, want 1..4", attempts)
	}
	var re *rebound.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("err %T %v, want *RetryError", err, err)
	}
	if re.Attempts != 5 || re.Elapsed != 15*time.Second || re.Reason != "attempts exhausted" || re.Op != "fetch" {
		t.Errorf("RetryError %+v", re)
	}
	msg := err.Error()
	for _, part := range []string{"fetch", "5 attempts", "15s", "attempts exhausted", "transient", "connection reset", "connection reset by peer"} {
		if !strings.Contains(msg, part) {
			t.Errorf("message %q lacks %q", msg, part)
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Error("errors.Is does not see the cause through RetryError")
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "read" {
		t.Error("errors.As does not find the *net.OpError")
	}
	if errors.Is(err, rebound.ErrBudgetExhausted) {
		t.Error("a RetryError that ran out of attempts claims the budget stopped it")
	}
	if clk.Pending() != 0 {
		t.Errorf("%d timers left behind", clk.Pending())
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRetryMaxElapsed(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	r := rebound.Retry{MaxAttempts: 100, MaxElapsed: 5 * time.Second, Backoff: rebound.Backoff{Jitter: rebound.JitterNone}, Clock: clk}
	calls := 0
	ch := runAsync(context.Background(), &r, func(context.Context) error { calls++; return errReset })
	advanceWaits(t, clk, time.Second, 2*time.Second) // then 3 s spent + 4 s due > 5 s
	err := <-ch
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Reason != "max elapsed time" || calls != 3 || re.Elapsed != 3*time.Second {
		t.Fatalf("err %v (calls %d), want max elapsed time after 3 calls and 3s", err, calls)
	}
}

func TestRetryContextDeadlineShorterThanWait(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	r := rebound.Retry{Backoff: rebound.Backoff{Initial: 2 * time.Hour, Max: 3 * time.Hour, Jitter: rebound.JitterNone}, Clock: clk}
	calls := 0
	err := r.Do(ctx, func(context.Context) error { calls++; return errReset })
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Reason != "context deadline" || calls != 1 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("err %v, calls %d: want the last error at once, reason context deadline", err, calls)
	}
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false: the deadline is what stopped the retries", err)
	}
	if clk.Pending() != 0 {
		t.Error("a wait was started although it would outlive the deadline")
	}
}

func TestRetryCancelDuringWait(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	r := rebound.Retry{Clock: clk}
	calls := 0
	ch := runAsync(ctx, &r, func(context.Context) error { calls++; return errReset })
	if err := clk.BlockUntil(waitCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel() // the clock never moves: Do must return on the cancellation alone
	err := <-ch
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Reason != "canceled" || calls != 1 {
		t.Fatalf("err %v, calls %d: want canceled after 1 call", err, calls)
	}
	// The caller's idiom for "I cancelled this" must hold although the last
	// attempt failed with a reset, before the cancellation.
	if !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("errors.Is(%v): want context.Canceled and ECONNRESET, not DeadlineExceeded", err)
	}
	if clk.Pending() != 0 {
		t.Error("the wait's timer was not stopped")
	}
}

func TestRetryPermanentStopsAtOnce(t *testing.T) {
	r := rebound.Retry{Clock: reboundtest.NewClock(time.Time{})}
	calls := 0
	errAuth := errors.New("401 unauthorized")
	err := r.Do(context.Background(), func(context.Context) error { calls++; return rebound.Permanent(errAuth) })
	var re *rebound.RetryError
	if !errors.As(err, &re) || calls != 1 || re.Attempts != 1 || re.Class.Kind != rebound.KindPermanent || !errors.Is(err, errAuth) {
		t.Fatalf("err %v, calls %d: want one attempt and a permanent RetryError", err, calls)
	}
	// Nothing was retried: the message is the cause, not a retry summary.
	if got, want := err.Error(), "not retried, permanent error: 401 unauthorized"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	// One attempt that was allowed no retry is still a summary, in the singular.
	one := rebound.Retry{MaxAttempts: 1, Clock: reboundtest.NewClock(time.Time{})}
	err = one.Do(context.Background(), func(context.Context) error { return syscall.ECONNREFUSED })
	if !strings.Contains(err.Error(), "gave up after 1 attempt in") {
		t.Errorf("message %q: want the singular", err.Error())
	}
}

func TestRetrySucceedsAfterFailures(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	r := rebound.Retry{Clock: clk, Backoff: rebound.Backoff{Jitter: rebound.JitterNone}}
	calls := 0
	ch := runAsync(context.Background(), &r, func(context.Context) error {
		calls++
		if calls < 3 {
			return errReset
		}
		return nil
	})
	advanceWaits(t, clk, time.Second, 2*time.Second)
	if err := <-ch; err != nil || calls != 3 {
		t.Fatalf("err %v, calls %d; want success on the 3rd call", err, calls)
	}
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name     string
		asked    time.Duration
		maxRA    time.Duration
		wantWait time.Duration
	}{
		{"longer than backoff", 10 * time.Second, 0, 10 * time.Second},
		{"shorter than backoff", 100 * time.Millisecond, 0, time.Second},
		{"capped by MaxRetryAfter", time.Hour, 3 * time.Second, 3 * time.Second},
		{"capped by the 5 min default", time.Hour, 0, 5 * time.Minute},
		{"no wait named", 0, 0, time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := reboundtest.NewClock(time.Time{})
			var got time.Duration
			r := rebound.Retry{MaxAttempts: 2, MaxRetryAfter: tt.maxRA, Clock: clk,
				Backoff: rebound.Backoff{Jitter: rebound.JitterNone},
				OnRetry: func(e rebound.RetryEvent) { got = e.Wait }}
			calls := 0
			ch := runAsync(context.Background(), &r, func(context.Context) error {
				calls++
				if calls == 1 {
					return rebound.Throttled(errors.New("429"), tt.asked)
				}
				return nil
			})
			if err := clk.BlockUntil(waitCtx(t), 1); err != nil {
				t.Fatal(err)
			}
			// Just short of the wait, the retry must not have happened.
			clk.Advance(tt.wantWait - time.Nanosecond)
			select {
			case err := <-ch:
				t.Fatalf("retried before the wait ended: %v", err)
			default:
			}
			clk.Advance(time.Nanosecond)
			if err := <-ch; err != nil || calls != 2 || got != tt.wantWait {
				t.Fatalf("err %v, calls %d, wait %s; want success after %s", err, calls, got, tt.wantWait)
			}
		})
	}
}

func TestRetrySlogRecords(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := rebound.Retry{Name: "sync", MaxAttempts: 3, Backoff: rebound.NoDelay, Logger: logger}
	_ = r.Do(context.Background(), func(context.Context) error { return errReset })

	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad log line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records, want 2 retries and 1 give-up:\n%s", len(recs), buf.String())
	}
	for i, m := range recs[:2] {
		if m["msg"] != "retry" || m["level"] != "INFO" || m["op"] != "sync" || m["attempt"] != float64(i+1) ||
			m["kind"] != "transient" || m["reason"] != "connection reset" || !strings.Contains(m["error"].(string), "reset") {
			t.Errorf("retry record %d: %v", i, m)
		}
		if _, ok := m["wait"]; !ok {
			t.Errorf("retry record %d has no wait", i)
		}
	}
	g := recs[2]
	if g["msg"] != "give up" || g["level"] != "WARN" || g["attempts"] != float64(3) || g["reason"] != "attempts exhausted" || g["kind"] != "transient" {
		t.Errorf("give-up record: %v", g)
	}
}

func TestRetryBudgetExhausted(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	// One call and no floor: 20% of one call is less than one retry.
	budget, err := rebound.NewBudget(rebound.BudgetConfig{MinPerSecond: -1})
	if err != nil {
		t.Fatal(err)
	}
	r := rebound.Retry{Budget: budget, Clock: clk, Backoff: rebound.NoDelay}
	calls := 0
	err = r.Do(context.Background(), func(context.Context) error { calls++; return errReset })
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Reason != "retry budget exhausted" || calls != 1 {
		t.Fatalf("err %v, calls %d: want the budget to stop the first retry", err, calls)
	}
	if !errors.Is(err, rebound.ErrBudgetExhausted) {
		t.Errorf("errors.Is(%v, ErrBudgetExhausted) = false", err)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Error("the budget error hides the last cause")
	}
}

func TestRetryFirstSuccessAllocatesNothing(t *testing.T) {
	r := rebound.Retry{}
	ctx := context.Background()
	fn := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(100, func() { _ = r.Do(ctx, fn) }); n != 0 {
		t.Errorf("a first-attempt success allocates %v times", n)
	}
}

// Get must not hand out the value of a failed attempt as a success: with a
// Pipeline.Fallback that degrades to a nil error, a caller used to get the
// partial value the failing call returned along with its error.
func TestGetNeverReturnsAFailedAttemptsValue(t *testing.T) {
	p := rebound.Pipeline{
		Retry:    rebound.Retry{MaxAttempts: 2, Backoff: rebound.NoDelay},
		Fallback: func(context.Context, error) error { return nil },
	}
	v, err := rebound.Get(context.Background(), &p, func(context.Context) (string, error) {
		return "half-read garbage", errReset
	})
	if v != "" || err != nil {
		t.Fatalf("Get = %q, %v; want the zero value and the fallback's nil error", v, err)
	}
	calls := 0
	v, err = rebound.Get(context.Background(), &p, func(context.Context) (string, error) {
		calls++
		if calls == 1 {
			return "stale", errReset
		}
		return "fresh", nil
	})
	if v != "fresh" || err != nil {
		t.Fatalf("Get = %q, %v; want the successful attempt's value", v, err)
	}
}
