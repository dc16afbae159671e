package reboundhttp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
	"github.com/rebound-go/rebound/reboundtest"
)

// fast is a Config whose retries do not wait, so tests run in no time.
func fast() reboundhttp.Config {
	return reboundhttp.Config{Retry: rebound.Retry{Backoff: rebound.NoDelay}}
}

// server is an httptest server that counts requests and connections.
type server struct {
	*httptest.Server
	hits    atomic.Int64
	conns   atomic.Int64  // connections opened (StateNew)
	open    atomic.Int64  // connections not yet closed
	changed chan struct{} // a connection closed
}

// waitAllClosed waits until the server has no open connection, failing
// after a generous bound (a leak never ends; a slow machine does).
func (s *server) waitAllClosed(t *testing.T) {
	t.Helper()
	limit := time.NewTimer(10 * time.Second)
	defer limit.Stop()
	for s.open.Load() != 0 {
		select {
		case <-s.changed:
		case <-limit.C:
			t.Fatalf("%d server connections still open", s.open.Load())
		}
	}
}

func newServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int64)) *server {
	t.Helper()
	s := &server{changed: make(chan struct{}, 1)}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r, s.hits.Add(1))
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.conns.Add(1)
			s.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.open.Add(-1)
			select {
			case s.changed <- struct{}{}:
			default:
			}
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func client(t *testing.T, cfg reboundhttp.Config) *http.Client {
	c := must(reboundhttp.NewClient(cfg))
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

func TestRetriesTransientStatusThenSucceeds(t *testing.T) {
	for _, code := range []int{408, 429, 500, 502, 503, 504} {
		s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
			if n < 3 {
				w.WriteHeader(code)
				io.WriteString(w, "busy")
				return
			}
			io.WriteString(w, "ok")
		})
		resp, err := client(t, fast()).Get(s.URL)
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		if got := readAll(t, resp); resp.StatusCode != 200 || got != "ok" {
			t.Fatalf("%d: got %d %q", code, resp.StatusCode, got)
		}
		if s.hits.Load() != 3 {
			t.Fatalf("%d: server saw %d requests, want 3", code, s.hits.Load())
		}
		if s.conns.Load() != 1 {
			t.Errorf("%d: %d connections opened, want 1 (drained bodies reuse it)", code, s.conns.Load())
		}
	}
}

func TestNonRetryableStatusReturnedUntouched(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 405, 409, 410, 412, 422, 501} {
		s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
			w.WriteHeader(code)
			io.WriteString(w, "nope")
		})
		resp, err := client(t, fast()).Get(s.URL)
		if err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		if got := readAll(t, resp); resp.StatusCode != code || got != "nope" {
			t.Fatalf("%d: got %d %q", code, resp.StatusCode, got)
		}
		if s.hits.Load() != 1 {
			t.Fatalf("%d: server saw %d requests, want 1", code, s.hits.Load())
		}
	}
}

func TestExhaustedRetriesReturnLastResponse(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(503)
		io.WriteString(w, "attempt ")
		io.WriteString(w, strings.Repeat("x", int(n)))
	})
	cfg := fast()
	cfg.Retry.MaxAttempts = 3
	resp, err := client(t, cfg).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 503 || got != "attempt xxx" {
		t.Fatalf("got %d %q, want the third response intact", resp.StatusCode, got)
	}
	if s.conns.Load() != 1 {
		t.Errorf("%d connections, want 1", s.conns.Load())
	}
}

// TestCheckResponse: CheckResponse turns a failed status into a
// *StatusError with a snippet of the body, within the RetryError when
// the Transport's retries ran out (what Config.ErrorOnStatus used to do
// inside RoundTrip, against RoundTripper's contract).
func TestCheckResponse(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Path == "/missing" {
			w.WriteHeader(404)
			io.WriteString(w, "not here")
			return
		}
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(503)
		io.WriteString(w, strings.Repeat("b", 5000))
	})
	cfg := fast()
	cfg.Retry.MaxAttempts = 2
	c := client(t, cfg)

	resp, err := checked(c.Get(s.URL + "/missing?token=secret"))
	if resp != nil || err == nil {
		t.Fatalf("404: got %v, %v; want an error", resp, err)
	}
	var se *reboundhttp.StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 || string(se.Body) != "not here" {
		t.Fatalf("404: err %v (%#v)", err, se)
	}
	if strings.Contains(se.Error(), "secret") || se.URL != s.URL+"/missing" {
		t.Fatalf("URL not redacted: %q / %q", se.Error(), se.URL)
	}

	_, err = checked(c.Get(s.URL))
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Attempts != 2 || !errors.As(err, &se) || se.StatusCode != 503 {
		t.Fatalf("503: err %v", err)
	}
	if len(se.Body) != reboundhttp.MaxBodySnippet {
		t.Fatalf("snippet of %d bytes, want %d", len(se.Body), reboundhttp.MaxBodySnippet)
	}
	if c := se.Class(); c.Kind != rebound.KindTransient {
		t.Fatalf("class %v", c)
	}
}

// hangUp is a handler step that reads the request and then drops the
// connection without answering: the server got the request.
func hangUp(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
}

func TestPostWithoutKeyNotRetriedAfterServerGotIt(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { hangUp(w, r) })
	resp, err := client(t, fast()).Post(s.URL, "text/plain", strings.NewReader("pay 10"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("want an error")
	}
	if !errors.Is(err, reboundhttp.ErrNotReplayable) {
		t.Fatalf("err %v, want ErrNotReplayable", err)
	}
	if !strings.Contains(err.Error(), "Idempotency-Key") {
		t.Errorf("error does not say why: %v", err)
	}
	if s.hits.Load() != 1 {
		t.Fatalf("server saw %d requests, want 1", s.hits.Load())
	}

	// A retryable status is not repeated either: the server got the request.
	s2 := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(503) })
	resp, err = client(t, fast()).Post(s2.URL, "text/plain", strings.NewReader("pay 10"))
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("got %v, %v", resp, err)
	}
	resp.Body.Close()
	if s2.hits.Load() != 1 {
		t.Fatalf("server saw %d requests, want 1", s2.hits.Load())
	}
}

func TestPostWithKeyRetriedWithSameKeyAndBody(t *testing.T) {
	var mu sync.Mutex
	var keys, ids, bodies []string
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		ids = append(ids, r.Header.Get("X-Request-ID"))
		bodies = append(bodies, string(b))
		mu.Unlock()
		switch n {
		case 1:
			hangUp(w, r)
		case 2:
			w.WriteHeader(500)
		default:
			io.WriteString(w, "done")
		}
	})
	for _, mode := range []string{"SetIdempotencyKey", "Config.IdempotencyKeys"} {
		keys, ids, bodies = nil, nil, nil
		s.hits.Store(0)
		cfg := fast()
		req, _ := http.NewRequest("POST", s.URL, bytes.NewReader([]byte("pay 10")))
		want := ""
		if mode == "SetIdempotencyKey" {
			want = reboundhttp.SetIdempotencyKey(req)
		} else {
			cfg.IdempotencyKeys = true
		}
		resp, err := client(t, cfg).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if got := readAll(t, resp); got != "done" {
			t.Fatalf("%s: body %q", mode, got)
		}
		if len(keys) != 3 {
			t.Fatalf("%s: %d attempts, want 3", mode, len(keys))
		}
		if want == "" {
			want = keys[0]
			if req.Header.Get("Idempotency-Key") != "" {
				t.Fatalf("%s: the caller's request was modified", mode)
			}
		}
		if len(want) != 36 {
			t.Fatalf("%s: key %q is not a UUID", mode, want)
		}
		for i := range keys {
			if keys[i] != want || ids[i] != want || bodies[i] != "pay 10" {
				t.Fatalf("%s: attempt %d sent key %q id %q body %q; want %q and the full body", mode, i+1, keys[i], ids[i], bodies[i], want)
			}
		}
	}
}

func TestPostRetriedWhenNeverReachedServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	cfg := fast()
	cfg.Retry.MaxAttempts = 3
	var retries atomic.Int64
	cfg.Retry.OnRetry = func(rebound.RetryEvent) { retries.Add(1) }
	_, err = client(t, cfg).Post("http://"+addr, "text/plain", strings.NewReader("x"))
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Attempts != 3 || retries.Load() != 2 {
		t.Fatalf("err %v (retries %d); want 3 attempts", err, retries.Load())
	}
	if errors.Is(err, reboundhttp.ErrNotReplayable) {
		t.Fatalf("a dial failure is safe to retry: %v", err)
	}
}

// onceReader is a body that cannot be rewound.
type onceReader struct{ io.Reader }

func TestUnrewindableBodySentOnce(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { hangUp(w, r) })
	req, _ := http.NewRequest("PUT", s.URL, onceReader{strings.NewReader("data")})
	_, err := client(t, fast()).Do(req)
	if !errors.Is(err, reboundhttp.ErrNotReplayable) || !strings.Contains(err.Error(), "GetBody") {
		t.Fatalf("err %v; want ErrNotReplayable naming GetBody", err)
	}
	if s.hits.Load() != 1 {
		t.Fatalf("server saw %d requests, want 1", s.hits.Load())
	}
}

// runWithClock runs do in a goroutine, advancing clk past each wait the
// retry loop starts, and returns do's result.
func retryAfterWait(t *testing.T, code int, retryAfter func(now time.Time) string) (time.Duration, int64) {
	t.Helper()
	clk := reboundtest.NewClock(time.Time{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			w.Header().Set("Retry-After", retryAfter(clk.Now()))
			w.WriteHeader(code)
			return
		}
		io.WriteString(w, "ok")
	})
	cfg := reboundhttp.Config{Clock: clk, DisableBreaker: true}
	var wait atomic.Int64
	cfg.Retry.OnRetry = func(ev rebound.RetryEvent) { wait.Store(int64(ev.Wait)) }
	c := client(t, cfg)
	done := make(chan error, 1)
	go func() {
		resp, err := c.Get(s.URL)
		if err == nil {
			if resp.StatusCode != 200 {
				err = errors.New(resp.Status)
			}
			resp.Body.Close()
		}
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal("the retry never started its wait")
	}
	w := time.Duration(wait.Load())
	clk.Advance(w)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return w, s.hits.Load()
}

func TestRetryAfterHonouredAndCapped(t *testing.T) {
	cases := []struct {
		name     string
		header   func(now time.Time) string
		min, max time.Duration
	}{
		{"seconds", func(time.Time) string { return "120" }, 120 * time.Second, 120 * time.Second},
		{"date", func(now time.Time) string { return now.Add(90 * time.Second).UTC().Format(http.TimeFormat) }, 90 * time.Second, 90 * time.Second},
		{"one year is capped", func(time.Time) string { return "31536000" }, 5 * time.Minute, 5 * time.Minute},
		{"garbage is ignored", func(time.Time) string { return "soon, maybe" }, 800 * time.Millisecond, 1200 * time.Millisecond},
		{"past date retries at backoff", func(now time.Time) string { return now.Add(-time.Hour).UTC().Format(http.TimeFormat) }, 800 * time.Millisecond, 1200 * time.Millisecond},
	}
	for _, code := range []int{429, 503} {
		for _, tc := range cases {
			t.Run(fmt.Sprint(code, " ", tc.name), func(t *testing.T) {
				w, hits := retryAfterWait(t, code, tc.header)
				if w < tc.min || w > tc.max {
					t.Fatalf("waited %v, want in [%v, %v]", w, tc.min, tc.max)
				}
				if hits != 2 {
					t.Fatalf("%d requests, want 2", hits)
				}
			})
		}
	}
}

func TestBreakerPerHost(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	dead := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(503) })
	healthy := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { io.WriteString(w, "ok") })
	var changes []string
	cfg := reboundhttp.Config{Clock: clk, Retry: rebound.Retry{MaxAttempts: 1}}
	cfg.Breaker.OnStateChange = func(name string, from, to rebound.State) {
		changes = append(changes, name+" "+from.String()+"->"+to.String())
	}
	tr := must(reboundhttp.NewTransport(nil, cfg))
	c := &http.Client{Transport: tr}
	defer c.CloseIdleConnections()
	for range 5 {
		resp, err := c.Get(dead.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	_, err := c.Get(dead.URL)
	if !errors.Is(err, rebound.ErrOpen) {
		t.Fatalf("6th call: %v, want ErrOpen", err)
	}
	if dead.hits.Load() != 5 {
		t.Fatalf("dead host saw %d requests, want 5", dead.hits.Load())
	}
	resp, err := c.Get(healthy.URL)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthy host: %v %v", resp, err)
	}
	resp.Body.Close()
	host := strings.TrimPrefix(dead.URL, "http://")
	if len(changes) != 1 || changes[0] != host+" closed->open" {
		t.Fatalf("changes %q", changes)
	}
	var keys []string
	tr.Breakers(func(k string, b *rebound.Breaker) { keys = append(keys, k+"="+b.State().String()) })
	if len(keys) != 2 {
		t.Fatalf("breakers %q", keys)
	}
	clk.Advance(60 * time.Second) // open period over: one probe goes through
	resp, err = c.Get(dead.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if dead.hits.Load() != 6 {
		t.Fatalf("probe not sent: %d", dead.hits.Load())
	}
}

func TestBreakerOpenClosesRequestBody(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(502) })
	tr := must(reboundhttp.NewTransport(nil, reboundhttp.Config{Retry: rebound.Retry{MaxAttempts: 1}, Breaker: rebound.BreakerConfig{FailureThreshold: 1, OpenFor: time.Hour}}))
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", s.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	body := &closeSpy{Reader: strings.NewReader("x")}
	req, _ = http.NewRequest("PUT", s.URL, body)
	if _, err := tr.RoundTrip(req); !errors.Is(err, rebound.ErrOpen) {
		t.Fatalf("err %v", err)
	}
	if !body.closed {
		t.Fatal("request body not closed")
	}
	tr.Breakers(func(_ string, b *rebound.Breaker) { b.Stop() })
}

type closeSpy struct {
	io.Reader
	closed bool
}

func (c *closeSpy) Close() error { c.closed = true; return nil }

func TestResponseHeaderTimeoutRetried(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, "ok")
	})
	defer close(release)
	cfg := fast()
	cfg.ResponseHeaderTimeout = 50 * time.Millisecond
	resp, err := client(t, cfg).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); got != "ok" || s.hits.Load() != 2 {
		t.Fatalf("got %q after %d requests", got, s.hits.Load())
	}
}

func TestBodyStallCut(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		io.WriteString(w, "first part")
		w.(http.Flusher).Flush()
		select { // then send nothing
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	cfg := fast()
	cfg.StallTimeout = 50 * time.Millisecond
	resp, err := client(t, cfg).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, reboundhttp.ErrStalled) {
		t.Fatalf("err %v, want ErrStalled", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v is not a timeout net.Error", err)
	}
	if string(b) != "first part" {
		t.Fatalf("got %q before the stall", b)
	}
}

func TestContextCancelStopsWaitAndDrains(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(503) })
	c := client(t, reboundhttp.Config{Clock: clk, DisableBreaker: true})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	done := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if resp != nil {
			resp.Body.Close()
		}
		done <- err
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := clk.BlockUntil(wctx, 1); err != nil {
		t.Fatal("no wait started")
	}
	cancel()
	err := <-done
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Reason != "canceled" {
		t.Fatalf("err %v", err)
	}
	if s.hits.Load() != 1 {
		t.Fatalf("%d requests", s.hits.Load())
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "setcookie-secret"})
		w.WriteHeader(503)
		io.WriteString(w, "auth-secret echoed")
	})
	var logs bytes.Buffer
	cfg := fast()
	cfg.Retry.MaxAttempts = 3
	cfg.Breaker.FailureThreshold = 2 // a call counts once: the second call opens it
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := client(t, cfg)
	u := strings.Replace(s.URL, "http://", "http://user:pass-secret@", 1) + "/p?token=query-secret"
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer auth-secret")
	req.Header.Set("Cookie", "sid=cookie-secret")
	req.Header.Set("Proxy-Authorization", "Basic proxy-secret")
	_, err := checked(c.Do(req))
	if err == nil {
		t.Fatal("want an error")
	}
	_, err = checked(c.Do(req))
	if err == nil {
		t.Fatal("want an error")
	}
	var se *reboundhttp.StatusError
	var re *rebound.RetryError
	if !errors.As(err, &se) || !errors.As(err, &re) {
		t.Fatalf("err %v", err)
	}
	// (net/http's *url.Error around it quotes the request URL itself, minus the password.)
	for _, out := range []string{logs.String(), re.Error(), se.Error(), se.URL} {
		for _, secret := range []string{"auth-secret", "cookie-secret", "proxy-secret", "setcookie-secret", "pass-secret", "query-secret"} {
			if strings.Contains(out, secret) {
				t.Errorf("%q leaked in %q", secret, out)
			}
		}
	}
	for _, ev := range []string{"msg=attempt", "msg=retry", `msg="give up"`, `msg="breaker state change"`} {
		if !strings.Contains(logs.String(), ev) {
			t.Errorf("no %s event in logs:\n%s", ev, logs.String())
		}
	}
}

// An invalid Config is a *rebound.ConfigError from the constructors, as
// everywhere in rebound: never a panic, never a client that fails later.
func TestInvalidConfigIsAnError(t *testing.T) {
	cfg := reboundhttp.Config{Retry: rebound.Retry{MaxAttempts: -1}}
	if cfg.Validate() == nil {
		t.Fatal("Validate accepted MaxAttempts -1")
	}
	var ce *rebound.ConfigError
	if tr, err := reboundhttp.NewTransport(nil, cfg); tr != nil || !errors.As(err, &ce) {
		t.Fatalf("NewTransport: %v, %v", tr, err)
	}
	if c, err := reboundhttp.NewClient(cfg); c != nil || !errors.As(err, &ce) {
		t.Fatalf("NewClient: %v, %v", c, err)
	}
}

// TestNoGoroutinePerRequest holds 20 responses open, each mid-body after one
// Read, through a plain net/http client and through ours, and compares the
// goroutine counts: ours must add none.
func TestNoGoroutinePerRequest(t *testing.T) {
	// settled returns the goroutine count once the goroutines of earlier
	// servers and connections have exited (it stops falling), bounded.
	settled := func() int {
		n := runtimeGoroutines()
		for range 100 {
			time.Sleep(10 * time.Millisecond)
			m := runtimeGoroutines()
			if m >= n {
				return m
			}
			n = m
		}
		return n
	}
	// count returns the goroutines that 20 open responses through c add.
	count := func(c *http.Client) int {
		base := settled()
		release := make(chan struct{})
		s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "b")
		})
		var resps []*http.Response
		for range 20 {
			resp, err := c.Get(s.URL)
			if err != nil {
				t.Fatal(err)
			}
			var one [1]byte
			if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
				t.Fatal(err)
			}
			resps = append(resps, resp)
		}
		n := runtimeGoroutines() - base
		close(release)
		for _, resp := range resps {
			if got := readAll(t, resp); got != "b" {
				t.Fatalf("rest %q", got)
			}
		}
		c.CloseIdleConnections()
		s.Close()
		return n
	}
	plain := count(&http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()})
	ours := count(must(reboundhttp.NewClient(reboundhttp.Config{})))
	t.Logf("goroutines added by 20 open responses: net/http %d, reboundhttp %d", plain, ours)
	if ours > plain {
		t.Fatalf("reboundhttp runs %d goroutines, net/http %d: extra goroutines per request", ours, plain)
	}
}

// With a base RoundTripper of the caller's, the stall timeout is enforced on
// the response body itself.
func TestBodyStallCutWithForeignBase(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, "first part")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	cfg := fast()
	cfg.StallTimeout = 50 * time.Millisecond
	resp, err := (&http.Client{Transport: must(reboundhttp.NewTransport(base, cfg))}).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, reboundhttp.ErrStalled) || string(b) != "first part" {
		t.Fatalf("got %q, %v; want ErrStalled after the first part", b, err)
	}
}

// Over TLS the response header timeout is net/http's (HTTP/2 streams share a
// connection) and the stall timeout is still enforced per byte.
func TestTLSHeaderTimeoutAndStall(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-headers" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	cfg := fast()
	cfg.Retry.MaxAttempts = 2
	cfg.ResponseHeaderTimeout = 50 * time.Millisecond
	cfg.StallTimeout = 10 * time.Second // so net/http's header timer decides
	cfg.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	_, err := client(t, cfg).Get(srv.URL + "/slow-headers")
	var re *rebound.RetryError
	if !errors.As(err, &re) || re.Attempts != 2 || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("err %v; want two header timeouts", err)
	}
	cfg.ResponseHeaderTimeout = 0
	cfg.StallTimeout = 50 * time.Millisecond
	resp, err := client(t, cfg).Get(srv.URL + "/stall")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, reboundhttp.ErrStalled) || string(b) != "first" {
		t.Fatalf("got %q, %v; want ErrStalled", b, err)
	}
}

// A timeout stays visible through net/http's *url.Error, as with a plain
// client: callers' err.(net.Error).Timeout() checks keep working.
func TestTimeoutVisibleThroughClientError(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	cfg := fast()
	cfg.Retry.MaxAttempts = 2
	cfg.ResponseHeaderTimeout = 20 * time.Millisecond
	_, err := client(t, cfg).Get(s.URL)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%v: Timeout() false", err)
	}
}

// TestNoConnectionLeaks runs retries, exhausted retries, CheckResponse,
// unreplayable POSTs and stalls, closes what the caller owns, and then
// expects every server connection to close with the idle pool: a response
// body we forgot to close would keep its connection open forever.
func TestNoConnectionLeaks(t *testing.T) {
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		switch r.URL.Path {
		case "/flaky":
			if n%3 != 0 {
				w.WriteHeader(503)
				io.WriteString(w, strings.Repeat("e", 10000))
				return
			}
			io.WriteString(w, "ok")
		case "/down":
			w.WriteHeader(502)
			io.WriteString(w, "down")
		case "/hangup":
			hangUp(w, r)
		case "/stall":
			io.WriteString(w, "x")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	})
	defer close(release)
	cfg := fast()
	cfg.Retry.MaxAttempts = 3
	cfg.StallTimeout = 50 * time.Millisecond
	cfg.DisableBreaker = true
	cfg.DisableBudget = true
	c, cs := client(t, cfg), client(t, cfg) // cs checks every response
	for range 5 {
		for _, path := range []string{"/flaky", "/down", "/stall"} {
			for _, cl := range []*http.Client{c, cs} {
				resp, err := cl.Get(s.URL + path)
				if err == nil && cl == cs {
					resp, err = checked(resp, err)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
		resp, err := c.Post(s.URL+"/hangup", "text/plain", strings.NewReader("x"))
		if err == nil {
			resp.Body.Close()
			t.Fatal("hangup: no error")
		}
	}
	c.CloseIdleConnections()
	cs.CloseIdleConnections()
	s.waitAllClosed(t)
	t.Logf("%d requests over %d connections, all closed", s.hits.Load(), s.conns.Load())
}

// A Retry-After longer than the time left before the context's deadline is
// not waited for: the caller gets the response at once.
func TestDeadlineWinsOverRetryAfter(t *testing.T) {
	clk := reboundtest.NewClock(time.Time{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(503)
		io.WriteString(w, "later")
	})
	c := client(t, reboundhttp.Config{Clock: clk})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL, nil)
	resp, err := c.Do(req) // a wait would block forever: the fake clock never moves
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 503 || got != "later" || s.hits.Load() != 1 {
		t.Fatalf("got %d %q after %d requests", resp.StatusCode, got, s.hits.Load())
	}
}

// An exhausted retry budget stops retrying at once: the caller gets the
// response in hand, and the server sees no extra load.
func TestRetryBudgetExhausted(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(503)
		io.WriteString(w, "overloaded")
	})
	budget, err := rebound.NewBudget(rebound.BudgetConfig{Ratio: 0.001, MinPerSecond: -1})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cfg := fast()
	cfg.Budget = budget
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	resp, err := client(t, cfg).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 503 || got != "overloaded" || s.hits.Load() != 1 {
		t.Fatalf("got %d %q after %d requests; want the first 503", resp.StatusCode, got, s.hits.Load())
	}
	if !strings.Contains(logs.String(), "retry budget exhausted") {
		t.Fatalf("give-up not logged with its reason:\n%s", logs.String())
	}
}

// The failure that opens a host's breaker ends the call at once with that
// answer (net/http's contract: a response and a nil error), instead of
// waiting a backoff only to be refused by the open breaker.
func TestBreakerOpeningEndsCallWithLastAnswer(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "down")
	})
	cfg := reboundhttp.Config{
		// A wait on this clock never ends unless the test advances it: a
		// call that waits a backoff hangs and fails the test.
		Clock: reboundtest.NewClock(time.Now()),
		Retry: rebound.Retry{Backoff: rebound.Backoff{Initial: time.Hour, Max: time.Hour}},
	}
	cfg.Breaker.FailureThreshold = 1
	c := client(t, cfg)
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := c.Get(s.URL + "/x")
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		if r.err != nil || r.resp == nil || r.resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("resp %v, err %v; want the 503 with a nil error", r.resp, r.err)
		}
		if body := readAll(t, r.resp); body != "down" {
			t.Errorf("body %q, want the answer's own", body)
		}
	case <-time.After(time.Minute):
		t.Fatal("the call waited a backoff after its failure opened the breaker")
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	// Through CheckResponse the same ending is a RetryError around the StatusError.
	c2 := client(t, cfg)
	go func() {
		resp, err := checked(c2.Get(s.URL + "/y"))
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		var se *reboundhttp.StatusError
		var re *rebound.RetryError
		if r.resp != nil || !errors.As(r.err, &se) || !errors.As(r.err, &re) || se.StatusCode != http.StatusServiceUnavailable || string(se.Body) != "down" {
			t.Fatalf("resp %v, err %v; want a RetryError around the 503's StatusError", r.resp, r.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the call waited a backoff after its failure opened the breaker")
	}
}
