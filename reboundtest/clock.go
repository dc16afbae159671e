// Package reboundtest helps test code that uses rebound, as net/http/httptest
// helps test net/http code: a fake Clock that moves only when told to, so
// backoff waits, breaker open periods and budget windows pass in no real time.
package reboundtest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/rebound-go/rebound"
)

// Clock is a fake rebound.Clock: time stands still until Advance moves it,
// and timers fire only then. Tests use it so that backoff waits, breaker open
// periods and budget windows pass in no real time. Safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed and replaced whenever a timer is added
}

// Epoch is where a NewClock with a zero start begins.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewClock returns a fake clock that reads start (Epoch if zero).
func NewClock(start time.Time) *Clock {
	if start.IsZero() {
		start = Epoch
	}
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer whose channel receives the fake time once
// Advance has moved the clock d past now.
func (c *Clock) NewTimer(d time.Duration) rebound.Timer {
	return c.add(d, nil)
}

// AfterFunc calls f once Advance has moved the clock d past now. Unlike
// time.AfterFunc, f runs synchronously inside Advance, so its effects are
// visible when Advance returns.
func (c *Clock) AfterFunc(d time.Duration, f func()) rebound.Timer {
	return c.add(d, f)
}

func (c *Clock) add(d time.Duration, f func()) *fakeTimer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, when: c.now.Add(d), f: f}
	if f == nil {
		t.ch = make(chan time.Time, 1)
	}
	if d <= 0 {
		c.mu.Unlock()
		t.fire(c.now)
		c.mu.Lock()
		return t
	}
	c.timers = append(c.timers, t)
	close(c.changed)
	c.changed = make(chan struct{})
	return t
}

// Advance moves the clock forward by d, firing every timer that falls due,
// in order of their times (the clock reads each timer's time as it fires).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].when.Before(c.timers[j].when) })
		if len(c.timers) == 0 || c.timers[0].when.After(end) {
			break
		}
		t := c.timers[0]
		c.timers = c.timers[1:]
		if t.when.After(c.now) {
			c.now = t.when
		}
		now := c.now
		c.mu.Unlock()
		t.fire(now)
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// Pending returns how many timers are waiting to fire.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// BlockUntil waits until at least n timers are pending, so a test knows a
// goroutine has started its wait before it calls Advance. It returns the
// context's error if that ends first.
func (c *Clock) BlockUntil(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		ok, ch := len(c.timers) >= n, c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type fakeTimer struct {
	c    *Clock
	when time.Time
	ch   chan time.Time
	f    func()
}

func (t *fakeTimer) fire(now time.Time) {
	if t.f != nil {
		t.f()
		return
	}
	select {
	case t.ch <- now:
	default:
	}
}

// C returns the timer's channel (nil for AfterFunc timers).
func (t *fakeTimer) C() <-chan time.Time { return t.ch }

// Stop removes the timer; it reports whether the timer was still pending.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			return true
		}
	}
	return false
}

var _ rebound.Clock = (*Clock)(nil)
