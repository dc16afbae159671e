// Package storetest is the conformance suite for checkpoint.Store
// implementations. Every store (memory, SQLite, PostgreSQL) runs it from its
// own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Config{
//			Open: func(t *testing.T, path string, opts checkpoint.Config) checkpoint.Store {
//				s, err := sqlite.Open(path, opts)
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//			Persistent: true,
//		})
//	}
//
// The suite never sleeps: it drives lease expiry and retry times through
// Options.Now with a fake clock, and waits for group commits with Flush.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/reboundtest"
)

// Config says how to open the store under test.
type Config struct {
	// Open returns a store backed by path, a fresh path in a temporary
	// directory that the suite chose (a store that is not a file maps it
	// to its own namespace). It must pass cfg on (the suite's clock).
	// Open may be called again with the same path after Close.
	Open func(t *testing.T, path string, cfg checkpoint.Config) checkpoint.Store
	// Persistent reports that a store opened again on the same path sees
	// what was written before Close. The reopen tests skip otherwise.
	Persistent bool
}

// storeEpoch is where each subtest's fake clock starts.
var storeEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// env is one subtest's store, clock and path.
type env struct {
	t     *testing.T
	cfg   Config
	clock *reboundtest.Clock
	path  string
	s     checkpoint.Store
	ctx   context.Context
}

func newEnv(t *testing.T, cfg Config) *env {
	e := &env{t: t, cfg: cfg, clock: reboundtest.NewClock(storeEpoch), path: t.TempDir() + "/store.db", ctx: context.Background()}
	e.open()
	t.Cleanup(func() {
		if e.s != nil {
			e.s.Close()
		}
	})
	return e
}

func (e *env) open() {
	e.t.Helper()
	e.s = e.cfg.Open(e.t, e.path, checkpoint.Config{Clock: e.clock})
}

// reopen closes the store and opens the same path again.
func (e *env) reopen() {
	e.t.Helper()
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.s = nil
	e.open()
}

// reporter returns the store as a checkpoint.Reporter, or skips the test.
func (e *env) reporter() checkpoint.Reporter {
	e.t.Helper()
	r, ok := e.s.(checkpoint.Reporter)
	if !ok {
		e.t.Skip("store is not a checkpoint.Reporter")
	}
	return r
}

// runLocker returns the store as a checkpoint.RunLocker, or skips the test.
func (e *env) runLocker() checkpoint.RunLocker {
	e.t.Helper()
	r, ok := e.s.(checkpoint.RunLocker)
	if !ok {
		e.t.Skip("store is not a checkpoint.RunLocker")
	}
	return r
}

func (e *env) job(name string, total int64) checkpoint.Job {
	e.t.Helper()
	j, err := e.s.OpenJob(e.ctx, name, checkpoint.JobMeta{Fingerprint: "fp-" + name, Total: total})
	if err != nil {
		e.t.Fatalf("OpenJob(%q): %v", name, err)
	}
	return j
}

func ids(prefix string, n int) []checkpoint.Item {
	items := make([]checkpoint.Item, n)
	for i := range items {
		items[i] = checkpoint.Item{ID: fmt.Sprintf("%s%03d", prefix, i), Payload: []byte(fmt.Sprintf(`{"line":%d}`, i))}
	}
	return items
}

func (e *env) add(job string, items []checkpoint.Item) {
	e.t.Helper()
	if err := e.s.AddItems(e.ctx, job, items); err != nil {
		e.t.Fatalf("AddItems: %v", err)
	}
}

func (e *env) lease(job, worker string, n int, ttl time.Duration) []checkpoint.Item {
	e.t.Helper()
	got, err := e.s.Lease(e.ctx, job, worker, n, ttl)
	if err != nil {
		e.t.Fatalf("Lease: %v", err)
	}
	return got
}

func (e *env) complete(rs ...checkpoint.Result) {
	e.t.Helper()
	if err := e.s.Complete(e.ctx, rs); err != nil {
		e.t.Fatalf("Complete: %v", err)
	}
	if err := e.s.Flush(e.ctx); err != nil {
		e.t.Fatalf("Flush: %v", err)
	}
}

func (e *env) stats(job string) checkpoint.Stats {
	e.t.Helper()
	st, err := e.s.Stats(e.ctx, job)
	if err != nil {
		e.t.Fatalf("Stats: %v", err)
	}
	return st
}

func (e *env) item(job, id string) checkpoint.Item {
	e.t.Helper()
	it, err := e.s.Item(e.ctx, job, id)
	if err != nil {
		e.t.Fatalf("Item(%q): %v", id, err)
	}
	return it
}

func (e *env) unfinished(job string) bool {
	e.t.Helper()
	u, err := e.s.Unfinished(e.ctx, job)
	if err != nil {
		e.t.Fatalf("Unfinished: %v", err)
	}
	return u
}

// counts is Stats reduced to comparable state counts.
type counts struct{ Pending, Leased, Done, Failed, Dead int64 }

// wantCounts checks the job's counts, and that Unfinished agrees with them:
// every scenario of the suite then checks Unfinished too.
func (e *env) wantCounts(job string, want counts) {
	e.t.Helper()
	st := e.stats(job)
	got := counts{st.Pending, st.Leased, st.Done, st.Failed, st.Dead}
	if got != want {
		e.t.Fatalf("counts = %+v, want %+v", got, want)
	}
	if u, w := e.unfinished(job), want.Pending+want.Leased+want.Failed > 0; u != w {
		e.t.Fatalf("Unfinished = %v with counts %+v, want %v", u, got, w)
	}
}

func idsOf(items []checkpoint.Item) string {
	s := make([]string, len(items))
	for i, it := range items {
		s[i] = it.ID
	}
	return strings.Join(s, ",")
}

func done(it checkpoint.Item) checkpoint.Result {
	return checkpoint.Result{Job: it.Job, ID: it.ID, Lease: it.Lease, State: checkpoint.Done}
}

func failed(it checkpoint.Item, next time.Time, kind, msg string) checkpoint.Result {
	return checkpoint.Result{Job: it.Job, ID: it.ID, Lease: it.Lease, State: checkpoint.Failed, NextAt: next, ErrKind: kind, Err: msg}
}

func dead(it checkpoint.Item, kind, msg string) checkpoint.Result {
	return checkpoint.Result{Job: it.Job, ID: it.ID, Lease: it.Lease, State: checkpoint.Dead, ErrKind: kind, Err: msg}
}

// Run runs the conformance suite against the store that cfg opens.
func Run(t *testing.T, cfg Config) {
	tests := []struct {
		name       string
		persistent bool // needs Config.Persistent
		fn         func(*env)
	}{
		{"AddLeaseComplete", false, testAddLeaseComplete},
		{"FailedRetryOrder", false, testFailedRetryOrder},
		{"DuplicateIDs", false, testDuplicateIDs},
		{"LeaseExpiry", false, testLeaseExpiry},
		{"Extend", false, testExtend},
		{"Reclaim", false, testReclaim},
		{"Release", false, testRelease},
		{"Defer", false, testDefer},
		{"ConcurrentLeasers", false, testConcurrentLeasers},
		{"GroupCommitFlush", false, testGroupCommitFlush},
		{"Progress", false, testProgress},
		{"RetryDead", false, testRetryDead},
		{"StatsTopErrors", false, testStatsTopErrors},
		{"Unfinished", false, testUnfinished},
		{"ManifestChanged", false, testManifestChanged},
		{"JobID", false, testJobID},
		{"Restart", false, testRestart},
		{"PartialLoad", false, testPartialLoad},
		{"InvalidInput", false, testInvalidInput},
		{"Closed", false, testClosed},
		{"ReopenKeepsState", true, testReopen},
		{"ReopenAfterFlushedWrites", true, testReopenGroupCommit},
		{"TransferRecord", false, testTransferRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.persistent && !cfg.Persistent {
				t.Skip("store is not persistent")
			}
			tc.fn(newEnv(t, cfg))
		})
	}
}

func testAddLeaseComplete(e *env) {
	e.job("j", 10)
	e.add("j", ids("a", 10))
	got := e.lease("j", "w1", 4, time.Minute)
	if idsOf(got) != "a000,a001,a002,a003" {
		e.t.Fatalf("leased %s, want the first four in added order", idsOf(got))
	}
	for i, it := range got {
		if want := fmt.Sprintf(`{"line":%d}`, i); string(it.Payload) != want {
			e.t.Fatalf("payload %q, want %q", it.Payload, want)
		}
		if it.State != checkpoint.Leased || it.Attempts != 1 || it.Worker != "w1" || it.Job != "j" {
			e.t.Fatalf("leased item %+v: want state leased, 1 attempt, worker w1, job j", it)
		}
		if it.Lease == 0 {
			e.t.Fatalf("lease token is zero")
		}
		if !it.Due.Equal(e.clock.Now().Add(time.Minute)) {
			e.t.Fatalf("lease due %v, want now+1m", it.Due)
		}
	}
	e.complete(done(got[0]), done(got[1]),
		failed(got[2], e.clock.Now().Add(time.Minute), "transient", "connection reset"),
		dead(got[3], "client", "HTTP 404"))
	e.wantCounts("j", counts{Pending: 6, Done: 2, Failed: 1, Dead: 1})

	rest := e.lease("j", "w1", 100, time.Hour)
	if len(rest) != 6 || rest[0].ID != "a004" {
		e.t.Fatalf("leased %s, want the 6 pending ones (failed one is not due)", idsOf(rest))
	}
	if more := e.lease("j", "w1", 100, time.Minute); len(more) != 0 {
		e.t.Fatalf("leased %s with nothing due", idsOf(more))
	}
	e.clock.Advance(time.Minute)
	retry := e.lease("j", "w2", 1, time.Hour)
	if idsOf(retry) != "a002" || retry[0].Attempts != 2 || retry[0].Err != "connection reset" || retry[0].ErrKind != "transient" {
		e.t.Fatalf("retry lease = %+v, want a002 with attempt 2 and its last error", retry)
	}
	var rs []checkpoint.Result
	for _, it := range append(rest, retry...) {
		rs = append(rs, done(it))
	}
	e.complete(rs...)
	e.wantCounts("j", counts{Done: 9, Dead: 1})
	if it := e.item("j", "a002"); it.State != checkpoint.Done || it.Attempts != 2 || it.Err != "connection reset" {
		e.t.Fatalf("a002 = %+v, want done after 2 attempts, last error kept", it)
	}
}

func testFailedRetryOrder(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 3))
	got := e.lease("j", "w", 3, time.Minute)
	now := e.clock.Now()
	e.complete(failed(got[0], now.Add(3*time.Second), "k", "e"),
		failed(got[1], now.Add(1*time.Second), "k", "e"),
		checkpoint.Result{Job: "j", ID: got[2].ID, Lease: got[2].Lease, State: checkpoint.Failed, Attempts: 7}) // NextAt zero: due now
	first := e.lease("j", "w", 1, time.Minute)
	if idsOf(first) != "a002" || first[0].Attempts != 8 {
		e.t.Fatalf("first retry %+v, want a002 (due now) with attempts 7+1", first)
	}
	e.clock.Advance(5 * time.Second)
	if got := e.lease("j", "w", 1, time.Minute); idsOf(got) != "a001" {
		e.t.Fatalf("retry leased %s, want the earliest due: a001", idsOf(got))
	}
	if got := e.lease("j", "w", 5, time.Minute); idsOf(got) != "a000" {
		e.t.Fatalf("retry leased %s, want a000", idsOf(got))
	}
}

func testDuplicateIDs(e *env) {
	e.job("j", 0)
	err := e.s.AddItems(e.ctx, "j", []checkpoint.Item{{ID: "x"}, {ID: "y"}, {ID: "x"}})
	if !errors.Is(err, checkpoint.ErrDuplicateID) || !strings.Contains(err.Error(), `"x"`) {
		e.t.Fatalf("duplicate in batch: err = %v, want ErrDuplicateID naming \"x\"", err)
	}
	if st := e.stats("j"); st.Items() != 0 || st.Job.Items != 0 {
		e.t.Fatalf("a failed AddItems added %d items (job says %d), want none", st.Items(), st.Job.Items)
	}
	e.add("j", []checkpoint.Item{{ID: "x"}, {ID: "y"}})
	err = e.s.AddItems(e.ctx, "j", []checkpoint.Item{{ID: "z"}, {ID: "y"}})
	if !errors.Is(err, checkpoint.ErrDuplicateID) || !strings.Contains(err.Error(), `"y"`) {
		e.t.Fatalf("duplicate of stored ID: err = %v, want ErrDuplicateID naming \"y\"", err)
	}
	if st := e.stats("j"); st.Items() != 2 || st.Job.Items != 2 {
		e.t.Fatalf("items = %d (job says %d), want 2", st.Items(), st.Job.Items)
	}
	// The same ID in another job is fine.
	e.job("k", 0)
	e.add("k", []checkpoint.Item{{ID: "x"}})
}

func testLeaseExpiry(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 3))
	a := e.lease("j", "A", 10, time.Minute)
	if got := e.lease("j", "B", 10, time.Minute); len(got) != 0 {
		e.t.Fatalf("B leased %s while A's lease holds", idsOf(got))
	}
	e.clock.Advance(time.Minute - time.Nanosecond)
	if got := e.lease("j", "B", 10, time.Minute); len(got) != 0 {
		e.t.Fatalf("B leased %s a nanosecond before expiry", idsOf(got))
	}
	e.clock.Advance(time.Nanosecond)
	b := e.lease("j", "B", 10, time.Minute)
	if idsOf(b) != idsOf(a) {
		e.t.Fatalf("after expiry B leased %s, want %s", idsOf(b), idsOf(a))
	}
	for i := range b {
		if b[i].Lease == a[i].Lease || b[i].Attempts != 2 || b[i].Worker != "B" {
			e.t.Fatalf("re-leased item %+v: want a new token, attempt 2, worker B", b[i])
		}
	}
	// A comes back late: its writes must not touch B's items.
	e.complete(dead(a[0], "k", "late A"))
	if err := e.s.SaveProgress(e.ctx, "j", a[1].ID, a[1].Lease, checkpoint.Progress{Offset: 99}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.Flush(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.Extend(e.ctx, "j", a[2].ID, a[2].Lease, time.Hour); !errors.Is(err, checkpoint.ErrLeaseLost) {
		e.t.Fatalf("Extend with A's lost lease: err = %v, want ErrLeaseLost", err)
	}
	e.wantCounts("j", counts{Leased: 3})
	if it := e.item("j", a[1].ID); it.Progress.Offset != 0 {
		e.t.Fatalf("lost lease saved progress %+v", it.Progress)
	}
	e.complete(done(b[0]), done(b[1]), done(b[2]))
	e.wantCounts("j", counts{Done: 3})
}

func testExtend(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 1))
	a := e.lease("j", "A", 1, time.Minute)
	e.clock.Advance(50 * time.Second)
	if err := e.s.Extend(e.ctx, "j", a[0].ID, a[0].Lease, time.Minute); err != nil {
		e.t.Fatalf("Extend: %v", err)
	}
	e.clock.Advance(50 * time.Second) // 100 s after the lease, 50 s after the heartbeat
	if got := e.lease("j", "B", 1, time.Minute); len(got) != 0 {
		e.t.Fatalf("B leased an extended item")
	}
	if it := e.item("j", a[0].ID); it.State != checkpoint.Leased || it.Worker != "A" {
		e.t.Fatalf("item %+v, want leased by A", it)
	}
	e.clock.Advance(10 * time.Second)
	if got := e.lease("j", "B", 1, time.Minute); len(got) != 1 {
		e.t.Fatalf("B could not lease the item after the extended lease expired")
	}
	if err := e.s.Extend(e.ctx, "j", "nope", 1, time.Minute); !errors.Is(err, checkpoint.ErrLeaseLost) {
		e.t.Fatalf("Extend unknown item: err = %v, want ErrLeaseLost", err)
	}
}

// testDefer: an item leased but not sent is put off until a given time, in
// state Failed, with the attempt its lease counted taken back, so an item
// that a breaker or a throttled host keeps refusing never runs out of
// attempts without being sent.
func testDefer(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 3))
	got := e.lease("j", "w", 3, time.Hour)
	next := e.clock.Now().Add(time.Minute)
	if err := e.s.Defer(e.ctx, "j", got[1].ID, got[1].Lease, next, "circuit breaker open", "transient"); err != nil {
		e.t.Fatalf("Defer: %v", err)
	}
	e.wantCounts("j", counts{Leased: 2, Failed: 1})
	it := e.item("j", got[1].ID)
	if it.State != checkpoint.Failed || it.Attempts != 0 || !it.Due.Equal(next) || it.Err != "circuit breaker open" || it.ErrKind != "transient" {
		e.t.Fatalf("deferred item %+v, want failed until %v with 0 attempts and the reason", it, next)
	}
	if e.cfg.Persistent {
		e.reopen() // durable when Defer returns, without a Flush
		if it := e.item("j", got[1].ID); it.State != checkpoint.Failed || it.Attempts != 0 {
			e.t.Fatalf("deferred item after reopen %+v", it)
		}
	}
	// Not leasable before next; then leasable, at attempt 1 again.
	if early := e.lease("j", "w2", 3, time.Hour); len(early) != 0 {
		e.t.Fatalf("leased %s before the deferred item was due", idsOf(early))
	}
	e.clock.Advance(time.Minute)
	again := e.lease("j", "w2", 3, time.Hour)
	if len(again) != 1 || again[0].ID != got[1].ID || again[0].Attempts != 1 {
		e.t.Fatalf("lease after Defer: %+v, want %s at attempt 1", again, got[1].ID)
	}
	// An item that was sent before keeps those attempts and, with no
	// reason given, its last error; a zero time makes it due at once.
	e.complete(failed(again[0], time.Time{}, "transient", "connection reset"))
	third := e.lease("j", "w3", 3, time.Hour)
	if len(third) != 1 || third[0].Attempts != 2 {
		e.t.Fatalf("lease after a failure: %+v, want %s at attempt 2", third, got[1].ID)
	}
	if err := e.s.Defer(e.ctx, "j", third[0].ID, third[0].Lease, time.Time{}, "", ""); err != nil {
		e.t.Fatalf("Defer: %v", err)
	}
	if it := e.item("j", got[1].ID); it.State != checkpoint.Failed || it.Attempts != 1 || it.Err != "connection reset" || it.ErrKind != "transient" {
		e.t.Fatalf("deferred item %+v, want failed with 1 attempt and its last error kept", it)
	}
	if now := e.lease("j", "w3", 3, time.Hour); len(now) != 1 || now[0].ID != got[1].ID || now[0].Attempts != 2 {
		e.t.Fatalf("lease after Defer to a zero time: %+v, want %s due at once, at attempt 2", now, got[1].ID)
	}
	// Old tokens, done items and unknown items cannot be deferred.
	if err := e.s.Defer(e.ctx, "j", got[1].ID, third[0].Lease, next, "x", "y"); !errors.Is(err, checkpoint.ErrLeaseLost) {
		e.t.Fatalf("Defer with a replaced lease: err = %v, want ErrLeaseLost", err)
	}
	e.complete(done(got[0]))
	if err := e.s.Defer(e.ctx, "j", got[0].ID, got[0].Lease, next, "x", "y"); !errors.Is(err, checkpoint.ErrLeaseLost) {
		e.t.Fatalf("Defer of a done item: err = %v, want ErrLeaseLost", err)
	}
	if err := e.s.Defer(e.ctx, "j", "nope", 1, next, "x", "y"); !errors.Is(err, checkpoint.ErrLeaseLost) {
		e.t.Fatalf("Defer of an unknown item: err = %v, want ErrLeaseLost", err)
	}
	e.wantCounts("j", counts{Leased: 2, Done: 1})
	if it := e.item("j", got[0].ID); it.State != checkpoint.Done || it.Attempts != 1 {
		e.t.Fatalf("done item after a refused Defer: %+v", it)
	}
}

func testRelease(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 3))
	got := e.lease("j", "w", 3, time.Hour)
	if err := e.s.Release(e.ctx, "j", got[1].ID, got[1].Lease); err != nil {
		e.t.Fatalf("Release: %v", err)
	}
	e.wantCounts("j", counts{Pending: 1, Leased: 2})
	if it := e.item("j", got[1].ID); it.State != checkpoint.Pending || it.Attempts != 0 {
		e.t.Fatalf("released item %+v, want pending with its attempt taken back", it)
	}
	// Leasable again at once, and its next lease is attempt 1 again.
	again := e.lease("j", "w2", 3, time.Hour)
	if len(again) != 1 || again[0].ID != got[1].ID || again[0].Attempts != 1 {
		e.t.Fatalf("lease after Release: %+v, want %s at attempt 1", again, got[1].ID)
	}
	// The old token no longer holds it; a done item cannot be released.
	if err := e.s.Release(e.ctx, "j", got[1].ID, got[1].Lease); !errors.Is(err, checkpoint.ErrLeaseLost) {
		e.t.Fatalf("Release with a replaced lease: err = %v, want ErrLeaseLost", err)
	}
	e.complete(done(got[0]))
	if err := e.s.Release(e.ctx, "j", got[0].ID, got[0].Lease); !errors.Is(err, checkpoint.ErrLeaseLost) {
		e.t.Fatalf("Release of a done item: err = %v, want ErrLeaseLost", err)
	}
	if err := e.s.Release(e.ctx, "j", "nope", 1); !errors.Is(err, checkpoint.ErrLeaseLost) {
		e.t.Fatalf("Release of an unknown item: err = %v, want ErrLeaseLost", err)
	}
	e.wantCounts("j", counts{Leased: 2, Done: 1})
	if it := e.item("j", got[0].ID); it.State != checkpoint.Done || it.Attempts != 1 {
		e.t.Fatalf("done item after a refused Release: %+v", it)
	}
}

func testReclaim(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 5))
	old := e.lease("j", "dead-run", 3, time.Hour)
	n, err := e.runLocker().Reclaim(e.ctx, "j")
	if err != nil || n != 3 {
		e.t.Fatalf("Reclaim = %d, %v; want 3", n, err)
	}
	e.wantCounts("j", counts{Pending: 5})
	got := e.lease("j", "new-run", 10, time.Hour)
	if idsOf(got) != "a000,a001,a002,a003,a004" {
		e.t.Fatalf("after Reclaim leased %s, want all five in added order", idsOf(got))
	}
	if got[0].Attempts != 2 || got[3].Attempts != 1 {
		e.t.Fatalf("attempts %d and %d, want 2 (the lost run counts) and 1", got[0].Attempts, got[3].Attempts)
	}
	e.complete(done(old[0])) // the old run's token no longer holds the item
	e.wantCounts("j", counts{Leased: 5})
}

func testConcurrentLeasers(e *env) {
	const items, workers = 300, 6
	e.job("j", items)
	e.add("j", ids("a", items))
	var (
		mu    sync.Mutex
		held  = map[string]string{} // item -> worker holding it now
		times = map[string]int{}    // how often each item was handed out
		wg    sync.WaitGroup
		errs  = make(chan error, workers)
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("w%d", w)
			for {
				got, err := e.s.Lease(e.ctx, "j", name, 1+w%4, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				var rs []checkpoint.Result
				mu.Lock()
				for _, it := range got {
					if h, ok := held[it.ID]; ok {
						mu.Unlock()
						errs <- fmt.Errorf("item %s leased to %s while %s holds it", it.ID, name, h)
						return
					}
					held[it.ID] = name
					times[it.ID]++
				}
				mu.Unlock()
				for _, it := range got {
					rs = append(rs, done(it))
				}
				// Hand over first, then forget: the store keeps the item
				// leased until the result is committed.
				if err := e.s.Complete(e.ctx, rs); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, it := range got {
					delete(held, it.ID)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	if err := e.s.Flush(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if len(times) != items {
		e.t.Fatalf("%d items handed out, want %d", len(times), items)
	}
	for id, n := range times {
		if n != 1 {
			e.t.Fatalf("item %s handed out %d times with no lease expiring", id, n)
		}
	}
	e.wantCounts("j", counts{Done: items})
}

func testGroupCommitFlush(e *env) {
	const items = 500
	e.job("j", 0)
	e.add("j", ids("a", items))
	got := e.lease("j", "w", items, time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, items)
	for _, it := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.s.SaveProgress(e.ctx, "j", it.ID, it.Lease, checkpoint.Progress{Offset: 1}); err != nil {
				errs <- err
			}
			if err := e.s.Complete(e.ctx, []checkpoint.Result{done(it)}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	if err := e.s.Flush(e.ctx); err != nil {
		e.t.Fatalf("Flush: %v", err)
	}
	e.wantCounts("j", counts{Done: items})
	if it := e.item("j", "a123"); it.Progress.Offset != 1 {
		e.t.Fatalf("progress %+v, want offset 1", it.Progress)
	}
}

func testProgress(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 2))
	a := e.lease("j", "w", 2, time.Minute)
	p := checkpoint.Progress{Offset: 1 << 40, Size: 1 << 41, ETag: `"v1"`, UploadURL: "http://x/files/1", UploadID: "u1", Cursor: "c", Extra: []byte{0, 1, 2}}
	if err := e.s.SaveProgress(e.ctx, "j", a[0].ID, a[0].Lease, p); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.Flush(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if got := e.item("j", a[0].ID).Progress; fmt.Sprint(got) != fmt.Sprint(p) {
		e.t.Fatalf("progress = %+v, want %+v", got, p)
	}
	// A failed attempt keeps its progress; the next lease resumes from it.
	e.complete(failed(a[0], time.Time{}, "transient", "reset"))
	again := e.lease("j", "w", 1, time.Minute)
	if len(again) != 1 || fmt.Sprint(again[0].Progress) != fmt.Sprint(p) {
		e.t.Fatalf("re-leased %+v, want progress %+v", again, p)
	}
	// A result may carry final progress.
	fin := checkpoint.Progress{Offset: 5, ETag: `"v2"`}
	r := done(a[1])
	r.Progress = &fin
	e.complete(r)
	if got := e.item("j", a[1].ID).Progress; fmt.Sprint(got) != fmt.Sprint(fin) {
		e.t.Fatalf("progress = %+v, want %+v", got, fin)
	}
	// Saving the zero Progress clears it.
	if err := e.s.SaveProgress(e.ctx, "j", again[0].ID, again[0].Lease, checkpoint.Progress{}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.Flush(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if got := e.item("j", again[0].ID).Progress; !got.IsZero() {
		e.t.Fatalf("progress = %+v, want zero", got)
	}
}

func testRetryDead(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 4))
	got := e.lease("j", "w", 4, time.Minute)
	e.complete(dead(got[2], "client", "HTTP 404"), done(got[0]), dead(got[1], "client", "HTTP 403"),
		checkpoint.Result{Job: "j", ID: got[3].ID, Lease: got[3].Lease, State: checkpoint.Dead, Attempts: 5, ErrKind: "transient", Err: "timeout"})
	d, err := e.reporter().Dead(e.ctx, "j", 2)
	if err != nil {
		e.t.Fatal(err)
	}
	if idsOf(d) != "a001,a002" || d[0].Err != "HTTP 403" || d[0].ErrKind != "client" {
		e.t.Fatalf("Dead(2) = %+v, want a001 (HTTP 403), a002: bounded, in added order, with reasons", d)
	}
	n, err := e.reporter().RetryDead(e.ctx, "j")
	if err != nil || n != 3 {
		e.t.Fatalf("RetryDead = %d, %v; want 3", n, err)
	}
	e.wantCounts("j", counts{Pending: 3, Done: 1})
	back := e.lease("j", "w", 10, time.Minute)
	if idsOf(back) != "a001,a002,a003" {
		e.t.Fatalf("leased %s after RetryDead, want a001,a002,a003", idsOf(back))
	}
	for _, it := range back {
		if it.Attempts != 1 {
			e.t.Fatalf("item %s has %d attempts after RetryDead and one lease, want 1", it.ID, it.Attempts)
		}
	}
	if d, _ := e.reporter().Dead(e.ctx, "j", 10); len(d) != 0 {
		e.t.Fatalf("Dead after RetryDead = %s", idsOf(d))
	}
}

func testStatsTopErrors(e *env) {
	j := e.job("j", 8)
	e.add("j", ids("a", 8))
	st := e.stats("j")
	if st.Job.Name != "j" || st.Job.Meta != j.Meta || st.Job.Items != 8 || st.Pending != 8 || !st.FirstDone.IsZero() {
		e.t.Fatalf("fresh stats %+v", st)
	}
	// Stats reports the stored job as Job does, in every store.
	stored, err := e.s.Job(e.ctx, "j")
	if err != nil {
		e.t.Fatal(err)
	}
	if sj := st.Job; sj.Name != stored.Name || sj.ID != stored.ID || sj.Meta != stored.Meta || sj.Items != stored.Items ||
		!sj.Created.Equal(stored.Created) || sj.Resumed != stored.Resumed || !sj.Resumed {
		e.t.Fatalf("Stats().Job = %+v, Job() = %+v; want the same stored job, Resumed set", sj, stored)
	}
	got := e.lease("j", "w", 8, time.Minute)
	t0 := e.clock.Now()
	e.complete(done(got[0]))
	e.clock.Advance(10 * time.Second)
	later := e.clock.Now().Add(time.Hour)
	e.complete(done(got[1]),
		failed(got[2], later, "transient", "connection reset"),
		failed(got[3], later, "transient", "connection reset"),
		dead(got[4], "transient", "connection reset"),
		dead(got[5], "client", "HTTP 404"),
		failed(got[6], later, "server", "HTTP 503"),
		failed(got[7], later, "server", "HTTP 503"))
	st = e.stats("j")
	if st.Done != 2 || st.Failed != 4 || st.Dead != 2 || st.Attempts != 8 {
		e.t.Fatalf("stats %+v", st)
	}
	if !st.FirstDone.Equal(t0) || !st.LastDone.Equal(t0.Add(10*time.Second)) {
		e.t.Fatalf("done between %v and %v, want %v and %v", st.FirstDone, st.LastDone, t0, t0.Add(10*time.Second))
	}
	top, err := e.reporter().TopErrors(e.ctx, "j", 2)
	if err != nil {
		e.t.Fatal(err)
	}
	want := []checkpoint.ErrorCount{{Kind: "transient", Err: "connection reset", Count: 3}, {Kind: "server", Err: "HTTP 503", Count: 2}}
	if fmt.Sprint(top) != fmt.Sprint(want) {
		e.t.Fatalf("TopErrors(2) = %v, want %v", top, want)
	}
	// Long error texts are cut, not refused.
	e.job("k", 0)
	e.add("k", ids("b", 1))
	b := e.lease("k", "w", 1, time.Minute)
	e.complete(dead(b[0], "x", strings.Repeat("é", checkpoint.MaxErrLen)))
	if it := e.item("k", b[0].ID); len(it.Err) > checkpoint.MaxErrLen || len(it.Err) < checkpoint.MaxErrLen-1 {
		e.t.Fatalf("stored error of %d bytes, want it cut to about %d", len(it.Err), checkpoint.MaxErrLen)
	}
}

func testUnfinished(e *env) {
	e.job("j", 0)
	if e.unfinished("j") {
		e.t.Fatal("Unfinished = true for a job without items")
	}
	e.add("j", ids("a", 3))
	if !e.unfinished("j") {
		e.t.Fatal("Unfinished = false with 3 pending items")
	}
	// Only leased: one item is done, the others are held by a lease.
	got := e.lease("j", "w", 3, time.Minute)
	e.complete(done(got[0]))
	e.wantCounts("j", counts{Leased: 2, Done: 1})
	if !e.unfinished("j") {
		e.t.Fatal("Unfinished = false with 2 leased items")
	}
	// A lease that expired still leaves its item unfinished.
	e.clock.Advance(2 * time.Minute)
	if !e.unfinished("j") {
		e.t.Fatal("Unfinished = false with 2 items under expired leases")
	}
	got = e.lease("j", "w", 2, time.Minute)
	// Only failed, and not due for an hour: waiting is not finishing.
	e.complete(dead(got[0], "client", "HTTP 404"), failed(got[1], e.clock.Now().Add(time.Hour), "transient", "breaker open"))
	e.wantCounts("j", counts{Done: 1, Failed: 1, Dead: 1})
	if !e.unfinished("j") {
		e.t.Fatal("Unfinished = false with a failed item due in an hour")
	}
	if more := e.lease("j", "w", 10, time.Minute); len(more) != 0 {
		e.t.Fatalf("leased %s before the failed item was due", idsOf(more))
	}
	// The retry succeeds: everything is done or dead.
	e.clock.Advance(time.Hour)
	got = e.lease("j", "w", 10, time.Minute)
	if len(got) != 1 {
		e.t.Fatalf("leased %s once due, want the failed item", idsOf(got))
	}
	e.complete(done(got[0]))
	e.wantCounts("j", counts{Done: 2, Dead: 1})
	if e.unfinished("j") {
		e.t.Fatal("Unfinished = true with every item done or dead")
	}
	// The same result handed over again changes nothing.
	e.complete(done(got[0]))
	if e.unfinished("j") {
		e.t.Fatal("Unfinished = true after a result was applied twice")
	}
	// RetryDead makes the job unfinished again.
	if n, err := e.reporter().RetryDead(e.ctx, "j"); err != nil || n != 1 {
		e.t.Fatalf("RetryDead = %d, %v; want 1", n, err)
	}
	if !e.unfinished("j") {
		e.t.Fatal("Unfinished = false after RetryDead made an item pending")
	}
	// Another job's items do not count, and a missing job is an error.
	e.job("k", 0)
	e.add("k", ids("b", 1))
	got = e.lease("k", "w", 1, time.Minute)
	e.complete(done(got[0]))
	if e.unfinished("k") {
		e.t.Fatal("Unfinished(k) = true: it sees job j's pending item")
	}
	if _, err := e.s.Unfinished(e.ctx, "nope"); !errors.Is(err, checkpoint.ErrNoJob) || !strings.Contains(err.Error(), `"nope"`) {
		e.t.Fatalf("Unfinished of a missing job: err = %v, want ErrNoJob naming it", err)
	}
	if err := e.s.Restart(e.ctx, "j"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.Unfinished(e.ctx, "j"); !errors.Is(err, checkpoint.ErrNoJob) {
		e.t.Fatalf("Unfinished after Restart: err = %v, want ErrNoJob", err)
	}
}

func testManifestChanged(e *env) {
	meta := checkpoint.JobMeta{Fingerprint: "sha256:aaa", Total: 3}
	j, err := e.s.OpenJob(e.ctx, "sync", meta)
	if err != nil || j.Resumed || j.Meta != meta || j.Name != "sync" || !j.Created.Equal(e.clock.Now()) {
		e.t.Fatalf("OpenJob new = %+v, %v", j, err)
	}
	e.clock.Advance(time.Hour)
	j, err = e.s.OpenJob(e.ctx, "sync", meta)
	if err != nil || !j.Resumed || !j.Created.Equal(e.clock.Now().Add(-time.Hour)) {
		e.t.Fatalf("OpenJob again = %+v, %v; want resumed with the first creation time", j, err)
	}
	for _, other := range []checkpoint.JobMeta{{Fingerprint: "sha256:bbb", Total: 3}, {Fingerprint: "sha256:aaa", Total: 4}} {
		_, err := e.s.OpenJob(e.ctx, "sync", other)
		if !errors.Is(err, checkpoint.ErrManifestChanged) || !strings.Contains(err.Error(), `"sync"`) {
			e.t.Fatalf("OpenJob with %+v: err = %v, want ErrManifestChanged naming the job", other, err)
		}
		// The advice must not invite sending finished items again under
		// new keys, and a library error names no CLI flag.
		msg := err.Error()
		if strings.Contains(msg, "--") || strings.Contains(msg, "another job name") ||
			!strings.Contains(msg, "new manifest") || !strings.Contains(msg, "new idempotency keys") {
			e.t.Fatalf("OpenJob with %+v: err = %q, want advice to put new lines in a new manifest, "+
				"a warning that a new job means new idempotency keys, and no CLI flag", other, msg)
		}
	}
}

// testJobID: a job's ID is drawn once, when the job is created, and kept
// by every later open; Restart draws a new one; another store never has
// the same one. Idempotency keys are derived from it.
func testJobID(e *env) {
	if _, err := e.s.Job(e.ctx, "j"); !errors.Is(err, checkpoint.ErrNoJob) {
		e.t.Fatalf("Job of a missing job: err = %v, want ErrNoJob", err)
	}
	first := e.job("j", 0)
	if len(first.ID) != 32 || strings.Trim(first.ID, "0123456789abcdef") != "" {
		e.t.Fatalf("new job ID %q, want 32 lower-case hex digits", first.ID)
	}
	again := e.job("j", 0)
	got, err := e.s.Job(e.ctx, "j")
	if err != nil || again.ID != first.ID || got.ID != first.ID || !got.Resumed || got.Meta != first.Meta {
		e.t.Fatalf("reopened job %+v and Job = %+v, %v; want ID %q kept", again, got, err, first.ID)
	}
	if st := e.stats("j"); st.Job.ID != first.ID {
		e.t.Fatalf("Stats job ID %q, want %q", st.Job.ID, first.ID)
	}
	if other := e.job("k", 0); other.ID == first.ID {
		e.t.Fatalf("two jobs of one store share ID %q", other.ID)
	}
	if e.cfg.Persistent {
		e.reopen()
		if j := e.job("j", 0); j.ID != first.ID {
			e.t.Fatalf("after reopening the store: ID %q, want %q", j.ID, first.ID)
		}
	}
	if err := e.s.Restart(e.ctx, "j"); err != nil {
		e.t.Fatal(err)
	}
	restarted := e.job("j", 0)
	if restarted.ID == first.ID || len(restarted.ID) != 32 {
		e.t.Fatalf("after Restart: ID %q, want a new one (was %q)", restarted.ID, first.ID)
	}
	// Another store (another state file) with the same job name.
	other := e.cfg.Open(e.t, e.t.TempDir()+"/other.db", checkpoint.Config{Clock: e.clock})
	defer other.Close()
	oj, err := other.OpenJob(e.ctx, "j", checkpoint.JobMeta{Fingerprint: "fp-j"})
	if err != nil {
		e.t.Fatal(err)
	}
	if oj.ID == restarted.ID || oj.ID == first.ID || oj.ID == "" {
		e.t.Fatalf("a second store's job %q has ID %q, same as the first store's (%q, %q)", oj.Name, oj.ID, first.ID, restarted.ID)
	}
}

func testRestart(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 3))
	old := e.lease("j", "w", 3, time.Minute)
	if err := e.s.Restart(e.ctx, "j"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.s.Stats(e.ctx, "j"); !errors.Is(err, checkpoint.ErrNoJob) {
		e.t.Fatalf("Stats after Restart: err = %v, want ErrNoJob", err)
	}
	if err := e.s.Restart(e.ctx, "j"); err != nil {
		e.t.Fatalf("Restart of a missing job: %v", err)
	}
	j, err := e.s.OpenJob(e.ctx, "j", checkpoint.JobMeta{Fingerprint: "new"})
	if err != nil || j.Resumed || j.Items != 0 {
		e.t.Fatalf("OpenJob after Restart = %+v, %v; want a new empty job (new manifest allowed)", j, err)
	}
	e.add("j", ids("a", 3))
	e.complete(done(old[0])) // from before the restart: must not count
	e.wantCounts("j", counts{Pending: 3})
}

func testPartialLoad(e *env) {
	e.job("j", 10)
	e.add("j", ids("a", 10)[:4])
	j := e.job("j", 10)
	if !j.Resumed || j.Items != 4 {
		e.t.Fatalf("job = %+v, want resumed with 4 items added", j)
	}
	e.add("j", ids("a", 10)[j.Items:])
	if err := e.s.AddItems(e.ctx, "j", []checkpoint.Item{{ID: "extra"}}); !errors.Is(err, checkpoint.ErrInvalid) {
		e.t.Fatalf("adding past Total: err = %v, want ErrInvalid", err)
	}
	e.wantCounts("j", counts{Pending: 10})
}

func testInvalidInput(e *env) {
	e.job("j", 0)
	e.add("j", ids("a", 1))
	ctx := e.ctx
	checks := []struct {
		name string
		err  error
		want error
	}{
		{"empty job name", func() error { _, err := e.s.OpenJob(ctx, "", checkpoint.JobMeta{}); return err }(), checkpoint.ErrInvalid},
		{"empty ID", e.s.AddItems(ctx, "j", []checkpoint.Item{{ID: ""}}), checkpoint.ErrInvalid},
		{"long ID", e.s.AddItems(ctx, "j", []checkpoint.Item{{ID: strings.Repeat("x", checkpoint.MaxIDLen+1)}}), checkpoint.ErrInvalid},
		{"big payload", e.s.AddItems(ctx, "j", []checkpoint.Item{{ID: "p", Payload: make([]byte, checkpoint.MaxPayloadLen+1)}}), checkpoint.ErrInvalid},
		{"unknown job add", e.s.AddItems(ctx, "nope", []checkpoint.Item{{ID: "x"}}), checkpoint.ErrNoJob},
		{"lease n=0", func() error { _, err := e.s.Lease(ctx, "j", "w", 0, time.Minute); return err }(), checkpoint.ErrInvalid},
		{"lease ttl=0", func() error { _, err := e.s.Lease(ctx, "j", "w", 1, 0); return err }(), checkpoint.ErrInvalid},
		{"lease unknown job", func() error { _, err := e.s.Lease(ctx, "nope", "w", 1, time.Minute); return err }(), checkpoint.ErrNoJob},
		{"result state pending", e.s.Complete(ctx, []checkpoint.Result{{Job: "j", ID: "a000", Lease: 1, State: checkpoint.Pending}}), checkpoint.ErrInvalid},
		{"result state zero", e.s.Complete(ctx, []checkpoint.Result{{Job: "j", ID: "a000", Lease: 1}}), checkpoint.ErrInvalid},
		{"big extra", e.s.SaveProgress(ctx, "j", "a000", 0, checkpoint.Progress{Extra: make([]byte, checkpoint.MaxProgressExtraLen+1)}), checkpoint.ErrInvalid},
		{"unknown item", func() error { _, err := e.s.Item(ctx, "j", "nope"); return err }(), checkpoint.ErrNoItem},
		{"unknown job stats", func() error { _, err := e.s.Stats(ctx, "nope"); return err }(), checkpoint.ErrNoJob},
		{"unknown job unfinished", func() error { _, err := e.s.Unfinished(ctx, "nope"); return err }(), checkpoint.ErrNoJob},
		{"top errors n=0", func() error { _, err := e.reporter().TopErrors(ctx, "j", 0); return err }(), checkpoint.ErrInvalid},
		{"dead limit=0", func() error { _, err := e.reporter().Dead(ctx, "j", 0); return err }(), checkpoint.ErrInvalid},
	}
	for _, c := range checks {
		if !errors.Is(c.err, c.want) {
			e.t.Errorf("%s: err = %v, want %v", c.name, c.err, c.want)
		}
	}
	// Results for unknown jobs or items, or never-leased items, are dropped.
	e.complete(checkpoint.Result{Job: "nope", ID: "x", Lease: 1, State: checkpoint.Done},
		checkpoint.Result{Job: "j", ID: "nope", Lease: 1, State: checkpoint.Done},
		checkpoint.Result{Job: "j", ID: "a000", Lease: 0, State: checkpoint.Done})
	e.wantCounts("j", counts{Pending: 1})
}

func testClosed(e *env) {
	e.job("j", 0)
	if err := e.s.Close(); err != nil {
		e.t.Fatal(err)
	}
	s := e.s
	e.s = nil
	ctx := e.ctx
	for name, err := range map[string]error{
		"OpenJob":    func() error { _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{}); return err }(),
		"AddItems":   s.AddItems(ctx, "j", []checkpoint.Item{{ID: "x"}}),
		"Lease":      func() error { _, err := s.Lease(ctx, "j", "w", 1, time.Minute); return err }(),
		"Complete":   s.Complete(ctx, []checkpoint.Result{{Job: "j", ID: "x", Lease: 1, State: checkpoint.Done}}),
		"Progress":   s.SaveProgress(ctx, "j", "x", 0, checkpoint.Progress{}),
		"Flush":      s.Flush(ctx),
		"Stats":      func() error { _, err := s.Stats(ctx, "j"); return err }(),
		"Job":        func() error { _, err := s.Job(ctx, "j"); return err }(),
		"Unfinished": func() error { _, err := s.Unfinished(ctx, "j"); return err }(),
		"Release":    s.Release(ctx, "j", "x", 1),
		"Close":      s.Close(),
	} {
		if !errors.Is(err, checkpoint.ErrClosed) {
			e.t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

func testReopen(e *env) {
	e.job("j", 6)
	e.add("j", ids("a", 6))
	got := e.lease("j", "w", 4, time.Minute)
	e.complete(done(got[0]), failed(got[1], e.clock.Now().Add(time.Hour), "transient", "reset"), dead(got[2], "client", "404"))
	if err := e.s.SaveProgress(e.ctx, "j", got[3].ID, got[3].Lease, checkpoint.Progress{Offset: 42, ETag: "e"}); err != nil {
		e.t.Fatal(err)
	}
	e.reopen() // Close flushes the progress
	j := e.job("j", 6)
	if !j.Resumed || j.Items != 6 {
		e.t.Fatalf("reopened job %+v", j)
	}
	e.wantCounts("j", counts{Pending: 2, Leased: 1, Done: 1, Failed: 1, Dead: 1})
	if it := e.item("j", got[3].ID); it.Progress.Offset != 42 || it.Progress.ETag != "e" || it.Lease != got[3].Lease {
		e.t.Fatalf("reopened item %+v", it)
	}
	if it := e.item("j", got[1].ID); it.Err != "reset" || !it.Due.Equal(e.clock.Now().Add(time.Hour)) {
		e.t.Fatalf("reopened failed item %+v", it)
	}
	// The previous run is gone: take its lease back (a store one process
	// owns) or let it expire (a shared store), and resume.
	if rl, ok := e.s.(checkpoint.RunLocker); ok {
		if n, err := rl.Reclaim(e.ctx, "j"); n != 1 || err != nil {
			e.t.Fatalf("Reclaim = %d, %v", n, err)
		}
	} else {
		e.clock.Advance(time.Minute)
	}
	next := e.lease("j", "w2", 10, time.Minute)
	if idsOf(next) != "a003,a004,a005" || next[0].Progress.Offset != 42 {
		e.t.Fatalf("resumed with %+v, want a003 (offset 42), a004, a005", next)
	}
	// Lease tokens stay unique across reopen.
	if next[0].Lease <= got[3].Lease {
		e.t.Fatalf("token %d after reopen not above %d", next[0].Lease, got[3].Lease)
	}
}

func testReopenGroupCommit(e *env) {
	const items = 200
	e.job("j", 0)
	e.add("j", ids("a", items))
	got := e.lease("j", "w", items, time.Minute)
	var wg sync.WaitGroup
	for _, it := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.s.Complete(e.ctx, []checkpoint.Result{done(it)}); err != nil {
				e.t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := e.s.Flush(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.reopen()
	e.wantCounts("j", counts{Done: items})
}

func testTransferRecord(e *env) {
	// A transfer keeps one item per job as a key/value record.
	job := "upload:/data/big.iso"
	e.job(job, 1)
	e.add(job, []checkpoint.Item{{ID: "file"}})
	for off := int64(1); off <= 100; off++ {
		p := checkpoint.Progress{Offset: off << 20, Size: 100 << 20, ETag: "e1", UploadURL: "http://tus/files/abc"}
		if err := e.s.SaveProgress(e.ctx, job, "file", 0, p); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.s.Flush(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if it := e.item(job, "file"); it.Progress.Offset != 100<<20 || it.Progress.UploadURL != "http://tus/files/abc" {
		e.t.Fatalf("record %+v", it.Progress)
	}
}
