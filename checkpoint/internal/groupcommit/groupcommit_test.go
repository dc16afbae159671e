package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Close leaves no committer goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var errClosed = errors.New("closed")

// recorder is a Commit func that records its batches and, while gated,
// holds each commit until the test releases it.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	started chan struct{} // one value per gated commit, before it waits
	release chan struct{} // one value lets one gated commit finish
	open    bool          // commits no longer wait (under mu)
	fail    func(batch []int) error
}

func newRecorder() *recorder {
	return &recorder{started: make(chan struct{}, 100), release: make(chan struct{}, 100)}
}

func (r *recorder) commit(batch []int) error {
	r.mu.Lock()
	open := r.open
	r.mu.Unlock()
	if !open {
		r.started <- struct{}{}
		<-r.release
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, slices.Clone(batch))
	if r.fail != nil {
		return r.fail(batch)
	}
	return nil
}

// ops returns the non-empty batches committed so far.
func (r *recorder) ops() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]int
	for _, b := range r.batches {
		if len(b) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// ungate lets the commit that waits, if any, and every later one run at
// once.
func (r *recorder) ungate() {
	r.mu.Lock()
	r.open = true
	r.mu.Unlock()
	r.release <- struct{}{} // buffered: harmless if no commit waits
}

func newCommitter(t *testing.T, r *recorder, maxBatch, queue int) *Committer[int] {
	t.Helper()
	return New(Config[int]{
		Commit:    r.commit,
		Weight:    func(op int) int { return 1 },
		MaxBatch:  maxBatch,
		QueueSize: queue,
		ErrClosed: errClosed,
	})
}

func mustSend(t *testing.T, c *Committer[int], ops ...int) {
	t.Helper()
	for _, op := range ops {
		if err := c.Send(context.Background(), op); err != nil {
			t.Fatalf("Send(%d): %v", op, err)
		}
	}
}

// closeAll lets every commit run and closes the committer.
func closeAll(c *Committer[int], r *recorder) error {
	r.ungate()
	return c.Close()
}

// What queues up while a commit runs goes into the next one, and one batch
// holds at most MaxBatch of weight.
func TestBatching(t *testing.T) {
	r := newRecorder()
	c := newCommitter(t, r, 3, 16)
	mustSend(t, c, 1)
	<-r.started // the committer holds 1; the next sends wait in the queue
	mustSend(t, c, 2, 3, 4, 5, 6, 7, 8)
	if err := closeAll(c, r); err != nil {
		t.Fatal(err)
	}
	want := [][]int{{1}, {2, 3, 4}, {5, 6, 7}, {8}}
	if got := r.ops(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches = %v, want %v", got, want)
	}
}

// Weight counts toward MaxBatch; an op heavier than MaxBatch still goes,
// alone.
func TestBatchingWeight(t *testing.T) {
	r := newRecorder()
	c := New(Config[int]{Commit: r.commit, Weight: func(op int) int { return op }, MaxBatch: 10, ErrClosed: errClosed})
	mustSend(t, c, 1)
	<-r.started
	mustSend(t, c, 4, 5, 2, 20, 3)
	if err := closeAll(c, r); err != nil {
		t.Fatal(err)
	}
	// 4+5 = 9 < 10 takes 2 as well (11); 20 alone reaches the bound.
	want := [][]int{{1}, {4, 5, 2}, {20}, {3}}
	if got := r.ops(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches = %v, want %v", got, want)
	}
}

// Flush returns once what was sent before it is committed.
func TestFlushAfterSend(t *testing.T) {
	r := newRecorder()
	r.ungate()
	c := newCommitter(t, r, 0, 0)
	for i := range 50 {
		mustSend(t, c, i)
		if err := c.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := slices.Concat(r.ops()...)
		if len(got) != i+1 || got[i] != i {
			t.Fatalf("after Flush %d, committed %v", i, got)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// A batch of flushes alone still calls Commit, with an empty batch: a
// store may check its database there.
func TestFlushAloneCommitsEmptyBatch(t *testing.T) {
	r := newRecorder()
	r.ungate()
	c := newCommitter(t, r, 0, 0)
	if err := c.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	n, first := len(r.batches), r.batches[0]
	r.mu.Unlock()
	if n != 1 || len(first) != 0 {
		t.Fatalf("batches after a lone Flush: %d, first %v; want one empty batch", n, first)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// The first Commit error is sticky: the flushes of its batch get it, later
// calls return it, and nothing more is committed.
func TestStickyError(t *testing.T) {
	boom := errors.New("boom")
	r := newRecorder()
	r.fail = func(batch []int) error {
		if slices.Contains(batch, 2) {
			return boom
		}
		return nil
	}
	c := newCommitter(t, r, 0, 0)
	mustSend(t, c, 1)
	<-r.started
	mustSend(t, c, 2)
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(context.Background()) }()
	for len(c.ops) < 2 { // the flush queued behind 2: both go in one batch
		runtime.Gosched()
	}
	r.release <- struct{}{} // commit {1}
	<-r.started             // the committer holds {2} and the flush
	mustSend(t, c, 3)       // queued behind the failing commit
	r.ungate()              // commit {2}: fails; a broken committer would go on
	if err := <-flushed; err != boom {
		t.Fatalf("Flush in the failed batch = %v, want the commit error", err)
	}
	if err := c.Send(context.Background(), 4); err != boom {
		t.Fatalf("Send after failure = %v, want the commit error", err)
	}
	if err := c.Flush(context.Background()); err != boom {
		t.Fatalf("Flush after failure = %v, want the commit error", err)
	}
	if err := c.Err(); err != boom {
		t.Fatalf("Err = %v", err)
	}
	if err := closeAll(c, r); err != boom {
		t.Fatalf("Close = %v, want the commit error", err)
	}
	if got := slices.Concat(r.ops()...); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("committed %v, want [1 2]: nothing after the failure", got)
	}
}

// Close commits everything queued, then every call returns ErrClosed.
func TestClose(t *testing.T) {
	r := newRecorder()
	c := newCommitter(t, r, 0, 0)
	mustSend(t, c, 1)
	<-r.started
	mustSend(t, c, 2, 3)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	r.release <- struct{}{} // {1}
	<-r.started
	r.release <- struct{}{} // {2, 3}
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := slices.Concat(r.ops()...); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("committed %v, want [1 2 3]", got)
	}
	if !c.Closed() {
		t.Fatal("Closed() = false after Close")
	}
	if err := c.Close(); err != errClosed {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
	if err := c.Send(context.Background(), 4); err != errClosed {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if err := c.Flush(context.Background()); err != errClosed {
		t.Fatalf("Flush after Close = %v, want ErrClosed", err)
	}
}

// Send blocks only while the queue is full, and gives up when ctx ends;
// so does Flush, also while it waits for its commit.
func TestContext(t *testing.T) {
	r := newRecorder()
	c := newCommitter(t, r, 0, 1)
	mustSend(t, c, 1)
	<-r.started
	mustSend(t, c, 2) // fills the queue of 1 without blocking
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Send(ctx, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send on a full queue = %v, want context.Canceled", err)
	}
	if err := c.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush on a full queue = %v, want context.Canceled", err)
	}
	r.release <- struct{}{} // {1}; the committer takes 2 and waits
	<-r.started
	// The queue has room now, but the commit does not end: Flush either
	// queues and waits or sees ctx first; both end with ctx's error.
	if err := c.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush during a commit = %v, want context.Canceled", err)
	}
	if err := closeAll(c, r); err != nil {
		t.Fatal(err)
	}
	if got := slices.Concat(r.ops()...); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("committed %v, want [1 2]", got)
	}
}

// BenchmarkSend measures a hand-over with the committer keeping up.
func BenchmarkSend(b *testing.B) {
	c := New(Config[int]{Commit: func([]int) error { return nil }, ErrClosed: errClosed})
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := c.Send(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
}
