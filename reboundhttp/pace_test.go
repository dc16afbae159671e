package reboundhttp_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
	"github.com/rebound-go/rebound/reboundtest"
)

// paceStub answers from memory: answer(n) gives the n-th response (from 1).
func paceStub(calls *atomic.Int64, answer func(n int64) *http.Response) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp := answer(calls.Add(1))
		resp.Request = req
		if resp.Body == nil {
			resp.Body = http.NoBody
		}
		if resp.Header == nil {
			resp.Header = http.Header{}
		}
		return resp, nil
	})
}

func get(t *testing.T, rt http.RoundTripper) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://api.example/x", nil)
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			err = reboundhttp.CheckResponse(resp)
		}
		done <- err
	}()
	return done
}

// A Retry-After pauses the host: a call that starts while another waits
// out a 429 waits too, rather than drawing its own 429.
func TestRetryAfterPausesTheHost(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	var calls atomic.Int64
	base := paceStub(&calls, func(n int64) *http.Response {
		if n == 1 {
			return &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"10"}}}
		}
		return &http.Response{StatusCode: 200}
	})
	tr, err := reboundhttp.NewTransport(base, reboundhttp.Config{Clock: clk, DisableBudget: true})
	if err != nil {
		t.Fatal(err)
	}
	a := get(t, tr)
	if err := clk.BlockUntil(context.Background(), 1); err != nil { // a waits out its Retry-After
		t.Fatal(err)
	}
	b := get(t, tr)
	if err := clk.BlockUntil(context.Background(), 2); err != nil { // b waits for the host
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d requests sent while the host asked for 10 s, want only the first", n)
	}
	clk.Advance(10 * time.Second)
	// After a throttle the host is paced to a rate it surely allows (one
	// a second, having seen no success): the second waits its turn.
	if err := clk.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	for _, c := range []<-chan error{a, b} {
		if err := <-c; err != nil {
			t.Error(err)
		}
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// A server that announces its quota is spent is not asked again before
// the reset.
func TestAnnouncedLimitPacesBeforeA429(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	var calls atomic.Int64
	base := paceStub(&calls, func(n int64) *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{
			"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {"5"}}}
	})
	tr, err := reboundhttp.NewTransport(base, reboundhttp.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-get(t, tr); err != nil {
		t.Fatal(err)
	}
	b := get(t, tr)
	if err := clk.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d requests before the announced reset, want 1", n)
	}
	clk.Advance(5 * time.Second)
	if err := <-b; err != nil {
		t.Fatal(err)
	}
}

// A full bulkhead refuses at once, unsent, and is not the host's failure.
func TestBulkheadRefusesUnsent(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	entered := make(chan struct{})
	base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		calls.Add(1)
		close(entered)
		<-release
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req, Header: http.Header{}}, nil
	})
	var opened atomic.Bool
	tr, err := reboundhttp.NewTransport(base, reboundhttp.Config{
		Pacing:  rebound.PaceConfig{MaxLimit: 1, MaxQueue: -1},
		Breaker: rebound.BreakerConfig{FailureThreshold: 1, OnStateChange: func(string, rebound.State, rebound.State) { opened.Store(true) }},
	})
	if err != nil {
		t.Fatal(err)
	}
	first := get(t, tr)
	<-entered
	req, _ := http.NewRequest("GET", "http://api.example/y", nil)
	_, err = tr.RoundTrip(req)
	var be *rebound.BulkheadError
	if !errors.Is(err, rebound.ErrBulkheadFull) || !errors.As(err, &be) || be.Key != "api.example" {
		t.Fatalf("second call: %v, want a *rebound.BulkheadError for api.example", err)
	}
	if c := rebound.Classify(err); c.Kind != rebound.KindThrottled {
		t.Errorf("classified %v, want throttled", c.Kind)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || opened.Load() {
		t.Errorf("%d sent, breaker moved %v; want 1 and no breaker change", calls.Load(), opened.Load())
	}
	n := 0
	tr.Pacers(func(key string, p *rebound.Pacer) {
		n++
		if key != "http://api.example" {
			t.Errorf("pacer key %q", key)
		}
	})
	if n != 1 {
		t.Errorf("%d pacers listed, want 1", n)
	}
}

func TestPacingConfigValidated(t *testing.T) {
	_, err := reboundhttp.NewTransport(nil, reboundhttp.Config{Pacing: rebound.PaceConfig{MaxLimit: -1}})
	var ce *rebound.ConfigError
	if !errors.As(err, &ce) {
		t.Errorf("negative Pacing.MaxLimit: %v, want a *rebound.ConfigError", err)
	}
	if _, err := reboundhttp.NewTransport(nil, reboundhttp.Config{Pacing: rebound.PaceConfig{MaxLimit: -1}, DisablePacing: true}); err != nil {
		t.Errorf("pacing off: %v", err)
	}
}
