package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// dedupServer counts effects per Idempotency-Key, as a server that
// deduplicates would: the first request with a key applies its effect, a
// repeat is a replay and applies nothing.
type dedupServer struct {
	mu       sync.Mutex
	keyOf    map[string]map[string]bool // item (URL path) -> keys seen for it
	effects  map[string]int             // key -> effects applied
	replays  map[int]int                // epoch -> replays seen in it
	requests int
	epoch    int
	notify   chan struct{}
	delay    time.Duration
}

func newDedupServer(delay time.Duration) *dedupServer {
	return &dedupServer{keyOf: map[string]map[string]bool{}, effects: map[string]int{},
		replays: map[int]int{}, notify: make(chan struct{}, 1), delay: delay}
}

func (s *dedupServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	s.requests++
	if s.keyOf[r.URL.Path] == nil {
		s.keyOf[r.URL.Path] = map[string]bool{}
	}
	s.keyOf[r.URL.Path][key] = true
	if s.effects[key] == 0 {
		s.effects[key] = 1
	} else {
		s.replays[s.epoch]++
	}
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if s.delay > 0 {
		time.Sleep(s.delay) // pacing, so a kill lands mid-run
	}
	w.WriteHeader(http.StatusCreated)
}

func (s *dedupServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// waitRequests waits until the server has seen at least n requests, or the
// process exits, or a bound passes.
func (s *dedupServer) waitRequests(n int, exited <-chan struct{}) {
	deadline := time.After(time.Minute)
	for s.count() < n {
		select {
		case <-s.notify:
		case <-exited:
			return
		case <-deadline:
			return
		}
	}
}

func writeManifest(t *testing.T, dir, url string, n int) string {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"id":"order-%d","method":"POST","url":"%s/orders/%d","body":{"n":%d}}`+"\n", i, url, i, i)
	}
	p := filepath.Join(dir, "orders.jsonl")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCrashResumeExactlyOnce kills the real CLI with SIGKILL at random
// moments, at least ten times, and re-runs it until it finishes: every item
// must be done, every item's effect applied once, the replays after each
// kill no more than the concurrency, and the state file must open cleanly
// every time.
func TestCrashResumeExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real CLI")
	}
	const items, concurrency, kills = 2000, 8, 10
	srv := newDedupServer(2 * time.Millisecond)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	writeManifest(t, dir, ts.URL, items)
	args := []string{"run", "orders.jsonl", "--quiet", "--concurrency", fmt.Sprint(concurrency)}
	rng := rand.New(rand.NewPCG(1, 2))

	killed := 0
	for killed < kills {
		run := startCLI(t, dir, args...)
		cmd, stderr, exited := run.cmd, run.stderr, run.exited
		srv.waitRequests(srv.count()+20+rng.IntN(120), exited)
		select {
		case <-exited:
			t.Fatalf("run finished before kill %d (exit %v): %s", killed+1, run.err, stderr.String())
		default:
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exited
		killed++
		srv.mu.Lock()
		srv.epoch++
		srv.mu.Unlock()

		// The state file must open cleanly after every kill.
		st := runCLI(t, dir, "status", "orders.jsonl", "--json")
		if st.code != 0 {
			t.Fatalf("status after kill %d: exit %d: %s", killed, st.code, st.stderr)
		}
	}
	for run := 0; ; run++ {
		if run == 5 {
			t.Fatal("the job did not finish in 5 runs after the kills")
		}
		res := runCLI(t, dir, args...)
		if res.code == 0 {
			break
		}
		t.Logf("run after kills: exit %d: %s", res.code, res.stderr)
	}

	st := runCLI(t, dir, "status", "orders.jsonl", "--json")
	var status struct {
		Done, Dead, Pending, Failed int64
		Complete                    bool
	}
	if err := json.Unmarshal([]byte(st.stdout), &status); err != nil {
		t.Fatalf("status --json: %v: %s", err, st.stdout)
	}
	if status.Done != items || !status.Complete {
		t.Fatalf("status after the final run: %+v", status)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.keyOf) != items {
		t.Fatalf("server saw %d items, want %d", len(srv.keyOf), items)
	}
	for item, keys := range srv.keyOf {
		if len(keys) != 1 {
			t.Fatalf("item %s arrived with %d different idempotency keys: its effect would apply twice", item, len(keys))
		}
	}
	total := 0
	for epoch, n := range srv.replays {
		total += n
		if n > concurrency {
			t.Errorf("after kill %d: %d replays, more than the concurrency %d", epoch, n, concurrency)
		}
	}
	t.Logf("%d kills, %d requests for %d items, %d replays (deduplicated by key)", killed, srv.requests, items, total)
}

// TestInterruptExits130AndResumes sends SIGINT mid-run: the CLI must stop
// with exit 130 and a consistent checkpoint, and the same command finishes
// the job.
func TestInterruptExits130AndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real CLI")
	}
	srv := newDedupServer(5 * time.Millisecond)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	writeManifest(t, dir, ts.URL, 600)
	args := []string{"run", "orders.jsonl", "--quiet", "--concurrency", "4"}

	run := startCLI(t, dir, args...)
	cmd, stderr, exited := run.cmd, run.stderr, run.exited
	srv.waitRequests(50, exited)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("no exit within a minute of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d after SIGINT, want 130: %s", code, stderr.String())
	}
	mid := runCLI(t, dir, "status", "orders.jsonl", "--json")
	var status struct{ Done, Leased int64 }
	if err := json.Unmarshal([]byte(mid.stdout), &status); err != nil {
		t.Fatal(err, mid.stdout)
	}
	if status.Done == 0 || status.Done == 600 {
		t.Fatalf("interrupted run saved %d done items", status.Done)
	}
	if status.Leased != 0 {
		t.Errorf("%d items left leased after a graceful interrupt; items leased ahead must be given back unspent", status.Leased)
	}
	if res := runCLI(t, dir, args...); res.code != 0 {
		t.Fatalf("resume: exit %d: %s", res.code, res.stderr)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	replays := 0
	for _, n := range srv.replays {
		replays += n
	}
	if replays != 0 {
		t.Errorf("%d requests sent again after a graceful interrupt; in-flight items should have finished", replays)
	}
	if len(srv.effects) != 600 {
		t.Fatalf("%d effects, want 600", len(srv.effects))
	}
}

// TestSecondSignalExitsAtOnce: the first SIGINT lets in-flight requests
// finish (here they never would: the server holds them), a second one ends
// the process at once, and the state file is still consistent: the next run
// finishes the job with every item applied once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real CLI")
	}
	srv := newDedupServer(0)
	hold := make(chan struct{})
	var held sync.Once
	holding := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/orders/100" { // one request the server never answers until released
			held.Do(func() { close(holding) })
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	var released sync.Once
	release := func() { released.Do(func() { close(hold) }) }
	defer release()
	dir := t.TempDir()
	writeManifest(t, dir, ts.URL, 300)
	args := []string{"run", "orders.jsonl", "--quiet", "--concurrency", "4", "--grace", "10m"}

	run := startCLI(t, dir, args...)
	cmd, exited := run.cmd, run.exited
	select {
	case <-holding:
	case <-exited:
		t.Fatal("run ended before reaching the held request")
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the held request never arrived")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// The first signal starts a graceful stop that would wait 10 minutes for
	// the held request. Signal again until the process is gone: once the
	// first has been handled, the next one ends it.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
wait:
	for {
		select {
		case <-exited:
			break wait
		case <-tick.C:
			_ = cmd.Process.Signal(syscall.SIGINT)
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatal("a second SIGINT did not end the run")
		}
	}
	if cmd.ProcessState.Success() {
		t.Fatal("interrupted run reported success")
	}
	if st := runCLI(t, dir, "status", "orders.jsonl", "--json"); st.code != 0 {
		t.Fatalf("state after the second signal: exit %d: %s", st.code, st.stderr)
	}
	release()
	if res := runCLI(t, dir, args...); res.code != 0 {
		t.Fatalf("resume: exit %d: %s", res.code, res.stderr)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.effects) != 300 {
		t.Fatalf("%d effects, want 300", len(srv.effects))
	}
	for item, keys := range srv.keyOf {
		if len(keys) != 1 {
			t.Fatalf("item %s arrived with %d keys", item, len(keys))
		}
	}
}

// TestSecondRunOnSameStateRefused: while one `rebound run` works, a second on
// the same state file exits with 2 and names the first, before it restarts,
// loads or takes back anything; `rebound status` still reads the state; the
// first run finishes with every item applied once.
func TestSecondRunOnSameStateRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real CLI")
	}
	srv := newDedupServer(0)
	// The first run's requests wait until the checks below are done, so the
	// first run is surely alive while the second one tries.
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
		srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	dir := t.TempDir()
	writeManifest(t, dir, ts.URL, 400)
	args := []string{"run", "orders.jsonl", "--quiet", "--concurrency", "4"}

	run := startCLI(t, dir, args...)
	cmd, stderr, exited := run.cmd, run.stderr, run.exited
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	// The first run takes the lock before it sends anything: once a request
	// arrives (and is held), it holds the lock.
	select {
	case <-arrived:
	case <-exited:
		t.Fatalf("first run ended early: %s", stderr.String())
	case <-time.After(time.Minute):
		t.Fatal("first run sent nothing within a minute")
	}

	for _, extra := range [][]string{nil, {"--restart"}} {
		second := runCLI(t, dir, append(args, extra...)...)
		if second.code != 2 || !strings.Contains(second.stderr, "being run by") ||
			!strings.Contains(second.stderr, fmt.Sprintf("pid %d", cmd.Process.Pid)) {
			t.Errorf("second run %v: exit %d, stderr %q; want 2 naming pid %d", extra, second.code, second.stderr, cmd.Process.Pid)
		}
	}
	if st := runCLI(t, dir, "status", "orders.jsonl", "--json"); st.code != 0 {
		t.Errorf("status during a run: exit %d: %s", st.code, st.stderr)
	}
	close(release)
	released = true

	select {
	case <-exited:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("first run did not finish")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr.String())
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.effects) != 400 || srv.requests != 400 {
		t.Fatalf("%d effects from %d requests, want 400 from 400 (nothing sent twice)", len(srv.effects), srv.requests)
	}
}
