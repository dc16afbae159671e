package rebound_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundtest"
)

// server is a model of a host whose capacity the client is not told: it
// answers each request at the tick it arrives (throttled) or after latency
// (success). Time moves in 1 ms ticks on the fake clock.
type server struct {
	concurrency int     // most requests it serves at once; beyond: 429 (0: unlimited)
	rate        float64 // tokens per second (0: unlimited)
	burst       float64
	retryAfter  time.Duration
	latency     time.Duration

	tokens   float64
	serving  int
	inflight []flight // carried from one simulate to the next
}

type flight struct {
	permit rebound.PacePermit
	due    time.Time
	class  rebound.Class
}

type simResult struct {
	ok, throttled int
	maxInFlight   int
	limits        []int // the pacer's limit at every tick
}

// simulate offers the pacer `callers` requests at every tick for d, and
// answers them by the server model.
func simulate(t *testing.T, p *rebound.Pacer, clk *reboundtest.Clock, s *server, callers int, d time.Duration) simResult {
	t.Helper()
	var res simResult
	inflight := s.inflight
	defer func() { s.inflight = inflight }()
	const tick = time.Millisecond
	for elapsed := time.Duration(0); elapsed < d; elapsed += tick {
		now := clk.Now()
		// Answers due now.
		kept := inflight[:0]
		for _, f := range inflight {
			if f.due.After(now) {
				kept = append(kept, f)
				continue
			}
			if f.class.Kind == rebound.KindNone {
				s.serving--
				res.ok++
			} else {
				res.throttled++
			}
			f.permit.Done(now, f.class)
		}
		inflight = kept
		if s.rate > 0 {
			s.tokens = min(s.tokens+s.rate*tick.Seconds(), s.burst)
		}
		for len(inflight) < callers {
			permit, _, ok := p.TryAcquire(now)
			if !ok {
				break
			}
			f := flight{permit: permit, due: now.Add(s.latency)}
			switch {
			case s.concurrency > 0 && s.serving >= s.concurrency,
				s.rate > 0 && s.tokens < 1:
				f.due = now
				f.class = rebound.Class{Kind: rebound.KindThrottled, RetryAfter: s.retryAfter, Reason: "http 429"}
			default:
				s.serving++
				if s.rate > 0 {
					s.tokens--
				}
			}
			inflight = append(inflight, f)
		}
		res.maxInFlight = max(res.maxInFlight, len(inflight))
		res.limits = append(res.limits, p.Stats(now).Limit)
		if testing.Verbose() && elapsed%(500*time.Millisecond) == 0 {
			t.Logf("%v: %+v ok %d throttled %d", elapsed, p.Stats(now), res.ok, res.throttled)
		}
		clk.Advance(tick)
	}
	return res
}

func newTestPacer(t *testing.T, cfg rebound.PaceConfig) (*rebound.Pacer, *reboundtest.Clock) {
	t.Helper()
	clk := reboundtest.NewClock(time.Time{})
	cfg.Clock = clk
	p, err := rebound.NewPacer("api.example", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, clk
}

func TestPacerConvergesUnderHiddenConcurrency(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxLimit: 64})
	s := &server{concurrency: 10, latency: 20 * time.Millisecond}
	warm := simulate(t, p, clk, s, 64, 5*time.Second)
	res := simulate(t, p, clk, s, 64, 20*time.Second)
	if warm.maxInFlight > 64 || res.maxInFlight > 64 {
		t.Fatalf("in flight %d/%d, above the user's bound 64", warm.maxInFlight, res.maxInFlight)
	}
	// Ideal: 10 at a time for 20 ms each = 500/s.
	if goodput := float64(res.ok) / 20; goodput < 0.8*500 {
		t.Errorf("goodput %.0f/s, want at least 80%% of the capacity 500/s", goodput)
	}
	if share := float64(res.throttled) / float64(res.ok+res.throttled); share > 0.05 {
		t.Errorf("%.1f%% throttled (%d of %d), want at most 5%%", share*100, res.throttled, res.ok+res.throttled)
	}
}

func TestPacerConvergesUnderHiddenRate(t *testing.T) {
	// The rate-limited API: 300/s, burst 30, 429 + Retry-After: 1;
	// answers in 1 ms, so a concurrency limit alone cannot see the limit.
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxLimit: 64})
	s := &server{rate: 300, burst: 30, tokens: 30, retryAfter: time.Second, latency: time.Millisecond}
	res := simulate(t, p, clk, s, 64, 20*time.Second)
	if res.maxInFlight > 64 {
		t.Fatalf("in flight %d, above the user's bound", res.maxInFlight)
	}
	if goodput := float64(res.ok) / 20; goodput < 0.5*300 {
		t.Errorf("goodput %.0f/s, want at least half of the hidden 300/s", goodput)
	}
	if share := float64(res.throttled) / float64(res.ok+res.throttled); share > 0.2 {
		t.Errorf("%.0f%% throttled (%d of %d), want at most 20%%", share*100, res.throttled, res.ok+res.throttled)
	}
}

func TestPacerBacksOffOn429AndPausesTheHost(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxLimit: 16, InitialLimit: 16})
	now := clk.Now()
	a, _, ok1 := p.TryAcquire(now)
	b, _, ok2 := p.TryAcquire(now)
	if !ok1 || !ok2 {
		t.Fatal("an idle pacer refused")
	}
	a.Done(now, rebound.Class{Kind: rebound.KindThrottled, RetryAfter: 3 * time.Second, Reason: "http 429"})
	if got := p.Stats(now).Limit; got != 8 {
		t.Errorf("limit after a 429 = %d, want 16 halved", got)
	}
	// One 429 pauses every request to the host, not only its own.
	if _, at, ok := p.TryAcquire(now.Add(time.Second)); ok || !at.Equal(now.Add(3*time.Second)) {
		t.Errorf("during the pause: ok %v, retry at %v; want refused until %v", ok, at, now.Add(3*time.Second))
	}
	// A second 429 of the same overload does not halve it again.
	b.Done(now, rebound.Class{Kind: rebound.KindThrottled, Reason: "http 429"})
	if got := p.Stats(now).Limit; got != 8 {
		t.Errorf("limit after a second 429 of one burst = %d, want 8", got)
	}
	if got := p.Stats(now).Throttled; got != 2 {
		t.Errorf("throttled = %d, want 2", got)
	}
	if _, _, ok := p.TryAcquire(now.Add(3 * time.Second)); !ok {
		t.Error("refused after the pause ended")
	}
}

func TestPacerPauseIsCapped(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxPause: time.Minute})
	now := clk.Now()
	a, _, _ := p.TryAcquire(now)
	a.Done(now, rebound.Class{Kind: rebound.KindThrottled, RetryAfter: 24 * time.Hour})
	if until, paused := p.PausedUntil(now); !paused || !until.Equal(now.Add(time.Minute)) {
		t.Errorf("paused until %v (%v), want the 1 min cap", until, paused)
	}
}

func TestPacerRecoversAfterThrottlingStops(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxLimit: 32})
	s := &server{rate: 100, burst: 10, tokens: 10, retryAfter: time.Second, latency: 5 * time.Millisecond}
	simulate(t, p, clk, s, 32, 10*time.Second)
	if st := p.Stats(clk.Now()); st.Rate == 0 && st.Limit >= 32 {
		t.Fatalf("never throttled back: %+v", st)
	}
	// The limit is lifted: the server takes anything now.
	s.rate = 0
	res := simulate(t, p, clk, s, 32, 30*time.Second)
	st := p.Stats(clk.Now())
	if st.Limit != 32 || st.Rate != 0 {
		t.Errorf("after 30 s without throttling: %+v, want the limit back at 32 and no rate", st)
	}
	if res.throttled != 0 {
		t.Errorf("%d throttled by a server that throttles nothing", res.throttled)
	}
}

func TestPacerBacksOffOnRisingLatency(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxLimit: 64, InitialLimit: 32})
	now := clk.Now()
	for i := 0; i < 40; i++ {
		a, _, _ := p.TryAcquire(now)
		a.Done(now.Add(10*time.Millisecond), rebound.Class{})
	}
	before := p.Stats(now).Limit
	now = now.Add(time.Second)
	for i := 0; i < 40; i++ {
		a, _, _ := p.TryAcquire(now)
		now = now.Add(300 * time.Millisecond)
		a.Done(now, rebound.Class{})
	}
	if after := p.Stats(now).Limit; after >= before {
		t.Errorf("limit %d -> %d while latency went from 10 ms to 300 ms, want lower", before, after)
	}
}

func TestPacerBulkheadRefusesWaitersBeyondQueue(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxLimit: 1, MaxQueue: 1})
	held, _, ok := p.TryAcquire(clk.Now())
	if !ok {
		t.Fatal("refused")
	}
	got := make(chan error, 1)
	go func() {
		pp, err := p.Acquire(context.Background())
		pp.Release()
		got <- err
	}()
	for p.Stats(clk.Now()).Waiting != 1 {
		time.Sleep(time.Millisecond) // until the waiter queues: not a timing assertion
	}
	_, err := p.Acquire(context.Background())
	var be *rebound.BulkheadError
	if !errors.As(err, &be) || !errors.Is(err, rebound.ErrBulkheadFull) || be.InFlight != 1 || be.Queued != 1 {
		t.Fatalf("second waiter: %v, want a *BulkheadError (1 in flight, 1 queued)", err)
	}
	if c := rebound.Classify(err); c.Kind != rebound.KindThrottled {
		t.Errorf("bulkhead refusal classified %v, want throttled", c.Kind)
	}
	held.Done(clk.Now(), rebound.Class{})
	if err := <-got; err != nil {
		t.Errorf("the queued waiter: %v, want a permit once the slot freed", err)
	}
}

func TestPacerAcquireHonoursContext(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxLimit: 1})
	p.TryAcquire(clk.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire on a cancelled context: %v", err)
	}
	if st := p.Stats(clk.Now()); st.Waiting != 0 || st.InFlight != 1 {
		t.Errorf("after a cancelled wait: %+v", st)
	}
}

func TestPacerAcquireWaitsOutThePauseOnTheClock(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{})
	p.Pause(clk.Now(), clk.Now().Add(2*time.Second))
	got := make(chan error, 1)
	go func() {
		pp, err := p.Acquire(context.Background())
		pp.Release()
		got <- err
	}()
	if err := clk.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Second)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

func TestPacerAnnouncedLimits(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{})
	now := clk.Now()
	p.Announce(now, 10, time.Second) // 10 left in the next second: one per 100 ms
	n := 0
	for i := 0; i < 1000; i++ {
		if pp, _, ok := p.TryAcquire(now.Add(time.Duration(i) * time.Millisecond)); ok {
			n++
			pp.Done(now.Add(time.Duration(i)*time.Millisecond), rebound.Class{})
		}
	}
	if n != 10 {
		t.Errorf("%d requests in the announced second, want 10", n)
	}
	p.Announce(now.Add(time.Second), 0, 5*time.Second) // none left: wait for the reset
	if _, at, ok := p.TryAcquire(now.Add(2 * time.Second)); ok || !at.Equal(now.Add(6*time.Second)) {
		t.Errorf("with none remaining: ok %v, retry at %v; want the reset", ok, at)
	}
}

type countingLimiter struct{ allow int }

func (c *countingLimiter) AllowN(time.Time, int) bool {
	if c.allow <= 0 {
		return false
	}
	c.allow--
	return true
}
func (c *countingLimiter) Wait(context.Context) error { return nil }

func TestPacerUserRateGivesTheSlotBack(t *testing.T) {
	rl := &countingLimiter{allow: 1}
	p, clk := newTestPacer(t, rebound.PaceConfig{MaxLimit: 4,
		Rate: func(string) rebound.RateLimiter { return rl }})
	now := clk.Now()
	if _, _, ok := p.TryAcquire(now); !ok {
		t.Fatal("the first token was refused")
	}
	if _, _, ok := p.TryAcquire(now); ok {
		t.Fatal("a second request passed a rate with no token left")
	}
	if st := p.Stats(now); st.InFlight != 1 {
		t.Errorf("in flight %d after a rate refusal, want 1", st.InFlight)
	}
}

func TestPaceConfigValidate(t *testing.T) {
	for _, c := range []rebound.PaceConfig{{MaxLimit: -1}, {InitialLimit: -1}, {MaxPause: -1}, {MaxLimit: 2, InitialLimit: 3}} {
		if _, err := rebound.NewPacer("", c); err == nil {
			t.Errorf("%+v accepted", c)
		} else if _, ok := err.(*rebound.ConfigError); !ok {
			t.Errorf("%+v: %T, want *ConfigError", c, err)
		}
	}
}

func TestPacerIdlePermitAllocatesNothing(t *testing.T) {
	p, clk := newTestPacer(t, rebound.PaceConfig{})
	now := clk.Now()
	if n := testing.AllocsPerRun(1000, func() {
		pp, _, _ := p.TryAcquire(now)
		pp.Done(now, rebound.Class{})
	}); n != 0 {
		t.Errorf("%v allocations per permit", n)
	}
}
