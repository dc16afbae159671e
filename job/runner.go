package job

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/internal/redact"
	"golang.org/x/time/rate"
)

// Config sets a Run. Job and Store are required; every other zero value is
// the documented default, and a negative number or duration is a
// *rebound.ConfigError.
//
// An attempt is counted when a request may have been sent: an item refused
// before sending (a breaker open or busy with its probe, its host throttled)
// is put off in the store with its attempt given back (Store.Defer), so
// such refusals never use up an item's attempts.
//
// A throttled failure (a 429, a 503 with Retry-After, rebound.Throttled)
// whose wait is longer than 2 s is not sat out in the worker, which would
// keep it from the items of other hosts: the item is put off in the store
// until then, and every other item of its BreakerKey is put off unsent too
// when its turn comes, until the same time (without a BreakerKey only the
// throttled item waits: nothing tells which others share its service).
// Shorter waits, and the backoff
// of transient failures (bounded by the breaker), are waited out in the
// worker.
type Config struct {
	// Job names the job in the store.
	Job string
	// Store keeps the job's progress.
	Store checkpoint.Store
	// Concurrency is how many items run at once; 0 means 8. It also bounds
	// the items that may be sent again after a crash: a worker takes its next
	// item only once the last one's outcome is durable.
	Concurrency int
	// MaxAttempts is the most attempts per item, across retries and restarts;
	// 0 means Retry.MaxAttempts, and 5 when that is 0 too. An item out of
	// attempts is dead. It is the one count of attempts: Retry.MaxAttempts
	// may say the same or nothing, and a different value is a
	// *rebound.ConfigError rather than silently overridden.
	MaxAttempts int
	// Retry is the in-run retry policy for each item (backoff, Retry-After
	// cap, classifier, logger); each run retries an item for its remaining
	// attempts (see MaxAttempts), on Clock and within Budget below. Its own
	// Clock and Budget stand in for those when they are nil; set in both
	// places (differently, for Budget) they are a *rebound.ConfigError, never
	// silently overridden.
	Retry rebound.Retry
	// Breakers and BreakerKey put the items behind circuit breakers. With
	// neither set, no item has a breaker: a job has no job-wide breaker by
	// default, so one failing item never holds back the others. BreakerKey
	// picks an item's breaker (e.g. its URL's host) from Breakers, or from a
	// set with the default BreakerConfig (5 failed items in a row, open
	// 1 s, growing to 60 s while probes fail) when Breakers is nil.
	// Breakers without BreakerKey is one breaker for all the items: for a
	// job that calls a single service.
	//
	// A breaker counts an item once, however many attempts it makes, and
	// counts only failures that show the service failing (see
	// rebound.BreakerConfig): a handler's plain error that no rule
	// recognises (rebound.Class.Unknown) is retried but never opens a
	// breaker; wrap it with rebound.Transient to make it count, as a 503
	// or a reset connection does.
	Breakers *rebound.BreakerSet
	// BreakerKey picks an item's breaker; see Breakers.
	BreakerKey func(checkpoint.Item) string
	// MaxPerHost bounds the items in flight per BreakerKey (a host); 0
	// means Concurrency. Within it, each key's limit adapts (see
	// rebound.Pacer): it grows while items succeed and shrinks on
	// throttling, timeouts and rising latency; a Retry-After pauses all the
	// key's items, and limits a handler reports (Task.Announce) are kept
	// to. An item whose key has no room waits for it without taking an
	// attempt: briefly (at most 2 s) in its worker, else put off unsent in
	// the store. Without a BreakerKey the pacing does not adapt: the whole
	// job is one key, for MaxPerHost and Rate only.
	MaxPerHost int
	// Rate caps the requests per second of each BreakerKey (a host), with
	// bursts of up to Burst; 0 means no cap. It is a token bucket
	// (golang.org/x/time/rate): a burst of Burst items may start at once
	// after a quiet spell, then one every 1/Rate s.
	Rate float64
	// Burst is Rate's bucket size; 0 means 1 (evenly spaced).
	Burst int
	// MaxWaitingPerHost is the bulkhead: how many workers may wait for one
	// key's pacing at once; 0 means Concurrency, negative means none wait.
	// Further items of that key are put off unsent (a poll interval
	// later). In a job that calls several hosts, set it below Concurrency
	// so that one slow or paced host cannot take every worker; each
	// put-off is a store write, which is why the default lets a job that
	// calls one host keep its workers waiting instead.
	MaxWaitingPerHost int
	// Pacers, when set, is the pacing of each key, used as it is (then
	// MaxPerHost, Rate, Burst and MaxWaitingPerHost are ignored); share it
	// to watch it (rebound.PacerSet.Each). See NewPacers.
	Pacers *rebound.PacerSet
	// DisablePacing turns the per-key pacing off.
	DisablePacing bool
	// Budget caps retries across all items; nil means the default budget
	// (retries add at most 20% to the calls of the last 10 s).
	Budget *rebound.Budget
	// Timeout bounds each attempt; 0 means none beyond the handler's own.
	Timeout time.Duration
	// LeaseTTL is how long an item stays leased to this worker without a
	// heartbeat; 0 means 2 min. Leases are renewed every LeaseTTL/3.
	LeaseTTL time.Duration
	// Worker names this worker in the store; empty means host-pid-random.
	Worker string
	// Grace is how long in-flight items may run on after ctx is cancelled;
	// 0 means 10 s. Items still running then are abandoned and come back on
	// the next run (their idempotency key makes the replay harmless).
	Grace time.Duration
	// PollInterval is how often an idle worker looks for work that other
	// workers or timers will release; 0 means 250 ms.
	PollInterval time.Duration
	// OnEvent, if set, receives every item event. It is called from the
	// worker goroutines and must be safe for concurrent use and quick.
	OnEvent func(Event)
	// Logger, if set, receives a record per item outcome (Info done, Warn dead).
	Logger *slog.Logger
	// Clock is the time source for waits; nil means the system clock.
	Clock rebound.Clock
}

// EventType says what happened to an item.
type EventType string

// Event types.
const (
	EventStart  EventType = "start"  // an attempt began
	EventRetry  EventType = "retry"  // an attempt failed and another follows after Wait
	EventDone   EventType = "done"   // the item succeeded
	EventFailed EventType = "failed" // the item will be tried again later (breaker open, host throttled, budget, interrupted)
	EventDead   EventType = "dead"   // the item failed for good
)

// Event is one thing that happened to an item. Its shared fields (Type,
// Attempt, Wait, Err) have the names and types of transfer.Event's, so one
// hook can report both. It has no JSON form of its own: the command line's
// --json events are built from it, with waits in milliseconds (wait_ms).
type Event struct {
	// Type says what happened.
	Type EventType
	// Job is the job's name (Config.Job).
	Job string
	// ID is the item's ID within Job.
	ID string
	// Attempt counts the item's attempts across runs, from 1: the attempt
	// that starts (EventStart) or failed (EventRetry), or the total so far
	// (EventDone, EventFailed, EventDead).
	Attempt int
	// Kind is the failure's class as a rebound.Kind name, e.g. "transient";
	// empty for EventStart and EventDone.
	Kind string
	// Err is the failure, nil for EventStart and EventDone. Its text is
	// redacted (no URL credentials or query, no control characters); for
	// EventRetry it wraps the handler's error, so errors.Is and errors.As
	// see the cause. For EventFailed and EventDead it is the reason the
	// store keeps, as text.
	Err error
	// Wait is the pause before the next attempt (EventRetry only).
	Wait time.Duration
}

// redactedError shows an error's redacted text and unwraps to the error.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

// reasonErr is the error for a reason the store keeps as text; nil for "".
func reasonErr(text string) error {
	if text == "" {
		return nil
	}
	return errors.New(text)
}

// Task is the item a Handler works on.
type Task struct {
	// Job is the name of the job the item belongs to.
	Job string
	// ID is the item's ID: unique in the job and stable across runs.
	ID string
	// Payload is what was stored with the item (a manifest line).
	Payload []byte
	// Attempt counts this item's attempts across runs, from 1.
	Attempt int
	// Key is the item's idempotency key (see IdempotencyKey): the same for
	// every attempt, crash and resume of this job, and unlike the keys of
	// any other job. Send it as Idempotency-Key.
	Key string
	// Progress is the item's last saved partial-work record.
	Progress checkpoint.Progress

	store  checkpoint.Store
	lease  int64
	putOff time.Time // when a long throttled wait ends (errPutOff)
	clock  rebound.Clock
	pacer  *rebound.Pacer // the item's key's pacing; nil when off or unkeyed
}

// Announce tells the pacing of the item's host what its server announced:
// remaining requests allowed over the next span (see
// rebound.Pacer.Announce and reboundhttp.ParseRateLimit). A no-op without
// a BreakerKey or with pacing off.
func (t *Task) Announce(remaining int, span time.Duration) {
	if t.pacer != nil {
		t.pacer.Announce(t.clock.Now(), remaining, span)
	}
}

// SaveProgress records partial work so a retry or a restart resumes from it.
func (t *Task) SaveProgress(ctx context.Context, p checkpoint.Progress) error {
	t.Progress = p
	return t.store.SaveProgress(ctx, t.Job, t.ID, t.lease, p)
}

// Handler does one attempt of one item. Its error is classified with the
// Retry's classifier (rebound.Classify by default): mark errors with
// rebound.Permanent to make the item dead at once.
type Handler func(ctx context.Context, t *Task) error

// Summary is what a Run did.
type Summary struct {
	// Done, Dead and Failed count this run's item outcomes; Retries its
	// in-run retries; Reclaimed the items taken back from a crashed run.
	Done, Dead, Failed, Retries, Reclaimed int64
	// Stats is the job's state at the end of the run.
	Stats checkpoint.Stats
	// Elapsed is the run's duration.
	Elapsed time.Duration
}

// ErrInterrupted is returned by Run when ctx was cancelled: progress is
// saved, and running the job again resumes it.
var ErrInterrupted = errors.New("job interrupted; progress is saved, run again to resume")

// IdempotencyKey derives an item's idempotency key from the job's ID (the
// random identity its store drew when the job was created, checkpoint.Job.ID)
// and the item ID: "rb-" and 32 hex digits, safe in any header. The key is
// the same for every attempt, after every crash and resume, and on every
// worker that shares the job, so a server that deduplicates by it applies
// each item once. It is scoped to the job instance, not to its name: a job
// in another state file, or the same job after checkpoint.Store.Restart,
// has another ID and sends other keys, so the server does not answer it
// with the stored responses of unrelated earlier work.
func IdempotencyKey(job checkpoint.Job, id string) string {
	h := sha256.New()
	h.Write([]byte(job.ID))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return "rb-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Run works through the job's items until none is left to do, ctx is
// cancelled (ErrInterrupted), or the store fails. Items must already be in
// the store (see LoadManifest and LoadItems).
func Run(ctx context.Context, cfg Config, h Handler) (Summary, error) {
	r, err := newRunner(cfg, h)
	if err != nil {
		return Summary{}, err
	}
	return r.run(ctx)
}

type runner struct {
	cfg    Config
	job    checkpoint.Job // as stored; its ID scopes the idempotency keys
	h      Handler
	clock  rebound.Clock
	sum    Summary
	failed atomic.Pointer[error] // the first store error; it stops the run
	live   sync.Map              // item ID -> *liveLease: this run's leases, for heartbeats

	// hostHolds is, per BreakerKey, the time before which no item of the key
	// is sent (a throttled host's wait). It is copied on write, which is
	// rare, so the check before every item reads a map without a lock.
	hostHolds atomic.Pointer[map[string]hold]
	holdsMu   sync.Mutex // serialises writers of hostHolds
}

// maxWorkerWait is the longest throttled wait a worker sits out itself; a
// longer one puts the item, and its host, off in the store (see Config).
const maxWorkerWait = 2 * time.Second

// hold keeps the items of one BreakerKey from being sent before until.
type hold struct {
	until time.Time
	why   string // the item's last error while it waits
}

// errPutOff stops an item's retries when its host asked for a wait longer
// than maxWorkerWait: the item waits in the store instead.
var errPutOff = errors.New("put off: the host asked for a long wait")

// heldUntil returns the hold on key's items, if one is still running.
func (r *runner) heldUntil(key string) (hold, bool) {
	m := r.hostHolds.Load()
	if m == nil {
		return hold{}, false
	}
	h, ok := (*m)[key]
	if !ok || !h.until.After(r.clock.Now()) {
		return hold{}, false
	}
	return h, true
}

// holdOff keeps key's items from being sent before h.until (a later hold
// that is already there stays). Holds that ran out are dropped on the way.
func (r *runner) holdOff(key string, h hold) {
	r.holdsMu.Lock()
	defer r.holdsMu.Unlock()
	now := r.clock.Now()
	next := map[string]hold{key: h}
	if old := r.hostHolds.Load(); old != nil {
		for k, v := range *old {
			if v.until.After(now) && (k != key || v.until.After(h.until)) {
				next[k] = v
			}
		}
	}
	r.hostHolds.Store(&next)
}

// keyOf returns the item's breaker key.
func (r *runner) keyOf(it checkpoint.Item) string {
	if r.cfg.BreakerKey == nil {
		return ""
	}
	return r.cfg.BreakerKey(it)
}

// liveLease is one of this run's leases, as far as this run knows.
type liveLease struct {
	token int64
	// until is when the lease surely holds to (unix ns, this run's clock):
	// the time just before the last successful Lease or Extend, plus the
	// TTL. 0 once the store said it was lost.
	until atomic.Int64
	// stop cancels the item's work while it runs (nil before it starts).
	stop atomic.Pointer[context.CancelCauseFunc]
}

// forget drops the item's lease from the live set, unless the item has been
// leased again since (then the entry is the newer lease's).
func (r *runner) forget(it checkpoint.Item) {
	if v, ok := r.live.Load(it.ID); ok && v.(*liveLease).token == it.Lease {
		r.live.CompareAndDelete(it.ID, v)
	}
}

// errLeaseLost ends the work on an item whose lease this run lost: another
// worker may be doing it now.
var errLeaseLost = errors.New("lease lost: another worker may have taken the item over")

// holds reports whether a queued item's lease surely still holds, with
// a third of the TTL to spare: if the heartbeat could not renew it (a shared
// store cut off), another worker may have taken the item over, and sending
// it would do it twice. A lease that a newer one of the same item replaced
// does not hold.
func (r *runner) holds(it checkpoint.Item) bool {
	v, ok := r.live.Load(it.ID)
	if !ok || v.(*liveLease).token != it.Lease {
		return false
	}
	return v.(*liveLease).until.Load()-r.clock.Now().UnixNano() >= int64(r.cfg.LeaseTTL/3)
}

func newRunner(cfg Config, h Handler) (*runner, error) {
	switch {
	case cfg.Job == "":
		return nil, &rebound.ConfigError{Field: "job.Config.Job", Reason: "empty"}
	case cfg.Store == nil:
		return nil, &rebound.ConfigError{Field: "job.Config.Store", Reason: "nil"}
	case h == nil:
		return nil, &rebound.ConfigError{Field: "handler", Reason: "nil"}
	case cfg.MaxAttempts != 0 && cfg.Retry.MaxAttempts != 0 && cfg.MaxAttempts != cfg.Retry.MaxAttempts:
		return nil, &rebound.ConfigError{Field: "job.Config.Retry.MaxAttempts",
			Reason: "differs from job.Config.MaxAttempts: set one (it counts an item's attempts across runs)"}
	}
	if err := cfg.validateNegatives(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Clock != nil && cfg.Retry.Clock != nil:
		// Not compared: a Clock's dynamic type need not be comparable.
		return nil, &rebound.ConfigError{Field: "job.Config.Retry.Clock", Reason: "set along with job.Config.Clock: set one"}
	case cfg.Budget != nil && cfg.Retry.Budget != nil && cfg.Budget != cfg.Retry.Budget:
		return nil, &rebound.ConfigError{Field: "job.Config.Retry.Budget", Reason: "differs from job.Config.Budget: set one"}
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Retry.Clock
	}
	if cfg.Budget == nil {
		cfg.Budget = cfg.Retry.Budget
	}
	if err := cfg.Retry.Validate(); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 8
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = cfg.Retry.MaxAttempts
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 2 * time.Minute
	}
	if cfg.Grace == 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.Worker == "" {
		cfg.Worker = defaultWorker()
	}
	if cfg.Clock == nil {
		cfg.Clock = rebound.SystemClock{}
	}
	if cfg.Breakers == nil && cfg.BreakerKey != nil {
		bs, err := rebound.NewBreakerSet(rebound.BreakerConfig{Clock: cfg.Clock, Logger: cfg.Logger}, 0)
		if err != nil {
			return nil, err
		}
		cfg.Breakers = bs
	}
	if cfg.Budget == nil {
		b, err := rebound.NewBudget(rebound.BudgetConfig{})
		if err != nil {
			return nil, err
		}
		cfg.Budget = b
	}
	if cfg.Pacers == nil && !cfg.DisablePacing {
		ps, err := NewPacers(cfg)
		if err != nil {
			return nil, err
		}
		cfg.Pacers = ps
	}
	if cfg.DisablePacing {
		cfg.Pacers = nil
	}
	return &runner{cfg: cfg, h: h, clock: cfg.Clock}, nil
}

// NewPacers returns the per-key pacing cfg describes (MaxPerHost, Rate,
// Burst, MaxWaitingPerHost, Concurrency and Clock): what Run builds when
// Config.Pacers is nil. Build it yourself to watch it while the job runs.
func NewPacers(cfg Config) (*rebound.PacerSet, error) {
	if err := cfg.validateNegatives(); err != nil {
		return nil, err
	}
	conc := cfg.Concurrency
	if conc == 0 {
		conc = 8
	}
	// A Retry-After pauses the host no longer than it may hold the retry.
	pc := rebound.PaceConfig{MaxLimit: conc, Clock: cfg.Clock, MaxPause: cfg.Retry.MaxRetryAfter}
	if pc.Clock == nil {
		pc.Clock = cfg.Retry.Clock
	}
	if cfg.MaxPerHost > 0 {
		pc.MaxLimit = min(cfg.MaxPerHost, conc)
	}
	pc.InitialLimit = min(8, pc.MaxLimit)
	switch {
	case cfg.MaxWaitingPerHost > 0:
		pc.MaxQueue = cfg.MaxWaitingPerHost
	case cfg.MaxWaitingPerHost < 0:
		pc.MaxQueue = -1
	default:
		pc.MaxQueue = conc
	}
	if cfg.BreakerKey == nil {
		pc.Fixed = true
	}
	if cfg.Rate > 0 {
		r, burst := rate.Limit(cfg.Rate), max(cfg.Burst, 1)
		pc.Rate = func(string) rebound.RateLimiter { return rate.NewLimiter(r, burst) }
	}
	return rebound.NewPacerSet(pc)
}

// validateNegatives names the first negative setting: none of them has a
// meaningful "none" (a zero Timeout already means no attempt timeout).
func (cfg *Config) validateNegatives() error {
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"Concurrency", cfg.Concurrency < 0}, {"MaxAttempts", cfg.MaxAttempts < 0},
		{"Timeout", cfg.Timeout < 0}, {"LeaseTTL", cfg.LeaseTTL < 0},
		{"Grace", cfg.Grace < 0}, {"PollInterval", cfg.PollInterval < 0},
		{"MaxPerHost", cfg.MaxPerHost < 0}, {"Rate", cfg.Rate < 0 || cfg.Rate != cfg.Rate}, {"Burst", cfg.Burst < 0},
	} {
		if f.neg {
			return &rebound.ConfigError{Field: "job.Config." + f.name, Reason: "negative"}
		}
	}
	return nil
}

func defaultWorker() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func (r *runner) run(ctx context.Context) (Summary, error) {
	start := time.Now()
	unlock, err := r.begin(ctx)
	if err != nil {
		return r.sum, err
	}
	defer unlock()

	// In-flight items outlive ctx by Grace, so an interrupt lets them finish
	// and checkpoint instead of cutting requests half-way.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		t := r.clock.AfterFunc(r.cfg.Grace, cancelWork)
		context.AfterFunc(workCtx, func() { t.Stop() })
	})
	defer stopGrace()

	// Items are leased ahead into a queue (one store transaction leases
	// many), but only Concurrency of them are in flight: a worker takes its
	// next item once the last one's outcome is durable. Queued items were
	// never sent, so a crash replays at most Concurrency requests.
	n := r.cfg.Concurrency
	w := &workers{queue: make(chan checkpoint.Item, 2*n), kick: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { r.work(ctx, workCtx, w) })
	}
	hbDone := make(chan struct{})
	go r.heartbeat(workCtx, hbDone)

	leaseErr := r.lease(ctx, w.queue, w.kick, &w.inflight)
	if leaseErr != nil {
		// The run stops: workers give back the items still queued.
		r.failed.CompareAndSwap(nil, &leaseErr)
	}
	close(w.queue)
	wg.Wait()
	cancelWork()
	<-hbDone

	leaseErr = r.end(ctx, leaseErr)
	r.sum.Elapsed = time.Since(start)
	return r.sum, leaseErr
}

// begin readies the job for this run: with Exclusive, it takes the run lock
// (held until the returned unlock) and takes back a crashed run's leases;
// then it reads the job's ID, which scopes the idempotency keys.
func (r *runner) begin(ctx context.Context) (unlock func(), err error) {
	st := r.cfg.Store
	unlock = func() {}
	if l, ok := st.(checkpoint.RunLocker); ok {
		// One process owns this store (SQLite, memory): leases an earlier
		// run left belong to a run that crashed, so take them back now
		// instead of after their TTL. Reclaim takes back every lease of
		// the job: first make sure their holder is dead, not another run of
		// the same job still at work. A shared store is no RunLocker.
		if unlock, err = l.TryLockRun(r.cfg.Job); err != nil {
			return nil, fmt.Errorf("job %s: %w", r.cfg.Job, err)
		}
		n, err := l.Reclaim(ctx, r.cfg.Job)
		if err != nil {
			unlock()
			if ctx.Err() != nil {
				return nil, ErrInterrupted // nothing was leased: nothing to save
			}
			return nil, fmt.Errorf("job %s: taking back items of a crashed run: %w", r.cfg.Job, err)
		}
		r.sum.Reclaimed = int64(n)
	}
	if err := r.storeDo(ctx, func(ctx context.Context) (err error) {
		r.job, err = st.Job(ctx, r.cfg.Job)
		return err
	}); err != nil {
		unlock()
		if ctx.Err() != nil {
			return nil, ErrInterrupted // nothing was leased: nothing to save
		}
		return nil, fmt.Errorf("job %s: %w", r.cfg.Job, err)
	}
	if r.job.ID == "" {
		unlock()
		// Keys from the name alone would collide with every other job of
		// that name; refuse rather than risk a server replaying them.
		return nil, fmt.Errorf("job %s: the store keeps no job ID (checkpoint.Job.ID), so idempotency keys could not be unique to this job", r.cfg.Job)
	}
	return unlock, nil
}

// workers is what the lease loop and the workers share.
type workers struct {
	queue    chan checkpoint.Item // leased, not yet sent
	kick     chan struct{}        // the queue or the in-flight count shrank
	inflight atomic.Int64         // items being sent
}

// wake tells the lease loop the queue or the in-flight count shrank.
func (w *workers) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// work is one worker: it sends the queued items one at a time, each on
// workCtx (which outlives ctx by Grace), until the queue is closed.
func (r *runner) work(ctx, workCtx context.Context, w *workers) {
	for it := range w.queue {
		if ctx.Err() != nil || r.failed.Load() != nil || !r.holds(it) {
			// Interrupted, or the store failed: queued items were
			// never sent. Give them back, so the stop does not use
			// up their attempts. After a store failure none may be
			// sent: its result could not be saved, so the next run
			// would send it again, beyond the Concurrency bound.
			// A lease the heartbeat could not renew may be
			// another worker's now: give it back if still ours.
			r.forget(it)
			r.release(workCtx, it)
			w.wake()
			continue
		}
		key := r.keyOf(it)
		if h, ok := r.heldUntil(key); ok {
			// Its host asked callers to wait: put it off unsent,
			// without taking a worker for the wait.
			r.complete(workCtx, it, checkpoint.Result{Job: r.cfg.Job, ID: it.ID, Lease: it.Lease,
				State: checkpoint.Failed, NextAt: h.until, Attempts: it.Attempts - 1,
				Err: h.why, ErrKind: rebound.KindThrottled.String()}, true)
			w.wake()
			continue
		}
		pp, until, why, ok := r.pace(ctx, key)
		if !ok {
			// Its host has no room now: put it off unsent, without
			// taking a worker for the wait.
			r.complete(workCtx, it, checkpoint.Result{Job: r.cfg.Job, ID: it.ID, Lease: it.Lease,
				State: checkpoint.Failed, NextAt: until, Attempts: it.Attempts - 1,
				Err: why, ErrKind: rebound.KindThrottled.String()}, true)
			w.wake()
			continue
		}
		w.inflight.Add(1)
		itemCtx, stop := context.WithCancelCause(workCtx)
		if v, ok := r.live.Load(it.ID); ok && v.(*liveLease).token == it.Lease {
			v.(*liveLease).stop.Store(&stop)
		}
		res, unsent := r.runItem(itemCtx, stop, ctx, it, key, &pp)
		pp.Release()
		stop(nil)
		r.complete(workCtx, it, res, unsent)
		w.inflight.Add(-1)
		w.wake()
	}
}

// end saves what is buffered and reads the job's final stats into the
// summary. It returns the run's error: leaseErr, else the first store
// failure, else ErrInterrupted if ctx ended.
func (r *runner) end(ctx context.Context, leaseErr error) error {
	st := r.cfg.Store
	flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelFlush()
	if err := st.Flush(flushCtx); err != nil && leaseErr == nil {
		leaseErr = fmt.Errorf("job %s: saving progress: %w", r.cfg.Job, err)
	}
	if e := r.failed.Load(); e != nil && leaseErr == nil {
		leaseErr = *e
	}
	stats, err := st.Stats(flushCtx, r.cfg.Job)
	if err == nil {
		r.sum.Stats = stats
	} else if leaseErr == nil {
		leaseErr = err
	}
	if leaseErr == nil && ctx.Err() != nil {
		leaseErr = ErrInterrupted
	}
	return leaseErr
}

// lease keeps the queue filled until nothing is left, ctx ends or the store
// fails. Items still queued then are given back by the workers (release);
// those a crash leaves leased come back through the next run's Reclaim
// (a checkpoint.RunLocker store) or when their lease expires.
func (r *runner) lease(ctx context.Context, queue chan checkpoint.Item, kick <-chan struct{}, inflight *atomic.Int64) error {
	st, n := r.cfg.Store, r.cfg.Concurrency
	for ctx.Err() == nil && r.failed.Load() == nil {
		room := cap(queue) - len(queue)
		if room >= n || len(queue) == 0 {
			var items []checkpoint.Item
			var asked time.Time
			err := r.storeDo(ctx, func(ctx context.Context) (err error) {
				asked = r.clock.Now()
				items, err = st.Lease(ctx, r.cfg.Job, r.cfg.Worker, room, r.cfg.LeaseTTL)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("job %s: leasing items: %w", r.cfg.Job, err)
			}
			for _, it := range items {
				l := &liveLease{token: it.Lease}
				l.until.Store(asked.Add(r.cfg.LeaseTTL).UnixNano())
				if old, ok := r.live.Swap(it.ID, l); ok {
					// Our own lease lapsed (its heartbeats failed) and the
					// store gave the item out again: the work under the old
					// lease cannot be recorded any more, so stop it; the new
					// lease does the item again.
					if stop := old.(*liveLease).stop.Load(); stop != nil {
						(*stop)(errLeaseLost)
					}
				}
				queue <- it // never blocks: there was room
			}
			if len(items) > 0 {
				continue
			}
			// Nothing leasable now. Finished if nothing is queued or in
			// flight here and nothing is left anywhere. While deferred
			// retries wait (a breaker open for a minute) this runs every
			// poll interval, on every worker: Unfinished probes an index,
			// where Stats would count the whole job each time.
			if len(queue) == 0 && inflight.Load() == 0 {
				var left bool
				err := r.storeDo(ctx, func(ctx context.Context) (err error) {
					left, err = st.Unfinished(ctx, r.cfg.Job)
					return err
				})
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return fmt.Errorf("job %s: reading progress: %w", r.cfg.Job, err)
				}
				if !left {
					return nil
				}
			}
		}
		// Wait for a worker to finish an item, or for the poll interval:
		// deferred items, other workers' expired leases.
		t := r.clock.NewTimer(r.cfg.PollInterval)
		select {
		case <-ctx.Done():
		case <-kick:
		case <-t.C():
		}
		t.Stop()
	}
	return nil
}

// release gives back an item that was leased ahead but never started. If
// that fails it stays leased, with its lease's attempt counted, until the
// next run takes it back (Reclaim) or the lease expires: a store that cannot
// be written cannot learn that nothing was sent.
func (r *runner) release(ctx context.Context, it checkpoint.Item) {
	// Briefly, and even after Grace has run out (it cancels ctx): the run
	// is stopping. Within that, an error the store marks transient is
	// tried again: the outage that stopped the run may be passing, and
	// each give-back that fails costs the item an attempt it never made.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := r.storeDo(ctx, func(ctx context.Context) error {
		return r.cfg.Store.Release(ctx, r.cfg.Job, it.ID, it.Lease)
	})
	if err != nil && !errors.Is(err, checkpoint.ErrLeaseLost) && r.cfg.Logger != nil {
		r.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "giving back an unstarted item", slog.String("job", r.cfg.Job),
			slog.String("id", it.ID), slog.String("error", redact.Text(err.Error())))
	}
}

// heartbeat renews the leases of in-flight items until ctx ends.
func (r *runner) heartbeat(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	for {
		t := r.clock.NewTimer(r.cfg.LeaseTTL / 3)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		r.live.Range(func(k, v any) bool {
			l := v.(*liveLease)
			asked := r.clock.Now()
			err := r.cfg.Store.Extend(ctx, r.cfg.Job, k.(string), l.token, r.cfg.LeaseTTL)
			switch {
			case err == nil:
				l.until.Store(asked.Add(r.cfg.LeaseTTL).UnixNano())
				return true
			case errors.Is(err, checkpoint.ErrLeaseLost):
				l.until.Store(0) // another worker took the item over after ours expired
			case l.until.Load() > asked.UnixNano():
				return true // not renewed, but not lapsed yet either
			}
			// Lost, or lapsed while the store is out of reach: a queued item
			// will not be sent (holds); a running one is stopped, since
			// another worker may be doing it (its late result would be
			// dropped by the store anyway).
			if stop := l.stop.Load(); stop != nil {
				(*stop)(errLeaseLost)
			}
			return true
		})
	}
}

// runItem runs one leased item through the pipeline and decides its outcome.
// workCtx bounds the attempts (its cause is errLeaseLost when the heartbeat
// stopped the item, errPutOff when a long throttle did) and stop cancels it;
// runCtx says whether the run was interrupted; key is the item's breaker
// key. unsent reports that no request went out (the breaker refused the
// first attempt): the outcome is a deferral, whose attempt the store must
// give back.
func (r *runner) runItem(workCtx context.Context, stop context.CancelCauseFunc, runCtx context.Context, it checkpoint.Item, key string, pp *rebound.PacePermit) (res checkpoint.Result, unsent bool) {
	prior := it.Attempts - 1 // Lease counted this lease as an attempt
	res = checkpoint.Result{Job: r.cfg.Job, ID: it.ID, Lease: it.Lease}
	remaining := r.cfg.MaxAttempts - prior
	if remaining <= 0 {
		// Refusals give their attempt back, so only leases that ended
		// with no result saved (the worker killed or cut off from the
		// store mid-attempt) get an item here.
		res.State, res.Attempts, res.ErrKind = checkpoint.Dead, prior, "permanent"
		res.Err = fmt.Sprintf("out of attempts (%d): earlier attempts ended with no result saved (the run was killed or lost the item mid-attempt)", r.cfg.MaxAttempts)
		if it.Err != "" {
			res.Err += "; last error: " + it.Err
		}
		return res, false
	}
	task := &Task{Job: r.cfg.Job, ID: it.ID, Payload: it.Payload, Key: IdempotencyKey(r.job, it.ID),
		Progress: it.Progress, store: r.cfg.Store, lease: it.Lease, clock: r.clock}
	if r.cfg.Pacers != nil && r.cfg.BreakerKey != nil {
		task.pacer = r.cfg.Pacers.Get(key)
	}
	retry := r.cfg.Retry
	retry.MaxAttempts, retry.Clock, retry.Budget = remaining, r.clock, r.cfg.Budget
	userOnRetry := retry.OnRetry
	// A long throttled wait ends the attempts here (errPutOff): the item
	// and its host wait in the store, and the worker goes on.
	retry.OnRetry = func(e rebound.RetryEvent) {
		if e.Class.Kind == rebound.KindThrottled && e.Wait > maxWorkerWait {
			task.putOff = r.clock.Now().Add(e.Wait)
			if key != "" {
				// Without a BreakerKey the runner cannot tell which items
				// share this service: only this item waits, never the job.
				r.holdOff(key, hold{until: task.putOff, why: "not sent: waiting out a throttle of " + key + ": " + e.Err.Error()})
			}
			stop(errPutOff)
			return
		}
		atomic.AddInt64(&r.sum.Retries, 1)
		r.emit(Event{Type: EventRetry, ID: it.ID, Attempt: prior + e.Attempt, Kind: e.Class.Kind.String(), Err: &redactedError{redact.Text(e.Err.Error()), e.Err}, Wait: e.Wait})
		if userOnRetry != nil {
			userOnRetry(e)
		}
	}
	var br *rebound.Breaker
	if r.cfg.Breakers != nil {
		br = r.cfg.Breakers.Get(key)
	}
	p := rebound.Pipeline{Retry: retry, Breaker: br, Timeout: r.cfg.Timeout}
	made := 0
	err := p.Do(workCtx, func(ctx context.Context) error {
		made++
		task.Attempt = prior + made
		r.emit(Event{Type: EventStart, ID: it.ID, Attempt: task.Attempt})
		sent := r.clock.Now()
		err := r.h(ctx, task)
		r.observe(ctx, pp, sent, err)
		return err
	})
	res.Attempts = prior + made
	unsent = made == 0 // the breaker refused the first attempt
	if err == nil {
		res.State = checkpoint.Done
		return res, false
	}
	var re *rebound.RetryError
	class := rebound.Class{Kind: rebound.KindTransient}
	res.Err = err.Error()
	if errors.As(err, &re) {
		// Attempts are counted separately: keep the cause, not the summary.
		class, res.Err = re.Class, re.Last.Error()
	}
	// The one way a handler's text reaches the state, events and logs: no
	// URL query or userinfo, no terminal escapes, whatever the handler did.
	res.Err = redact.Text(res.Err)
	res.ErrKind = class.Kind.String()
	var open *rebound.OpenError
	switch {
	case context.Cause(workCtx) == errLeaseLost:
		res.State, res.Err, res.ErrKind = checkpoint.Failed, errLeaseLost.Error(), rebound.KindTransient.String()
	case errors.As(err, &open):
		// Before the interrupt test: an item the breaker refused waits for
		// it whether or not the run goes on. Not a failure of the item:
		// it will be tried again.
		// One text per host (the refusal's "next probe in" would make
		// every item's differ), so a status display counts them as one.
		res.State, res.NextAt, res.ErrKind = checkpoint.Failed, r.refusedUntil(open, br), rebound.KindTransient.String()
		res.Err = redact.Text(breakerReason(key))
		if made > 0 {
			// Sent, and refused after: its failure opened the breaker,
			// or it was the probe that failed. Due a poll after the
			// host's other items, it leaves the next probe to one of
			// them: probing a down host every few seconds must not spend
			// the attempts of one item (the first added, which the store
			// would hand out first every time).
			res.NextAt = res.NextAt.Add(r.cfg.PollInterval)
		}
	case context.Cause(workCtx) == errPutOff:
		res.State, res.NextAt = checkpoint.Failed, task.putOff
		res.Err = ReasonThrottled + ": " + res.Err
	case workCtx.Err() != nil || runCtx.Err() != nil:
		res.State, res.Err = checkpoint.Failed, "interrupted: "+res.Err
	case errors.Is(err, rebound.ErrBudgetExhausted):
		res.State, res.NextAt = checkpoint.Failed, r.clock.Now().Add(time.Second)
	case !class.Kind.Retryable() || res.Attempts >= r.cfg.MaxAttempts:
		res.State = checkpoint.Dead
	default: // stopped by MaxElapsed or an attempt deadline: try again later
		res.State, res.NextAt = checkpoint.Failed, r.clock.Now().Add(time.Second)
	}
	return res, unsent
}

// pace takes a slot of key's pacing for an item, waiting for it in the
// worker only when that is short: a host paused for longer than
// maxWorkerWait, or a bulkhead already full, puts the item off unsent
// (ok false, until when, why as the item's reason).
func (r *runner) pace(ctx context.Context, key string) (pp rebound.PacePermit, until time.Time, why string, ok bool) {
	if r.cfg.Pacers == nil {
		return pp, until, "", true
	}
	pc := r.cfg.Pacers.Get(key)
	now := r.clock.Now()
	if u, paused := pc.PausedUntil(now); paused && u.Sub(now) > maxWorkerWait {
		return pp, u, ReasonThrottled + ": " + key + " asked callers to wait", false
	}
	pp, err := pc.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return pp, now, "not sent: interrupted", false
		}
		return pp, now.Add(r.cfg.PollInterval), ReasonThrottled + ": " + redact.Text(err.Error()), false
	}
	return pp, time.Time{}, "", true
}

// observe feeds one attempt's outcome to its key's pacing (an adaptive
// one: with a BreakerKey); a cancelled attempt says nothing of the host.
func (r *runner) observe(ctx context.Context, pp *rebound.PacePermit, sent time.Time, err error) {
	if r.cfg.BreakerKey == nil || ctx.Err() != nil {
		return
	}
	var c rebound.Class
	if err != nil {
		if r.cfg.Retry.Classify != nil {
			c = r.cfg.Retry.Classify(err)
		} else {
			c = rebound.Classify(err)
		}
	}
	pp.Observe(sent, r.clock.Now(), c)
}

// refusedUntil is when an item the breaker refused may be tried again: the
// end of the open period, or, while a half-open breaker's probe is out
// (Until is zero), once the probe has ended: after the attempt Timeout, or
// the open period when there is none. Due at once instead, every other item
// of the host would be leased, refused and stored again in a loop.
func (r *runner) refusedUntil(open *rebound.OpenError, br *rebound.Breaker) time.Time {
	if !open.Until.IsZero() {
		// Until is on the breaker's clock. Once it has passed, the
		// breaker turns half-open any moment (its timer is due): look
		// again a poll later rather than at once.
		if open.Remaining() > 0 {
			return open.Until
		}
		return open.Until.Add(r.cfg.PollInterval)
	}
	wait := br.OpenFor()
	if t := r.cfg.Timeout; t > 0 && t < wait {
		wait = t
	}
	return r.clock.Now().Add(wait)
}

// complete checkpoints an item's outcome and waits until it is durable, so
// that at most Concurrency items can be replayed after a crash. unsent says
// no request went out: the item is put off (res.State is Failed) with its
// lease's attempt given back.
func (r *runner) complete(ctx context.Context, it checkpoint.Item, res checkpoint.Result, unsent bool) {
	r.forget(it)
	// The result must be saved even while the run winds down.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// Handing a result over twice is harmless: it applies under its lease
	// token only, with absolute values.
	err := r.storeDo(ctx, func(ctx context.Context) error {
		if unsent {
			// A synchronous write of its own, not the group commit: it
			// gives the attempt back, which a Result cannot.
			return r.cfg.Store.Defer(ctx, res.Job, res.ID, res.Lease, res.NextAt, res.Err, res.ErrKind)
		}
		if err := r.cfg.Store.Complete(ctx, []checkpoint.Result{res}); err != nil {
			return err
		}
		return r.cfg.Store.Flush(ctx)
	})
	if unsent && errors.Is(err, checkpoint.ErrLeaseLost) {
		return // another worker has the item now (a Result would be dropped the same way)
	}
	if err != nil {
		e := fmt.Errorf("job %s: saving the result of item %q: %w", r.cfg.Job, it.ID, err)
		r.failed.CompareAndSwap(nil, &e)
		return
	}
	ev := Event{ID: it.ID, Attempt: res.Attempts, Kind: res.ErrKind, Err: reasonErr(res.Err)}
	switch res.State {
	case checkpoint.Done:
		atomic.AddInt64(&r.sum.Done, 1)
		ev.Type, ev.Kind, ev.Err = EventDone, "", nil
	case checkpoint.Dead:
		atomic.AddInt64(&r.sum.Dead, 1)
		ev.Type = EventDead
	default:
		atomic.AddInt64(&r.sum.Failed, 1)
		ev.Type = EventFailed
	}
	r.emit(ev)
	if l := r.cfg.Logger; l != nil {
		level := slog.LevelInfo
		if res.State == checkpoint.Dead {
			level = slog.LevelWarn
		}
		l.LogAttrs(ctx, level, "item "+res.State.String(), slog.String("job", r.cfg.Job),
			slog.String("id", it.ID), slog.Int("attempts", res.Attempts), slog.String("error", res.Err))
	}
}

// storeDo runs one store call, retrying it with backoff while it fails with
// an error the store marked transient (rebound.Transient: a shared store's
// connection was cut or its server restarts). Every other error, and the
// store's own sentinel errors, end at once with the error unchanged.
func (r *runner) storeDo(ctx context.Context, fn func(context.Context) error) error {
	p := rebound.Retry{
		Name:        "checkpoint store",
		MaxAttempts: 10, // about 45 s of waits in all
		Backoff:     rebound.Backoff{Initial: 250 * time.Millisecond, Max: 10 * time.Second},
		Classify:    storeClass,
		Clock:       r.clock,
	}
	// Each attempt is bounded too: a connection that went silent (no reset)
	// must not hold the run forever.
	err := (&rebound.Pipeline{Retry: p, Timeout: 30 * time.Second}).Do(ctx, fn)
	var re *rebound.RetryError
	if errors.As(err, &re) && re.Attempts == 1 {
		return re.Last // not retried: keep the store's message as it was
	}
	return err
}

// storeClass retries only what the store marked as passing; an unmarked
// error (a full disk, a damaged file, a closed store) will not pass.
func storeClass(err error) rebound.Class {
	var c rebound.Classed
	if errors.As(err, &c) && c.Class().Kind.Retryable() {
		return c.Class()
	}
	return rebound.Class{Kind: rebound.KindPermanent, Reason: "store error"}
}

func (r *runner) emit(e Event) {
	if r.cfg.OnEvent != nil {
		e.Job = r.cfg.Job
		r.cfg.OnEvent(e)
	}
}
