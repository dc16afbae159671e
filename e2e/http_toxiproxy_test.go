package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// Timeouts of the tests: short, yet far from what the toxics do (a healthy
// loopback attempt takes milliseconds; a toxic stalls for 10 s or forever).
const (
	headerTimeout = 500 * time.Millisecond
	stallTimeout  = 500 * time.Millisecond
	toxicLatency  = 10_000 // ms
)

// fault is a loopback HTTP server behind an in-process toxiproxy.
type fault struct {
	t     *testing.T
	proxy *toxiproxy.Proxy
	url   string
	hits  atomic.Int64
}

func newFault(t *testing.T, h http.HandlerFunc) *fault {
	t.Helper()
	f := &fault{t: t}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	f.proxy = toxiproxy.NewProxy(api, strings.ReplaceAll(t.Name(), "/", "_"), "127.0.0.1:0", srv.Listener.Addr().String())
	if err := f.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.proxy.Stop)
	f.url = "http://" + f.proxy.Listen
	return f
}

// toxic adds a toxic, e.g. `{"name":"x","type":"latency","stream":"downstream","attributes":{"latency":100}}`.
func (f *fault) toxic(spec string) {
	f.t.Helper()
	if _, err := f.proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		f.t.Fatalf("add toxic %s: %v", spec, err)
	}
}

func (f *fault) remove(name string) {
	if err := f.proxy.Toxics.RemoveToxic(context.Background(), name); err != nil {
		f.t.Errorf("remove toxic %s: %v", name, err)
	}
}

// client returns a client with the tests' timeouts and no backoff waits;
// onRetry, if set, runs before each retry (with the error that caused it).
func (f *fault) client(onRetry func(rebound.RetryEvent)) *http.Client {
	c, err := reboundhttp.NewClient(reboundhttp.Config{
		ResponseHeaderTimeout: headerTimeout,
		StallTimeout:          stallTimeout,
		Retry:                 rebound.Retry{MaxAttempts: 3, Backoff: rebound.NoDelay, OnRetry: onRetry},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(c.CloseIdleConnections)
	return c
}

// healOnRetry removes the toxic before the first retry, recording the error
// that caused it.
func (f *fault) healOnRetry(name string, cause *error) func(rebound.RetryEvent) {
	return func(ev rebound.RetryEvent) {
		if *cause == nil {
			*cause = ev.Err
			f.remove(name)
		}
	}
}

func ok(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }

func get(t *testing.T, c *http.Client, url string) (string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// isTimeout reports whether any error in err's chain is a timeout. (The
// outer *url.Error asks only its direct cause, a *rebound.RetryError, which
// has no Timeout method.)
func isTimeout(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if te, ok := err.(interface{ Timeout() bool }); ok && te.Timeout() {
			return true
		}
	}
	return false
}

// Latency beyond the response header timeout: the attempt times out and a
// GET is retried (and succeeds once the latency is gone).
func TestToxicLatencyBeyondHeaderTimeout(t *testing.T) {
	f := newFault(t, ok)
	f.toxic(`{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":10000}}`)
	var cause error
	body, err := get(t, f.client(f.healOnRetry("slow", &cause)), f.url)
	if err != nil || body != "hello" {
		t.Fatalf("got %q, %v", body, err)
	}
	if !isTimeout(cause) {
		t.Fatalf("first attempt failed with %v, want a header timeout", cause)
	}
	t.Logf("retried after %v; then succeeded", cause)
}

// The same latency on a POST without an Idempotency-Key: the server got the
// request, so it is reported, not repeated.
func TestToxicLatencyPostNotRetried(t *testing.T) {
	f := newFault(t, ok)
	f.toxic(`{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":10000}}`)
	var retries atomic.Int64
	c := f.client(func(rebound.RetryEvent) { retries.Add(1) })
	_, err := c.Post(f.url, "text/plain", strings.NewReader("charge"))
	if !errors.Is(err, reboundhttp.ErrNotReplayable) || !isTimeout(err) {
		t.Fatalf("err %v; want a not-retried timeout", err)
	}
	if retries.Load() != 0 || f.hits.Load() != 1 {
		t.Fatalf("%d retries, %d requests at the server; want 0 and 1", retries.Load(), f.hits.Load())
	}
	t.Logf("reported: %v", err)
}

// reset_peer on the response: the connection is reset after the server
// answered; a GET is retried.
func TestToxicResetPeer(t *testing.T) {
	f := newFault(t, ok)
	f.toxic(`{"name":"reset","type":"reset_peer","stream":"downstream","attributes":{"timeout":0}}`)
	var cause error
	body, err := get(t, f.client(f.healOnRetry("reset", &cause)), f.url)
	if err != nil || body != "hello" {
		t.Fatalf("got %q, %v", body, err)
	}
	if !errors.Is(cause, syscall.ECONNRESET) && !errors.Is(cause, io.EOF) && !errors.Is(cause, io.ErrUnexpectedEOF) {
		t.Fatalf("first attempt failed with %v, want a reset", cause)
	}
	t.Logf("retried after %v; then succeeded", cause)
}

// reset_peer as the request goes out: the client cannot know whether the
// server got it, so a POST without a key is not repeated; with a key it is.
func TestToxicResetPeerPost(t *testing.T) {
	f := newFault(t, ok)
	f.toxic(`{"name":"reset","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`)
	var retries atomic.Int64
	_, err := f.client(func(rebound.RetryEvent) { retries.Add(1) }).Post(f.url, "text/plain", strings.NewReader("charge"))
	if !errors.Is(err, reboundhttp.ErrNotReplayable) || retries.Load() != 0 {
		t.Fatalf("without key: err %v after %d retries; want not retried", err, retries.Load())
	}
	t.Logf("without key, reported: %v", err)

	var cause error
	req, _ := http.NewRequest("POST", f.url, strings.NewReader("charge"))
	reboundhttp.SetIdempotencyKey(req)
	resp, err := f.client(f.healOnRetry("reset", &cause)).Do(req)
	if err != nil {
		t.Fatalf("with key: %v", err)
	}
	resp.Body.Close()
	if cause == nil || resp.StatusCode != 200 {
		t.Fatalf("with key: not retried (%v, %s)", cause, resp.Status)
	}
	t.Logf("with key, retried after %v; then succeeded", cause)
}

// timeout on the upstream stream: the server never sees the request and the
// client hears nothing, on every attempt: each attempt times out, and the
// caller gets the attempts, the reason and the cause.
func TestToxicTimeoutHangs(t *testing.T) {
	f := newFault(t, ok)
	f.toxic(`{"name":"hang","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`)
	var retries atomic.Int64
	_, err := get(t, f.client(func(rebound.RetryEvent) { retries.Add(1) }), f.url)
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Attempts != 3 || re.Reason != "attempts exhausted" || !isTimeout(err) {
		t.Fatalf("err %v; want 3 timed-out attempts", err)
	}
	if retries.Load() != 2 || f.hits.Load() != 0 {
		t.Fatalf("%d retries, %d requests at the server", retries.Load(), f.hits.Load())
	}
	t.Logf("reported: %v", err)
}

// limit_data cutting the connection inside the response headers: the
// attempt fails before any response, and a GET is retried.
func TestToxicLimitDataInHeaders(t *testing.T) {
	f := newFault(t, ok)
	f.toxic(`{"name":"cut","type":"limit_data","stream":"downstream","attributes":{"bytes":10}}`)
	var cause error
	body, err := get(t, f.client(f.healOnRetry("cut", &cause)), f.url)
	if err != nil || body != "hello" {
		t.Fatalf("got %q, %v", body, err)
	}
	if cause == nil {
		t.Fatal("no retry")
	}
	t.Logf("retried after %v; then succeeded", cause)
}

// limit_data cutting the connection mid-body: the response was already
// returned (net/http's contract), so the caller's Read reports the cut as
// io.ErrUnexpectedEOF; resuming a body is the transfer package's job.
func TestToxicLimitDataMidBody(t *testing.T) {
	f := newFault(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		io.WriteString(w, strings.Repeat("x", 100000))
	})
	f.toxic(`{"name":"cut","type":"limit_data","stream":"downstream","attributes":{"bytes":20000}}`)
	var retries atomic.Int64
	resp, err := f.client(func(rebound.RetryEvent) { retries.Add(1) }).Get(f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || n >= 100000 || retries.Load() != 0 {
		t.Fatalf("read %d bytes, err %v, %d retries; want a reported cut", n, err, retries.Load())
	}
	t.Logf("reported after %d body bytes: %v", n, err)
}

// slicer: the response arrives in many small, delayed pieces; nothing is
// wrong, so there is exactly one attempt and the body is whole.
func TestToxicSlicer(t *testing.T) {
	want := strings.Repeat("abcdefgh", 4096) // 32 KiB
	f := newFault(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, want) })
	f.toxic(`{"name":"slices","type":"slicer","stream":"downstream","attributes":{"average_size":64,"size_variation":32,"delay":100}}`)
	var retries atomic.Int64
	body, err := get(t, f.client(func(rebound.RetryEvent) { retries.Add(1) }), f.url)
	if err != nil || body != want || retries.Load() != 0 {
		t.Fatalf("got %d bytes, %v, %d retries", len(body), err, retries.Load())
	}
}

// A slow but steady download that lasts longer than the stall timeout is
// never cut: the stall timeout bounds silence, not total time.
func TestSlowHealthyDownloadNotCut(t *testing.T) {
	want := strings.Repeat("0123456789abcdef", 2048) // 32 KiB in 64 slices 20 ms apart: > 1 s
	f := newFault(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, want) })
	f.toxic(`{"name":"slow","type":"slicer","stream":"downstream","attributes":{"average_size":512,"delay":20000}}`)
	start := time.Now()
	body, err := get(t, f.client(nil), f.url)
	if err != nil || body != want {
		t.Fatalf("got %d bytes, %v", len(body), err)
	}
	t.Logf("downloaded %d bytes in %v with a %v stall timeout", len(body), time.Since(start).Round(time.Millisecond), stallTimeout)
}

// A body that stops mid-way (the rest held back by a 10 s latency added
// after the headers arrived) is cut after the stall timeout.
func TestToxicStalledBody(t *testing.T) {
	proceed := make(chan struct{})
	f := newFault(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first ")
		w.(http.Flusher).Flush()
		select {
		case <-proceed:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "rest")
	})
	resp, err := f.client(nil).Get(f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len("first "))
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	f.toxic(`{"name":"stall","type":"latency","stream":"downstream","attributes":{"latency":10000}}`)
	close(proceed)
	start := time.Now()
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, reboundhttp.ErrStalled) {
		t.Fatalf("err %v, want ErrStalled", err)
	}
	t.Logf("cut after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

// One dead host (every attempt hangs) opens its own breaker; calls to it
// then fail fast, while a healthy host behind another proxy keeps working.
func TestToxicDeadHostOpensOnlyItsBreaker(t *testing.T) {
	dead := newFault(t, ok)
	dead.toxic(`{"name":"hang","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`)
	healthy := newFault(t, ok)
	c, err := reboundhttp.NewClient(reboundhttp.Config{
		ResponseHeaderTimeout: headerTimeout,
		Retry:                 rebound.Retry{MaxAttempts: 3, Backoff: rebound.NoDelay},
		// A call counts once, however many attempts: the second call's
		// first timeout opens the breaker.
		Breaker: rebound.BreakerConfig{FailureThreshold: 2, FirstOpenFor: time.Hour, OpenFor: time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()

	_, err = get(t, c, dead.url)
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Attempts != 3 || !isTimeout(err) {
		t.Fatalf("dead host, first call: %v", err)
	}
	_, err = get(t, c, dead.url)
	if !errors.Is(err, rebound.ErrOpen) {
		t.Fatalf("dead host, second call: %v; want ErrOpen", err)
	}
	for range 3 {
		if body, err := get(t, c, healthy.url); err != nil || body != "hello" {
			t.Fatalf("healthy host: %q, %v", body, err)
		}
	}
	t.Logf("dead host: %v", err)
}
