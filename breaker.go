package rebound

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// State is a circuit breaker's state.
type State uint8

const (
	// StateClosed lets every call through and counts failures.
	StateClosed State = iota
	// StateOpen rejects every call with an *OpenError until the open period ends.
	StateOpen
	// StateHalfOpen lets a bounded number of probe calls through; a success
	// closes the breaker, a failure opens it again.
	StateHalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateHalfOpen:
		return "half-open"
	}
	return "closed"
}

// BreakerConfig sets a Breaker. Its zero value is the mission's default:
// open after 5 consecutive failed calls, first for 1 s, then let one probe
// through; its success closes the breaker, its failure opens it again for
// 1.2 times as long (1 s, 1.2 s, 1.44 s, ... up to 60 s).
//
// What counts. Only failures that show the service failing count: transient
// ones (a refused or reset connection, a timeout, a 502, a 504, a 503
// without Retry-After). A throttled answer (a 429, a 503 with Retry-After, an error
// marked Throttled) is a request to slow down from a service that is up, not
// a sign that it is failing: it never opens the breaker, nor resets its
// count (pacing, and Retry's wait for the Retry-After, answer it instead).
// A permanent error (a 4xx, a bad certificate) is the caller's fault and
// shows the service is alive, so it counts as a success. A call cancelled by
// its caller, and an error no rule recognised (Class.Unknown: a plain
// application error), count as nothing. While half-open, a probe that ends
// throttled, cancelled or unrecognised decides nothing: its place goes to
// the next caller.
//
// Open periods. The first opening lasts FirstOpenFor (1 s), short enough
// that calls flow again soon after a brief outage ends. Each probe that
// fails opens the breaker again for OpenGrowth (1.2) times the last period,
// up to OpenFor (60 s), so a service that stays down is probed less and
// less often; a close starts over from FirstOpenFor. With the defaults a
// breaker is probed 8 times in the first 20 s of an outage and lets calls
// through again at most about 5 s after an outage of 20 s ends (the next
// period is 1 s plus 0.2 times the outage so far).
//
// Calls, not attempts. The breaker counts a logical call's failures once: the
// retries of one call (Retry, Pipeline, reboundhttp ask for them with
// AllowRetry) add nothing to the count while the breaker is closed, and a
// retry's success resets it. So one call to one broken URL, however many
// attempts it makes, never opens the breaker by itself: FailureThreshold
// counts distinct failed calls. A service that fails every request still
// opens the breaker after FailureThreshold calls (5 by default): at most
// FailureThreshold × attempts per call requests (25 with Retry's default of
// 5 attempts; 21 for calls made one after another, since the call whose
// first failure opens the breaker stops at once). In failure-rate mode the
// window likewise holds a call's first failure, and its retries' successes.
// While half-open, every attempt is a probe and a failed one opens the
// breaker again.
type BreakerConfig struct {
	// Name appears in errors, logs and state-change events.
	Name string

	// FailureThreshold is the number of consecutive failed calls that opens
	// the breaker in consecutive mode; 0 means 5.
	FailureThreshold int

	// FailureRate, when above 0, selects failure-rate mode: the breaker opens
	// when at least this fraction (0 < FailureRate <= 1) of the calls in the
	// sliding window failed, once the window holds MinCalls calls.
	FailureRate float64
	// WindowCalls is the size of a count-based window (the last N calls);
	// 0 means 100. Ignored when WindowTime is set.
	WindowCalls int
	// WindowTime selects a time-based window (the calls of the last
	// WindowTime, in 10 buckets). It reads the clock on every call.
	WindowTime time.Duration
	// MinCalls is how many calls the window needs before the rate counts;
	// 0 means 10. With a count window it must not exceed WindowCalls.
	MinCalls int

	// OpenFor is the longest the breaker stays open before it lets a probe
	// through (the open period after many failed probes); 0 means 60 s.
	OpenFor time.Duration
	// FirstOpenFor is how long the breaker stays open when it opens from
	// closed; 0 means 1 s, or OpenFor when that is shorter. Set it to
	// OpenFor for a fixed open period. Larger than OpenFor is a
	// *ConfigError.
	FirstOpenFor time.Duration
	// OpenGrowth multiplies the open period each time a probe fails and the
	// breaker opens again, up to OpenFor; 0 means 1.2. It must be at least
	// 1 (1: every open period lasts FirstOpenFor).
	OpenGrowth float64
	// HalfOpenProbes is how many calls a half-open breaker lets through at
	// once; 0 means 1. SuccessThreshold successful probes close the
	// breaker; any probe that fails opens it again, for a longer period.
	HalfOpenProbes int
	// SuccessThreshold is how many probe successes close the breaker; 0 means 1.
	SuccessThreshold int

	// OnStateChange, if set, is called after every transition, outside any lock.
	OnStateChange func(name string, from, to State)
	// Logger, if set, receives a record for every transition.
	Logger *slog.Logger
	// Clock is the time source; nil means the system clock.
	Clock Clock
}

func (c *BreakerConfig) validate() error {
	switch {
	case c.FailureThreshold < 0:
		return &ConfigError{"BreakerConfig.FailureThreshold", "negative"}
	case c.FailureRate < 0 || c.FailureRate > 1 || math.IsNaN(c.FailureRate):
		return &ConfigError{"BreakerConfig.FailureRate", "must be in (0, 1], or 0 for consecutive mode"}
	case c.WindowCalls < 0:
		return &ConfigError{"BreakerConfig.WindowCalls", "negative"}
	case c.WindowTime < 0:
		return &ConfigError{"BreakerConfig.WindowTime", "negative"}
	case c.MinCalls < 0:
		return &ConfigError{"BreakerConfig.MinCalls", "negative"}
	case c.OpenFor < 0:
		return &ConfigError{"BreakerConfig.OpenFor", "negative"}
	case c.FirstOpenFor < 0:
		return &ConfigError{"BreakerConfig.FirstOpenFor", "negative"}
	case c.FirstOpenFor > 0 && c.OpenFor > 0 && c.FirstOpenFor > c.OpenFor,
		c.FirstOpenFor > defaultOpenFor && c.OpenFor == 0:
		return &ConfigError{"BreakerConfig.FirstOpenFor", "longer than OpenFor, the longest open period"}
	case c.OpenGrowth != 0 && !(c.OpenGrowth >= 1) || math.IsInf(c.OpenGrowth, 0):
		return &ConfigError{"BreakerConfig.OpenGrowth", "must be at least 1 (and finite), or 0 for the default 1.2"}
	case c.HalfOpenProbes < 0:
		return &ConfigError{"BreakerConfig.HalfOpenProbes", "negative"}
	case c.SuccessThreshold < 0:
		return &ConfigError{"BreakerConfig.SuccessThreshold", "negative"}
	case c.SuccessThreshold > max(c.HalfOpenProbes, 1):
		return &ConfigError{"BreakerConfig.SuccessThreshold", "larger than HalfOpenProbes: the breaker could never close"}
	case c.FailureRate > 0 && c.WindowTime == 0 && orDefault(c.MinCalls, 10) > orDefault(c.WindowCalls, 100):
		// A count window never holds more than WindowCalls calls, so the
		// rate would never count and the breaker never open.
		return &ConfigError{"BreakerConfig.MinCalls", "larger than WindowCalls: the breaker could never open"}
	}
	return nil
}

// The open periods' defaults (see BreakerConfig).
const (
	defaultOpenFor      = 60 * time.Second
	defaultFirstOpenFor = time.Second
	defaultOpenGrowth   = 1.2
)

// orDefault returns v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Breaker is a circuit breaker: after repeated failures it rejects calls at
// once (ErrOpen) for a while instead of burying a failing service, then lets
// a probe through to see whether it has recovered. Safe for concurrent use.
// Make it with NewBreaker or MustBreaker to choose its settings; a zero
// Breaker is ready to use with the default BreakerConfig and the system
// clock, as a zero rate.Limiter is.
//
// Deciding and recording a call in the closed state takes no lock, reads no
// clock (in consecutive mode and count-window mode) and allocates nothing; a
// rejection is two atomic loads. State changes take a mutex, and the end of the
// open period is a timer (Clock.AfterFunc), so rejecting needs no clock either.
// The length of the next open period is worked out when the breaker opens
// (see BreakerConfig's open periods); nothing runs in between. A generation
// number in the state word drops the verdicts of calls that began before a
// state change.
type Breaker struct {
	word   atomic.Uint64 // state in the low 2 bits, generation above
	consec atomic.Int64  // consecutive failures (consecutive mode)
	_      [48]byte      // the hot words above on their own cache line

	probes    atomic.Int64 // probes admitted in this half-open period
	period    atomic.Int64 // the current (or last) open period, ns; 0 before the first opening
	successes atomic.Int64 // probe successes in this half-open period
	openErr   atomic.Pointer[OpenError]
	busyErr   *OpenError // rejection while half-open probes are all out

	window window // failure-rate mode; nil in consecutive mode

	cfg   BreakerConfig
	clock Clock
	mu    sync.Mutex // serialises transitions
	timer Timer
}

// NewBreaker returns a closed Breaker, or a *ConfigError.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.FailureThreshold == 0 {
		cfg.FailureThreshold = 5
	}
	if cfg.OpenFor == 0 {
		cfg.OpenFor = defaultOpenFor
	}
	if cfg.FirstOpenFor == 0 {
		cfg.FirstOpenFor = min(defaultFirstOpenFor, cfg.OpenFor)
	}
	if cfg.OpenGrowth == 0 {
		cfg.OpenGrowth = defaultOpenGrowth
	}
	if cfg.HalfOpenProbes == 0 {
		cfg.HalfOpenProbes = 1
	}
	if cfg.SuccessThreshold == 0 {
		cfg.SuccessThreshold = 1
	}
	if cfg.MinCalls == 0 {
		cfg.MinCalls = 10
	}
	b := &Breaker{cfg: cfg, clock: clockOr(cfg.Clock)}
	b.busyErr = &OpenError{Name: cfg.Name, clock: b.clock}
	if cfg.FailureRate > 0 {
		if cfg.WindowTime > 0 {
			b.window = newTimeWindow(cfg.WindowTime, b.clock)
		} else {
			n := cfg.WindowCalls
			if n == 0 {
				n = 100
			}
			b.window = newCountWindow(n)
		}
	}
	return b, nil
}

// MustBreaker is NewBreaker for configurations known to be valid, such as
// literals in package variables; it panics on a *ConfigError.
func MustBreaker(cfg BreakerConfig) *Breaker {
	b, err := NewBreaker(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// Name returns the configured name.
func (b *Breaker) Name() string { return b.cfg.Name }

// State returns the current state.
func (b *Breaker) State() State { return State(b.word.Load() & 3) }

// OpenFor returns the breaker's current open period: while open, how long
// this open period lasts; while half-open, the period that just ended; while
// closed, the period the next opening would last (BreakerConfig.FirstOpenFor).
// A caller refused while the probe is out (OpenError.Until is zero) can wait
// as long: by then the breaker is closed, or open again with a known end.
// It is never more than BreakerConfig.OpenFor, the longest period.
func (b *Breaker) OpenFor() time.Duration {
	if b.State() != StateClosed {
		if p := b.period.Load(); p > 0 {
			return time.Duration(p)
		}
	}
	return b.firstOpenFor()
}

// NextProbe returns when an open breaker lets its next probe through (the
// end of its open period, on its Clock); zero when it is not open.
func (b *Breaker) NextProbe() time.Time {
	if b.State() != StateOpen {
		return time.Time{}
	}
	if e := b.openErr.Load(); e != nil { // stored before the state word
		return e.Until
	}
	return time.Time{}
}

// The settings below read a zero Breaker's zero config as the defaults, as
// NewBreaker does; they are read on failures and transitions only.

func (b *Breaker) failureThreshold() int64 { return int64(orDefault(b.cfg.FailureThreshold, 5)) }
func (b *Breaker) halfOpenProbes() int64   { return int64(orDefault(b.cfg.HalfOpenProbes, 1)) }
func (b *Breaker) successThreshold() int64 { return int64(orDefault(b.cfg.SuccessThreshold, 1)) }
func (b *Breaker) clk() Clock              { return clockOr(b.clock) }

func (b *Breaker) maxOpenFor() time.Duration {
	if b.cfg.OpenFor == 0 {
		return defaultOpenFor
	}
	return b.cfg.OpenFor
}

func (b *Breaker) firstOpenFor() time.Duration {
	if b.cfg.FirstOpenFor == 0 {
		return min(defaultFirstOpenFor, b.maxOpenFor())
	}
	return b.cfg.FirstOpenFor
}

// nextOpenFor is the length of an open period that begins now, from the
// state the breaker leaves: the first period from closed, the last one
// grown by OpenGrowth (up to OpenFor) after a failed probe. Called under mu.
func (b *Breaker) nextOpenFor(from State) time.Duration {
	last := time.Duration(b.period.Load())
	if from != StateHalfOpen || last <= 0 {
		return b.firstOpenFor()
	}
	growth := b.cfg.OpenGrowth
	if growth == 0 {
		growth = defaultOpenGrowth
	}
	longest := b.maxOpenFor()
	if next := float64(last) * growth; next < float64(longest) {
		return max(time.Duration(next), last)
	}
	return max(longest, last)
}

// busy returns the rejection while half-open probes are all out.
func (b *Breaker) busy() error {
	if b.busyErr == nil { // a zero Breaker
		return &OpenError{Name: b.cfg.Name}
	}
	return b.busyErr
}

// Permit is the right to make one attempt, from Allow or AllowRetry. Report
// its outcome with Done exactly once.
type Permit struct {
	b     *Breaker
	word  uint64
	retry bool // a later attempt of a call whose failure already counted
}

// Allow asks to make a call (its first attempt). It returns an *OpenError
// (errors.Is ErrOpen) when the breaker is open, or half-open with all its
// probes out.
func (b *Breaker) Allow() (Permit, error) { return b.allow(false) }

// AllowRetry is Allow for a retry: a later attempt of a call whose earlier
// attempt failed and was reported with Done. While the breaker is closed, a
// retry's failure is not counted (the call's first failure was), so one
// call never opens the breaker by itself; its success still resets the
// count. While half-open, a retry is a probe like any other attempt.
func (b *Breaker) AllowRetry() (Permit, error) { return b.allow(true) }

func (b *Breaker) allow(retry bool) (Permit, error) {
	w := b.word.Load()
	switch State(w & 3) {
	case StateClosed:
		return Permit{b, w, retry}, nil
	case StateOpen:
		return Permit{}, b.openErr.Load()
	}
	for {
		n := b.probes.Load()
		if n >= b.halfOpenProbes() {
			return Permit{}, b.busy()
		}
		if b.probes.CompareAndSwap(n, n+1) {
			if b.word.Load() != w { // the period ended while we counted
				return Permit{}, b.busy()
			}
			return Permit{b, w, retry}, nil
		}
	}
}

// Done reports the outcome of a permitted call: err is what the call
// returned and c its Class (Classify(err), or any Classifier's verdict).
func (p Permit) Done(err error, c Class) {
	b := p.b
	switch {
	case b == nil:
	case err == nil:
		// The common case: a success with nothing to reset makes no call.
		if State(p.word&3) != StateClosed || b.window != nil || b.consec.Load() != 0 {
			b.onSuccess(p.word)
		}
	default:
		b.done(p.word, p.retry, err, c)
	}
}

// done is Done for a failed attempt.
func (b *Breaker) done(w uint64, retry bool, err error, c Class) {
	switch {
	case c.Kind == KindPermanent && !errors.Is(err, context.Canceled):
		b.onSuccess(w)
	case c.Kind == KindThrottled:
		// A request to slow down from a service that is up: no verdict
		// either way (see BreakerConfig). A probe's place goes to the next
		// caller.
		if State(w&3) == StateHalfOpen && b.word.Load() == w {
			b.probes.Add(-1)
		}
	case c.Kind.Retryable() && !c.Unknown && !(retry && State(w&3) == StateClosed):
		b.onFailure(w)
	case c.Kind.Retryable() && !c.Unknown:
		// A retry's failure while closed: its call's first failure counted.
	default: // cancelled by the caller, or unrecognised: no verdict on the server
		if State(w&3) == StateHalfOpen && b.word.Load() == w {
			b.probes.Add(-1)
		}
	}
}

func (b *Breaker) onSuccess(w uint64) {
	switch State(w & 3) {
	case StateClosed:
		if b.window != nil {
			if b.word.Load() == w { // a call from an earlier period does not count
				b.window.record(false)
			}
			return
		}
		// Read before write: the common case (no failures) stays read-only,
		// so parallel callers do not fight over the cache line.
		if b.consec.Load() != 0 && b.word.Load() == w {
			b.consec.Store(0)
		}
	case StateHalfOpen:
		if b.word.Load() == w && b.successes.Add(1) >= b.successThreshold() {
			b.transition(w, StateClosed)
		}
	}
}

func (b *Breaker) onFailure(w uint64) {
	switch State(w & 3) {
	case StateClosed:
		if b.word.Load() != w {
			// The call began before the breaker last changed state: its
			// failure says nothing about the current closed period.
			return
		}
		if b.window != nil {
			fails, total := b.window.record(true)
			if total >= int64(b.cfg.MinCalls) && float64(fails) >= b.cfg.FailureRate*float64(total) {
				b.transition(w, StateOpen)
			}
			return
		}
		if b.consec.Add(1) >= b.failureThreshold() {
			b.transition(w, StateOpen)
		}
	case StateHalfOpen:
		b.transition(w, StateOpen)
	}
}

// transition moves the breaker from the state word from to the state to,
// unless another transition got there first.
func (b *Breaker) transition(from uint64, to State) {
	b.mu.Lock()
	if b.word.Load() != from {
		b.mu.Unlock()
		return
	}
	next := (from>>2+1)<<2 | uint64(to)
	switch to {
	case StateOpen:
		clock, openFor := b.clk(), b.nextOpenFor(State(from&3))
		b.period.Store(int64(openFor))
		until := clock.Now().Add(openFor)
		b.openErr.Store(&OpenError{Name: b.cfg.Name, Until: until, clock: clock})
		b.timer = clock.AfterFunc(openFor, func() { b.transition(next, StateHalfOpen) })
	case StateHalfOpen:
		b.probes.Store(0)
		b.successes.Store(0)
	case StateClosed:
		b.consec.Store(0)
		if b.window != nil {
			b.window.reset()
		}
	}
	b.word.Store(next)
	b.mu.Unlock()

	fromState := State(from & 3)
	if l := b.cfg.Logger; l != nil {
		l.LogAttrs(context.Background(), slog.LevelWarn, "breaker state change",
			slog.String("breaker", b.cfg.Name), slog.String("from", fromState.String()), slog.String("to", to.String()))
	}
	if f := b.cfg.OnStateChange; f != nil {
		f(b.cfg.Name, fromState, to)
	}
}

// Do runs fn if the breaker allows it, and records the outcome with Classify.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	// The closed and open states are answered here, without the call to
	// Allow (which cannot be inlined): a rejection and a closed-state call
	// are the paths that must cost least. Half-open goes through Allow.
	w := b.word.Load()
	var p Permit
	switch State(w & 3) {
	case StateClosed:
		p = Permit{b: b, word: w}
	case StateOpen:
		return b.openErr.Load()
	default:
		var err error
		if p, err = b.Allow(); err != nil {
			return err
		}
	}
	err := fn(ctx)
	if err == nil {
		p.Done(nil, Class{})
		return nil
	}
	p.Done(err, Classify(err))
	return err
}

// Stop cancels the timer of an open breaker, for a clean shutdown. The
// breaker then stays open until the next transition.
func (b *Breaker) Stop() {
	b.mu.Lock()
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
}

// window counts failures over the recent calls, for failure-rate mode.
type window interface {
	// record adds one outcome and returns the failures and calls now in the window.
	record(failed bool) (fails, total int64)
	reset()
}

// countWindow holds the outcomes of the last n calls in a ring of atomics.
type countWindow struct {
	next  atomic.Uint64
	fails atomic.Int64
	total atomic.Int64
	slots []atomic.Uint32 // 0 empty, 1 success, 2 failure
}

func newCountWindow(n int) *countWindow { return &countWindow{slots: make([]atomic.Uint32, n)} }

func (w *countWindow) record(failed bool) (int64, int64) {
	out := uint32(1)
	if failed {
		out = 2
	}
	i := w.next.Add(1) - 1
	old := w.slots[i%uint64(len(w.slots))].Swap(out)
	if old == 0 {
		w.total.Add(1)
	}
	var d int64
	if failed {
		d++
	}
	if old == 2 {
		d--
	}
	fails := w.fails.Load()
	if d != 0 {
		fails = w.fails.Add(d)
	}
	return fails, w.total.Load()
}

func (w *countWindow) reset() {
	for i := range w.slots {
		w.slots[i].Store(0)
	}
	w.fails.Store(0)
	w.total.Store(0)
}

// timeWindow counts outcomes of the last span in 10 buckets. A bucket whose
// epoch is stale is reset by the first call that lands in it.
type timeWindow struct {
	span, size time.Duration
	clock      Clock
	buckets    [10]struct {
		epoch      atomic.Int64
		fails, oks atomic.Int64
		_          [40]byte
	}
}

func newTimeWindow(span time.Duration, c Clock) *timeWindow {
	size := span / 10
	if size <= 0 {
		size = 1
	}
	w := &timeWindow{span: span, size: size, clock: c}
	w.reset()
	return w
}

func (w *timeWindow) record(failed bool) (int64, int64) {
	epoch := w.clock.Now().UnixNano() / int64(w.size)
	bk := &w.buckets[epoch%10]
	if e := bk.epoch.Load(); e != epoch && bk.epoch.CompareAndSwap(e, epoch) {
		bk.fails.Store(0)
		bk.oks.Store(0)
	}
	if failed {
		bk.fails.Add(1)
	} else {
		bk.oks.Add(1)
	}
	var fails, total int64
	for i := range w.buckets {
		b := &w.buckets[i]
		if epoch-b.epoch.Load() < 10 {
			f := b.fails.Load()
			fails += f
			total += f + b.oks.Load()
		}
	}
	return fails, total
}

func (w *timeWindow) reset() {
	for i := range w.buckets {
		w.buckets[i].epoch.Store(math.MinInt64 / 2)
		w.buckets[i].fails.Store(0)
		w.buckets[i].oks.Store(0)
	}
}
