package rebound_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundtest"
)

// getStatus GETs url and turns a status >= 400 into an error classified by
// rebound.ClassifyStatus, as a user of net/http with a Pipeline would.
func getStatus(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return rebound.Permanent(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		c := rebound.ClassifyStatus(resp.StatusCode, true, 0)
		return &statusErr{resp.StatusCode, c}
	}
	return nil
}

type statusErr struct {
	code  int
	class rebound.Class
}

func (e *statusErr) Error() string        { return fmt.Sprintf("http %d", e.code) }
func (e *statusErr) Class() rebound.Class { return e.class }

// The review's example: with the defaults (5 attempts, threshold 5), one
// call to one broken URL used to open its host's breaker for 60 s, and the
// host's healthy endpoints were refused. A call's retries now count once.
func TestHealthyEndpointServedAfterABrokenCall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	br := &rebound.Breaker{} // the defaults
	defer br.Stop()
	p := rebound.Pipeline{Breaker: br, Retry: rebound.Retry{Backoff: rebound.NoDelay}}
	ctx := context.Background()

	err := p.Do(ctx, func(ctx context.Context) error { return getStatus(ctx, srv.URL+"/broken") })
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Attempts != 5 || re.Reason != "attempts exhausted" {
		t.Fatalf("broken call: %v; want all 5 attempts made", err)
	}
	if err := p.Do(ctx, func(ctx context.Context) error { return getStatus(ctx, srv.URL+"/ok") }); err != nil {
		t.Fatalf("healthy endpoint after the broken call gave up: %v", err)
	}
}

// A host that fails every request still opens its breaker within a bounded
// number of requests, as BreakerConfig's doc states: FailureThreshold calls
// (5), that is 4 × 5 attempts + the 5th call's first = 21 requests for calls
// made one after another.
func TestBreakerOpensOnAHostThatAlwaysFails(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	br := rebound.MustBreaker(rebound.BreakerConfig{Clock: clk})
	defer br.Stop()
	p := rebound.Pipeline{Breaker: br, Retry: rebound.Retry{Backoff: rebound.NoDelay, Clock: clk}}
	requests, calls := 0, 0
	for br.State() == rebound.StateClosed && calls < 100 {
		calls++
		_ = p.Do(context.Background(), func(context.Context) error { requests++; return errReset })
	}
	if calls != 5 || requests != 21 {
		t.Fatalf("opened after %d calls and %d requests (state %s), want 5 calls and 21 requests", calls, requests, br.State())
	}
	if err := p.Do(context.Background(), func(context.Context) error { requests++; return nil }); !errors.Is(err, rebound.ErrOpen) || requests != 21 {
		t.Fatalf("call to the open breaker: %v after %d requests", err, requests)
	}
}

// AllowRetry: a retry's failure does not count while closed, its success
// resets the count, and a half-open retry is a probe like any attempt.
func TestBreakerCountsACallOnce(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	b := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 2, Clock: clk})
	defer b.Stop()
	transient := rebound.Class{Kind: rebound.KindTransient}
	fail := func(allow func() (rebound.Permit, error)) {
		t.Helper()
		p, err := allow()
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		p.Done(errReset, transient)
	}
	fail(b.Allow)
	for range 10 {
		fail(b.AllowRetry)
	}
	if b.State() != rebound.StateClosed {
		t.Fatalf("retries of one call opened the breaker")
	}
	p, _ := b.AllowRetry()
	p.Done(nil, rebound.Class{}) // the retry succeeded: the count starts again
	fail(b.Allow)
	if b.State() != rebound.StateClosed {
		t.Fatalf("a retry's success did not reset the count")
	}
	fail(b.Allow)
	if b.State() != rebound.StateOpen {
		t.Fatalf("state %s after 2 failed calls, want open", b.State())
	}
	clk.Advance(time.Minute)
	if b.State() != rebound.StateHalfOpen {
		t.Fatalf("state %s after the open period", b.State())
	}
	fail(b.AllowRetry)
	if b.State() != rebound.StateOpen {
		t.Fatalf("a failed half-open retry left the breaker %s, want open", b.State())
	}
}

// An error no rule recognised (a plain application error) is retried but
// not counted against the service, unlike a 503 or a reset connection.
func TestBreakerIgnoresUnknownErrors(t *testing.T) {
	if c := rebound.Classify(errors.New("app bug")); !c.Unknown || c.Kind != rebound.KindTransient {
		t.Fatalf("Classify(plain error) = %+v, want transient and Unknown", c)
	}
	if c := rebound.Classify(errReset); c.Unknown {
		t.Fatalf("Classify(reset) = %+v: recognised, must not be Unknown", c)
	}
	b := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 1})
	defer b.Stop()
	ctx := context.Background()
	for range 10 {
		_ = b.Do(ctx, func(context.Context) error { return errors.New("app bug") })
	}
	if b.State() != rebound.StateClosed {
		t.Fatalf("unclassified errors opened the breaker")
	}
	_ = b.Do(ctx, func(context.Context) error { return rebound.Transient(errors.New("marked")) })
	if b.State() != rebound.StateOpen {
		t.Fatalf("an error marked Transient did not count: %s", b.State())
	}
}

// GetOr has its own fallback: combined with Pipeline.Fallback, the pipeline's
// would turn the failure into a nil error and GetOr return a zero value.
func TestGetOrRefusesPipelineFallback(t *testing.T) {
	p := rebound.Pipeline{
		Retry:    rebound.Retry{Backoff: rebound.NoDelay},
		Fallback: func(context.Context, error) error { return nil },
	}
	calls := 0
	v, err := rebound.GetOr(context.Background(), &p,
		func(context.Context) (int, error) { calls++; return 0, errReset },
		func(context.Context, error) (int, error) { return 42, nil })
	var ce *rebound.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Pipeline.Fallback" || calls != 0 || v != 0 {
		t.Fatalf("GetOr = %d, %v after %d calls; want a *ConfigError for Pipeline.Fallback before any call", v, err, calls)
	}
}

// RetryError.Elapsed is measured on the failure path even with no wait
// between attempts: 4 attempts of 10 ms each (on the fake clock) span 30 ms
// from the end of the first one. It used to say 0s.
func TestRetryErrorElapsedWithoutWaits(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	r := rebound.Retry{MaxAttempts: 4, Backoff: rebound.NoDelay, Clock: clk}
	err := r.Do(context.Background(), func(context.Context) error {
		clk.Advance(10 * time.Millisecond) // the attempt's time out
		return context.DeadlineExceeded
	})
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Elapsed != 30*time.Millisecond {
		t.Fatalf("err %v: want Elapsed 30ms", err)
	}
	// A single attempt's failure reads no clock and reports 0.
	err = r.Do(context.Background(), func(context.Context) error {
		clk.Advance(10 * time.Millisecond)
		return rebound.Permanent(errReset)
	})
	if !errors.As(err, &re) || re.Elapsed != 0 {
		t.Fatalf("err %v: want Elapsed 0 when nothing was retried", err)
	}
}

// The hot path stays free: a successful call through a Pipeline with a
// closed breaker allocates nothing, also after failed calls were counted.
func TestPipelineClosedBreakerSuccessAllocatesNothing(t *testing.T) {
	br := rebound.MustBreaker(rebound.BreakerConfig{})
	defer br.Stop()
	p := rebound.Pipeline{Breaker: br, Retry: rebound.Retry{Backoff: rebound.NoDelay}}
	ctx := context.Background()
	ok := func(context.Context) error { return nil }
	_ = p.Do(ctx, func(context.Context) error { return errReset })
	if n := testing.AllocsPerRun(100, func() { _ = p.Do(ctx, ok) }); n != 0 {
		t.Errorf("a successful call through a closed breaker allocates %v times", n)
	}
}
