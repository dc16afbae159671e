package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// Defaults shared by Download and Upload.
const (
	// DefaultStallTimeout cuts a body that moves nothing for this long:
	// reboundhttp.DefaultStallTimeout.
	DefaultStallTimeout = reboundhttp.DefaultStallTimeout
	// DefaultProgressInterval is the least time between two progress events.
	DefaultProgressInterval = 250 * time.Millisecond
	// DefaultChunkSize is the size of one tus PATCH.
	DefaultChunkSize = 8 << 20
)

// ErrInvalid marks errors in the caller's input (a bad URL, a missing file, a
// malformed checksum): nothing was sent. Test with errors.Is.
var ErrInvalid = errors.New("transfer: invalid input")

// ErrFileExists marks a download refused because the name the server gave
// the file (DownloadOptions.Dir, no Path) is taken by a file that is already
// there: it is never replaced. It comes with ErrInvalid.
var ErrFileExists = errors.New("file exists")

// ErrStalled is matched (errors.Is) by the cause of an attempt whose body
// moved nothing for the stall timeout. It is reboundhttp.ErrStalled, the one
// stall error of this module. It is transient: the transfer resumes.
var ErrStalled = reboundhttp.ErrStalled

// DefaultClient returns the client transfers use by default: a
// reboundhttp.NewBaseClient with the mission's timeouts (connect 5 s, TLS
// handshake 5 s, response headers 30 s), the safe redirect policy (never
// from https to http, and to another origin, a CDN, without the caller's
// headers) and no retries, which are the Pipeline's. It has no overall
// timeout, so a large body may take as long as it needs; stalls are cut
// by the options' StallTimeout, which transfers enforce themselves in
// both directions, so the base's own stall cut is off.
func DefaultClient() *http.Client {
	c, _ := reboundhttp.NewBaseClient(reboundhttp.Config{StallTimeout: -1}) // a valid Config: no error
	return c
}

var defaultClient = sync.OnceValue(DefaultClient)

// DefaultStateDir returns where the zero options keep transfer state: the
// user's cache directory, under rebound/transfers.
func DefaultStateDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("transfer: no state directory: %w", err)
	}
	return filepath.Join(dir, "rebound", "transfers"), nil
}

func defaultStore() (StateStore, error) {
	dir, err := DefaultStateDir()
	if err != nil {
		return nil, err
	}
	return NewFileStateStore(dir)
}

// statusError is the error of a failed answer: reboundhttp's one
// *StatusError (Retry-After parsed, classified by the status and whether the
// request may be sent again, a sanitised snippet of the body).
func statusError(resp *http.Response, replayable bool) *reboundhttp.StatusError {
	return reboundhttp.NewStatusError(resp, replayable, time.Now())
}

// pipelineFor copies p (or the default) and chains an OnRetry that reports
// retries as events.
func pipelineFor(p *rebound.Pipeline, name string, emit func(Event)) rebound.Pipeline {
	var out rebound.Pipeline
	if p != nil {
		out = *p
	}
	if out.Retry.Name == "" {
		out.Retry.Name = name
	}
	prev := out.Retry.OnRetry
	out.Retry.OnRetry = func(ev rebound.RetryEvent) {
		if prev != nil {
			prev(ev)
		}
		emit(Event{Type: EventRetry, Attempt: ev.Attempt, Wait: ev.Wait, Err: ev.Err})
	}
	return out
}

// stallReader cuts a body that sends nothing for d: reads only store the time
// of the last progress (no timer work per read); one timer, re-armed for the
// remaining time when it fires early, cancels the request when the body has
// really been silent for d. No goroutine waits per request.
type stallReader struct {
	r       interface{ Read([]byte) (int, error) }
	clock   rebound.Clock
	d       time.Duration
	cancel  context.CancelFunc
	last    atomic.Int64 // UnixNano of the last read that returned bytes
	stalled atomic.Bool

	mu      sync.Mutex
	timer   rebound.Timer
	stopped bool
}

// A d <= 0 (the stall timeout is off) gives a reader that never cuts.
func newStallReader(r interface{ Read([]byte) (int, error) }, clock rebound.Clock, d time.Duration, cancel context.CancelFunc) *stallReader {
	s := &stallReader{r: r, clock: clock, d: d, cancel: cancel}
	if d <= 0 {
		s.stopped = true
		return s
	}
	s.last.Store(clock.Now().UnixNano())
	s.mu.Lock()
	s.timer = clock.AfterFunc(d, s.fire)
	s.mu.Unlock()
	return s
}

func (s *stallReader) fire() {
	idle := time.Duration(s.clock.Now().UnixNano() - s.last.Load())
	if idle >= s.d {
		s.stalled.Store(true)
		s.cancel()
		return
	}
	s.mu.Lock()
	if !s.stopped {
		s.timer = s.clock.AfterFunc(s.d-idle, s.fire)
	}
	s.mu.Unlock()
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.last.Store(s.clock.Now().UnixNano())
	}
	if err == io.EOF {
		s.stop() // what follows (a response to wait for) is not a body stall
	}
	if err != nil && s.stalled.Load() {
		err = rebound.Transient(fmt.Errorf("%w: nothing received for %v", ErrStalled, s.d))
	}
	return n, err
}

// stop disarms the timer; call it when the body is done with.
func (s *stallReader) stop() {
	s.mu.Lock()
	s.stopped = true
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
}

func clockOr(c rebound.Clock) rebound.Clock {
	if c == nil {
		return rebound.SystemClock{}
	}
	return c
}

// stallTimeout is the options' StallTimeout: 0 means DefaultStallTimeout,
// negative means never (0 here, which newStallReader takes for off).
func stallTimeout(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultStallTimeout
	case d < 0:
		return 0
	}
	return d
}
