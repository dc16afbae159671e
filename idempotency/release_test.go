package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound/idempotency"
)

// served wraps h so that the test learns when a request has left it
// completely, store writes included: then a retry cannot meet "in flight".
func served(h http.Handler, done chan<- struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	})
}

func post(t *testing.T, client *http.Client, ctx context.Context, url, key string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(`{"item":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(idempotency.HeaderKey, quoted(key))
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// Finding 3 of issue 11: the client disconnects while the handler works;
// the handler does its effect and returns without writing (an implicit
// 200). That response must be stored: the retry is answered from the
// store, and the effect happens once. Before the fix the key was released
// ("cancelled before anything happened") and the retry ran it again.
func TestClientGoneHandlerReturnsImplicit200Stored(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		started := make(chan struct{}, 1)
		done := make(chan struct{}, 2)
		h := newMiddleware(t, store, idempotency.Config{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				started <- struct{}{}
				<-r.Context().Done() // the client went away...
			}
			// ...and the work is done anyway: the effect counted above
			// stands, and the handler answers nothing explicitly.
			w.Header().Set("Content-Type", "text/plain")
		}))
		srv := httptest.NewServer(served(h, done))
		defer srv.Close()
		client := srv.Client()
		defer client.CloseIdleConnections()

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { _, _, err := post(t, client, ctx, srv.URL+"/orders", "gone"); errc <- err }()
		<-started
		cancel() // the client disconnects mid-handler
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("first request: %v, want the client's cancellation", err)
		}
		<-done

		resp, _, err := post(t, client, context.Background(), srv.URL+"/orders", "gone")
		if err != nil {
			t.Fatal(err)
		}
		<-done
		if runs.Load() != 1 {
			t.Fatalf("handler ran %d times, want 1: the retry re-ran a handler that had done its work", runs.Load())
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get(idempotency.HeaderReplayed) != "true" || resp.Header.Get("Content-Type") != "text/plain" {
			t.Fatalf("retry: %d replayed=%q Content-Type=%q; want the stored implicit 200", resp.StatusCode, resp.Header.Get(idempotency.HeaderReplayed), resp.Header.Get("Content-Type"))
		}
	})
}

// http.TimeoutHandler in the right place, around the middleware: the
// client gets the TimeoutHandler's 503 while the handler runs on; the
// handler's (implicit) answer is stored when it returns, so the client's
// retry is replayed and the effect happens once.
func TestTimeoutHandlerOutsideMiddleware(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		done := make(chan struct{}, 2)
		inner := newMiddleware(t, store, idempotency.Config{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				// Outlive the TimeoutHandler: its deadline cancels this
				// context when it answers 503, whatever the machine's speed.
				<-r.Context().Done()
			}
		}))
		// A timeout long enough that the middleware's claim never meets it;
		// the handler waits for it, so the test does not depend on timing.
		srv := httptest.NewServer(served(http.TimeoutHandler(inner, 200*time.Millisecond, "too slow"), done))
		defer srv.Close()
		client := srv.Client()
		defer client.CloseIdleConnections()

		first, body, err := post(t, client, context.Background(), srv.URL+"/orders", "slow")
		if err != nil {
			t.Fatal(err)
		}
		if first.StatusCode != http.StatusServiceUnavailable || body != "too slow" {
			t.Fatalf("first: %d %q, want the TimeoutHandler's 503", first.StatusCode, body)
		}
		<-done
		// The TimeoutHandler returned at its deadline; the middleware may
		// still be storing. Wait for it: a retry meanwhile gets 409 (or, on
		// a machine so slow that a claim outlasts the deadline, the
		// TimeoutHandler's 503 again), as a client's retries would.
		for {
			resp, body, err := post(t, client, context.Background(), srv.URL+"/orders", "slow")
			if err != nil {
				t.Fatal(err)
			}
			<-done
			if resp.StatusCode == http.StatusConflict || (resp.StatusCode == http.StatusServiceUnavailable && body == "too slow") {
				continue
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get(idempotency.HeaderReplayed) != "true" || runs.Load() != 1 {
				t.Fatalf("retry: %d replayed=%q, handler ran %d times; want the stored 200 and 1 run", resp.StatusCode, resp.Header.Get(idempotency.HeaderReplayed), runs.Load())
			}
			break
		}
	})
}

// http.TimeoutHandler inside the middleware would answer 503 at its
// deadline while the handler runs on, and a 503 releases the key: the
// retry would run the handler a second time. Handler refuses that wiring.
func TestTimeoutHandlerInsideMiddlewareRefused(t *testing.T) {
	m := newMiddleware(t, idempotency.NewMemoryStore(), idempotency.Config{})
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), "TimeoutHandler") {
			t.Fatalf("recovered %v, want a panic naming TimeoutHandler", r)
		}
	}()
	m.Handler(http.TimeoutHandler(http.NotFoundHandler(), time.Second, ""))
}

// A handler that wrote its status and then panicked (or aborted with
// http.ErrAbortHandler) may well have done its work, and its client got a
// cut response: the key is kept as "processed, response not stored", so a
// retry gets 409 ProblemNotStored instead of a second effect. A panic
// before anything was written still releases the key
// (TestPanicReleasesKey).
func TestPanicAfterWritingKeepsKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		h := newMiddleware(t, store, testConfig(newFakeClock())).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, `{"order":`)
				panic(http.ErrAbortHandler)
			}
			w.WriteHeader(http.StatusCreated)
		}))
		func() {
			defer func() {
				if recover() != http.ErrAbortHandler {
					t.Fatal("the panic did not reach the server")
				}
			}()
			send(h, "POST", "/", quoted("k"), "", "")
		}()
		rec := send(h, "POST", "/", quoted("k"), "", "")
		if rec.Code != http.StatusConflict || runs.Load() != 1 {
			t.Fatalf("retry after a panic mid-response: %d, handler ran %d times; want 409 and 1 run", rec.Code, runs.Load())
		}
		if p := problemOf(t, rec); p.Type != idempotency.ProblemNotStored {
			t.Fatalf("problem type %q, want ProblemNotStored", p.Type)
		}
	})
}

// A handler that answers 5xx after writing it and then panics is still a
// 5xx: the key is released (the 5xx rule, Config.StoreStatus).
func TestPanicAfter5xxReleasesKey(t *testing.T) {
	var runs atomic.Int64
	h := newMiddleware(t, idempotency.NewMemoryStore(), idempotency.Config{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			panic(http.ErrAbortHandler)
		}
		w.WriteHeader(http.StatusCreated)
	}))
	func() {
		defer func() { recover() }()
		send(h, "POST", "/", quoted("k"), "", "")
	}()
	if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Code != http.StatusCreated || runs.Load() != 2 {
		t.Fatalf("retry after 503 + panic: %d, runs %d; want the handler run again", rec.Code, runs.Load())
	}
}

// A handler that returns without writing because it noticed its client
// had gone, and did nothing, says so by answering 5xx (or by
// panic(http.ErrAbortHandler)): then the key is released.
func TestHandlerGivingUpWith5xxReleasesKey(t *testing.T) {
	var runs atomic.Int64
	h := newMiddleware(t, idempotency.NewMemoryStore(), idempotency.Config{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			if r.Context().Err() != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusCreated)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/", nil)
	req.Header.Set(idempotency.HeaderKey, quoted("k"))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Code != http.StatusCreated || runs.Load() != 2 {
		t.Fatalf("retry: %d, runs %d; want the handler run again", rec.Code, runs.Load())
	}
}

// failingComplete is a real store whose Complete fails the first n times,
// as a database that goes away for a moment would.
type failingComplete struct {
	idempotency.Store
	n atomic.Int64
}

func (s *failingComplete) Complete(ctx context.Context, scope, key, token string, resp *idempotency.Response, exp time.Time) error {
	if s.n.Add(-1) >= 0 {
		return errors.New("database is gone")
	}
	return s.Store.Complete(ctx, scope, key, token, resp, exp)
}

// The handler did its work but its response could not be stored: the key
// must not be released (the retry would run the handler again). The
// middleware tries the write again, then records "processed, not stored"
// if it can, and otherwise leaves the key in flight until the lock
// timeout.
func TestStoreFailureAfterHandlerKeepsKey(t *testing.T) {
	for _, c := range []struct {
		name     string
		failures int64
		problem  string
	}{
		{"second write succeeds", 1, ""},
		{"third write succeeds", 2, idempotency.ProblemNotStored},
		{"store stays down", 100, idempotency.ProblemInFlight},
	} {
		t.Run(c.name, func(t *testing.T) {
			var runs atomic.Int64
			store := &failingComplete{Store: idempotency.NewMemoryStore()}
			store.n.Store(c.failures)
			h := newMiddleware(t, store, idempotency.Config{}).Handler(counting(&runs))
			if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Code != http.StatusCreated {
				t.Fatalf("first: %d", rec.Code)
			}
			rec := send(h, "POST", "/", quoted("k"), "", "")
			if c.problem == "" {
				if rec.Header().Get(idempotency.HeaderReplayed) != "true" || runs.Load() != 1 {
					t.Fatalf("retry: %d, handler ran %d times; want the replay", rec.Code, runs.Load())
				}
				return
			}
			if rec.Code != http.StatusConflict || runs.Load() != 1 {
				t.Fatalf("retry: %d, handler ran %d times; want 409 and 1 run", rec.Code, runs.Load())
			}
			if p := problemOf(t, rec); p.Type != c.problem {
				t.Fatalf("problem %q, want %q", p.Type, c.problem)
			}
		})
	}
}
