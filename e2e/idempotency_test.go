package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	_ "modernc.org/sqlite"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/idempotency"
	"github.com/rebound-go/rebound/job"
)

// effectServer is an order API whose POST must take effect once per
// Idempotency-Key: the idempotency middleware (SQLite store) in front of a
// handler that counts its effects, and outside both a wrapper that counts
// what went out, replays included.
type effectServer struct {
	mu       sync.Mutex
	effects  map[string]int // Idempotency-Key -> times the handler ran
	total    atomic.Int64   // times the handler ran
	requests atomic.Int64   // requests that reached the server
	replayed atomic.Int64   // responses replayed from the store
	// deferred counts answers that ran nothing and stored nothing: 409
	// "still in flight" and 503 "store unavailable". A loaded machine makes
	// a few (SQLite busy past its timeout); the client retries them.
	deferred atomic.Int64
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (s *effectServer) handler(store idempotency.Store) http.Handler {
	m, err := idempotency.New(store, idempotency.Config{})
	if err != nil {
		panic(err) // a valid config: a bug in this test
	}
	orders := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.effects[r.Header.Get("Idempotency-Key")]++ // the effect that must happen once
		s.mu.Unlock()
		n := s.total.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"order":%d,"request":%s}`, n, body)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		sw := &statusWriter{ResponseWriter: w}
		orders.ServeHTTP(sw, r)
		// The header map is the one the response was written with.
		switch {
		case w.Header().Get(idempotency.HeaderReplayed) == "true":
			s.replayed.Add(1)
		case sw.code == http.StatusConflict || sw.code == http.StatusServiceUnavailable:
			s.deferred.Add(1)
		}
	})
}

// Exactly-once effects under lost responses: 2,000 POSTs from the real CLI
// (`rebound run`) go through toxiproxy to a server that deduplicates with the
// idempotency middleware and a SQLite store. The proxy cuts some responses
// after the server has committed the request, so the client never learns the
// outcome and retries with the same key. The server must apply each item's
// effect exactly once and answer the retries from its store.
func TestExactlyOnceUnderLostResponses(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 requests through a proxy: not in -short")
	}
	const items = 2000
	dir := t.TempDir()

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "idem.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := idempotency.NewSQLStore(db, idempotency.SQLite, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Init(context.Background()); err != nil {
		t.Fatal(err)
	}

	s := &effectServer{effects: make(map[string]int)}
	srv := httptest.NewUnstartedServer(s.handler(store))
	// One connection per request: toxiproxy decides whether a toxic acts
	// once per connection (its toxicity is drawn when the link is made),
	// so with keep-alive a few lucky connections would carry almost every
	// request untouched. Closing after each response gives every request
	// its own draw.
	srv.Config.SetKeepAlivesEnabled(false)
	srv.Start()
	t.Cleanup(srv.Close)

	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(api, "lost_responses", "127.0.0.1:0", srv.Listener.Addr().String())
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	f := &fault{t: t, proxy: proxy, url: "http://" + proxy.Listen}
	// limit_data on the downstream (server to client) passes the first 10
	// bytes of the response and then closes the connection. It acts only
	// once the server has sent its response, so the request was received,
	// run and stored: only the answer is lost (the client reads half a
	// status line, then EOF). The response leaves the server only after the
	// middleware has stored it (net/http writes a short response when the
	// handler returns), so the retry finds a completed record and gets a
	// replay, not a 409 "still in flight". Toxicity 0.3: three connections
	// in ten lose their response, the rest get through, so a retry
	// eventually succeeds (--attempts 30 makes running out of attempts, at
	// 0.3^30 per item, impossible in practice).
	f.toxic(`{"name":"lose","type":"limit_data","stream":"downstream","toxicity":0.3,"attributes":{"bytes":10}}`)

	manifest := filepath.Join(dir, "orders.jsonl")
	mf, err := os.Create(manifest)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(mf)
	for i := range items {
		fmt.Fprintf(w, `{"id":"order-%04d","method":"POST","url":"%s/orders","body":{"item":%d}}`+"\n", i, f.url, i)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	mf.Close()

	start := time.Now()
	res := runCLI(t, dir, "run", manifest, "--json", "--concurrency", "8", "--attempts", "30",
		"--backoff", "1ms", "--max-backoff", "10ms",
		// Lost responses are the test's own doing; a breaker opening on a
		// run of them would only make the test wait.
		"--breaker-failures", "1000000")
	elapsed := time.Since(start)
	if res.code != 0 {
		t.Fatalf("rebound run exited %d\nstderr: %s\nstdout tail: %s", res.code, res.stderr, tail(res.stdout, 2000))
	}
	// Every failed attempt is resent: at once ("retry" events) or, when the
	// retry budget says no, after the item is put back ("failed" events).
	var sum struct {
		Event string `json:"event"`
		Done  int    `json:"done"`
		Dead  int    `json:"dead"`
	}
	resent := 0
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	for _, l := range lines {
		if err := json.Unmarshal([]byte(l), &sum); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if sum.Event == "retry" || sum.Event == "failed" {
			resent++
		}
	}
	if sum.Event != "summary" {
		t.Fatalf("last line %q is not the summary", lines[len(lines)-1])
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	jb := stateJob(t, filepath.Join(dir, ".rebound", "orders.db"), "orders")
	for i := range items {
		key := job.IdempotencyKey(jb, fmt.Sprintf("order-%04d", i))
		if n := s.effects[key]; n != 1 {
			t.Errorf("order-%04d: effect applied %d times, want exactly 1", i, n)
		}
	}
	if got := s.total.Load(); got != items || len(s.effects) != items {
		t.Fatalf("%d effects over %d keys, want exactly %d", got, len(s.effects), items)
	}
	if sum.Done != items || sum.Dead != 0 {
		t.Fatalf("summary %+v, want %d done", sum, items)
	}
	// The toxic really cut responses, and the retries were answered from
	// the store, not by running the handler again.
	if resent == 0 || s.replayed.Load() == 0 || s.replayed.Load() > int64(resent) {
		t.Fatalf("%d requests resent, %d replays: want some of both, and no replay that was not a resend", resent, s.replayed.Load())
	}
	// Every request either ran the handler (once per item, checked above),
	// was answered from the store, or was told to come back having run
	// nothing: no answer came from anywhere else.
	if got, want := s.requests.Load(), int64(items)+s.replayed.Load()+s.deferred.Load(); got != want {
		t.Errorf("%d requests reached the server, want %d first ones + %d replays + %d deferred", got, items, s.replayed.Load(), s.deferred.Load())
	}
	t.Logf("%d items in %v: %d effects, %d requests, %d resent by the client, %d replays from the SQLite store, %d deferred",
		items, elapsed.Round(time.Millisecond), s.total.Load(), s.requests.Load(), resent, s.replayed.Load(), s.deferred.Load())
}

// A request that outlives the client's read timeout is still running when
// the retry arrives: the middleware answers 409 with Retry-After: 1 ("the
// first request with this key is still in flight"). rebound run must wait
// and retry, not give the item up, and the retry gets the first request's
// stored answer: one effect, item done.
func TestInFlightKeyRetriedNotDead(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "idem.db")+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := idempotency.NewSQLStore(db, idempotency.SQLite, "")
	if err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	var runs, requests, replayed, conflicts atomic.Int64
	m, err := idempotency.New(store, idempotency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	orders := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			<-release // outlive the client's read timeout
		}
		w.WriteHeader(http.StatusCreated)
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		orders.ServeHTTP(w, r)
		switch {
		case w.Header().Get(idempotency.HeaderReplayed) == "true":
			replayed.Add(1)
		case w.Header().Get("Retry-After") != "":
			conflicts.Add(1)
			free() // the client has seen "in flight": let the first request finish
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(free) // runs before srv.Close: never leave the handler blocked

	manifest := filepath.Join(dir, "slow.jsonl")
	if err := os.WriteFile(manifest, []byte(`{"id":"a","method":"POST","url":"`+srv.URL+`/orders","body":{"item":1}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCLI(t, dir, "run", manifest, "--json", "--read-timeout", "300ms", "--backoff", "1ms", "--max-backoff", "5ms")
	if res.code != 0 {
		t.Fatalf("rebound run exited %d\nstdout: %s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if runs.Load() != 1 || conflicts.Load() < 1 || replayed.Load() != 1 {
		t.Fatalf("handler ran %d times, %d in-flight answers, %d replays (%d requests); want 1, >= 1, 1\n%s",
			runs.Load(), conflicts.Load(), replayed.Load(), requests.Load(), res.stdout)
	}
	if !strings.Contains(res.stdout, `"kind":"throttled"`) {
		t.Errorf("no throttled retry in the events:\n%s", res.stdout)
	}
	t.Logf("%d requests: timeout, %d × 409 in flight, then the stored answer", requests.Load(), conflicts.Load())
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// stateJob reads a job as a finished `rebound run` left it in its state file.
func stateJob(t *testing.T, path, name string) checkpoint.Job {
	t.Helper()
	st, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	jb, err := st.Job(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return jb
}

// Two unrelated jobs with the same manifest name and item IDs (another
// folder, so another state file) both take effect on a server that
// deduplicates: the second is not answered from the first one's stored
// responses. --restart, "start the job over", takes effect again too.
func TestUnrelatedJobsBothApplied(t *testing.T) {
	const items = 5
	es := &effectServer{effects: map[string]int{}}
	srv := httptest.NewServer(es.handler(idempotency.NewMemoryStore()))
	defer srv.Close()
	write := func(dir string) {
		var b strings.Builder
		for i := range items {
			fmt.Fprintf(&b, `{"id":"line-%d","method":"POST","url":"%s/orders","body":{"sku":%d}}`+"\n", i, srv.URL, i)
		}
		if err := os.WriteFile(filepath.Join(dir, "orders.jsonl"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(dir string, args ...string) {
		t.Helper()
		res := runCLI(t, dir, append([]string{"run", "orders.jsonl", "--quiet"}, args...)...)
		if res.code != 0 {
			t.Fatalf("rebound run %v in %s: exit %d: %s", args, dir, res.code, res.stderr)
		}
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	write(dirA)
	write(dirB)
	run(dirA)
	run(dirB)
	if got := es.total.Load(); got != 2*items || es.replayed.Load() != 0 {
		t.Fatalf("two unrelated jobs of %d items: %d effects, %d replays; want %d effects, none replayed",
			items, got, es.replayed.Load(), 2*items)
	}
	run(dirA, "--restart")
	if got := es.total.Load(); got != 3*items || es.replayed.Load() != 0 {
		t.Fatalf("after --restart: %d effects, %d replays; want %d effects, none replayed", got, es.replayed.Load(), 3*items)
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	for key, n := range es.effects {
		if n != 1 {
			t.Errorf("key %s took effect %d times", key, n)
		}
	}
}
