package rebound

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"
)

// RateLimiter is a rate limit the caller sets on a host: the part of
// golang.org/x/time/rate's *rate.Limiter a Pacer uses, so that one can be
// plugged in without this package importing it. AllowN takes a token at t
// if one is there; Wait blocks until one is (or fails at once when ctx's
// deadline comes first).
type RateLimiter interface {
	// AllowN reports whether n requests may start at t, taking their tokens.
	AllowN(t time.Time, n int) bool
	// Wait blocks until one request may start, or ctx ends first.
	Wait(ctx context.Context) error
}

// Defaults of PaceConfig.
const (
	DefaultPaceMaxLimit = 64              // PaceConfig.MaxLimit
	DefaultPaceMaxPause = 5 * time.Minute // PaceConfig.MaxPause
)

// PaceConfig sets a Pacer, the adaptive pacing of one host. Its zero value
// is the default: up to 64 requests in flight, starting from 8, as many
// callers waiting as may be in flight, pauses of at most 5 min.
type PaceConfig struct {
	// MaxLimit is the user's bound on requests in flight to the host: the
	// adaptive limit never exceeds it (a job's Concurrency, a CLI's
	// --max-per-host). 0 means 64.
	MaxLimit int
	// InitialLimit is where the adaptive limit starts; 0 means
	// min(8, MaxLimit). It grows by one per success until the first sign
	// of overload (slow start), then by one per limit's worth of successes.
	InitialLimit int
	// MaxQueue is the bulkhead: how many callers may wait in Acquire for
	// the host beyond those in flight; 0 means MaxLimit, negative means
	// none (Acquire refuses whenever TryAcquire would). A caller beyond it
	// is refused at once with a *BulkheadError (errors.Is ErrBulkheadFull),
	// so one slow host cannot take every worker or all memory.
	MaxQueue int
	// MaxPause caps how long a server's Retry-After, or an announced reset,
	// pauses the host; 0 means 5 min.
	MaxPause time.Duration
	// Fixed turns the adaptation off: the limit stays at MaxLimit. Pauses
	// and announced limits are still honoured.
	Fixed bool
	// Rate, when set, gives the host's user-set rate limit (e.g. a
	// *rate.Limiter from golang.org/x/time/rate), called once per Pacer
	// with its key.
	Rate func(key string) RateLimiter
	// Clock is the time source of Acquire's waits; nil means the system
	// clock.
	Clock Clock
}

// Validate reports a configuration that cannot work, as a *ConfigError.
func (c *PaceConfig) Validate() error {
	switch {
	case c.MaxLimit < 0:
		return &ConfigError{"PaceConfig.MaxLimit", "negative"}
	case c.InitialLimit < 0:
		return &ConfigError{"PaceConfig.InitialLimit", "negative"}
	case c.InitialLimit > c.maxLimit():
		return &ConfigError{"PaceConfig.InitialLimit", "above MaxLimit"}
	case c.MaxPause < 0:
		return &ConfigError{"PaceConfig.MaxPause", "negative"}
	}
	return nil
}

func (c *PaceConfig) maxLimit() int { return orDefault(c.MaxLimit, DefaultPaceMaxLimit) }

// ErrBulkheadFull matches a *BulkheadError.
var ErrBulkheadFull = errors.New("bulkhead full")

// BulkheadError is Acquire's refusal when as many callers already wait for
// the host as PaceConfig.MaxQueue allows. It is throttled (the caller's own
// side asks it to slow down), never a failure of the host, so it must not
// be charged to a breaker: no request was sent.
type BulkheadError struct {
	Key      string // the Pacer's key (its host), possibly empty
	InFlight int    // requests in flight when it was refused
	Queued   int    // callers waiting when it was refused
}

// Error says which host's bulkhead is full and by how much.
func (e *BulkheadError) Error() string {
	s := "rebound: bulkhead full"
	if e.Key != "" {
		s += " for " + e.Key
	}
	return s + ": " + strconv.Itoa(e.InFlight) + " in flight, " + strconv.Itoa(e.Queued) + " waiting; not sent"
}

// Is matches ErrBulkheadFull.
func (e *BulkheadError) Is(target error) bool { return target == ErrBulkheadFull }

// Class implements Classed: throttled, with the reason "bulkhead full".
func (e *BulkheadError) Class() Class { return Class{Kind: KindThrottled, Reason: "bulkhead full"} }

// PaceStats is a Pacer's state, for displays.
type PaceStats struct {
	Limit       int       // the current limit on requests in flight
	InFlight    int       // requests in flight
	Waiting     int       // callers waiting in Acquire
	Throttled   int64     // throttled answers seen so far
	PausedUntil time.Time // zero unless the host is paused
	Rate        float64   // requests per second the pacer keeps to; 0 when unpaced
}

// Pacer paces the requests to one host: it keeps a limit on the requests
// in flight that grows while they succeed and shrinks on throttling,
// timeouts and rising latency (AIMD with a latency gradient), pauses the
// whole host when a server asks for a wait (Retry-After), spaces requests
// to the rate a server announces (Announce), and, once throttled, to an
// adaptive rate, since a concurrency limit cannot see a rate limit when
// answers come back fast. Callers take a PacePermit before each request
// (Acquire, TryAcquire) and hand back its outcome (PacePermit.Done).
//
// Build it with NewPacer; it is safe for concurrent use. A permit through
// an idle Pacer costs no allocation.
type Pacer struct {
	key      string
	maxLimit float64
	maxQueue int
	maxPause time.Duration
	fixed    bool
	clock    Clock
	rl       RateLimiter

	mu        sync.Mutex
	limit     float64
	inflight  int
	waiting   int
	slowStart bool
	throttled int64
	changed   chan struct{} // closed when a slot frees; nil when nobody waits

	longLat time.Duration // latency smoothed over many answers: the baseline
	avgLat  time.Duration // latency smoothed over the last few answers
	lastCut time.Time     // last multiplicative decrease of the limit

	pausedUntil time.Time
	pauseEnded  time.Time // when the last pause ended (or ends)

	// The adaptive rate, engaged by throttling: at most one request every
	// interval (0: none). tat is when the next may start.
	interval      time.Duration
	rateSlowStart bool
	rateStepAt    time.Time     // last change of interval
	rateCutAt     time.Time     // last decrease of the rate
	badInterval   time.Duration // the interval the last throttle came at: approached slowly
	lastThrottle  time.Time
	tat           time.Time
	okWin         [10]int32 // successes per 100 ms over the last second
	okWinAt       time.Time // start of okWin's newest bucket
	okStart       time.Time // the first success

	annInterval time.Duration // announced spacing, until annUntil
	annUntil    time.Time
}

// NewPacer returns the Pacer of the host named key (key is for errors and
// the Rate factory). An invalid cfg is a *ConfigError.
func NewPacer(key string, cfg PaceConfig) (*Pacer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	max := cfg.maxLimit()
	init := cfg.InitialLimit
	if init == 0 {
		init = min(8, max)
	}
	q := cfg.MaxQueue
	switch {
	case q == 0:
		q = max
	case q < 0:
		q = 0
	}
	p := &Pacer{key: key, maxLimit: float64(max), maxQueue: q, fixed: cfg.Fixed,
		maxPause: cfg.MaxPause, clock: clockOr(cfg.Clock), limit: float64(init), slowStart: true}
	if p.maxPause == 0 {
		p.maxPause = DefaultPaceMaxPause
	}
	if p.fixed {
		p.limit = p.maxLimit
	}
	if cfg.Rate != nil {
		p.rl = cfg.Rate(key)
	}
	return p, nil
}

// PacePermit is the right to send one request (Acquire, TryAcquire). Hand
// it back with Done once the answer is judged; its zero value is a no-op.
type PacePermit struct {
	p     *Pacer
	start time.Time
}

// TryAcquire returns a permit at now if the host has room for a request;
// otherwise ok is false and retryAt is when to try again: the end of a
// pause or the next slot of a paced rate, or zero when a request in flight
// must end first (or the user-set rate refused).
func (p *Pacer) TryAcquire(now time.Time) (permit PacePermit, retryAt time.Time, ok bool) {
	p.mu.Lock()
	retryAt, ok = p.tryLocked(now)
	if ok && p.rl != nil && !p.rl.AllowN(now, 1) {
		p.inflight--
		ok = false
	}
	p.mu.Unlock()
	if !ok {
		return PacePermit{}, retryAt, false
	}
	return PacePermit{p, now}, time.Time{}, true
}

// tryLocked takes a slot at now if the host has room.
func (p *Pacer) tryLocked(now time.Time) (time.Time, bool) {
	if now.Before(p.pausedUntil) {
		return p.pausedUntil, false
	}
	if float64(p.inflight) >= p.limit && p.inflight > 0 {
		return time.Time{}, false
	}
	iv := p.interval
	if now.Before(p.annUntil) && p.annInterval > iv {
		iv = p.annInterval
	}
	if iv > 0 {
		if p.tat.After(now) {
			return p.tat, false
		}
		p.tat = now.Add(iv)
	}
	p.inflight++
	return time.Time{}, true
}

// Acquire waits until the host has room for a request and returns a permit,
// or fails: with ctx's error when it ends first, or at once with a
// *BulkheadError when PaceConfig.MaxQueue callers already wait. A user-set
// rate (PaceConfig.Rate) is waited for last, holding the slot.
func (p *Pacer) Acquire(ctx context.Context) (PacePermit, error) {
	for {
		now := p.clock.Now()
		p.mu.Lock()
		at, ok := p.tryLocked(now)
		if ok {
			p.mu.Unlock()
			permit := PacePermit{p, now}
			if p.rl != nil {
				if err := p.rl.Wait(ctx); err != nil {
					p.release()
					return PacePermit{}, err
				}
				permit.start = p.clock.Now()
			}
			return permit, nil
		}
		if p.waiting >= p.maxQueue {
			err := &BulkheadError{Key: p.key, InFlight: p.inflight, Queued: p.waiting}
			p.mu.Unlock()
			return PacePermit{}, err
		}
		p.waiting++
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		ch := p.changed
		p.mu.Unlock()
		var tc <-chan time.Time
		var t Timer
		if !at.IsZero() {
			t = p.clock.NewTimer(at.Sub(now))
			tc = t.C()
		}
		var err error
		select {
		case <-ctx.Done():
			err = context.Cause(ctx)
		case <-ch:
		case <-tc:
		}
		if t != nil {
			t.Stop()
		}
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
		if err != nil {
			return PacePermit{}, err
		}
	}
}

// release frees a slot and wakes the waiters.
func (p *Pacer) release() {
	p.mu.Lock()
	p.releaseLocked()
	p.mu.Unlock()
}

func (p *Pacer) releaseLocked() {
	p.inflight--
	p.wakeLocked()
}

func (p *Pacer) wakeLocked() {
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
}

// Done hands the permit back with the verdict on its request, judged at
// now (its latency is now minus when it was granted): success (a zero
// Class) may raise the limit, a throttled answer lowers it and, with a
// RetryAfter, pauses the whole host that long (capped by
// PaceConfig.MaxPause); a timeout lowers it. Other failures leave it be:
// they are the breaker's business. A permit whose caller gave up (a
// cancelled context) should be handed back with Release instead.
func (pp PacePermit) Done(now time.Time, c Class) {
	if pp.p == nil {
		return
	}
	p := pp.p
	p.mu.Lock()
	p.observeLocked(now, pp.start, c)
	p.releaseLocked()
	p.mu.Unlock()
}

// Observe feeds the verdict on one request, sent at start and judged at
// now, to the algorithm, as Done does, but keeps the slot: for a caller
// that sends its retries under one permit (the waits between them are not
// the server's latency, so each request says when it started).
func (pp *PacePermit) Observe(start, now time.Time, c Class) {
	if pp.p == nil {
		return
	}
	pp.p.mu.Lock()
	pp.p.observeLocked(now, start, c)
	pp.p.mu.Unlock()
}

// Release hands the permit back without a verdict (the caller gave up, or
// nothing was sent).
func (pp PacePermit) Release() {
	if pp.p != nil {
		pp.p.release()
	}
}

// Pacing tunables. A decrease answers only requests granted after the last
// one: a burst of 429s from one overload halves the limit once, not once
// per answer, and the limit reacts again within one round trip when the
// overload goes on (self-clocked, like TCP's once-per-window rule).
const (
	latencySlack   = 2 // the recent latency may reach this multiple of the long average before it counts as overload
	latencyFloor   = 5 * time.Millisecond
	rateStep       = 500 * time.Millisecond
	rateQuiet      = 10 * time.Second // without throttling this long, the rate slow-starts again
	minInterval    = 100 * time.Microsecond
	throttleFactor = 0.5
	rateFactor     = 0.7
	timeoutFactor  = 0.75
	latencyFactor  = 0.9
)

func (p *Pacer) observeLocked(now, start time.Time, c Class) {
	switch {
	case c.Kind == KindNone:
		p.onSuccess(now, start)
	case c.Kind == KindThrottled:
		p.throttled++
		p.lastThrottle = now
		if c.RetryAfter > 0 {
			p.pauseLocked(now.Add(min(c.RetryAfter, p.maxPause)))
		}
		p.cut(now, start, throttleFactor)
		p.slowRate(now, start)
	case c.Kind == KindTransient && c.Reason == "timeout":
		p.cut(now, start, timeoutFactor)
	}
}

func (p *Pacer) onSuccess(now, start time.Time) {
	lat := now.Sub(start)
	p.countOK(now)
	if p.avgLat == 0 {
		p.avgLat, p.longLat = lat, lat
	} else {
		p.avgLat += (lat - p.avgLat) / 8
		p.longLat += (lat - p.longLat) / 64
	}
	// A gradient against a long average, not the lowest latency ever seen
	// (one lucky answer, or a client busy elsewhere, would pin the limit
	// down); as Netflix's Gradient2 does.
	if p.avgLat > latencySlack*p.longLat && p.avgLat-p.longLat > latencyFloor {
		p.cut(now, start, latencyFactor) // queueing at the server: back off before it throttles
	} else if !p.fixed && float64(p.inflight) >= p.limit/2 {
		// Grow only a limit that is in use: an idle one says nothing.
		if p.slowStart {
			p.limit++
		} else {
			p.limit += 1 / p.limit
		}
		p.limit = min(p.limit, p.maxLimit)
	}
	if p.interval > 0 && now.Sub(p.rateStepAt) >= rateStep {
		if now.Sub(p.lastThrottle) >= rateQuiet {
			p.rateSlowStart, p.badInterval = true, 0
		}
		p.rateStepAt = now
		switch {
		case p.rateSlowStart:
			p.interval /= 2
		case p.interval <= p.badInterval*21/20 && p.interval >= p.badInterval*19/20:
			// Within 5% of the rate throttled last: every throttle
			// costs the host's whole Retry-After, so creep past it
			// (CUBIC's plateau, roughly), then probe faster beyond.
			p.interval = p.interval * 100 / 101
		default:
			p.interval = p.interval * 20 / 21 // about +5% per step
		}
		if p.interval < minInterval {
			p.interval = 0 // far above anything a server asked for: unpaced
		}
	}
}

// cut lowers the limit by factor, unless the request was granted before
// the last cut (which already answered its overload).
func (p *Pacer) cut(now, start time.Time, factor float64) {
	p.slowStart = false
	if p.fixed || !start.After(p.lastCut) {
		return
	}
	p.lastCut = now
	p.limit = max(p.limit*factor, 1)
}

// slowRate engages or lowers the adaptive rate after a throttled answer:
// to 90% of the rate the server answered with success since it last
// paused the host (at most the last second), and never up.
func (p *Pacer) slowRate(now, start time.Time) {
	if !start.After(p.rateCutAt) {
		return // granted before the last decrease, which answered it
	}
	p.rateCutAt, p.rateStepAt = now, now
	est, ok := p.okRate(now)
	if ok < 10 {
		// Too few answers to tell what the server allows.
		if p.interval == 0 {
			// Half of what the (now halved) limit allows at the latency
			// seen, doubling from there while answers succeed.
			iv := time.Second / time.Duration(max(ok, 1))
			if p.avgLat > 0 {
				iv = min(iv, time.Duration(2*float64(p.avgLat)/p.limit))
			}
			p.interval, p.rateSlowStart, p.badInterval = max(iv, minInterval), true, 0
			return
		}
		p.rateSlowStart, p.badInterval = false, p.interval
		p.interval = min(time.Duration(float64(p.interval)/rateFactor), time.Second)
		return
	}
	p.rateSlowStart = false
	estIv := time.Duration(float64(time.Second) / est)
	p.badInterval = max(estIv, p.interval)
	p.interval = min(max(time.Duration(float64(time.Second)/(est*0.9)), p.interval), time.Second)
}

// okRate is the rate of successes since the host's last pause ended,
// over at most the last second (at least one 100 ms bucket).
func (p *Pacer) okRate(now time.Time) (perSecond float64, count int) {
	p.rollWin(now)
	since := max(p.pauseEnded.Sub(now), p.okStart.Sub(now), -time.Second) // negative: how far back
	n := min(max(int(-since/okBucket)+1, 1), len(p.okWin))
	ok := 0
	for _, v := range p.okWin[:n] {
		ok += int(v)
	}
	span := now.Sub(p.okWinAt) + time.Duration(n-1)*okBucket
	return float64(ok) / max(span, okBucket).Seconds(), ok
}

// countOK counts a success in the current 100 ms bucket.
func (p *Pacer) countOK(now time.Time) {
	p.rollWin(now)
	p.okWin[0]++
}

func (p *Pacer) rollWin(now time.Time) {
	const bucket = okBucket
	if p.okWinAt.IsZero() {
		p.okWinAt, p.okStart = now, now
		return
	}
	n := int(now.Sub(p.okWinAt) / bucket)
	if n <= 0 {
		return
	}
	if n >= len(p.okWin) {
		p.okWin = [10]int32{}
	} else {
		copy(p.okWin[n:], p.okWin[:len(p.okWin)-n])
		clear(p.okWin[:n])
	}
	p.okWinAt = p.okWinAt.Add(time.Duration(n) * bucket)
}

const okBucket = 100 * time.Millisecond

func (p *Pacer) pauseLocked(until time.Time) {
	if until.After(p.pausedUntil) {
		p.pausedUntil, p.pauseEnded = until, until
		p.tat = until
	}
}

// Pause keeps every request to the host from starting before until (at
// most PaceConfig.MaxPause from now): what a Retry-After asks of the host.
// A later pause already set stays.
func (p *Pacer) Pause(now, until time.Time) {
	p.mu.Lock()
	p.pauseLocked(minTime(until, now.Add(p.maxPause)))
	p.mu.Unlock()
}

// PausedUntil returns when the host's pause ends, if it is paused at now.
func (p *Pacer) PausedUntil(now time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pausedUntil, now.Before(p.pausedUntil)
}

// Announce paces the host to what the server announced at now: remaining
// requests allowed until reset from now (RateLimit, X-RateLimit-Remaining
// and -Reset), or its quota per window (RateLimit-Policy, given as
// remaining=quota, reset=window). Requests are spread evenly over the
// rest of the window; none remaining pauses the host until the reset
// (capped by PaceConfig.MaxPause). A reset that is not positive, or a
// negative remaining, is ignored.
func (p *Pacer) Announce(now time.Time, remaining int, reset time.Duration) {
	if reset <= 0 || remaining < 0 {
		return
	}
	reset = min(reset, p.maxPause)
	p.mu.Lock()
	defer p.mu.Unlock()
	if remaining == 0 {
		p.pauseLocked(now.Add(reset))
		return
	}
	p.annInterval = reset / time.Duration(remaining)
	p.annUntil = now.Add(reset)
}

// Stats returns the pacer's state at now.
func (p *Pacer) Stats(now time.Time) PaceStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PaceStats{Limit: int(p.limit), InFlight: p.inflight, Waiting: p.waiting, Throttled: p.throttled}
	if now.Before(p.pausedUntil) {
		s.PausedUntil = p.pausedUntil
	}
	iv := p.interval
	if now.Before(p.annUntil) && p.annInterval > iv {
		iv = p.annInterval
	}
	if iv > 0 {
		s.Rate = float64(time.Second) / float64(iv)
	}
	return s
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// PacerSet keeps one Pacer per key (a host), made from one PaceConfig, for
// as many keys as calls name. It is safe for concurrent use; its zero
// value is not: build it with NewPacerSet.
type PacerSet struct {
	cfg PaceConfig
	m   sync.Map // key -> *Pacer
}

// NewPacerSet returns an empty set whose pacers follow cfg. An invalid cfg
// is a *ConfigError.
func NewPacerSet(cfg PaceConfig) (*PacerSet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &PacerSet{cfg: cfg}, nil
}

// Get returns the key's Pacer, making it on first use. It does not
// allocate once the key has a Pacer.
func (s *PacerSet) Get(key string) *Pacer {
	if v, ok := s.m.Load(key); ok {
		return v.(*Pacer)
	}
	p, _ := NewPacer(key, s.cfg) // validated
	v, _ := s.m.LoadOrStore(key, p)
	return v.(*Pacer)
}

// Each calls f for every key's Pacer, for displays.
func (s *PacerSet) Each(f func(key string, p *Pacer)) {
	s.m.Range(func(k, v any) bool {
		f(k.(string), v.(*Pacer))
		return true
	})
}
