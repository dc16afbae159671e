package reboundhttp

import (
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// ErrBodyStalled is matched (errors.Is) by the error of a response body that
// delivered nothing for Config.BodyStallTimeout while the caller waited in
// Read. The error is also a net.Error whose Timeout() is true.
var ErrBodyStalled = errors.New("reboundhttp: response body stalled")

type stallError struct{ d time.Duration }

func (e *stallError) Error() string {
	return "reboundhttp: response body stalled: no data for " + e.d.String()
}
func (e *stallError) Is(target error) bool { return target == ErrBodyStalled }
func (e *stallError) Timeout() bool        { return true }
func (e *stallError) Temporary() bool      { return true }

// stallBody cuts a response body that sends nothing for d while a Read waits.
// The timer runs only inside Read: it is armed when Read starts and stopped
// when it returns, so a caller who reads slowly is never cut, and a body
// nobody reads holds no running timer. No goroutine is started; the timer's
// function runs only when a stall happens, and closes the body, which makes
// the blocked Read return.
type stallBody struct {
	rc      io.ReadCloser
	d       time.Duration
	t       *time.Timer // created by the first Read
	stalled atomic.Bool
}

func (b *stallBody) Read(p []byte) (int, error) {
	if b.t == nil {
		b.t = time.AfterFunc(b.d, b.fire)
	} else {
		b.t.Reset(b.d)
	}
	n, err := b.rc.Read(p)
	b.t.Stop()
	if err != nil && err != io.EOF && b.stalled.Load() {
		err = &stallError{b.d}
	}
	return n, err
}

// fire runs in the timer's goroutine when a Read waited d for nothing.
func (b *stallBody) fire() {
	b.stalled.Store(true)
	_ = b.rc.Close()
}

func (b *stallBody) Close() error { return b.rc.Close() }
