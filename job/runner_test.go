package job

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/reboundtest"
)

// effects counts requests per Idempotency-Key, as a deduplicating server would.
type effects struct {
	mu   sync.Mutex
	seen map[string]int
}

func (e *effects) add(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen == nil {
		e.seen = map[string]int{}
	}
	e.seen[key]++
	return e.seen[key]
}

func writeManifest(t *testing.T, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fastRetry() rebound.Retry { return rebound.Retry{Backoff: rebound.NoDelay} }

// addJob opens job "j" in st and adds items with these IDs.
func addJob(t *testing.T, st checkpoint.Store, ids ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "x"}); err != nil {
		t.Fatal(err)
	}
	items := make([]checkpoint.Item, len(ids))
	for i, id := range ids {
		items[i] = checkpoint.Item{ID: id}
	}
	if err := st.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
}

func TestRunHTTPManifest(t *testing.T) {
	var eff effects
	var flaky sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			t.Errorf("request without Idempotency-Key: %s", r.URL)
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/gone"):
			http.Error(w, "no such thing", http.StatusNotFound)
			return
		case strings.HasPrefix(r.URL.Path, "/flaky"):
			if _, loaded := flaky.LoadOrStore(r.URL.Path, true); !loaded {
				w.Header().Set("Retry-After", "0")
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
		}
		eff.add(key)
	}))
	defer srv.Close()

	var lines []string
	for i := range 50 {
		lines = append(lines, fmt.Sprintf(`{"id":"ok-%d","method":"POST","url":"%s/ok/%d","body":{"n":%d}}`, i, srv.URL, i, i))
	}
	for i := range 5 {
		lines = append(lines, fmt.Sprintf(`{"id":"flaky-%d","url":"%s/flaky/%d"}`, i, srv.URL, i))
	}
	lines = append(lines, fmt.Sprintf(`{"id":"gone","url":"%s/gone"}`, srv.URL))
	path := writeManifest(t, lines)

	st := memory.New(checkpoint.Config{})
	ctx := context.Background()
	if _, err := LoadManifest(ctx, st, "j", path); err != nil {
		t.Fatal(err)
	}
	// Five flaky items failing at once would open a default breaker (and
	// defer the rest for 60 s); this test is about outcomes, not the breaker.
	bs, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 100}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Run(ctx, Config{Job: "j", Store: st, Retry: fastRetry(), Breakers: bs}, HTTPHandler(srv.Client(), filepath.Dir(path)))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 55 || sum.Dead != 1 || sum.Stats.Done != 55 || sum.Stats.Dead != 1 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.Retries != 5 {
		t.Errorf("retries = %d, want 5 (one per flaky item)", sum.Retries)
	}
	for k, n := range eff.seen {
		if n != 1 {
			t.Errorf("key %s applied %d times", k, n)
		}
	}
	dead, err := st.Dead(ctx, "j", 10)
	if err != nil || len(dead) != 1 || dead[0].ID != "gone" || !strings.Contains(dead[0].Err, "404 Not Found") || dead[0].ErrKind != "permanent" {
		t.Fatalf("dead = %+v, %v", dead, err)
	}
	if dead[0].Attempts != 1 {
		t.Errorf("a 404 was tried %d times, want 1", dead[0].Attempts)
	}

	// A second run has nothing to do and sends nothing.
	before := len(eff.seen)
	sum, err = Run(ctx, Config{Job: "j", Store: st, Retry: fastRetry()}, HTTPHandler(srv.Client(), ""))
	if err != nil || sum.Done != 0 || len(eff.seen) != before {
		t.Fatalf("second run: %+v %v", sum, err)
	}
}

func TestRunOutOfAttemptsAndKey(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	ctx := context.Background()
	addJob(t, st, "a", "b")
	var mu sync.Mutex
	keys := map[string]map[string]bool{}
	calls := 0
	h := func(ctx context.Context, task *Task) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if keys[task.ID] == nil {
			keys[task.ID] = map[string]bool{}
		}
		keys[task.ID][task.Key] = true
		if task.ID == "a" {
			return errors.New("always fails")
		}
		return nil
	}
	sum, err := Run(ctx, Config{Job: "j", Store: st, Retry: fastRetry(), MaxAttempts: 3}, h)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 1 || sum.Dead != 1 || calls != 4 {
		t.Fatalf("summary %+v calls %d", sum, calls)
	}
	it, _ := st.Item(ctx, "j", "a")
	if it.State != checkpoint.Dead || it.Attempts != 3 {
		t.Fatalf("item a: %+v", it)
	}
	jb, err := st.Job(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys["a"]) != 1 || keys["a"][IdempotencyKey(jb, "a")] != true {
		t.Fatalf("key changed between attempts: %v", keys["a"])
	}
	other := jb
	other.ID = "0123456789abcdef0123456789abcdef" // another job's ID
	if IdempotencyKey(jb, "a") == IdempotencyKey(jb, "b") || IdempotencyKey(jb, "a") == IdempotencyKey(other, "a") {
		t.Fatal("keys collide")
	}
}

func TestRunInterruptSavesProgress(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := st.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "x"}); err != nil {
		t.Fatal(err)
	}
	var items []checkpoint.Item
	for i := range 100 {
		items = append(items, checkpoint.Item{ID: fmt.Sprint(i)})
	}
	if err := st.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	done := 0
	h := func(ctx context.Context, task *Task) error {
		mu.Lock()
		done++
		if done == 20 {
			cancel() // as SIGINT would
		}
		mu.Unlock()
		return nil
	}
	sum, err := Run(ctx, Config{Job: "j", Store: st, Concurrency: 4}, h)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	if sum.Stats.Done < 20 || sum.Stats.Done >= 100 {
		t.Fatalf("done after interrupt: %+v", sum.Stats)
	}
	// Only the items already in flight (at most Concurrency-1 besides the
	// one that cancelled) may start after the interrupt, not the queued ones.
	mu.Lock()
	if done > 20+3 {
		t.Errorf("%d items started, want at most 23: queued items ran after the interrupt", done)
	}
	mu.Unlock()
	// Items leased ahead but never started were given back: pending, their
	// attempt not counted (else every Ctrl-C would use up one attempt of
	// items that were never sent).
	if sum.Stats.Leased != 0 {
		t.Errorf("%d items still leased after the interrupt, want the queued ones given back", sum.Stats.Leased)
	}
	for _, it := range items {
		got, err := st.Item(ctx, "j", it.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != checkpoint.Done && (got.State != checkpoint.Pending || got.Attempts != 0) {
			t.Errorf("item %s after the interrupt: %v with %d attempts, want done or pending with 0", it.ID, got.State, got.Attempts)
		}
	}
	// Resume finishes the rest, and nothing done is done again.
	mu.Lock()
	first := done
	mu.Unlock()
	sum2, err := Run(context.Background(), Config{Job: "j", Store: st, Concurrency: 4}, h)
	if err != nil {
		t.Fatal(err)
	}
	if sum2.Stats.Done != 100 || sum2.Reclaimed != 0 {
		t.Fatalf("after resume: %+v, %d reclaimed (want 0: nothing was left leased)", sum2.Stats, sum2.Reclaimed)
	}
	mu.Lock()
	defer mu.Unlock()
	if replays := done - first - int(100-sum.Stats.Done); replays != 0 {
		t.Fatalf("%d items ran again after being checkpointed done", replays)
	}
}

func TestRunBreakerOpenDefersItems(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	ctx := context.Background()
	if _, err := st.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "x"}); err != nil {
		t.Fatal(err)
	}
	var items []checkpoint.Item
	for i := range 10 {
		items = append(items, checkpoint.Item{ID: fmt.Sprint(i)})
	}
	if err := st.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
	bs, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 2, OpenFor: time.Hour}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Marked: a plain error that no rule recognises never opens a breaker.
	h := func(ctx context.Context, task *Task) error { return rebound.Transient(errors.New("down")) }
	cfg := Config{Job: "j", Store: st, Concurrency: 1, Breakers: bs, Retry: fastRetry(), MaxAttempts: 5,
		OnEvent: func(e Event) {
			if e.Type == EventFailed {
				cancel() // the breaker deferred an item: enough seen
			}
		}}
	_, err = Run(ctx, cfg, h)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v", err)
	}
	s, _ := st.Stats(context.Background(), "j")
	if s.Failed == 0 {
		t.Fatalf("no item deferred by the open breaker: %+v", s)
	}
	bs.Each(func(_ string, b *rebound.Breaker) {
		if b.State() != rebound.StateOpen {
			t.Errorf("breaker %v", b.State())
		}
		b.Stop()
	})
}

func TestHTTPHandlerBodyFileHasContentLength(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var gotLen int64
	var gotTE []string
	var gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotLen, gotTE = r.ContentLength, r.TransferEncoding
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
	}))
	defer srv.Close()
	task := &Task{ID: "x", Key: "k", Payload: []byte(`{"id":"x","method":"PUT","url":"` + srv.URL + `/x","body_file":"b.json"}`)}
	if err := HTTPHandler(srv.Client(), dir)(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if gotLen != 7 || len(gotTE) != 0 || gotBody != `{"a":1}` {
		t.Fatalf("Content-Length %d, Transfer-Encoding %v, body %q", gotLen, gotTE, gotBody)
	}
}

// TestRunExclusiveRefusesALiveRun: an Exclusive run takes back every lease of
// the job, so it must not start while another run holds the SQLite file: it
// fails with ErrLocked before leasing or sending anything, and the other
// run's leases stay as they were.
func TestRunExclusiveRefusesALiveRun(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	live, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	addJob(t, live, "a", "b")
	unlock, err := live.TryLockRun("j")
	if err != nil {
		t.Fatal(err)
	}
	held, err := live.Lease(ctx, "j", "live-worker", 1, time.Hour)
	if err != nil || len(held) != 1 {
		t.Fatalf("lease: %v %v", held, err)
	}

	second, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	var sent atomic.Int64 // handlers run on several workers
	_, err = Run(ctx, Config{Job: "j", Store: second}, func(context.Context, *Task) error {
		sent.Add(1)
		return nil
	})
	if !errors.Is(err, checkpoint.ErrLocked) || sent.Load() != 0 {
		t.Fatalf("second run: err %v, %d sent; want ErrLocked and nothing sent", err, sent.Load())
	}
	if it, err := second.Item(ctx, "j", held[0].ID); err != nil || it.State != checkpoint.Leased || it.Lease != held[0].Lease {
		t.Fatalf("the live run's lease was touched: %+v %v", it, err)
	}

	// Once the live run ends, the next one runs and finishes the job.
	unlock()
	sum, err := Run(ctx, Config{Job: "j", Store: second}, func(context.Context, *Task) error {
		sent.Add(1)
		return nil
	})
	if err != nil || sum.Done != 2 || sum.Reclaimed != 1 {
		t.Fatalf("run after unlock: %+v %v", sum, err)
	}
}

// countingStore counts the calls of the store's two ways to learn whether a
// job has work left, and calls idle whenever either reports work left (so a
// runner that polls Stats gets the same answers, only counted).
type countingStore struct {
	checkpoint.Store
	stats, unfinished atomic.Int64
	idle              func()
}

func (c *countingStore) Stats(ctx context.Context, job string) (checkpoint.Stats, error) {
	c.stats.Add(1)
	s, err := c.Store.Stats(ctx, job)
	if err == nil && s.Pending+s.Leased+s.Failed > 0 && c.idle != nil {
		c.idle()
	}
	return s, err
}

func (c *countingStore) Unfinished(ctx context.Context, job string) (bool, error) {
	c.unfinished.Add(1)
	left, err := c.Store.Unfinished(ctx, job)
	if left && c.idle != nil {
		c.idle()
	}
	return left, err
}

// TestRunWaitsForDeferredRetry: items the open breaker deferred are not
// due yet, so nothing is leasable, but the run must wait for them rather
// than end. It learns that from Unfinished (an index probe), never from
// Stats (a count of the whole job), which it reads once, for the Summary.
// Store and breaker run on a fake clock that moves only when the runner
// asks whether work is left and is told yes, so the run must pass through
// that wait to finish.
func TestRunWaitsForDeferredRetry(t *testing.T) {
	ctx := context.Background()
	clock := reboundtest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	const openFor = time.Minute
	st := &countingStore{Store: memory.New(checkpoint.Config{Clock: clock}),
		idle: func() { clock.Advance(openFor) }}
	addJob(t, st, "a", "b")
	// The first call fails and opens the breaker: the first item's in-run
	// retry is refused, so it is deferred until the breaker lets a probe
	// through, a minute later. (The second item is usually deferred too;
	// but a worker that has taken it from the queue and not yet counted it
	// in flight lets the runner poll, and the clock move, before it runs.)
	bs, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 1, OpenFor: openFor, Clock: clock}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Each(func(_ string, b *rebound.Breaker) { b.Stop() })
	var calls atomic.Int64
	h := func(ctx context.Context, task *Task) error {
		if calls.Add(1) == 1 {
			return rebound.Transient(errors.New("connection reset"))
		}
		return nil
	}
	sum, err := Run(ctx, Config{Job: "j", Store: st, Concurrency: 1, Breakers: bs, Retry: fastRetry(),
		PollInterval: time.Millisecond}, h)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed < 1 || sum.Done != 2 || calls.Load() != 3 {
		t.Fatalf("summary %+v after %d calls; want a deferred item, then both done, in 3 calls", sum, calls.Load())
	}
	if sum.Stats.Done != 2 || sum.Stats.Items() != 2 {
		t.Fatalf("run ended with %+v, want both items done", sum.Stats)
	}
	if n := st.stats.Load(); n != 1 {
		t.Errorf("Stats called %d times, want once (the Summary)", n)
	}
	if n := st.unfinished.Load(); n < 2 {
		t.Errorf("Unfinished called %d times, want a poll while the items waited and one at the end", n)
	}
}

// TestRunStopsSendingWhenTheStoreFails: once a result cannot be made
// durable, the run must not send another item. The worker's next item came
// from the lease-ahead queue; sending it would be a request whose outcome
// is lost too, so a store failure would replay more than Concurrency
// requests on the next run. The failure is real: another connection holds
// SQLite's write lock (as a full disk or an I/O error would fail the group
// commit), so the commit of the first item's result fails.
func TestRunStopsSendingWhenTheStoreFails(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := sqlite.Open(path, checkpoint.Config{BusyTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "x"}); err != nil {
		t.Fatal(err)
	}
	var items []checkpoint.Item
	for i := range 10 {
		items = append(items, checkpoint.Item{ID: fmt.Sprint(i)})
	}
	if err := st.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
	// It waits for the store's own transactions (the runner leases ahead).
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(60000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var sent atomic.Int64
	h := func(context.Context, *Task) error {
		if sent.Add(1) == 1 {
			// Take the write lock until the run ends: the result of this
			// item cannot be committed.
			if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	sum, err := Run(ctx, Config{Job: "j", Store: st, Concurrency: 1}, h)
	conn.ExecContext(ctx, "ROLLBACK")
	// The group commit fails, or the runner's next Lease if it comes first.
	if err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("run ended with %v, want the store's error", err)
	}
	if n := sent.Load(); n != 1 {
		t.Errorf("%d items sent, want 1: items were sent after their results could no longer be saved", n)
	}
	if sum.Done != 0 {
		t.Errorf("summary counts %d done, but no result was saved", sum.Done)
	}
	// No item is marked done that was not.
	st2, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	s, err := st2.Stats(ctx, "j")
	if err != nil || s.Done != 0 {
		t.Fatalf("after the failed run: %+v %v, want nothing done", s, err)
	}
}

// partitioned fails every Extend, as for a worker cut off from a shared
// store: its heartbeats never land.
type partitioned struct{ checkpoint.Store }

func (p partitioned) Extend(ctx context.Context, job, id string, lease int64, ttl time.Duration) error {
	return context.DeadlineExceeded
}

// TestRunSkipsQueuedItemsWhoseLeaseLapsed: worker A is cut off from the
// store while it works on one item, so its leases lapse and worker B takes
// both items over and finishes them. When A's item ends, A must not send the
// item it had queued: that lease was never renewed, and the item is B's.
func TestRunSkipsQueuedItemsWhoseLeaseLapsed(t *testing.T) {
	ctx := context.Background()
	clock := reboundtest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	mem := memory.New(checkpoint.Config{Clock: clock})
	addJob(t, mem, "0", "1")
	var mu sync.Mutex
	sentByA := map[string]int{}
	started, unblock := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	go func() {
		// Concurrency 1 leases both items in one call (queue of 2); a long
		// poll interval keeps A from leasing again while the clock moves.
		_, err := Run(ctx, Config{Job: "j", Store: partitioned{mem}, Worker: "a", Concurrency: 1,
			LeaseTTL: time.Minute, PollInterval: time.Hour, Clock: clock},
			func(ctx context.Context, task *Task) error {
				mu.Lock()
				sentByA[task.ID]++
				mu.Unlock()
				if task.ID == "0" {
					close(started)
					<-unblock
				}
				return nil
			})
		aDone <- err
	}()
	<-started
	clock.Advance(2 * time.Minute) // A's heartbeats fail meanwhile
	taken, err := mem.Lease(ctx, "j", "b", 2, time.Minute)
	if err != nil || len(taken) != 2 {
		t.Fatalf("worker b could not take over A's lapsed leases: %v %v", taken, err)
	}
	for _, it := range taken {
		if err := mem.Complete(ctx, []checkpoint.Result{{Job: "j", ID: it.ID, Lease: it.Lease, State: checkpoint.Done}}); err != nil {
			t.Fatal(err)
		}
	}
	close(unblock)
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Item 0 was in flight at A when B took it over: the stalled-worker
	// case the idempotency key is for. The queued one must not go out.
	if sentByA["1"] != 0 {
		t.Errorf("A sent its queued item %d time(s) after its lease lapsed and B had done it", sentByA["1"])
	}
}

// TestRunGivesBackQueuedItemsAfterGrace: an item that outlives the Grace
// after an interrupt is cut, and the items queued behind it are still given
// back unspent (their give-back must not use the context Grace cancelled).
func TestRunGivesBackQueuedItemsAfterGrace(t *testing.T) {
	clock := reboundtest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	// SQLite, not memory: its writes honour the context, as a real store's do.
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "state.db"), checkpoint.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addJob(t, st, "0", "1", "2")
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{Job: "j", Store: st, Concurrency: 1, Grace: time.Second, Clock: clock, Retry: fastRetry()},
			func(ctx context.Context, task *Task) error {
				if task.ID == "0" {
					close(started)
				}
				<-ctx.Done() // never ends on its own: only Grace's end stops it
				return ctx.Err()
			})
		done <- err
	}()
	<-started
	cancel()
wait:
	for range 10000 { // Grace starts once the interrupt is seen: step the clock until the run ends
		select {
		case err = <-done:
			break wait
		default:
			clock.Advance(time.Second)
			time.Sleep(time.Millisecond)
		}
	}
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	for _, id := range []string{"1", "2"} {
		it, err := st.Item(context.Background(), "j", id)
		if err != nil || it.State != checkpoint.Pending || it.Attempts != 0 {
			t.Errorf("queued item %s: %+v %v; want pending with no attempt spent", id, it, err)
		}
	}
}

// TestRunStopsItemWhoseLeaseLapsed: while a worker cannot reach the store,
// the lease of the item it is working on lapses (another worker may take it
// over): the item's work is stopped rather than left running, and its
// outcome is "failed, lease lost", never "dead". Once the store is back the
// item is done.
func TestRunStopsItemWhoseLeaseLapsed(t *testing.T) {
	ctx := context.Background()
	clock := reboundtest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	mem := memory.New(checkpoint.Config{Clock: clock})
	addJob(t, mem, "0", "1")
	var calls atomic.Int64
	cause := make(chan error, 1)
	started := make(chan struct{})
	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Run(ctx, Config{Job: "j", Store: partitioned{mem}, Concurrency: 1, LeaseTTL: time.Minute, Clock: clock, Retry: fastRetry()},
			func(ctx context.Context, task *Task) error {
				if task.ID == "0" && calls.Add(1) == 1 {
					close(started)
					<-ctx.Done() // runs until stopped
					cause <- context.Cause(ctx)
					return ctx.Err()
				}
				return nil
			})
		done <- result{sum, err}
	}()
	<-started
	var r result
	ended := false
wait:
	for range 10000 { // the heartbeat runs on the fake clock: step it until the run ends
		select {
		case r = <-done:
			ended = true
			break wait
		default:
			clock.Advance(10 * time.Second)
			time.Sleep(time.Millisecond)
		}
	}
	if !ended {
		t.Fatal("the run did not end: the work on the item whose lease lapsed was never stopped")
	}
	if got := <-cause; !errors.Is(got, errLeaseLost) {
		t.Errorf("the item's context ended with %v, want errLeaseLost", got)
	}
	if r.err != nil || r.sum.Dead != 0 || r.sum.Failed != 1 || r.sum.Stats.Done != 2 {
		t.Fatalf("summary %+v, err %v; want 1 failed (lease lost), 0 dead, both done in the end", r.sum, r.err)
	}
}
