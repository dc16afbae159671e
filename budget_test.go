package rebound_test

import (
	"container/heap"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundtest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// newBudgetAt returns a Budget that began at t0, for tests that pass
// explicit times to AllowRetry.
func newBudgetAt(t *testing.T, cfg rebound.BudgetConfig) *rebound.Budget {
	t.Helper()
	cfg.Clock = reboundtest.NewClock(t0)
	b, err := rebound.NewBudget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func countAllowed(b *rebound.Budget, now time.Time, upTo int) int {
	n := 0
	for n < upTo && b.AllowRetry(now) {
		n++
	}
	return n
}

func TestBudgetFloorWithoutCalls(t *testing.T) {
	b := newBudgetAt(t, rebound.BudgetConfig{})
	// 10 retries/s over a 10 s window: 100, even with no calls at all.
	if n := countAllowed(b, t0, 1000); n != 100 {
		t.Fatalf("allowed %d retries with no calls, want the floor of 100", n)
	}
	if b.AllowRetry(t0.Add(5 * time.Second)) {
		t.Fatal("retries allowed again before the window passed")
	}
	if n := countAllowed(b, t0.Add(10*time.Second), 1000); n != 100 {
		t.Fatalf("after the window: %d, want 100 again", n)
	}
}

// A zero Budget, which a caller can put in Retry.Budget or
// reboundhttp.Config.Budget without NewBudget, is the default budget, not a
// division by zero in the middle of a call.
func TestBudgetZeroValueIsDefault(t *testing.T) {
	var b rebound.Budget
	for range 1000 {
		b.RecordCall() // before the first decision: not counted
	}
	if n := countAllowed(&b, t0, 1000); n != 100 {
		t.Fatalf("zero Budget allowed %d retries, want the default floor of 100", n)
	}
	for range 1000 {
		b.RecordCall()
	}
	// 1,000 calls in the window: 20% of them is 200, of which 100 are spent.
	if n := countAllowed(&b, t0.Add(time.Second), 1000); n != 100 {
		t.Fatalf("zero Budget after 1000 calls allowed %d more retries, want 100", n)
	}
	r := rebound.Retry{Budget: new(rebound.Budget), Backoff: rebound.NoDelay, MaxAttempts: 1000}
	err := r.Do(context.Background(), func(context.Context) error { return errReset })
	if !errors.Is(err, rebound.ErrBudgetExhausted) {
		t.Fatalf("Retry with a zero Budget: %v, want the budget to stop it", err)
	}
}

func TestBudgetRatio(t *testing.T) {
	b := newBudgetAt(t, rebound.BudgetConfig{MinPerSecond: -1})
	for range 100 {
		b.RecordCall()
	}
	if n := countAllowed(b, t0, 1000); n != 20 {
		t.Fatalf("100 calls allowed %d retries, want 20", n)
	}
	for range 50 {
		b.RecordCall()
	}
	if n := countAllowed(b, t0.Add(time.Second), 1000); n != 10 {
		t.Fatalf("50 more calls allowed %d more retries, want 10", n)
	}
	// Once the calls are out of the window, so is the allowance.
	if b.AllowRetry(t0.Add(11 * time.Second)) {
		t.Fatal("retry allowed with no calls in the window and no floor")
	}
	// The clock going back does not panic or unlock retries.
	if b.AllowRetry(t0) {
		t.Fatal("clock going back unlocked retries")
	}
}

func TestBudgetCustomRatioAndFloor(t *testing.T) {
	b := newBudgetAt(t, rebound.BudgetConfig{Ratio: 0.5, Window: time.Second, MinPerSecond: 3})
	if n := countAllowed(b, t0, 100); n != 3 {
		t.Fatalf("floor: %d, want 3", n)
	}
	for range 20 {
		b.RecordCall()
	}
	if n := countAllowed(b, t0.Add(time.Second), 100); n != 10 {
		t.Fatalf("ratio 0.5 of 20 calls: %d, want 10", n)
	}
}

func TestBudgetConfigErrors(t *testing.T) {
	for name, cfg := range map[string]rebound.BudgetConfig{
		"negative ratio":  {Ratio: -1},
		"NaN ratio":       {Ratio: math.NaN()},
		"negative window": {Window: -time.Second},
		"NaN floor":       {MinPerSecond: math.NaN()},
	} {
		var ce *rebound.ConfigError
		if _, err := rebound.NewBudget(cfg); !errors.As(err, &ce) {
			t.Errorf("%s: %v, want *ConfigError", name, err)
		}
	}
}

// simClock runs many Retry loops one step at a time in fake time, as a
// discrete-event simulation: exactly one goroutine runs at once, and it hands
// control back to the scheduler when it starts a wait (NewTimer) or finishes.
// So the real Retry and Budget code runs, deterministically ordered by fake
// time, without any goroutine sleeping.
type simClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int64
	q      simQueue
	parked chan struct{}
}

type simEvent struct {
	when  time.Time
	seq   int64
	ch    chan time.Time // a Retry wait to end, or
	start func()         // a logical call to begin
	dead  bool
}

type simQueue []*simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if !q[i].when.Equal(q[j].when) {
		return q[i].when.Before(q[j].when)
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func newSimClock() *simClock { return &simClock{now: t0, parked: make(chan struct{})} }

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) push(e *simEvent) {
	c.mu.Lock()
	c.seq++
	e.seq = c.seq
	heap.Push(&c.q, e)
	c.mu.Unlock()
}

// NewTimer schedules the wait and yields to the scheduler.
func (c *simClock) NewTimer(d time.Duration) rebound.Timer {
	e := &simEvent{when: c.Now().Add(d), ch: make(chan time.Time, 1)}
	c.push(e)
	c.parked <- struct{}{}
	return simTimer{e}
}

func (c *simClock) AfterFunc(time.Duration, func()) rebound.Timer {
	panic("simClock: AfterFunc is not used by Retry")
}

type simTimer struct{ e *simEvent }

func (t simTimer) C() <-chan time.Time { return t.e.ch }
func (t simTimer) Stop() bool          { t.e.dead = true; return true }

// at schedules a logical call to begin at time when.
func (c *simClock) at(when time.Time, f func()) { c.push(&simEvent{when: when, start: f}) }

// run executes events in time order until none is left.
func (c *simClock) run() {
	for {
		c.mu.Lock()
		if c.q.Len() == 0 {
			c.mu.Unlock()
			return
		}
		e := heap.Pop(&c.q).(*simEvent)
		c.now = e.when
		c.mu.Unlock()
		switch {
		case e.dead:
			continue
		case e.start != nil:
			go func() { e.start(); c.parked <- struct{}{} }()
		default:
			e.ch <- e.when
		}
		<-c.parked
	}
}

type stormResult struct {
	calls, failed           int // logical calls started during the measured span, and those that failed
	attempts                int // attempts those calls made
	serverHits, outageCalls int // attempts that reached the server while it was down, calls started then
}

// storm simulates clients that each make one logical call per second
// (staggered over the second) for span, through a Retry with the default
// backoff and the given budget. down reports whether the server fails an
// attempt at a time; it is called by one goroutine at a time.
func storm(clients int, span time.Duration, budget func(rebound.Clock) *rebound.Budget, down func(now time.Time) bool, outage func(now time.Time) bool) stormResult {
	c := newSimClock()
	r := rebound.Retry{Clock: c}
	if budget != nil {
		r.Budget = budget(c)
	}
	var res stormResult
	end := t0.Add(span)
	for i := range clients {
		offset := time.Duration(i) * time.Second / time.Duration(clients)
		var next func()
		start := t0.Add(offset)
		next = func() {
			began := c.Now()
			if n := began.Add(time.Second); n.Before(end) {
				c.at(n, next)
			}
			attempts := 0
			err := r.Do(context.Background(), func(context.Context) error {
				attempts++
				now := c.Now()
				if down(now) {
					if outage(now) {
						res.serverHits++
					}
					return errReset
				}
				return nil
			})
			res.calls++
			res.attempts += attempts
			if err != nil {
				res.failed++
			}
			if outage(began) {
				res.outageCalls++
			}
		}
		c.at(start, next)
	}
	c.run()
	return res
}

// defaultBudget returns a constructor of a default Budget on the sim's clock.
func defaultBudget(t *testing.T) func(rebound.Clock) *rebound.Budget {
	return func(c rebound.Clock) *rebound.Budget {
		b, err := rebound.NewBudget(rebound.BudgetConfig{Clock: c})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// TestRetryStorm: 1,000 clients, one call per second each, and a server that
// is down for 60 s after 20 s of health. Without a budget every call tries 5
// times (the retry storm); with the default budget the server sees about 1.2
// attempts per call during the outage.
func TestRetryStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 100,000 calls")
	}
	clients := 1000
	if raceEnabled {
		clients = 200 // the same simulation, 5x smaller: -race makes each step ~15x slower
	}
	from, to := t0.Add(20*time.Second), t0.Add(80*time.Second)
	inOutage := func(now time.Time) bool { return !now.Before(from) && now.Before(to) }

	noBudget := storm(clients, 100*time.Second, nil, inOutage, inOutage)
	ratioNone := float64(noBudget.serverHits) / float64(noBudget.outageCalls)

	withBudget := storm(clients, 100*time.Second, defaultBudget(t), inOutage, inOutage)
	ratioBudget := float64(withBudget.serverHits) / float64(withBudget.outageCalls)

	t.Logf("outage, no budget: %d attempts on the down server for %d calls: %.3f per call", noBudget.serverHits, noBudget.outageCalls, ratioNone)
	t.Logf("outage, default budget: %d attempts on the down server for %d calls: %.3f per call", withBudget.serverHits, withBudget.outageCalls, ratioBudget)
	if ratioNone <= 4 {
		t.Errorf("without a budget: %.3f attempts per call, want > 4 (the storm the budget prevents)", ratioNone)
	}
	// The budget allows retries of 20% of the calls of the last 10 s. The
	// first burst of the outage is funded by the healthy calls just before
	// it, so over a 60 s outage the guarantee is 1 + 0.2 × (60 + 10) / 60.
	if limit := 1 + 0.2*70.0/60.0; ratioBudget > limit {
		t.Errorf("with the default budget: %.3f attempts per call, want <= %.3f", ratioBudget, limit)
	}
	if noBudget.outageCalls != 60*clients || withBudget.outageCalls != 60*clients {
		t.Errorf("outage calls %d / %d, want %d", noBudget.outageCalls, withBudget.outageCalls, 60*clients)
	}
}

// TestRetryStormFlakyServer: the server is up but fails 10% of attempts at
// random (seeded); with the default budget at least 99.9% of calls succeed.
func TestRetryStormFlakyServer(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 30,000 calls")
	}
	rng := rand.New(rand.NewPCG(42, 7))
	never := func(time.Time) bool { return false }
	res := storm(1000, 30*time.Second, defaultBudget(t), func(time.Time) bool { return rng.Float64() < 0.1 }, never)
	ok := float64(res.calls-res.failed) / float64(res.calls)
	t.Logf("flaky server: %d calls, %d failed, %.4f%% succeeded, %.4f attempts per call", res.calls, res.failed, 100*ok, float64(res.attempts)/float64(res.calls))
	if res.calls != 30000 {
		t.Errorf("%d calls, want 30000", res.calls)
	}
	if ok < 0.999 {
		t.Errorf("%.4f%% of calls succeeded, want >= 99.9%%", 100*ok)
	}
}

// TestBudgetFirstDecisionAfterLongHealth: calls recorded before the first
// retry decision must be spread over the time since the budget began, not
// all counted in the current window. Otherwise a client healthy for an hour
// meets its first outage with an allowance of 20% of an hour's calls.
func TestBudgetFirstDecisionAfterLongHealth(t *testing.T) {
	b, err := rebound.NewBudget(rebound.BudgetConfig{MinPerSecond: -1})
	if err != nil {
		t.Fatal(err)
	}
	for range 3600 * 100 { // an hour at 100 calls/s, with no failure
		b.RecordCall()
	}
	// The first retry decision, an hour later: 10 s of calls (1,000) are in
	// the window, so about 200 retries fit.
	n := countAllowed(b, time.Now().Add(time.Hour), 100_000)
	if n < 180 || n > 220 {
		t.Fatalf("first outage after an hour of health allowed %d retries, want ~200", n)
	}
}
