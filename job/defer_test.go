package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/reboundtest"
)

// writeCounter counts a store's leases and writes of item outcomes.
type writeCounter struct {
	checkpoint.Store
	leases, completes, defers atomic.Int64
}

func (w *writeCounter) Lease(ctx context.Context, job, worker string, n int, ttl time.Duration) ([]checkpoint.Item, error) {
	w.leases.Add(1)
	return w.Store.Lease(ctx, job, worker, n, ttl)
}

func (w *writeCounter) Complete(ctx context.Context, rs []checkpoint.Result) error {
	w.completes.Add(int64(len(rs)))
	return w.Store.Complete(ctx, rs)
}

func (w *writeCounter) Defer(ctx context.Context, job, id string, lease int64, next time.Time, err, kind string) error {
	w.defers.Add(1)
	return w.Store.Defer(ctx, job, id, lease, next, err, kind)
}

// hostKey keys an item's breaker by the host of its manifest URL.
func hostKey(it checkpoint.Item) string {
	var r Request
	if json.Unmarshal(it.Payload, &r) != nil {
		return ""
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return ""
	}
	return u.Host
}

// stepUntil moves the fake clock by step until cond holds, letting the
// runner's goroutines work in between. The bound only stops a broken run
// from hanging the test.
func stepUntil(t *testing.T, clock *reboundtest.Clock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	for range 200000 {
		if cond() {
			return
		}
		clock.Advance(step)
		time.Sleep(50 * time.Microsecond)
	}
	t.Fatalf("never happened: %s", what)
}

func closed(ch <-chan struct{}) func() bool {
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}

// tripped returns a breaker set (on clock) whose breaker for key is open
// for a minute: the host failed just before the run.
func tripped(t *testing.T, clock *reboundtest.Clock, key string) *rebound.BreakerSet {
	t.Helper()
	bs, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 1, FirstOpenFor: time.Minute, Clock: clock}, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bs.Each(func(_ string, b *rebound.Breaker) { b.Stop() }) })
	_ = bs.Get(key).Do(context.Background(), func(context.Context) error {
		return rebound.Transient(errors.New("connection reset"))
	})
	if s := bs.Get(key).State(); s != rebound.StateOpen {
		t.Fatalf("breaker %v, want open", s)
	}
	return bs
}

// TestRunHalfOpenBreakerDoesNotSpin: while a half-open breaker's probe is
// out, the breaker refuses the host's other items with no end time. They
// must wait (the open period, as no attempt Timeout is set), not be
// leased, refused and stored again at once in a loop: the deferrals stay a
// small multiple of the requests sent, and every item's attempts count
// only its requests.
func TestRunHalfOpenBreakerDoesNotSpin(t *testing.T) {
	clock := reboundtest.NewClock(time.Time{})
	st := &writeCounter{Store: memory.New(checkpoint.Config{Clock: clock})}
	probeStarted, release := make(chan struct{}), make(chan struct{})
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			close(probeStarted)
			<-release // a slow probe
		}
	}))
	defer srv.Close()
	const items = 4
	var lines []string
	for i := range items {
		lines = append(lines, fmt.Sprintf(`{"id":"%d","url":"%s/%d"}`, i, srv.URL, i))
	}
	ctx := context.Background()
	if _, err := LoadManifest(ctx, st, "j", writeManifest(t, lines)); err != nil {
		t.Fatal(err)
	}
	bs := tripped(t, clock, "")
	var deferred atomic.Int64
	done := make(chan struct{})
	var sum Summary
	var runErr error
	go func() {
		defer close(done)
		sum, runErr = Run(ctx, Config{Job: "j", Store: st, Concurrency: items, Breakers: bs, Retry: fastRetry(),
			Clock: clock, PollInterval: time.Millisecond,
			OnEvent: func(e Event) {
				if e.Type == EventFailed {
					deferred.Add(1)
				}
			}}, HTTPHandler(srv.Client(), ""))
	}()
	stepUntil(t, clock, time.Second, "the breaker let a probe through", closed(probeStarted))
	// The probe is out: let the runner poll the store 20 times meanwhile.
	for range 20 {
		n := st.leases.Load()
		stepUntil(t, clock, time.Millisecond, "the runner polled", func() bool { return st.leases.Load() > n })
	}
	during := deferred.Load()
	close(release)
	stepUntil(t, clock, time.Second, "the run ended", closed(done))
	if runErr != nil || sum.Stats.Done != items {
		t.Fatalf("run: %+v, %v; want all %d done", sum.Stats, runErr, items)
	}
	if n := requests.Load(); n != items {
		t.Errorf("%d requests, want one per item", n)
	}
	// Each item was refused by the open breaker once, and all but the
	// probe once by the busy half-open one: 7; a few more if a poll meets
	// the open period's end before the breaker's timer has fired.
	if d := deferred.Load(); d > 3*items {
		t.Errorf("%d deferrals (%d while the probe was out) for %d requests: refused items were leased again at once",
			d, during, requests.Load())
	}
	if w := st.completes.Load() + st.defers.Load(); w > 4*items {
		t.Errorf("%d store writes for %d requests", w, requests.Load())
	}
	for i := range items {
		it, err := st.Item(ctx, "j", fmt.Sprint(i))
		if err != nil || it.Attempts != 1 {
			t.Errorf("item %d: %v with %d attempts (%v); want 1 attempt for its 1 request", i, it.State, it.Attempts, err)
		}
	}
}

// TestRunBreakerDeferralSpendsNoAttempt: an item the open breaker refuses
// was not sent, so the refusal must not use up an attempt: with 1 attempt
// each item is still sent once and done (it used to die unsent, "out of
// attempts"), and with 2 the item shows 1 attempt for its 1 request.
func TestRunBreakerDeferralSpendsNoAttempt(t *testing.T) {
	for _, attempts := range []int{1, 2} {
		t.Run(fmt.Sprint(attempts), func(t *testing.T) {
			clock := reboundtest.NewClock(time.Time{})
			st := memory.New(checkpoint.Config{Clock: clock})
			addJob(t, st, "a", "b", "c")
			bs := tripped(t, clock, "")
			var mu sync.Mutex
			sent := map[string]int{}
			done := make(chan struct{})
			var sum Summary
			var runErr error
			go func() {
				defer close(done)
				sum, runErr = Run(context.Background(), Config{Job: "j", Store: st, Concurrency: 1, MaxAttempts: attempts,
					Breakers: bs, Retry: fastRetry(), Clock: clock, PollInterval: time.Millisecond},
					func(ctx context.Context, task *Task) error {
						mu.Lock()
						defer mu.Unlock()
						sent[task.ID]++
						return nil
					})
			}()
			stepUntil(t, clock, time.Second, "the run ended", closed(done))
			if runErr != nil || sum.Stats.Done != 3 || sum.Stats.Dead != 0 {
				var why []string
				if dead, _ := st.Dead(context.Background(), "j", 10); len(dead) > 0 {
					why = append(why, dead[0].Err)
				}
				t.Fatalf("run: %d done, %d dead %q, %v; want all 3 done", sum.Stats.Done, sum.Stats.Dead, why, runErr)
			}
			for _, id := range []string{"a", "b", "c"} {
				it, _ := st.Item(context.Background(), "j", id)
				if it.Attempts != sent[id] || sent[id] != 1 {
					t.Errorf("item %s: %d attempts for %d requests, want 1 for 1", id, it.Attempts, sent[id])
				}
			}
		})
	}
}

// TestRunThrottledHostDoesNotHoldWorkers: a host answering 429 with a
// Retry-After of 5 min must not hold the workers: its item is put off in the
// store, its other items are put off unsent, and the items of a healthy
// host all finish meanwhile, with 2 workers for 8 throttled items. An
// interrupt then ends the run at once: no worker sits in a wait. The fake
// clock never moves, so no wait can end by itself.
func TestRunThrottledHostDoesNotHoldWorkers(t *testing.T) {
	clock := reboundtest.NewClock(time.Time{})
	st := &writeCounter{Store: memory.New(checkpoint.Config{Clock: clock})}
	var healthyReqs atomic.Int64
	var mu sync.Mutex
	throttledReqs := map[string]int{} // by path
	throttled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		throttledReqs[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Retry-After", "300")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	defer throttled.Close()
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { healthyReqs.Add(1) }))
	defer healthy.Close()
	var lines []string
	for i := range 8 { // first in the manifest, so leased first
		lines = append(lines, fmt.Sprintf(`{"id":"t%d","url":"%s/%d"}`, i, throttled.URL, i))
	}
	const healthyItems = 20
	for i := range healthyItems {
		lines = append(lines, fmt.Sprintf(`{"id":"h%d","url":"%s/%d"}`, i, healthy.URL, i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := LoadManifest(ctx, st, "j", writeManifest(t, lines)); err != nil {
		t.Fatal(err)
	}
	bs, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 100, Clock: clock}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const workers = 2
	var healthyDone atomic.Int64
	longWait := make(chan Event, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err = Run(ctx, Config{Job: "j", Store: st, Concurrency: workers, Breakers: bs, BreakerKey: hostKey,
			Retry: fastRetry(), Clock: clock, PollInterval: time.Millisecond,
			OnEvent: func(e Event) {
				switch {
				case e.Type == EventRetry && e.Wait > maxWorkerWait:
					select { // a worker is about to sit out the wait
					case longWait <- e:
					default:
					}
				case e.Type == EventDone && strings.HasPrefix(e.ID, "h"):
					if healthyDone.Add(1) == healthyItems {
						cancel() // as Ctrl-C would
					}
				}
			}}, HTTPHandler(http.DefaultClient, ""))
	}()
	select {
	case <-done:
	case e := <-longWait:
		cancel()
		stepUntil(t, clock, time.Minute, "the run ended", closed(done)) // free the workers
		t.Fatalf("item %s waits %v in its worker for a throttled host", e.ID, e.Wait)
	}
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run ended with %v, want ErrInterrupted", err)
	}
	if n := healthyDone.Load(); n != healthyItems {
		t.Fatalf("%d of %d healthy items done", n, healthyItems)
	}
	// Only items already sent when the first 429 came back (at most one
	// per worker) reached the throttled host; the others wait unsent,
	// with no attempt spent.
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for i := range 8 {
		it, err := st.Item(context.Background(), "j", fmt.Sprintf("t%d", i))
		if err != nil {
			t.Fatal(err)
		}
		sent := throttledReqs[fmt.Sprintf("/%d", i)]
		total += sent
		if it.State != checkpoint.Failed || it.Attempts != sent || sent > 1 || it.Due.Before(clock.Now().Add(5*time.Minute)) {
			t.Errorf("throttled item %s: %v, %d attempts for %d requests, due in %v; want failed, attempts = requests <= 1, due in 5 min",
				it.ID, it.State, it.Attempts, sent, it.Due.Sub(clock.Now()))
		}
	}
	if total < 1 || total > workers {
		t.Errorf("the throttled host got %d requests, want 1 to %d: its other items must wait out its Retry-After unsent", total, workers)
	}
}

// outage is a store that fails for good once down (the failure that stops
// the run), and whose first give-back meets the same outage as it passes.
type outage struct {
	checkpoint.Store
	down     atomic.Bool
	releases atomic.Int64
}

func (o *outage) Complete(ctx context.Context, rs []checkpoint.Result) error {
	if o.down.Load() {
		return errors.New("disk I/O error")
	}
	return o.Store.Complete(ctx, rs)
}

func (o *outage) Release(ctx context.Context, job, id string, lease int64) error {
	if o.releases.Add(1) == 1 {
		return rebound.Transient(errors.New("connection reset by peer"))
	}
	return o.Store.Release(ctx, job, id, lease)
}

// TestRunGiveBackAfterStoreFailureSpendsNoAttempt: the run stops on a store
// failure and gives back the items it had leased ahead, never sent. A
// give-back that meets a passing outage (an error the store marks
// transient) is tried again, like every other store call, rather than
// leaving the item leased with an attempt it never made.
func TestRunGiveBackAfterStoreFailureSpendsNoAttempt(t *testing.T) {
	ctx := context.Background()
	st := &outage{Store: memory.New(checkpoint.Config{})}
	addJob(t, st, "0", "1", "2", "3")
	var sent atomic.Int64
	_, err := Run(ctx, Config{Job: "j", Store: st, Concurrency: 1}, func(context.Context, *Task) error {
		sent.Add(1)
		st.down.Store(true) // its result cannot be saved
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "disk I/O error") || sent.Load() != 1 {
		t.Fatalf("run ended with %v after %d sent, want the store's error after 1", err, sent.Load())
	}
	if st.releases.Load() == 0 {
		t.Fatal("nothing was given back: the test did not lease ahead")
	}
	for _, id := range []string{"1", "2", "3"} {
		it, err := st.Item(ctx, "j", id)
		if err != nil || it.State != checkpoint.Pending || it.Attempts != 0 {
			t.Errorf("unsent item %s: %v with %d attempts (%v); want pending with none", id, it.State, it.Attempts, err)
		}
	}
}

// TestRunOutOfAttemptsSaysWhy: refusals no longer spend attempts, so an item
// that is out of attempts before it is sent got there through leases that
// ended with no result (a run killed mid-attempt): its dead reason says so,
// and keeps the last error it had, instead of blaming "earlier runs" alone.
func TestRunOutOfAttemptsSaysWhy(t *testing.T) {
	ctx := context.Background()
	st := memory.New(checkpoint.Config{})
	addJob(t, st, "a")
	it, err := st.Lease(ctx, "j", "w", 1, time.Minute)
	if err != nil || len(it) != 1 {
		t.Fatal(it, err)
	}
	if err := st.Complete(ctx, []checkpoint.Result{{Job: "j", ID: "a", Lease: it[0].Lease, State: checkpoint.Failed,
		Err: "connection reset", ErrKind: "transient"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lease(ctx, "j", "w", 1, time.Minute); err != nil { // then the worker is killed
		t.Fatal(err)
	}
	var sent atomic.Int64
	sum, err := Run(ctx, Config{Job: "j", Store: st, MaxAttempts: 2}, func(context.Context, *Task) error {
		sent.Add(1)
		return nil
	})
	if err != nil || sum.Dead != 1 || sent.Load() != 0 {
		t.Fatalf("run: %+v %v, %d sent; want the item dead unsent", sum, err, sent.Load())
	}
	got, _ := st.Item(ctx, "j", "a")
	for _, want := range []string{"out of attempts (2)", "no result saved", "last error: connection reset"} {
		if !strings.Contains(got.Err, want) {
			t.Errorf("dead reason %q does not say %q", got.Err, want)
		}
	}
}

// Without a BreakerKey the runner cannot tell which items share a service,
// so a long throttle puts off only the throttled item: the job's other items
// go on (a job-wide hold would black out every healthy item).
func TestRunThrottleWithoutKeyHoldsOnlyTheItem(t *testing.T) {
	clock := reboundtest.NewClock(time.Time{})
	st := memory.New(checkpoint.Config{Clock: clock})
	throttled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "300")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	defer throttled.Close()
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer healthy.Close()
	lines := []string{fmt.Sprintf(`{"id":"t","url":"%s/t"}`, throttled.URL)} // first: leased first
	const healthyItems = 10
	for i := range healthyItems {
		lines = append(lines, fmt.Sprintf(`{"id":"h%d","url":"%s/%d"}`, i, healthy.URL, i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := LoadManifest(ctx, st, "j", writeManifest(t, lines)); err != nil {
		t.Fatal(err)
	}
	var healthyDone, healthyPutOff atomic.Int64
	_, err := Run(ctx, Config{Job: "j", Store: st, Concurrency: 1, Retry: fastRetry(), Clock: clock, PollInterval: time.Millisecond,
		OnEvent: func(e Event) {
			if !strings.HasPrefix(e.ID, "h") {
				return
			}
			switch e.Type {
			case EventDone:
				healthyDone.Add(1)
			case EventFailed:
				healthyPutOff.Add(1)
			default:
				return
			}
			if healthyDone.Load()+healthyPutOff.Load() == healthyItems {
				cancel() // every healthy item has an outcome
			}
		}}, HTTPHandler(http.DefaultClient, ""))
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("run ended with %v, want ErrInterrupted", err)
	}
	if healthyDone.Load() != healthyItems || healthyPutOff.Load() != 0 {
		t.Fatalf("%d healthy items done, %d put off; want all %d done", healthyDone.Load(), healthyPutOff.Load(), healthyItems)
	}
	it, err := st.Item(context.Background(), "j", "t")
	if err != nil {
		t.Fatal(err)
	}
	if it.State != checkpoint.Failed || it.Due.Before(clock.Now().Add(5*time.Minute)) {
		t.Fatalf("throttled item: %v due in %v; want failed, due after its Retry-After", it.State, it.Due.Sub(clock.Now()))
	}
}

// An item refused while a half-open breaker's probe is out waits the
// breaker's current open period (1 s after its first opening), not the
// longest one (OpenFor, a minute here): the host may be back by then.
func TestRefusedUntilUsesTheCurrentOpenPeriod(t *testing.T) {
	clock := reboundtest.NewClock(time.Time{})
	br := rebound.MustBreaker(rebound.BreakerConfig{FailureThreshold: 1, OpenFor: time.Minute, Clock: clock})
	defer br.Stop()
	_ = br.Do(context.Background(), func(context.Context) error { return rebound.Transient(errors.New("reset")) })
	r := &runner{cfg: Config{PollInterval: time.Millisecond}, clock: clock}
	_, err := br.Allow()
	var open *rebound.OpenError
	if !errors.As(err, &open) {
		t.Fatalf("Allow: %v, want open", err)
	}
	if got, want := r.refusedUntil(open, br), clock.Now().Add(time.Second); !got.Equal(want) {
		t.Errorf("refused by the open breaker: wait until %v, want the end of its first period, %v", got, want)
	}
	clock.Advance(time.Second)
	if _, err := br.Allow(); err != nil { // the probe, still out
		t.Fatal(err)
	}
	if _, err = br.Allow(); !errors.As(err, &open) || !open.Until.IsZero() {
		t.Fatalf("second caller: %v, want refused while the probe is out", err)
	}
	if got, want := r.refusedUntil(open, br), clock.Now().Add(time.Second); !got.Equal(want) {
		t.Errorf("refused while the probe is out: wait until %v, want the current period later, %v", got, want)
	}
}
