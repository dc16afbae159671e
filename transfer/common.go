package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/reboundhttp"
)

// Defaults shared by Download and Upload.
const (
	// DefaultStallTimeout cuts a response body that sends nothing for this long.
	DefaultStallTimeout = 30 * time.Second
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

// ErrStalled is the cause of an attempt whose response body sent nothing for
// the stall timeout. It is transient: the transfer resumes.
var ErrStalled = errors.New("transfer: body stalled")

// DefaultClient returns an *http.Client with the mission's timeouts: connect
// 5 s, TLS handshake 5 s, response headers 30 s. It has no overall timeout, so
// a large body may take as long as it needs; stalls are the StallTimeout's job.
// It follows redirects by reboundhttp.CheckRedirect: never from https to
// http, and to another origin (a CDN) without the caller's headers.
func DefaultClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = 30 * time.Second
	return &http.Client{Transport: tr, CheckRedirect: reboundhttp.CheckRedirect}
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

// StatusError is an HTTP answer that ends an attempt; its Class (from
// rebound.ClassifyStatus) tells the Pipeline whether to retry.
type StatusError struct {
	Op     string // "download", "tus PATCH", ...
	Code   int    // the status code, e.g. 404
	Status string // the status line's text, e.g. "404 Not Found"
	class  rebound.Class
}

// Error says which request got which status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("transfer: %s: server answered %s", e.Op, e.Status)
}

// Class implements rebound.Classed.
func (e *StatusError) Class() rebound.Class { return e.class }

func statusError(op string, resp *http.Response, idempotent bool) *StatusError {
	ra, _ := rebound.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return &StatusError{Op: op, Code: resp.StatusCode, Status: redact.Printable(resp.Status),
		class: rebound.ClassifyStatus(resp.StatusCode, idempotent, ra)}
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

func newStallReader(r interface{ Read([]byte) (int, error) }, clock rebound.Clock, d time.Duration, cancel context.CancelFunc) *stallReader {
	s := &stallReader{r: r, clock: clock, d: d, cancel: cancel}
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
	s.timer.Stop()
	s.mu.Unlock()
}

func clockOr(c rebound.Clock) rebound.Clock {
	if c == nil {
		return rebound.SystemClock{}
	}
	return c
}
