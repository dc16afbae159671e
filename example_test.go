package rebound_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundtest"
)

// A Pipeline retries transient failures (here, two resets) and succeeds.
// NoDelay keeps the example instant; real code keeps the default backoff.
func ExamplePipeline() {
	p := rebound.Pipeline{
		Retry:   rebound.Retry{Name: "fetch", Backoff: rebound.NoDelay},
		Timeout: 10 * time.Second, // per attempt
	}
	calls := 0
	err := p.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls < 3 {
			return syscall.ECONNRESET
		}
		return nil
	})
	fmt.Println("calls:", calls, "err:", err)
	// Output: calls: 3 err: <nil>
}

// A Pipeline with a Fallback degrades to a cached answer when every attempt failed.
func ExamplePipeline_fallback() {
	p := rebound.Pipeline{
		Retry: rebound.Retry{MaxAttempts: 2, Backoff: rebound.NoDelay},
		Fallback: func(ctx context.Context, err error) error {
			fmt.Println("serving from cache after:", err)
			return nil
		},
	}
	err := p.Do(context.Background(), func(ctx context.Context) error { return syscall.ECONNREFUSED })
	fmt.Println("err:", err)
	// Output:
	// serving from cache after: gave up after 2 attempts in 0s (attempts exhausted): transient error (connection refused): connection refused
	// err: <nil>
}

// Retry waits with exponential backoff between attempts; OnRetry shows the
// waits. The fake clock stands in for time so the example does not sleep.
func ExampleRetry() {
	clk := reboundtest.NewClock(time.Time{})
	waits := make(chan time.Duration, 1)
	r := rebound.Retry{
		Name:    "upload",
		Backoff: rebound.Backoff{Jitter: rebound.JitterNone}, // 1s, 2s, 4s, ... for a readable output
		Clock:   clk,
		OnRetry: func(e rebound.RetryEvent) {
			fmt.Printf("attempt %d failed (%s, %s): waiting %s\n", e.Attempt, e.Class.Kind, e.Class.Reason, e.Wait)
			waits <- e.Wait
		},
	}
	done := make(chan error)
	go func() {
		done <- r.Do(context.Background(), func(ctx context.Context) error { return syscall.ECONNRESET })
	}()
	for range 4 { // let each wait begin, then let it pass
		w := <-waits
		clk.BlockUntil(context.Background(), 1)
		clk.Advance(w)
	}
	err := <-done
	fmt.Println(err)

	var re *rebound.RetryError
	if errors.As(err, &re) {
		fmt.Println("attempts:", re.Attempts, "reset:", errors.Is(err, syscall.ECONNRESET))
	}
	// Output:
	// attempt 1 failed (transient, connection reset): waiting 1s
	// attempt 2 failed (transient, connection reset): waiting 2s
	// attempt 3 failed (transient, connection reset): waiting 4s
	// attempt 4 failed (transient, connection reset): waiting 8s
	// upload: gave up after 5 attempts in 15s (attempts exhausted): transient error (connection reset): connection reset by peer
	// attempts: 5 reset: true
}

// A Breaker opens after consecutive failures and rejects calls at once until
// its open period ends; then one probe decides.
func ExampleBreaker() {
	clk := reboundtest.NewClock(time.Time{})
	b, _ := rebound.NewBreaker(rebound.BreakerConfig{
		Name:  "payments",
		Clock: clk,
		OnStateChange: func(name string, from, to rebound.State) {
			fmt.Printf("breaker %s: %s -> %s\n", name, from, to)
		},
	})
	ctx := context.Background()
	fail := func(ctx context.Context) error { return syscall.ECONNREFUSED }
	for range 5 {
		_ = b.Do(ctx, fail)
	}
	err := b.Do(ctx, fail)
	fmt.Println(err, errors.Is(err, rebound.ErrOpen))

	clk.Advance(time.Second) // the first open period
	_ = b.Do(ctx, fail)      // the probe fails: open again, 1.2 times as long
	fmt.Println(b.Do(ctx, fail))

	clk.Advance(1200 * time.Millisecond)
	err = b.Do(ctx, func(ctx context.Context) error { return nil }) // the probe
	fmt.Println("probe:", err, "state:", b.State())
	// Output:
	// breaker payments: closed -> open
	// circuit breaker payments open: next probe in 1s true
	// breaker payments: open -> half-open
	// breaker payments: half-open -> open
	// circuit breaker payments open: next probe in 1.2s
	// breaker payments: open -> half-open
	// breaker payments: half-open -> closed
	// probe: <nil> state: closed
}

// Classify judges errors by meaning; ClassifyStatus does the same for HTTP
// status codes.
func ExampleClassify() {
	for _, err := range []error{
		fmt.Errorf("dial: %w", syscall.ECONNREFUSED),
		context.Canceled,
		rebound.Permanent(errors.New("invalid input")),
		rebound.Throttled(errors.New("slow down"), 30*time.Second),
	} {
		c := rebound.Classify(err)
		fmt.Printf("%-30s %-9s retry=%-5v %s\n", err, c.Kind, c.Kind.Retryable(), c.Reason)
	}
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusUnauthorized} {
		c := rebound.ClassifyStatus(code, true, 0)
		fmt.Printf("HTTP %d %s\n", code, c.Kind)
	}
	// Output:
	// dial: connection refused       transient retry=true  connection refused
	// context canceled               permanent retry=false canceled
	// invalid input                  permanent retry=false marked permanent
	// slow down                      throttled retry=true  marked throttled
	// HTTP 503 transient
	// HTTP 401 permanent
}

// ParseRetryAfter reads both forms of the header.
func ExampleParseRetryAfter() {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range []string{"120", "Sun, 01 Mar 2026 12:00:30 GMT", "soon"} {
		d, ok := rebound.ParseRetryAfter(v, now)
		fmt.Println(d, ok)
	}
	// Output:
	// 2m0s true
	// 30s true
	// 0s false
}

// Get returns the value of a call made through a Pipeline.
func ExampleGet() {
	p := rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay}}
	calls := 0
	n, err := rebound.Get(context.Background(), &p, func(ctx context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, syscall.ETIMEDOUT
		}
		return 42, nil
	})
	fmt.Println(n, err, calls)
	// Output: 42 <nil> 2
}

// GetOr falls back to a default value when the call fails for good.
func ExampleGetOr() {
	p := rebound.Pipeline{Retry: rebound.Retry{Backoff: rebound.NoDelay}}
	price, err := rebound.GetOr(context.Background(), &p,
		func(ctx context.Context) (float64, error) {
			return 0, rebound.Permanent(errors.New("404 not found"))
		},
		func(ctx context.Context, err error) (float64, error) {
			return 9.99, nil // the last known price
		})
	fmt.Println(price, err)
	// Output: 9.99 <nil>
}
