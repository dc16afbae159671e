package reboundhttp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// The review's example, through the public API only: with the default
// attempts and breaker, one GET of a broken URL used to open its host's
// breaker, and the host's healthy endpoint was refused for 60 s. The
// breaker counts a call once (rebound.Breaker.AllowRetry), so it is served.
func TestHealthyEndpointOfHostWithBrokenURL(t *testing.T) {
	var broken atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			broken.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := client(t, reboundhttp.Config{Retry: rebound.Retry{Backoff: rebound.NoDelay}})

	resp, err := c.Get(srv.URL + "/broken")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || broken.Load() != 5 {
		t.Fatalf("broken URL: status %d after %d requests, want 503 after all 5 attempts", resp.StatusCode, broken.Load())
	}
	resp, err = c.Get(srv.URL + "/ok")
	if err != nil {
		t.Fatalf("healthy endpoint refused after the broken call gave up: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthy endpoint: status %d", resp.StatusCode)
	}
}

// A host that fails every request still opens its breaker within a bounded
// number of requests (rebound.BreakerConfig's doc): with the defaults, 5
// calls, that is 4 × 5 attempts + the 5th call's first = 21 requests for
// calls made one after another. The 6th call is refused unsent.
func TestHostThatAlwaysFailsOpensItsBreaker(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := client(t, reboundhttp.Config{Retry: rebound.Retry{Backoff: rebound.NoDelay}})
	calls := 0
	for ; calls < 100; calls++ {
		resp, err := c.Get(srv.URL)
		if err != nil {
			if !errors.Is(err, rebound.ErrOpen) {
				t.Fatalf("call %d: %v", calls+1, err)
			}
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if calls != 5 || hits.Load() != 21 {
		t.Fatalf("refused after %d calls and %d requests, want 5 calls and 21 requests", calls, hits.Load())
	}
}

// A host that only throttles (429, and 503 with Retry-After) is up and asks
// callers to slow down: however many calls end throttled, its breaker never
// opens (the answer is the server's, not a refusal). The same host answering
// 503 without Retry-After, a failure, opens it within the bound above.
func TestThrottlingHostNeverOpensItsBreaker(t *testing.T) {
	var hits, failing atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		switch {
		case failing.Load() != 0:
			w.WriteHeader(http.StatusServiceUnavailable)
		case n%2 == 0:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	// Retry-After is honoured up to 1 ns here: the test does not wait. No
	// retry budget: every call makes its 5 attempts.
	// Pacing off: this test is the breaker's accounting alone (pacing a host
	// that only throttles slows it down in real time, as it should).
	c := client(t, reboundhttp.Config{DisableBudget: true, DisablePacing: true,
		Retry: rebound.Retry{Backoff: rebound.NoDelay, MaxRetryAfter: time.Nanosecond}})
	get := func() (int, error) {
		resp, err := c.Get(srv.URL)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for i := range 50 {
		code, err := get()
		if err != nil {
			t.Fatalf("call %d of a throttling host refused: %v", i+1, err)
		}
		if code != http.StatusTooManyRequests && code != http.StatusServiceUnavailable {
			t.Fatalf("call %d: status %d", i+1, code)
		}
	}
	if hits.Load() != 250 {
		t.Fatalf("%d requests for 50 calls of 5 attempts", hits.Load())
	}
	failing.Store(1)
	hits.Store(0)
	calls := 0
	for ; calls < 100; calls++ {
		if _, err := get(); err != nil {
			if !errors.Is(err, rebound.ErrOpen) {
				t.Fatalf("call %d: %v", calls+1, err)
			}
			break
		}
	}
	if calls != 5 || hits.Load() != 21 {
		t.Fatalf("failing host: refused after %d calls and %d requests, want 5 calls and 21 requests", calls, hits.Load())
	}
}

// Retry.MaxRetryAfter caps a server's Retry-After for the host's pause as
// for the retry's wait: one cap, one meaning. A 429 asking for an hour does
// not hold the host's next call an hour when the caller allows 1 ns.
func TestMaxRetryAfterCapsTheHostPause(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	c := client(t, reboundhttp.Config{DisableBudget: true,
		Retry: rebound.Retry{Backoff: rebound.NoDelay, MaxRetryAfter: time.Nanosecond}})
	// The bound only stops a broken build from hanging: a capped pause
	// returns at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 2 {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("call %d: %v (the host's pause outlasted Retry.MaxRetryAfter)", i+1, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: status %d", i+1, resp.StatusCode)
		}
	}
}

// A default client is a drop-in: callers that hold requests open together
// (a server that answers once all of them arrived: long polls, streams) are
// not queued behind the pacer's slow start. Sixteen arrive at once.
func TestDefaultPacingQueuesNoConcurrentCallers(t *testing.T) {
	const n = 16
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	c := client(t, reboundhttp.Config{})
	// The bound only stops a broken build from hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range n {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	for i := range n {
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatalf("only %d of %d concurrent requests reached the server: the rest were queued", i, n)
		}
	}
}
