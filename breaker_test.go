package rebound_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundtest"
)

type transition struct {
	name     string
	from, to rebound.State
}

// recorder collects OnStateChange calls.
type recorder struct {
	mu sync.Mutex
	ts []transition
}

func (r *recorder) on(name string, from, to rebound.State) {
	r.mu.Lock()
	r.ts = append(r.ts, transition{name, from, to})
	r.mu.Unlock()
}

func (r *recorder) list() []transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]transition(nil), r.ts...)
}

func failing(context.Context) error { return errReset }
func okCall(context.Context) error  { return nil }

func TestBreakerConsecutiveStateMachine(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	rec := &recorder{}
	// A fixed open period of 60 s: the growth has tests of its own.
	b, err := rebound.NewBreaker(rebound.BreakerConfig{Name: "api", Clock: clk, OnStateChange: rec.on,
		FirstOpenFor: time.Minute, OpenGrowth: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 4 {
		if err := b.Do(ctx, failing); !errors.Is(err, errReset) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if b.State() != rebound.StateClosed {
		t.Fatal("opened before the 5th failure")
	}
	_ = b.Do(ctx, failing)
	if b.State() != rebound.StateOpen {
		t.Fatalf("state %s after 5 failures, want open", b.State())
	}

	called := false
	err = b.Do(ctx, func(context.Context) error { called = true; return nil })
	var oe *rebound.OpenError
	if !errors.Is(err, rebound.ErrOpen) || !errors.As(err, &oe) || called {
		t.Fatalf("open breaker: err %v, called %v", err, called)
	}
	if oe.Remaining() != 60*time.Second || oe.Name != "api" {
		t.Errorf("Remaining %s name %q, want 60s api", oe.Remaining(), oe.Name)
	}
	if msg := oe.Error(); msg != "circuit breaker api open: next probe in 1m0s" {
		t.Errorf("message %q", msg)
	}
	clk.Advance(59 * time.Second)
	if b.State() != rebound.StateOpen || oe.Remaining() != time.Second {
		t.Fatalf("after 59s: %s, remaining %s", b.State(), oe.Remaining())
	}
	clk.Advance(time.Second)
	if b.State() != rebound.StateHalfOpen {
		t.Fatalf("after 60s: %s, want half-open", b.State())
	}

	// One probe at a time.
	probe, err := b.Allow()
	if err != nil {
		t.Fatalf("first probe refused: %v", err)
	}
	if _, err := b.Allow(); !errors.As(err, &oe) || !oe.Until.IsZero() || !errors.Is(err, rebound.ErrOpen) {
		t.Fatalf("second concurrent probe: %v, want a busy rejection", err)
	}
	probe.Done(nil, rebound.Class{})
	if b.State() != rebound.StateClosed {
		t.Fatalf("probe success left %s, want closed", b.State())
	}

	// Trip again; this time the probe fails and the breaker reopens.
	for range 5 {
		_ = b.Do(ctx, failing)
	}
	clk.Advance(60 * time.Second)
	if err := b.Do(ctx, failing); !errors.Is(err, errReset) {
		t.Fatalf("probe: %v", err)
	}
	if b.State() != rebound.StateOpen {
		t.Fatalf("failed probe left %s, want open", b.State())
	}
	if _, err := b.Allow(); !errors.As(err, &oe) || oe.Remaining() != 60*time.Second {
		t.Fatalf("reopened: %v, want a fresh 60s", err)
	}

	want := []transition{
		{"api", rebound.StateClosed, rebound.StateOpen},
		{"api", rebound.StateOpen, rebound.StateHalfOpen},
		{"api", rebound.StateHalfOpen, rebound.StateClosed},
		{"api", rebound.StateClosed, rebound.StateOpen},
		{"api", rebound.StateOpen, rebound.StateHalfOpen},
		{"api", rebound.StateHalfOpen, rebound.StateOpen},
	}
	if got := rec.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("transitions\n got %v\nwant %v", got, want)
	}
	b.Stop()
	if clk.Pending() != 0 {
		t.Errorf("Stop left %d timers", clk.Pending())
	}
}

func TestBreakerPermanentErrorsDoNotTrip(t *testing.T) {
	b := rebound.MustBreaker(rebound.BreakerConfig{Clock: reboundtest.NewClock(time.Time{})})
	ctx := context.Background()
	for range 20 {
		_ = b.Do(ctx, func(context.Context) error { return rebound.Permanent(errors.New("404")) })
	}
	if b.State() != rebound.StateClosed {
		t.Fatal("permanent errors opened the breaker")
	}
	// A permanent error shows the server alive: it breaks a failure streak.
	for range 4 {
		_ = b.Do(ctx, failing)
	}
	_ = b.Do(ctx, func(context.Context) error { return rebound.Permanent(errors.New("400")) })
	for range 4 {
		_ = b.Do(ctx, failing)
	}
	if b.State() != rebound.StateClosed {
		t.Fatal("4 + 4 failures split by a permanent error opened the breaker")
	}
	_ = b.Do(ctx, failing)
	if b.State() != rebound.StateOpen {
		t.Fatal("5 consecutive failures did not open the breaker")
	}
	b.Stop()
}

func TestBreakerCancelledProbeIsReleased(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	b := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 1, OpenFor: time.Second, Clock: clk})
	_ = b.Do(context.Background(), failing)
	clk.Advance(time.Second)
	if b.State() != rebound.StateHalfOpen {
		t.Fatal("not half-open")
	}
	// The caller gives up during the probe: no verdict, and the slot is free again.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) || b.State() != rebound.StateHalfOpen {
		t.Fatalf("cancelled probe: %v, state %s", err, b.State())
	}
	p, err := b.Allow()
	if err != nil {
		t.Fatalf("probe slot not released: %v", err)
	}
	p.Done(nil, rebound.Class{})
	if b.State() != rebound.StateClosed {
		t.Fatalf("state %s", b.State())
	}

	// The same through a Pipeline whose caller cancels mid-attempt.
	_ = b.Do(context.Background(), failing)
	clk.Advance(time.Second)
	p2 := rebound.Pipeline{Breaker: b, Retry: rebound.Retry{Clock: clk}}
	ctx2, cancel2 := context.WithCancel(context.Background())
	_ = p2.Do(ctx2, func(ctx context.Context) error { cancel2(); return errReset })
	if b.State() != rebound.StateHalfOpen {
		t.Fatalf("a call cancelled by its caller gave a verdict: %s", b.State())
	}
	if _, err := b.Allow(); err != nil {
		t.Fatalf("pipeline did not release the probe: %v", err)
	}
}

func TestBreakerLateVerdictIgnored(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	b := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 2, Clock: clk})
	old, _ := b.Allow() // a slow call that began while closed
	_ = b.Do(context.Background(), failing)
	_ = b.Do(context.Background(), failing)
	clk.Advance(time.Minute)
	if b.State() != rebound.StateHalfOpen {
		t.Fatal("not half-open")
	}
	old.Done(nil, rebound.Class{}) // its success says nothing about now
	if b.State() != rebound.StateHalfOpen {
		t.Fatalf("a stale verdict moved the breaker to %s", b.State())
	}
}

func TestBreakerFailureRateCountWindow(t *testing.T) {
	b := rebound.MustBreaker(rebound.BreakerConfig{FailureRate: 0.5, WindowCalls: 10, MinCalls: 10, Clock: reboundtest.NewClock(time.Time{})})
	ctx := context.Background()
	for range 9 {
		_ = b.Do(ctx, failing)
	}
	if b.State() != rebound.StateClosed {
		t.Fatal("opened before MinCalls")
	}
	_ = b.Do(ctx, failing)
	if b.State() != rebound.StateOpen {
		t.Fatal("10 of 10 failed and still closed")
	}
	b.Stop()

	b = rebound.MustBreaker(rebound.BreakerConfig{FailureRate: 0.5, WindowCalls: 10, MinCalls: 10, Clock: reboundtest.NewClock(time.Time{})})
	for range 6 {
		_ = b.Do(ctx, okCall)
	}
	for range 4 {
		_ = b.Do(ctx, failing)
	}
	if b.State() != rebound.StateClosed {
		t.Fatal("40% failures opened a 50% breaker")
	}
	_ = b.Do(ctx, failing) // pushes out the oldest success: 5 of 10
	if b.State() != rebound.StateOpen {
		t.Fatal("5 failures in the last 10 calls did not open a 50% breaker")
	}
	b.Stop()
}

func TestBreakerFailureRateTimeWindow(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	b := rebound.MustBreaker(rebound.BreakerConfig{FailureRate: 0.5, WindowTime: 10 * time.Second, MinCalls: 4, Clock: clk})
	ctx := context.Background()
	for range 3 {
		_ = b.Do(ctx, failing)
	}
	clk.Advance(11 * time.Second) // those failures leave the window
	_ = b.Do(ctx, okCall)
	_ = b.Do(ctx, failing)
	_ = b.Do(ctx, okCall)
	if b.State() != rebound.StateClosed {
		t.Fatal("expired failures still counted")
	}
	clk.Advance(5 * time.Second)
	_ = b.Do(ctx, failing) // 2 of 4 in the last 10 s
	if b.State() != rebound.StateOpen {
		t.Fatalf("2 failures of 4 calls in the window: %s, want open", b.State())
	}
	b.Stop()
}

func TestBreakerConfigErrors(t *testing.T) {
	for name, cfg := range map[string]rebound.BreakerConfig{
		"threshold":       {FailureThreshold: -1},
		"rate > 1":        {FailureRate: 1.5},
		"rate negative":   {FailureRate: -0.1},
		"window calls":    {WindowCalls: -1},
		"window time":     {WindowTime: -1},
		"min calls":       {MinCalls: -1},
		"open for":        {OpenFor: -1},
		"first open for":  {FirstOpenFor: -1},
		"first > max":     {FirstOpenFor: 2 * time.Second, OpenFor: time.Second},
		"first > default": {FirstOpenFor: 2 * time.Minute},
		"growth < 1":      {OpenGrowth: 0.5},
		"growth negative": {OpenGrowth: -2},
		"growth inf":      {OpenGrowth: math.Inf(1)},
		"growth nan":      {OpenGrowth: math.NaN()},
		"probes":          {HalfOpenProbes: -1},
		"success > probe": {SuccessThreshold: 2},
		// A count window smaller than MinCalls never lets the rate count:
		// a breaker that can never open.
		"window < default min calls": {FailureRate: 0.5, WindowCalls: 5},
		"min calls > default window": {FailureRate: 0.5, MinCalls: 101},
		"min calls > window":         {FailureRate: 0.5, WindowCalls: 20, MinCalls: 21},
	} {
		var ce *rebound.ConfigError
		if _, err := rebound.NewBreaker(cfg); !errors.As(err, &ce) {
			t.Errorf("%s: %v, want *ConfigError", name, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("MustBreaker accepted a bad config")
		}
	}()
	rebound.MustBreaker(rebound.BreakerConfig{OpenFor: -1})
}

// TestBreakerConcurrentTripAndRecover runs many goroutines through one
// breaker while the service fails, the breaker opens, the clock moves, and
// the service recovers. Run with -race.
func TestBreakerConcurrentTripAndRecover(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	changes := make(chan transition, 1024)
	b := rebound.MustBreaker(rebound.BreakerConfig{
		Clock: clk, HalfOpenProbes: 2, SuccessThreshold: 2,
		OnStateChange: func(n string, from, to rebound.State) { changes <- transition{n, from, to} },
	})
	var down atomic.Bool
	var inFlightProbes, maxProbes atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls, rejected atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1_000_000; i++ { // bounded, in case the test breaks
				select {
				case <-stop:
					return
				default:
				}
				err := b.Do(context.Background(), func(context.Context) error {
					if b.State() == rebound.StateHalfOpen {
						n := inFlightProbes.Add(1)
						defer inFlightProbes.Add(-1)
						for m := maxProbes.Load(); n > m && !maxProbes.CompareAndSwap(m, n); m = maxProbes.Load() {
						}
					}
					if down.Load() {
						return errReset
					}
					return nil
				})
				calls.Add(1)
				if errors.Is(err, rebound.ErrOpen) {
					rejected.Add(1)
				}
			}
		}()
	}
	ctx := waitCtx(t)
	await := func(to rebound.State) {
		t.Helper()
		for {
			select {
			case tr := <-changes:
				if tr.to == to {
					return
				}
			case <-ctx.Done():
				t.Fatalf("breaker never went %s (state %s)", to, b.State())
			}
		}
	}
	for cycle := range 3 {
		down.Store(true)
		await(rebound.StateOpen)
		clk.Advance(time.Minute) // half-open; probes fail while down, so it reopens
		await(rebound.StateOpen)
		down.Store(false)
		for b.State() != rebound.StateClosed {
			clk.Advance(time.Minute)
			select {
			case <-ctx.Done():
				t.Fatalf("cycle %d: never closed", cycle)
			case <-changes:
			}
		}
	}
	close(stop)
	wg.Wait()
	b.Stop()
	t.Logf("%d calls, %d rejected, at most %d probes seen in flight", calls.Load(), rejected.Load(), maxProbes.Load())
	if rejected.Load() == 0 {
		t.Error("no call was ever rejected")
	}
	if s := b.State(); s != rebound.StateClosed {
		t.Errorf("final state %s", s)
	}
}

func TestBreakerSet(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	rec := &recorder{}
	s, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 1, Clock: clk, OnStateChange: rec.on}, 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := s.Get("a.example")
	if s.Get("a.example") != a || a.Name() != "a.example" {
		t.Fatal("Get does not return the same named breaker for a key")
	}
	_ = a.Do(ctx, failing)
	if a.State() != rebound.StateOpen || s.Get("b.example").State() != rebound.StateClosed {
		t.Fatal("keys are not isolated")
	}
	if got := rec.list(); len(got) != 1 || got[0].name != "a.example" {
		t.Errorf("state changes %v, want one for a.example", got)
	}
	s.Get("c.example")
	if s.Len() != 3 {
		t.Fatalf("Len %d", s.Len())
	}
	s.Get("d.example") // full: a closed breaker goes, never the open one
	if s.Len() != 3 {
		t.Fatalf("Len %d after eviction, want 3", s.Len())
	}
	keys := map[string]bool{}
	s.Each(func(k string, b *rebound.Breaker) { keys[k] = true })
	if !keys["a.example"] || !keys["d.example"] || len(keys) != 3 {
		t.Errorf("keys after eviction %v: the open breaker or the new key is missing", keys)
	}
	// Every breaker open: one still goes, and the bound holds.
	s.Each(func(_ string, b *rebound.Breaker) { _ = b.Do(ctx, failing) })
	s.Get("e.example")
	if s.Len() != 3 {
		t.Errorf("Len %d with all open, want 3", s.Len())
	}
	s.Each(func(_ string, b *rebound.Breaker) { b.Stop() })

	if _, err := rebound.NewBreakerSet(rebound.BreakerConfig{}, -1); err == nil {
		t.Error("negative maxKeys accepted")
	}
	if _, err := rebound.NewBreakerSet(rebound.BreakerConfig{OpenFor: -1}, 0); err == nil {
		t.Error("bad config accepted")
	}
}

func TestPipelineStopsOnOpenBreaker(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	b := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 2, Clock: clk})
	p := rebound.Pipeline{Breaker: b, Retry: rebound.Retry{Backoff: rebound.NoDelay, Clock: clk}}
	calls := 0
	// One call counts once, however many attempts it makes: the first
	// call runs out of attempts with the breaker still closed.
	err := p.Do(context.Background(), func(context.Context) error { calls++; return errReset })
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Reason != "attempts exhausted" || calls != 5 || b.State() != rebound.StateClosed {
		t.Fatalf("first call: err %v, calls %d, breaker %s: want 5 attempts with the breaker closed", err, calls, b.State())
	}
	// The second call's first failure opens the breaker: Retry gives up at
	// once instead of waiting for an attempt the breaker would refuse, and
	// the error still carries the last real failure.
	calls = 0
	err = p.Do(context.Background(), func(context.Context) error { calls++; return errReset })
	if !errors.Is(err, rebound.ErrOpen) || !errors.Is(err, errReset) || !errors.As(err, &re) ||
		calls != 1 || re.Attempts != 1 || re.Reason != "circuit open" {
		t.Fatalf("second call: err %v, calls %d: want 1 call, then the open breaker ends the retries", err, calls)
	}
	b.Stop()
}

// TestBreakerStaleFailureIgnored: a failure from a call that began before the
// breaker last changed state says nothing about the new closed period.
func TestBreakerStaleFailureIgnored(t *testing.T) {
	for _, mode := range []struct {
		name string
		cfg  rebound.BreakerConfig
	}{
		{"consecutive", rebound.BreakerConfig{FailureThreshold: 2}},
		{"count window", rebound.BreakerConfig{FailureRate: 1, WindowCalls: 2, MinCalls: 2}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			clk := reboundtest.NewClock(time.Time{})
			cfg := mode.cfg
			cfg.Clock = clk
			b := rebound.MustBreaker(cfg)
			ctx := context.Background()
			old, _ := b.Allow() // a slow call from the first closed period
			_ = b.Do(ctx, failing)
			_ = b.Do(ctx, failing)
			clk.Advance(time.Minute)
			_ = b.Do(ctx, okCall) // the probe closes the breaker
			if b.State() != rebound.StateClosed {
				t.Fatalf("state %s, want closed", b.State())
			}
			old.Done(errReset, rebound.Classify(errReset)) // arrives late
			_ = b.Do(ctx, failing)                         // one fresh failure
			if b.State() != rebound.StateClosed {
				t.Fatalf("a stale failure counted in the new closed period: %s", b.State())
			}
			b.Stop()
		})
	}
}

// A zero Breaker (&rebound.Breaker{} instead of NewBreaker) is the default
// breaker, as a zero rate.Limiter is usable: it used to open on the first
// failure and panic for want of a clock, mid-call.
func TestZeroBreakerIsTheDefault(t *testing.T) {
	ctx := context.Background()
	b := &rebound.Breaker{}
	defer b.Stop()
	p := rebound.Pipeline{Breaker: b, Retry: rebound.Retry{Backoff: rebound.NoDelay}}
	for i := range 4 {
		if err := p.Do(ctx, failing); errors.Is(err, rebound.ErrOpen) || b.State() != rebound.StateClosed {
			t.Fatalf("call %d: err %v, breaker %s: want the default threshold of 5 calls", i, err, b.State())
		}
	}
	calls := 0
	err := p.Do(ctx, func(context.Context) error { calls++; return errReset })
	var open *rebound.OpenError
	if !errors.As(err, &open) || calls != 1 || b.State() != rebound.StateOpen {
		t.Fatalf("5th call: err %v after %d attempts, breaker %s: want it open after the 5th failed call", err, calls, b.State())
	}
	if r := open.Remaining(); r <= 500*time.Millisecond || r > time.Second {
		t.Errorf("open for %v more, want the default first period of 1 s", r)
	}
	if _, err := b.Allow(); !errors.Is(err, rebound.ErrOpen) {
		t.Errorf("Allow on the open zero Breaker: %v", err)
	}
	if err := b.Do(ctx, okCall); !errors.Is(err, rebound.ErrOpen) {
		t.Errorf("Do on the open zero Breaker: %v", err)
	}
}

// TestBreakerOpenFor: callers refused while a probe is out wait OpenFor, so
// a closed breaker must report the period its next opening would last: the
// default first period when the config left it zero, never the longest.
func TestBreakerOpenFor(t *testing.T) {
	for _, tc := range []struct{ max, first, want time.Duration }{
		{0, 0, time.Second},
		{5 * time.Second, 0, time.Second},
		{500 * time.Millisecond, 0, 500 * time.Millisecond}, // the default first period, capped
		{5 * time.Second, 5 * time.Second, 5 * time.Second},
		{0, 3 * time.Second, 3 * time.Second},
	} {
		b := rebound.MustBreaker(rebound.BreakerConfig{OpenFor: tc.max, FirstOpenFor: tc.first})
		if got := b.OpenFor(); got != tc.want {
			t.Errorf("OpenFor with BreakerConfig.OpenFor %v, FirstOpenFor %v = %v, want %v", tc.max, tc.first, got, tc.want)
		}
	}
}

// tripOpen fails calls until b opens.
func tripOpen(t *testing.T, b *rebound.Breaker) {
	t.Helper()
	for i := 0; b.State() == rebound.StateClosed; i++ {
		if i > 100 {
			t.Fatal("the breaker never opened")
		}
		_ = b.Do(context.Background(), failing)
	}
}

// openPeriod is how long b, open now, stays open: its refusal's Remaining,
// which must agree with OpenFor and NextProbe.
func openPeriod(t *testing.T, b *rebound.Breaker, clk *reboundtest.Clock) time.Duration {
	t.Helper()
	_, err := b.Allow()
	var oe *rebound.OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("state %s, Allow: %v; want an open breaker", b.State(), err)
	}
	if b.OpenFor() != oe.Remaining() || !b.NextProbe().Equal(oe.Until) || !oe.Until.Equal(clk.Now().Add(oe.Remaining())) {
		t.Fatalf("OpenFor %v, NextProbe %v, refusal until %v (in %v)", b.OpenFor(), b.NextProbe(), oe.Until, oe.Remaining())
	}
	return oe.Remaining()
}

// The open period starts at FirstOpenFor, grows by OpenGrowth with every
// failed probe up to OpenFor, and starts over after a close.
func TestBreakerOpenPeriodsGrow(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	ctx := context.Background()
	b := rebound.MustBreaker(rebound.BreakerConfig{Clock: clk, FirstOpenFor: time.Second, OpenGrowth: 2, OpenFor: 10 * time.Second})
	defer b.Stop()
	if !b.NextProbe().IsZero() {
		t.Errorf("closed breaker: NextProbe %v, want zero", b.NextProbe())
	}
	tripOpen(t, b)
	var got []time.Duration
	for range 6 {
		d := openPeriod(t, b, clk)
		got = append(got, d)
		clk.Advance(d - time.Millisecond)
		if b.State() != rebound.StateOpen {
			t.Fatalf("half-open %v early", time.Millisecond)
		}
		clk.Advance(time.Millisecond)
		if b.State() != rebound.StateHalfOpen || !b.NextProbe().IsZero() || b.OpenFor() != d {
			t.Fatalf("after the period: %s, NextProbe %v, OpenFor %v (want half-open, zero, %v)", b.State(), b.NextProbe(), b.OpenFor(), d)
		}
		_ = b.Do(ctx, failing) // the probe fails
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("open periods %v, want %v", got, want)
	}
	// A successful probe closes the breaker and resets the growth.
	clk.Advance(10 * time.Second)
	if err := b.Do(ctx, okCall); err != nil || b.State() != rebound.StateClosed {
		t.Fatalf("probe: %v, state %s", err, b.State())
	}
	if b.OpenFor() != time.Second {
		t.Errorf("closed: OpenFor %v, want the first period again", b.OpenFor())
	}
	tripOpen(t, b)
	if d := openPeriod(t, b, clk); d != time.Second {
		t.Errorf("after a close the breaker opened for %v, want the first period, 1 s", d)
	}
}

// With the defaults: 1 s, then 1.2 times as long per failed probe, up to
// 60 s; during a 20 s outage a breaker that keeps probing sees the end
// within 5 s, and probes at most 10 times.
func TestBreakerDefaultOpenPeriods(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	ctx := context.Background()
	b := rebound.MustBreaker(rebound.BreakerConfig{Clock: clk})
	defer b.Stop()
	tripOpen(t, b)
	var (
		elapsed, longest time.Duration
		probes           int
		periods          []time.Duration
	)
	for range 40 {
		d := openPeriod(t, b, clk)
		periods = append(periods, d)
		if d < longest {
			t.Fatalf("periods shrank: %v", periods)
		}
		longest = d
		if elapsed < 20*time.Second {
			if end := elapsed + d; end > 20*time.Second && end-20*time.Second > 5*time.Second {
				t.Errorf("an outage ending at 20 s is seen at %v, more than 5 s later", end)
			}
		}
		clk.Advance(d)
		elapsed += d
		if elapsed <= 20*time.Second {
			probes++
		}
		_ = b.Do(ctx, failing)
	}
	if periods[0] != time.Second || periods[1] != 1200*time.Millisecond || longest != time.Minute {
		t.Errorf("periods %v: want 1s, 1.2s, ... up to 1m", periods)
	}
	if probes > 10 {
		t.Errorf("%d probes in the first 20 s of an outage, want at most 10", probes)
	}
}

// A service that recovers is called again at the end of the current open
// period, not the longest one.
func TestBreakerRecoversAfterTheCurrentPeriod(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	ctx := context.Background()
	b := rebound.MustBreaker(rebound.BreakerConfig{Clock: clk, OpenFor: time.Hour})
	defer b.Stop()
	tripOpen(t, b)
	clk.Advance(time.Second)
	_ = b.Do(ctx, failing) // still down
	clk.Advance(1200 * time.Millisecond)
	if err := b.Do(ctx, okCall); err != nil || b.State() != rebound.StateClosed {
		t.Fatalf("2.2 s after opening, the probe: %v, state %s; want closed", err, b.State())
	}
	for i := range 100 {
		if err := b.Do(ctx, okCall); err != nil {
			t.Fatalf("call %d after recovery: %v", i, err)
		}
	}
}

// Several probes may be out at once; the first success closes the breaker,
// any failure reopens it with the next, longer period.
func TestBreakerHalfOpenProbes(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	b := rebound.MustBreaker(rebound.BreakerConfig{Clock: clk, HalfOpenProbes: 3, OpenGrowth: 2})
	defer b.Stop()
	tripOpen(t, b)
	clk.Advance(time.Second)
	var ps []rebound.Permit
	for i := range 3 {
		p, err := b.Allow()
		if err != nil {
			t.Fatalf("probe %d refused: %v", i, err)
		}
		ps = append(ps, p)
	}
	if _, err := b.Allow(); !errors.Is(err, rebound.ErrOpen) {
		t.Fatalf("a 4th probe: %v, want refused", err)
	}
	ps[0].Done(errReset, rebound.Classify(errReset))
	if d := openPeriod(t, b, clk); d != 2*time.Second {
		t.Fatalf("reopened for %v, want 2s", d)
	}
	ps[1].Done(nil, rebound.Class{}) // a late verdict from the earlier period
	if b.State() != rebound.StateOpen {
		t.Fatalf("a success from the earlier half-open period changed the state to %s", b.State())
	}
	clk.Advance(2 * time.Second)
	p, _ := b.Allow()
	p.Done(nil, rebound.Class{})
	if b.State() != rebound.StateClosed {
		t.Fatalf("state %s after a successful probe, want closed", b.State())
	}
}

// Throttled answers (429, 503 with Retry-After, Throttled) ask the caller to
// slow down: however many, they never open the breaker, nor hide failures
// that do.
func TestBreakerThrottledNeverOpens(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	ctx := context.Background()
	b := rebound.MustBreaker(rebound.BreakerConfig{Clock: clk})
	defer b.Stop()
	throttled := []error{
		rebound.Throttled(errors.New("slow down"), time.Second),
		rebound.Throttled(errors.New("slow down"), 0),
	}
	for i := range 1000 {
		_ = b.Do(ctx, func(context.Context) error { return throttled[i%2] })
		p, err := b.Allow()
		if err != nil {
			t.Fatalf("call %d refused after only throttled answers: %v", i, err)
		}
		for _, c := range []rebound.Class{rebound.ClassifyStatus(429, true, 0), rebound.ClassifyStatus(503, false, time.Second)} {
			p.Done(errors.New("throttled"), c)
			if p, err = b.AllowRetry(); err != nil {
				t.Fatalf("retry refused: %v", err)
			}
		}
		p.Done(errors.New("throttled"), rebound.ClassifyStatus(429, false, time.Second))
	}
	if b.State() != rebound.StateClosed {
		t.Fatalf("state %s after only throttled answers", b.State())
	}
	// Throttled answers between failures do not reset the count: 5
	// failed calls (a 503 without Retry-After) still open it.
	for i := range 5 {
		p, err := b.Allow()
		if err != nil {
			t.Fatalf("call %d refused: %v", i, err)
		}
		p.Done(errors.New("503"), rebound.ClassifyStatus(503, true, 0))
		if i < 4 {
			p, _ = b.Allow()
			p.Done(errors.New("429"), rebound.ClassifyStatus(429, true, 0))
		}
	}
	if b.State() != rebound.StateOpen {
		t.Fatalf("state %s after 5 failed calls among throttled ones, want open", b.State())
	}
	// A throttled probe decides nothing: the next caller probes.
	clk.Advance(time.Second)
	p, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	p.Done(errors.New("429"), rebound.ClassifyStatus(429, true, 0))
	if b.State() != rebound.StateHalfOpen {
		t.Fatalf("state %s after a throttled probe, want still half-open", b.State())
	}
	if p, err = b.Allow(); err != nil {
		t.Fatalf("next probe refused after a throttled one: %v", err)
	}
	p.Done(nil, rebound.Class{})
	if b.State() != rebound.StateClosed {
		t.Fatalf("state %s, want closed", b.State())
	}
}

// The same in failure-rate mode: throttled calls are not in the window.
func TestBreakerThrottledNotInRateWindow(t *testing.T) {
	b := rebound.MustBreaker(rebound.BreakerConfig{Clock: reboundtest.NewClock(time.Time{}), FailureRate: 0.5, WindowCalls: 10})
	defer b.Stop()
	for i := range 200 {
		p, err := b.Allow()
		if err != nil {
			t.Fatalf("call %d refused: %v", i, err)
		}
		p.Done(errors.New("429"), rebound.ClassifyStatus(429, true, 0))
	}
}
