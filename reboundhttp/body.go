package reboundhttp

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStalled is matched (errors.Is) by the error of a read that got no data
// from the server for Config.StallTimeout (or, waiting for a response on
// an http:// connection, for Config.ResponseHeaderTimeout). The error is also
// a net.Error whose Timeout() is true, so it is retried like a timeout when
// it happens before the response.
var ErrStalled = errors.New("reboundhttp: server stalled")

type stallError struct{ d time.Duration }

func (e *stallError) Error() string {
	return "reboundhttp: server stalled: no data for " + e.d.String()
}
func (e *stallError) Is(target error) bool { return target == ErrStalled }
func (e *stallError) Timeout() bool        { return true }
func (e *stallError) Temporary() bool      { return true }

// stallBody cuts a response body that sends nothing for d while a Read waits.
//
// The timer runs only inside Read: armed when Read starts, stopped when it
// returns, so a caller who reads slowly is never cut, and a body nobody reads
// holds no running timer. No goroutine is started: the timer's function runs
// only when a stall happens, and closes the body, which makes the blocked
// Read return. Timers come from a pool, since one per request would cost two
// allocations on every request; a timer is taken at the first Read and given
// back at the end of the body or at Close.
type stallBody struct {
	rc       io.ReadCloser
	d        time.Duration
	st       atomic.Pointer[stallTimer]
	released atomic.Bool // the body ended or was closed: take no timer
	stalled  atomic.Bool
}

func (b *stallBody) Read(p []byte) (int, error) {
	st := b.st.Load()
	if st == nil && !b.released.Load() {
		st = getStallTimer(b)
		b.st.Store(st)
	}
	if st != nil {
		st.arm(b, b.d)
	}
	n, err := b.rc.Read(p)
	if st != nil {
		st.disarm(b)
		if err != nil {
			b.released.Store(true)
			if b.st.CompareAndSwap(st, nil) {
				st.release(b)
			}
		}
	}
	if err != nil && err != io.EOF && b.stalled.Load() {
		err = &stallError{b.d}
	}
	return n, err
}

func (b *stallBody) Close() error {
	b.released.Store(true)
	if st := b.st.Swap(nil); st != nil {
		st.release(b)
	}
	return b.rc.Close()
}

// stallTimer is a reusable timer for stallBody. Every method names the body
// it acts for, and does nothing unless that body still owns the timer.
//
// A Read only records when it would stall (due); the timer is not reset on
// every Read. It is started by the first Read that finds it idle, and when it
// fires it compares the time with due: a Read that is late is cut; one still
// within its time re-arms the timer for the rest; no Read in progress lets
// the timer go idle. So a stream of Reads costs a clock read and a lock each,
// and the timer fires at most about once per stall period.
type stallTimer struct {
	t       *time.Timer
	mu      sync.Mutex
	owner   *stallBody
	due     time.Time // when the Read in progress stalls; zero when none
	pending bool      // the timer is set to fire
}

var stallTimers sync.Pool

func getStallTimer(b *stallBody) *stallTimer {
	st, _ := stallTimers.Get().(*stallTimer)
	if st == nil {
		st = new(stallTimer)
		st.t = time.AfterFunc(time.Hour, st.fire)
		st.t.Stop()
	}
	st.mu.Lock()
	st.owner = b
	st.mu.Unlock()
	return st
}

func (st *stallTimer) arm(b *stallBody, d time.Duration) {
	st.mu.Lock()
	if st.owner == b {
		st.due = time.Now().Add(d)
		if !st.pending {
			st.pending = true
			st.t.Reset(d)
		}
	}
	st.mu.Unlock()
}

func (st *stallTimer) disarm(b *stallBody) {
	st.mu.Lock()
	if st.owner == b {
		st.due = time.Time{}
	}
	st.mu.Unlock()
}

func (st *stallTimer) release(b *stallBody) {
	st.mu.Lock()
	if st.owner != b {
		st.mu.Unlock()
		return
	}
	st.t.Stop()
	st.owner = nil
	st.due = time.Time{}
	st.pending = false
	st.mu.Unlock()
	stallTimers.Put(st)
}

// fire runs in the timer's own goroutine when it falls due.
func (st *stallTimer) fire() {
	st.mu.Lock()
	b, due := st.owner, st.due
	if b == nil || due.IsZero() {
		st.pending = false // nothing to watch until the next Read
		st.mu.Unlock()
		return
	}
	if left := time.Until(due); left > 0 {
		st.pending = true
		st.t.Reset(left) // the Read in progress began after the timer was set
		st.mu.Unlock()
		return
	}
	st.due = time.Time{}
	st.pending = false
	st.mu.Unlock()
	b.stalled.Store(true)
	_ = b.rc.Close()
}
