package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgDSN returns REBOUND_TEST_POSTGRES with a fresh schema (dropped when the
// test ends) as search_path, or skips the test.
func pgDSN(t *testing.T) (dsn, base, schema string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the real CLI against PostgreSQL")
	}
	base = os.Getenv("REBOUND_TEST_POSTGRES")
	if base == "" {
		t.Skip("set REBOUND_TEST_POSTGRES to run the PostgreSQL tests, e.g. " +
			"REBOUND_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' go test ./...")
	}
	var b [6]byte
	rand.Read(b[:])
	schema = "rb_e2e_" + hex.EncodeToString(b[:])
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return u.String(), base, schema
}

// pgQuery runs one query that returns one row in the test's schema.
func pgQuery(t *testing.T, dsn, sql string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// exclusiveServer is a dedup server that also watches for one item being
// worked on by two workers at once: two requests for the same item in flight
// at the same moment mean two live leases.
type exclusiveServer struct {
	*dedupServer
	mu         sync.Mutex
	inflight   map[string]int
	violations []string
}

func newExclusiveServer(delay time.Duration) *exclusiveServer {
	return &exclusiveServer{dedupServer: newDedupServer(delay), inflight: map[string]int{}}
}

func (s *exclusiveServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.inflight[r.URL.Path]++
	if n := s.inflight[r.URL.Path]; n > 1 && len(s.violations) < 10 {
		s.violations = append(s.violations, fmt.Sprintf("%s: %d requests in flight at once", r.URL.Path, n))
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight[r.URL.Path]--
		s.mu.Unlock()
	}()
	s.dedupServer.ServeHTTP(w, r)
}

// worker is one CLI process.
type worker struct {
	cmd    *exec.Cmd
	stderr *strings.Builder
	exited chan struct{}
}

func startWorker(t *testing.T, ctx context.Context, dir string, env []string, args ...string) *worker {
	t.Helper()
	cmd := exec.CommandContext(ctx, cliBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	w := &worker{cmd: cmd, stderr: &strings.Builder{}, exited: make(chan struct{})}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(w.exited) }()
	return w
}

// checkExactlyOnce checks the server saw every item, each with one key, and
// no item in flight twice at once; it returns the replays.
func (s *exclusiveServer) checkExactlyOnce(t *testing.T, items int) int {
	t.Helper()
	s.mu.Lock()
	for _, v := range s.violations {
		t.Errorf("item leased by two live workers: %s", v)
	}
	s.mu.Unlock()
	s.dedupServer.mu.Lock()
	defer s.dedupServer.mu.Unlock()
	if len(s.keyOf) != items || len(s.effects) != items {
		t.Fatalf("server saw %d items and %d keys, want %d", len(s.keyOf), len(s.effects), items)
	}
	for item, keys := range s.keyOf {
		if len(keys) != 1 {
			t.Fatalf("item %s arrived with %d different idempotency keys: its effect would apply twice", item, len(keys))
		}
	}
	return s.requests - items
}

type pgStatus struct {
	Done, Dead, Pending, Leased, Failed int64
	Complete                            bool
	Workers                             []struct {
		Worker string
		Done   int64
	}
}

func readStatus(t *testing.T, dir, dsn, job string) pgStatus {
	t.Helper()
	res := runCLI(t, dir, "status", "--state", dsn, "--job", job, "--json")
	if res.code != 0 {
		t.Fatalf("status: exit %d: %s", res.code, res.stderr)
	}
	var st pgStatus
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		t.Fatalf("status --json: %v: %s", err, res.stdout)
	}
	return st
}

// TestPostgresManyWorkersSIGKILL starts 4 workers of the real CLI on one
// job in PostgreSQL, SIGKILLs two of them mid-run, and checks that the two
// others finish the job: their leases expire and are taken over, every
// item's effect is applied once (one key per item, deduplicated by the
// server), and no item is ever in flight at two workers at once.
func TestPostgresManyWorkersSIGKILL(t *testing.T) {
	dsn, _, _ := pgDSN(t)
	const items, workers, concurrency = 20000, 4, 8
	srv := newExclusiveServer(0)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	writeManifest(t, dir, ts.URL, items)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A short TTL keeps the test quick: the killed workers' items return
	// after it. It stays well above a heartbeat's delay on a busy machine
	// (heartbeats come every TTL/3), so a live worker keeps its leases.
	args := []string{"run", "orders.jsonl", "--quiet", "--concurrency", fmt.Sprint(concurrency), "--lease-ttl", "4s"}
	env := []string{"REBOUND_STATE=" + dsn} // the environment names the shared state
	var ws []*worker
	for range workers {
		ws = append(ws, startWorker(t, ctx, dir, env, args...))
	}
	// Kill two workers once the job is well under way, at different moments.
	for i, at := range []int{items / 5, items / 3} {
		srv.waitRequests(at, ws[i].exited)
		select {
		case <-ws[i].exited:
			t.Fatalf("worker %d exited before it was killed: %s", i, ws[i].stderr)
		default:
		}
		if err := ws[i].cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-ws[i].exited
	}
	for i := 2; i < workers; i++ {
		<-ws[i].exited
		if code := ws[i].cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("surviving worker %d: exit %d: %s", i, code, ws[i].stderr)
		}
	}
	st := readStatus(t, dir, dsn, "orders")
	if st.Done != items || !st.Complete {
		t.Fatalf("status after the run: %+v", st)
	}
	if len(st.Workers) != workers {
		t.Errorf("status lists %d workers, want %d: %+v", len(st.Workers), workers, st.Workers)
	}
	replays := srv.checkExactlyOnce(t, items)
	// Only requests in flight in a killed worker are sent again.
	if replays > 2*concurrency {
		t.Errorf("%d replays after 2 kills, more than 2 × concurrency %d", replays, concurrency)
	}
	var loads int64
	pgQuery(t, dsn, "SELECT items FROM jobs WHERE name = 'orders'", &loads)
	if loads != items {
		t.Errorf("job records %d loaded items, want %d (loaded once)", loads, items)
	}
	t.Logf("%d items, %d workers (2 killed), %d requests, %d replays deduplicated by key; workers %+v",
		items, workers, srv.requests, replays, st.Workers)
}

// TestPostgresConcurrentStart starts 4 workers at once on an empty schema:
// the schema is migrated once, the manifest loaded once, nobody fails.
func TestPostgresConcurrentStart(t *testing.T) {
	dsn, _, _ := pgDSN(t)
	const items = 300
	srv := newExclusiveServer(0)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	writeManifest(t, dir, ts.URL, items)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var ws []*worker
	for range 4 {
		ws = append(ws, startWorker(t, ctx, dir, nil, "run", "orders.jsonl", "--quiet", "--state", dsn))
	}
	for i, w := range ws {
		<-w.exited
		if code := w.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("worker %d: exit %d: %s", i, code, w.stderr)
		}
	}
	var migrations, versions, jobs, stored int64
	pgQuery(t, dsn, "SELECT count(*), count(DISTINCT version) FROM schema_migrations", &migrations, &versions)
	if migrations != versions || migrations < 1 {
		t.Errorf("schema_migrations has %d rows for %d versions, want each version once", migrations, versions)
	}
	pgQuery(t, dsn, "SELECT count(*), (SELECT count(*) FROM items) FROM jobs", &jobs, &stored)
	if jobs != 1 || stored != items {
		t.Errorf("%d jobs and %d items stored, want 1 and %d", jobs, stored, items)
	}
	srv.checkExactlyOnce(t, items)
	// Another manifest under the same job name is refused.
	writeManifest(t, dir, ts.URL, items+1)
	res := runCLI(t, dir, "run", "orders.jsonl", "--quiet", "--state", dsn)
	if res.code != 2 || !strings.Contains(res.stderr, "different manifest") {
		t.Errorf("a changed manifest: exit %d, %s; want exit 2 and a clear refusal", res.code, res.stderr)
	}
}

// cutProxy forwards TCP connections to target until cut: then it closes
// every open connection and refuses new ones until restore.
type cutProxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	conns   map[net.Conn]struct{}
	refused int
	refuse  chan struct{} // signalled on each refused connection
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, refuse: make(chan struct{}, 1)}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.sever() })
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.refused++
			p.mu.Unlock()
			c.Close()
			select {
			case p.refuse <- struct{}{}:
			default:
			}
			continue
		}
		p.mu.Unlock()
		go p.pipe(c)
	}
}

func (p *cutProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close(); c.Close() }()
	io.Copy(c, up)
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// sever cuts every connection and refuses new ones.
func (p *cutProxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// TestPostgresConnectionCut cuts the workers' connections to PostgreSQL
// mid-run and refuses new ones for a while: the workers retry with backoff
// and finish once it is back; nothing is lost and nothing applied twice.
func TestPostgresConnectionCut(t *testing.T) {
	dsn, _, _ := pgDSN(t)
	u, _ := url.Parse(dsn)
	proxy := newCutProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	viaProxy := u.String()

	const items, concurrency = 4000, 8
	srv := newExclusiveServer(0)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	dir := t.TempDir()
	writeManifest(t, dir, ts.URL, items)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"run", "orders.jsonl", "--quiet", "--concurrency", fmt.Sprint(concurrency), "--state", viaProxy, "--lease-ttl", "5s"}
	ws := []*worker{startWorker(t, ctx, dir, nil, args...), startWorker(t, ctx, dir, nil, args...)}

	srv.waitRequests(items/4, ws[0].exited)
	proxy.sever()
	// The outage lasts until the workers have tried to reconnect a few
	// times (each refused dial is one), so it spans several backoff waits.
	deadline := time.After(time.Minute)
	for refused := 0; refused < 6; {
		select {
		case <-proxy.refuse:
			proxy.mu.Lock()
			refused = proxy.refused
			proxy.mu.Unlock()
		case <-deadline:
			t.Fatal("the workers did not try to reconnect within a minute")
		}
	}
	during := srv.count()
	proxy.restore()
	for i, w := range ws {
		<-w.exited
		if code := w.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("worker %d: exit %d after the cut: %s", i, code, w.stderr)
		}
	}
	if during >= items {
		t.Fatalf("the cut came after the job was done (%d requests)", during)
	}
	st := readStatus(t, dir, dsn, "orders")
	if st.Done != items || !st.Complete {
		t.Fatalf("status after the run: %+v", st)
	}
	replays := srv.checkExactlyOnce(t, items)
	t.Logf("cut at %d of %d requests, %d refused reconnects, %d replays", during, items, proxy.refused, replays)
}
