package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/storetest"
	"github.com/rebound-go/rebound/reboundtest"
)

// testDSN returns the database of REBOUND_TEST_POSTGRES with a fresh schema
// that is dropped when the test ends, or skips the test.
func testDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("REBOUND_TEST_POSTGRES")
	if base == "" {
		t.Skip("set REBOUND_TEST_POSTGRES to a PostgreSQL URL to run this test, e.g. " +
			"REBOUND_TEST_POSTGRES='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "rb_test_" + hex.EncodeToString(b[:])
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return u.String()
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Config{
		Open: func(t *testing.T, path string, opts checkpoint.Config) checkpoint.Store {
			// One schema per path: reopening the same path sees the same data.
			dsn := dsnFor(t, path)
			s, err := Open(context.Background(), dsn, opts)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Persistent: true,
	})
}

var (
	dsnMu  sync.Mutex
	dsnFor = func() func(t *testing.T, path string) string {
		m := map[string]string{}
		return func(t *testing.T, path string) string {
			dsnMu.Lock()
			defer dsnMu.Unlock()
			if d, ok := m[path]; ok {
				return d
			}
			m[path] = testDSN(t)
			return m[path]
		}
	}()
)

func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := testDSN(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	stores := make(chan *Store, n)
	for range n {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn, checkpoint.Config{})
			if err != nil {
				errs <- err
				return
			}
			stores <- s
		})
	}
	wg.Wait()
	close(errs)
	close(stores)
	for err := range errs {
		t.Errorf("Open: %v", err)
	}
	var s *Store
	for st := range stores {
		s = st
		defer st.Close()
	}
	if s == nil {
		t.Fatal("no store opened")
	}
	var versions, count int
	err := s.pool.QueryRow(context.Background(), "SELECT max(version), count(*) FROM schema_migrations").Scan(&versions, &count)
	if err != nil || versions != SchemaVersion || count != SchemaVersion {
		t.Fatalf("schema_migrations: max %d, %d rows, %v; want %d applied once each", versions, count, err, SchemaVersion)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	dsn := testDSN(t)
	s, err := Open(context.Background(), dsn, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(context.Background(), "INSERT INTO schema_migrations (version) VALUES ($1)", SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(context.Background(), dsn, checkpoint.Config{})
	if !errors.Is(err, checkpoint.ErrBadFile) || !strings.Contains(err.Error(), "newer rebound") || !strings.Contains(err.Error(), "rb_test_") {
		t.Fatalf("Open of a newer schema: err = %v, want ErrBadFile naming the schema and the newer version", err)
	}
}

func TestBadSearchPath(t *testing.T) {
	for _, sp := range []string{"a,b", `"x"`, strings.Repeat("s", 64)} {
		_, err := Open(context.Background(), "postgres://u@127.0.0.1:1/db?search_path="+url.QueryEscape(sp), checkpoint.Config{})
		if !errors.Is(err, checkpoint.ErrInvalid) {
			t.Errorf("search_path %q: err = %v, want ErrInvalid", sp, err)
		}
	}
	_, err := Open(context.Background(), "postgres://user:secret@[::1", checkpoint.Config{})
	if !errors.Is(err, checkpoint.ErrInvalid) || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad DSN: err = %v, want ErrInvalid without the password", err)
	}
}

func TestUnreachableIsTransient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: connection refused at once.
	_, err := Open(ctx, "postgres://u@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", checkpoint.Config{})
	if err == nil || rebound.Classify(err).Kind != rebound.KindTransient {
		t.Fatalf("Open of an unreachable server: err = %v (class %v), want a transient error", err, rebound.Classify(err))
	}
}

func TestLockJobExcludes(t *testing.T) {
	dsn := testDSN(t)
	a, err := Open(context.Background(), dsn, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(context.Background(), dsn, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	unlock, err := a.LockJob(context.Background(), "j")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(), 1)
	go func() {
		u, err := b.LockJob(context.Background(), "j")
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- u
	}()
	// Another job's lock is free meanwhile.
	other, err := b.LockJob(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	other()
	select {
	case <-got:
		t.Fatal("second LockJob returned while the first holds the lock")
	default:
	}
	unlock()
	if u, ok := <-got; ok {
		u()
	}
}

func TestWorkers(t *testing.T) {
	dsn := testDSN(t)
	clock := reboundtest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s, err := Open(context.Background(), dsn, checkpoint.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "f"}); err != nil {
		t.Fatal(err)
	}
	var items []checkpoint.Item
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		items = append(items, checkpoint.Item{ID: id})
	}
	if err := s.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Lease(ctx, "j", "A", 3, time.Minute)
	if b, _ := s.Lease(ctx, "j", "B", 2, time.Minute); len(a) != 3 || len(b) != 2 {
		t.Fatalf("leased %d and %d items, want 3 and 2", len(a), len(b))
	}
	t0 := clock.Now()
	clock.Advance(10 * time.Second)
	s.Complete(ctx, []checkpoint.Result{{Job: "j", ID: a[0].ID, Lease: a[0].Lease, State: checkpoint.Done}})
	s.Flush(ctx)
	clock.Advance(10 * time.Second)
	s.Complete(ctx, []checkpoint.Result{{Job: "j", ID: a[1].ID, Lease: a[1].Lease, State: checkpoint.Done}})
	s.Flush(ctx)
	ws, err := s.Workers(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].Worker != "A" || ws[0].Done != 2 || ws[0].Leased != 1 || ws[1].Worker != "B" || ws[1].Leased != 2 || ws[1].Done != 0 {
		t.Fatalf("Workers = %+v", ws)
	}
	if !ws[0].FirstDone.Equal(t0.Add(10*time.Second)) || !ws[0].LastDone.Equal(t0.Add(20*time.Second)) || ws[0].Rate() != 0.2 {
		t.Fatalf("A: %+v rate %v, want done at +10s and +20s, 0.2/s", ws[0], ws[0].Rate())
	}
	if !ws[1].LastActive.Equal(t0) {
		t.Fatalf("B last active %v, want %v", ws[1].LastActive, t0)
	}
	// Expired leases are not live.
	clock.Advance(time.Minute)
	ws, _ = s.Workers(ctx, "j")
	if ws[0].Leased != 0 || ws[1].Leased != 0 {
		t.Fatalf("after expiry Workers = %+v, want no live leases", ws)
	}
}

// TestServerClock runs without Options.Now: leases expire by the server's
// clock.
func TestServerClock(t *testing.T) {
	dsn := testDSN(t)
	s, err := Open(context.Background(), dsn, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	before := time.Now()
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "f"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddItems(ctx, "j", []checkpoint.Item{{ID: "x"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Lease(ctx, "j", "w", 1, time.Hour)
	if err != nil || len(got) != 1 {
		t.Fatalf("Lease = %v, %v", got, err)
	}
	// Same machine: the server's clock is within a minute of ours.
	if d := got[0].Due.Sub(before.Add(time.Hour)); d < -time.Minute || d > time.Minute {
		t.Fatalf("lease due %v, want about an hour after %v", got[0].Due, before)
	}
	if again, _ := s.Lease(ctx, "j", "w2", 1, time.Hour); len(again) != 0 {
		t.Fatal("leased a held item")
	}
	if err := s.Extend(ctx, "j", "x", got[0].Lease, time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	// A 1 ns lease has expired by the next statement's timestamp.
	if again, _ := s.Lease(ctx, "j", "w2", 1, time.Hour); len(again) != 1 || again[0].Lease == got[0].Lease {
		t.Fatalf("after expiry leased %+v", again)
	}
}

// TestTextPostgresCannotHold: error texts with NUL bytes or invalid UTF-8
// (a server's bytes quoted in an error) are stored cleaned, not failing the
// group commit; IDs and job names with them are refused up front.
func TestTextPostgresCannotHold(t *testing.T) {
	dsn := testDSN(t)
	s, err := Open(context.Background(), dsn, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.OpenJob(ctx, "j\x00", checkpoint.JobMeta{}); !errors.Is(err, checkpoint.ErrInvalid) {
		t.Fatalf("job name with NUL: err = %v, want ErrInvalid", err)
	}
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddItems(ctx, "j", []checkpoint.Item{{ID: "ok"}, {ID: "bad\xff"}}); !errors.Is(err, checkpoint.ErrInvalid) {
		t.Fatalf("ID with invalid UTF-8: err = %v, want ErrInvalid", err)
	}
	if err := s.AddItems(ctx, "j", []checkpoint.Item{{ID: "ok"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Lease(ctx, "j", "w\x00", 1, time.Minute)
	if err != nil || len(got) != 1 {
		t.Fatalf("Lease = %v, %v", got, err)
	}
	r := checkpoint.Result{Job: "j", ID: "ok", Lease: got[0].Lease, State: checkpoint.Dead, ErrKind: "permanent", Err: "HTTP 400: \x00\xfe body"}
	if err := s.Complete(ctx, []checkpoint.Result{r}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush after an error text with NUL and invalid UTF-8: %v", err)
	}
	it, err := s.Item(ctx, "j", "ok")
	if err != nil || it.State != checkpoint.Dead || it.Err != "HTTP 400: \uFFFD\uFFFD body" {
		t.Fatalf("item = %+v, %v; want dead with the error text cleaned", it, err)
	}
}

// TestUnfinishedPlan checks that Unfinished can probe the partial index
// items_due: its state list must imply the index predicate (state <> 3),
// or PostgreSQL falls back to the job's whole range in items_pkey. Sequential
// scans are turned off so that the small table's plan is the one a large
// job would get.
func TestUnfinishedPlan(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	s, err := Open(ctx, dsn, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "f"}); err != nil {
		t.Fatal(err)
	}
	// A job near its end: all done but one deferred retry.
	if _, err := s.pool.Exec(ctx, `INSERT INTO items (job, id, state, due, created, updated)
		SELECT j.id, 'item-' || g, CASE WHEN g = 1 THEN 4 ELSE 3 END, 0, 0, 0
		FROM jobs j, generate_series(1, 5000) g WHERE j.name = 'j'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE items"); err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "RESET enable_seqscan")
	rows, err := conn.Query(ctx, "EXPLAIN (COSTS OFF) "+unfinishedSQL, "j")
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, "using items_due on items") {
		t.Fatalf("Unfinished does not use items_due:\n%s", plan)
	}
	if u, err := s.Unfinished(ctx, "j"); err != nil || !u {
		t.Fatalf("Unfinished = %v, %v; want true (one failed item)", u, err)
	}
}

func TestSchemaVersionIsMigrationCount(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion %d, but there are %d migrations", SchemaVersion, len(migrations))
	}
}

// Workers that open a schema of version 1 together agree on the ID its old
// job gets: one of them migrates, the others read what it drew.
func TestMigratedJobIDAgreed(t *testing.T) {
	dsn := testDSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	schema := cfg.RuntimeParams["search_path"]
	stmts := "CREATE SCHEMA " + schema + "; SET search_path = " + schema + ";" + migrations[0].sql +
		";CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now());" +
		"INSERT INTO schema_migrations (version) VALUES (1);" +
		"INSERT INTO jobs (name, fingerprint, total, items, created) VALUES ('old', 'f', 0, 0, 1);"
	_, err = conn.Exec(context.Background(), stmts)
	conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	ids := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn, checkpoint.Config{})
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			j, err := s.OpenJob(context.Background(), "old", checkpoint.JobMeta{Fingerprint: "f"})
			if err != nil {
				t.Error(err)
				return
			}
			ids <- j.ID
		})
	}
	wg.Wait()
	close(ids)
	first := ""
	for id := range ids {
		if len(id) != 32 || (first != "" && id != first) {
			t.Fatalf("workers got job IDs %q and %q; want one 32-digit ID", first, id)
		}
		first = id
	}
	if first == "" {
		t.Fatal("no worker opened the job")
	}
}
