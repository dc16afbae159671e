package idempotency_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/idempotency"
	"github.com/rebound-go/rebound/reboundtest"
)

// counting is a handler with a visible effect: every run increments runs.
func counting(runs *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/orders/1")
		w.Header().Set("Set-Cookie", "session=secret")
		w.Header().Set("X-Debug", "not stored")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"run":%d,"echo":%q}`, n, body)
	})
}

func testConfig(clock *reboundtest.Clock) idempotency.Config {
	return idempotency.Config{
		Clock:     clock,
		Principal: func(r *http.Request) string { return r.Header.Get("X-User") },
	}
}

// send runs one request through h. An empty key sends no header; user sets
// the principal.
func send(h http.Handler, method, target, key, body, user string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if key != "" {
		req.Header.Set(idempotency.HeaderKey, key)
	}
	if user != "" {
		req.Header.Set("X-User", user)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func problemOf(t *testing.T, rec *httptest.ResponseRecorder) idempotency.Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (status %d, body %s)", ct, rec.Code, rec.Body)
	}
	var p idempotency.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body: %v: %s", err, rec.Body)
	}
	if p.Status != rec.Code || p.Type == "" || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem %+v for status %d", p, rec.Code)
	}
	return p
}

func TestReplay(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		clock := newFakeClock()
		h := newMiddleware(t, store, testConfig(clock)).Handler(counting(&runs))

		first := send(h, "POST", "/orders?x=1", quoted("k-1"), `{"qty":2}`, "alice")
		if first.Code != http.StatusCreated || first.Header().Get(idempotency.HeaderReplayed) != "" {
			t.Fatalf("first: %d %v", first.Code, first.Header())
		}
		if !strings.Contains(first.Body.String(), `"echo":"{\"qty\":2}"`) {
			t.Fatalf("handler did not read the original body: %s", first.Body)
		}
		if got := first.Header().Get("Set-Cookie"); got != "session=secret" {
			t.Fatalf("first response lost its Set-Cookie: %q", got)
		}
		clock.Advance(time.Hour)
		again := send(h, "POST", "/orders?x=1", quoted("k-1"), `{"qty":2}`, "alice")
		if runs.Load() != 1 {
			t.Fatalf("handler ran %d times, want 1", runs.Load())
		}
		if again.Code != first.Code || again.Body.String() != first.Body.String() {
			t.Fatalf("replay %d %q, want %d %q", again.Code, again.Body, first.Code, first.Body)
		}
		if again.Header().Get(idempotency.HeaderReplayed) != "true" {
			t.Fatal("replay is not marked")
		}
		for _, h := range []string{"Content-Type", "Location"} {
			if again.Header().Get(h) != first.Header().Get(h) {
				t.Errorf("replayed %s = %q, want %q", h, again.Header().Get(h), first.Header().Get(h))
			}
		}
		for _, h := range []string{"Set-Cookie", "X-Debug"} {
			if v := again.Header().Get(h); v != "" {
				t.Errorf("replay carries %s: %q", h, v)
			}
		}
		// An unquoted key is the same key.
		if bare := send(h, "POST", "/orders?x=1", "k-1", `{"qty":2}`, "alice"); bare.Header().Get(idempotency.HeaderReplayed) != "true" {
			t.Fatalf("unquoted key not replayed: %d", bare.Code)
		}
	})
}

func TestSetCookieNeverStoredEvenIfConfigured(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		cfg := testConfig(newFakeClock())
		cfg.StoredHeaders = []string{"Set-Cookie", "X-Debug", "Authorization"}
		h := newMiddleware(t, store, cfg).Handler(counting(&runs))
		send(h, "POST", "/", quoted("k"), "", "")
		again := send(h, "POST", "/", quoted("k"), "", "")
		if again.Header().Get("Set-Cookie") != "" || again.Header().Get("X-Debug") != "not stored" {
			t.Fatalf("replayed headers %v", again.Header())
		}
	})
}

func TestFingerprintMismatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		h := newMiddleware(t, store, testConfig(newFakeClock())).Handler(counting(&runs))
		send(h, "POST", "/orders", quoted("k"), "a", "")
		for _, c := range []struct{ method, target, body string }{
			{"POST", "/orders", "b"},
			{"POST", "/orders?x=1", "a"},
			{"POST", "/other", "a"},
			{"PATCH", "/orders", "a"},
		} {
			rec := send(h, c.method, c.target, quoted("k"), c.body, "")
			if rec.Code != http.StatusUnprocessableEntity {
				t.Fatalf("%+v: status %d, want 422", c, rec.Code)
			}
			if p := problemOf(t, rec); p.Type != idempotency.ProblemKeyReused {
				t.Fatalf("problem type %q", p.Type)
			}
		}
		if runs.Load() != 1 {
			t.Fatalf("handler ran %d times", runs.Load())
		}
	})
}

func TestBadRequests(t *testing.T) {
	store := idempotency.NewMemoryStore()
	var runs atomic.Int64
	h := newMiddleware(t, store, idempotency.Config{MaxBodyBytes: 10}).Handler(counting(&runs))
	cases := []struct {
		name, method, key, body string
		status                  int
		typ                     string
	}{
		{"missing key", "POST", "", "", 400, idempotency.ProblemKeyMissing},
		{"missing key PATCH", "PATCH", "", "", 400, idempotency.ProblemKeyMissing},
		{"key too long", "POST", quoted(strings.Repeat("k", 256)), "", 400, idempotency.ProblemKeyInvalid},
		{"bare key too long", "POST", strings.Repeat("k", 256), "", 400, idempotency.ProblemKeyInvalid},
		{"empty key", "POST", `""`, "", 400, idempotency.ProblemKeyInvalid},
		{"unterminated", "POST", `"abc`, "", 400, idempotency.ProblemKeyInvalid},
		{"body too large", "POST", quoted("k"), "0123456789X", 413, idempotency.ProblemBodyTooLarge},
	}
	titles := map[string]string{} // problem type -> title: one title per type (RFC 9457)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := send(h, c.method, "/", c.key, c.body, "")
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d", rec.Code, c.status)
			}
			p := problemOf(t, rec)
			if p.Type != c.typ {
				t.Fatalf("type %q, want %q", p.Type, c.typ)
			}
			if title, ok := titles[p.Type]; ok && title != p.Title {
				t.Errorf("type %s has titles %q and %q; a problem type keeps one title", p.Type, title, p.Title)
			}
			titles[p.Type] = p.Title
			if strings.Contains(rec.Body.String(), "kkkk") {
				t.Fatal("problem echoes the key")
			}
		})
	}
	// Exactly 255 is fine; two header lines are ambiguous.
	if rec := send(h, "POST", "/", quoted(strings.Repeat("k", 255)), "", ""); rec.Code != 201 {
		t.Fatalf("255-byte key: %d", rec.Code)
	}
	req := httptest.NewRequest("POST", "/", nil)
	req.Header.Add(idempotency.HeaderKey, quoted("a"))
	req.Header.Add(idempotency.HeaderKey, quoted("b"))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 400 {
		t.Fatalf("two keys: %d", rec.Code)
	}
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", runs.Load())
	}
	// GET is not deduplicated and needs no key.
	if rec := send(h, "GET", "/", "", "", ""); rec.Code != 201 || runs.Load() != 2 {
		t.Fatalf("GET: %d", rec.Code)
	}
}

func TestOptionalKeyPassesThrough(t *testing.T) {
	var runs atomic.Int64
	h := newMiddleware(t, idempotency.NewMemoryStore(), idempotency.Config{Optional: true}).Handler(counting(&runs))
	send(h, "POST", "/", "", "", "")
	send(h, "POST", "/", "", "", "")
	if runs.Load() != 2 {
		t.Fatalf("handler ran %d times, want 2", runs.Load())
	}
}

func TestExpiry(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		clock := newFakeClock()
		cfg := testConfig(clock)
		cfg.PruneInterval = -1 // only the explicit Prune below
		m := newMiddleware(t, store, cfg)
		h := m.Handler(counting(&runs))
		send(h, "POST", "/", quoted("k"), "", "")
		clock.Advance(24*time.Hour - time.Second)
		if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Header().Get(idempotency.HeaderReplayed) != "true" {
			t.Fatal("not replayed before expiry")
		}
		clock.Advance(time.Second)
		if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Header().Get(idempotency.HeaderReplayed) != "" || runs.Load() != 2 {
			t.Fatalf("after expiry: replayed=%q runs=%d", rec.Header().Get(idempotency.HeaderReplayed), runs.Load())
		}
		// Prune removes what expired, and nothing else.
		send(h, "POST", "/", quoted("other"), "", "")
		clock.Advance(24 * time.Hour)
		send(h, "POST", "/", quoted("fresh"), "", "")
		n, err := m.Prune(context.Background())
		if err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want 2", n, err)
		}
		if rec := send(h, "POST", "/", quoted("fresh"), "", ""); rec.Header().Get(idempotency.HeaderReplayed) != "true" {
			t.Fatal("Prune removed a live record")
		}
	})
}

func TestLazyPrune(t *testing.T) {
	var runs atomic.Int64
	store := idempotency.NewMemoryStore()
	clock := newFakeClock()
	h := newMiddleware(t, store, idempotency.Config{Clock: clock, PruneInterval: time.Hour}).Handler(counting(&runs))
	send(h, "POST", "/", quoted("a"), "", "")
	send(h, "POST", "/", quoted("b"), "", "")
	clock.Advance(25 * time.Hour)
	send(h, "POST", "/", quoted("c"), "", "")
	if n := store.Len(); n != 1 {
		t.Fatalf("after lazy prune the store holds %d records, want 1", n)
	}
}

func TestPrincipalIsolation(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		h := newMiddleware(t, store, testConfig(newFakeClock())).Handler(counting(&runs))
		a := send(h, "POST", "/", quoted("shared"), "x", "alice")
		b := send(h, "POST", "/", quoted("shared"), "x", "bob")
		if runs.Load() != 2 || b.Header().Get(idempotency.HeaderReplayed) != "" || b.Body.String() == a.Body.String() {
			t.Fatalf("bob got alice's response: runs=%d body=%s", runs.Load(), b.Body)
		}
		// A different body from bob is no conflict with alice's key either.
		if c := send(h, "POST", "/", quoted("shared2"), "y", "bob"); c.Code != 201 {
			t.Fatal(c.Code)
		}
		if c := send(h, "POST", "/", quoted("shared2"), "z", "alice"); c.Code != 201 {
			t.Fatalf("alice's new request conflicts with bob's key: %d", c.Code)
		}
	})
}

func TestPanicReleasesKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		h := newMiddleware(t, store, testConfig(newFakeClock())).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				panic("boom")
			}
			w.WriteHeader(http.StatusCreated)
		}))
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic was swallowed")
				}
			}()
			send(h, "POST", "/", quoted("k"), "", "")
		}()
		if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Code != http.StatusCreated || runs.Load() != 2 {
			t.Fatalf("retry after panic: %d, runs %d", rec.Code, runs.Load())
		}
	})
}

func TestServerErrorNotStored(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		h := newMiddleware(t, store, testConfig(newFakeClock())).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if runs.Add(1) == 1 {
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusCreated)
		}))
		send(h, "POST", "/", quoted("k"), "", "")
		if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Code != http.StatusCreated || runs.Load() != 2 {
			t.Fatalf("retry after 503: %d, runs %d", rec.Code, runs.Load())
		}
	})
}

func TestLockTimeoutFreesAbandonedKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		clock := newFakeClock()
		cfg := testConfig(clock)
		cfg.LockTimeout = time.Minute
		h := newMiddleware(t, store, cfg).Handler(counting(&runs))
		// A request holds the key and its process "dies": the handler
		// hangs past the lock timeout.
		blocked := make(chan struct{})
		release := make(chan struct{})
		hang := newMiddleware(t, store, cfg).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(blocked)
			<-release
		}))
		done := make(chan struct{})
		go func() { defer close(done); send(hang, "POST", "/", quoted("k"), "", "") }()
		<-blocked
		if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Code != http.StatusConflict || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("while in flight: %d", rec.Code)
		}
		clock.Advance(time.Minute)
		if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Code != http.StatusCreated || runs.Load() != 1 {
			t.Fatalf("after lock timeout: %d runs %d", rec.Code, runs.Load())
		}
		close(release) // the "dead" request returns late: its completion must not clobber
		<-done
		if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Header().Get(idempotency.HeaderReplayed) != "true" || !strings.Contains(rec.Body.String(), `"run":1`) {
			t.Fatalf("late completion replaced the stored response: %d %s", rec.Code, rec.Body)
		}
	})
}

func TestLargeResponseNotStored(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		big := strings.Repeat("x", 100)
		cfg := testConfig(newFakeClock())
		cfg.MaxResponseBytes = 64
		h := newMiddleware(t, store, cfg).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			io.WriteString(w, big[:50])
			io.WriteString(w, big[50:])
		}))
		if rec := send(h, "POST", "/", quoted("k"), "", ""); rec.Body.String() != big {
			t.Fatalf("first client got %d bytes", rec.Body.Len())
		}
		rec := send(h, "POST", "/", quoted("k"), "", "")
		if rec.Code != http.StatusConflict || runs.Load() != 1 {
			t.Fatalf("retry: %d, runs %d", rec.Code, runs.Load())
		}
		if p := problemOf(t, rec); p.Type != idempotency.ProblemNotStored {
			t.Fatal(p.Type)
		}
	})
}

// TestConcurrentSameKey: 50 clients send one key at once over real HTTP;
// the effect happens once, and every other client gets the replay or 409.
func TestConcurrentSameKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, store idempotency.Store) {
		var runs atomic.Int64
		var answered atomic.Int64
		enough := make(chan struct{})
		var once sync.Once
		inner := counting(&runs)
		h := newMiddleware(t, store, idempotency.Config{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Hold the key until some others were turned away, so the 409
			// path is exercised for sure; then let the rest see the replay.
			select {
			case <-enough:
			case <-time.After(5 * time.Second):
			}
			inner.ServeHTTP(w, r)
		}))
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := srv.Client()
		const n = 50
		type outcome struct {
			status   int
			replayed bool
			body     string
			err      error
		}
		results := make(chan outcome, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				<-start
				req, _ := http.NewRequest("POST", srv.URL+"/orders", strings.NewReader(`{"qty":1}`))
				req.Header.Set(idempotency.HeaderKey, quoted("same"))
				resp, err := client.Do(req)
				if err != nil {
					results <- outcome{err: err}
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if answered.Add(1) >= 10 {
					once.Do(func() { close(enough) })
				}
				results <- outcome{resp.StatusCode, resp.Header.Get(idempotency.HeaderReplayed) == "true", string(body), nil}
			})
		}
		close(start)
		wg.Wait()
		close(results)
		counts := map[string]int{}
		var original string
		var replays []string
		for o := range results {
			switch {
			case o.err != nil:
				t.Fatal(o.err)
			case o.status == http.StatusCreated && !o.replayed:
				counts["original"]++
				original = o.body
			case o.status == http.StatusCreated && o.replayed:
				counts["replay"]++
				replays = append(replays, o.body)
			case o.status == http.StatusConflict:
				counts["409"]++
			default:
				t.Fatalf("unexpected outcome: %d %s", o.status, o.body)
			}
		}
		if runs.Load() != 1 || counts["original"] != 1 || counts["409"] == 0 {
			t.Fatalf("runs=%d outcomes=%v", runs.Load(), counts)
		}
		for _, r := range replays {
			if r != original {
				t.Fatalf("replay %q differs from original %q", r, original)
			}
		}
		t.Logf("outcomes: %v", counts)
		client.CloseIdleConnections()
	})
}

// A middleware that cannot remember must not be wired in silently: a zero
// Middleware panics when the server is set up (Handler has no error to
// return), not on a request and not by passing every request through.
func TestMisuseFailsAtSetup(t *testing.T) {
	for name, f := range map[string]func(){
		"zero Middleware": func() { (&idempotency.Middleware{}).Handler(http.NotFoundHandler()) },
		"nil *Middleware": func() { (*idempotency.Middleware)(nil).Handler(http.NotFoundHandler()) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "idempotency:") {
					t.Errorf("%s: recovered %v, want an idempotency panic", name, r)
				}
			}()
			f()
		}()
	}
}

// Constructors never panic on bad arguments: they return a
// *rebound.ConfigError naming the field, as the core's do. A negative value
// is refused, never silently read as the default.
func TestConstructorsReturnConfigErrors(t *testing.T) {
	store := idempotency.NewMemoryStore()
	for field, cfg := range map[string]idempotency.Config{
		"idempotency.Config.TTL":              {TTL: -1},
		"idempotency.Config.LockTimeout":      {LockTimeout: -1},
		"idempotency.Config.MaxKeyLength":     {MaxKeyLength: -1},
		"idempotency.Config.MaxBodyBytes":     {MaxBodyBytes: -1},
		"idempotency.Config.MaxResponseBytes": {MaxResponseBytes: -1},
	} {
		m, err := idempotency.New(store, cfg)
		var ce *rebound.ConfigError
		if !errors.As(err, &ce) || ce.Field != field || m != nil {
			t.Errorf("New with %s negative: %v, %v; want a *rebound.ConfigError", field, m, err)
		}
	}
	if _, err := idempotency.New(nil, idempotency.Config{}); !isConfigError(err) {
		t.Errorf("New(nil store): %v", err)
	}
	if _, err := idempotency.New(store, idempotency.Config{PruneInterval: -1}); err != nil {
		t.Errorf("a negative PruneInterval means no pruning: %v", err)
	}
	db := openSQLite(t, filepath.Join(t.TempDir(), "idem.db"))
	for name, f := range map[string]func() (*idempotency.SQLStore, error){
		"nil db":  func() (*idempotency.SQLStore, error) { return idempotency.NewSQLStore(nil, idempotency.SQLite, "") },
		"dialect": func() (*idempotency.SQLStore, error) { return idempotency.NewSQLStore(db, idempotency.Dialect(99), "") },
		"table name": func() (*idempotency.SQLStore, error) {
			return idempotency.NewSQLStore(db, idempotency.SQLite, "t; DROP TABLE x")
		},
	} {
		if s, err := f(); !isConfigError(err) || s != nil {
			t.Errorf("NewSQLStore with a bad %s: %v, %v; want a *rebound.ConfigError", name, s, err)
		}
	}
}

func isConfigError(err error) bool {
	var ce *rebound.ConfigError
	return errors.As(err, &ce)
}
