package idempotency_test

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound/idempotency"
)

// TestSQLiteSurvivesRestart: a server answers a request and goes away; a
// brand-new process (new *sql.DB, new store, new middleware) on the same
// file gets the client's retry and replays instead of running the handler.
func TestSQLiteSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.db")
	clock := newFakeClock()
	var runs atomic.Int64

	open := func() (*sql.DB, http.Handler) {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		if err != nil {
			t.Fatal(err)
		}
		store := newSQLStore(t, db, idempotency.SQLite, "")
		return db, newMiddleware(t, store, idempotency.Config{Clock: clock}).Handler(counting(&runs))
	}

	db1, h1 := open()
	first := send(h1, "POST", "/orders", quoted("restart-1"), `{"qty":3}`, "")
	if err := db1.Close(); err != nil {
		t.Fatal(err)
	}

	db2, h2 := open()
	defer db2.Close()
	again := send(h2, "POST", "/orders", quoted("restart-1"), `{"qty":3}`, "")
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times across the restart, want 1", runs.Load())
	}
	if again.Header().Get(idempotency.HeaderReplayed) != "true" || again.Code != first.Code || again.Body.String() != first.Body.String() {
		t.Fatalf("after restart: %d %q replayed=%q, want %d %q", again.Code, again.Body, again.Header().Get(idempotency.HeaderReplayed), first.Code, first.Body)
	}
}

// TestSQLStoreTwoHandlesOneFile: two *sql.DB on one SQLite file (as two
// processes would have) race for the same keys; each key is claimed once.
func TestSQLStoreTwoHandlesOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idem.db")
	a := newSQLStore(t, openSQLite(t, path), idempotency.SQLite, "")
	b := newSQLStore(t, openSQLite(t, path), idempotency.SQLite, "")
	clock := newFakeClock()
	ctx := context.Background()
	for i := range 20 {
		key := string(rune('a' + i))
		results := make(chan idempotency.State, 2)
		for j, s := range []idempotency.Store{a, b} {
			go func() {
				now := clock.Now()
				rec, err := s.Claim(ctx, idempotency.ClaimRequest{
					Key: key, Fingerprint: "fp", Token: string(rune('x' + j)), Now: now,
					LockedUntil: now.Add(60e9), ExpiresAt: now.Add(3600e9),
				})
				if err != nil {
					t.Error(err)
				}
				results <- rec.State
			}()
		}
		s1, s2 := <-results, <-results
		if (s1 == idempotency.Claimed) == (s2 == idempotency.Claimed) {
			t.Fatalf("key %s: states %v and %v, want exactly one claimed", key, s1, s2)
		}
	}
}

func TestSQLStoreRejectsNewerSchema(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "idem.db"))
	ctx := context.Background()
	if err := newSQLStore(t, db, idempotency.SQLite, "t1").Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE t1_meta SET version = 99`); err != nil {
		t.Fatal(err)
	}
	if err := newSQLStore(t, db, idempotency.SQLite, "t1").Init(ctx); err == nil {
		t.Fatal("a table of an unknown schema version was accepted")
	}
}

// TestStoreFailureFailsClosed: with the database gone the middleware
// answers 503 and does not run the handler unchecked.
func TestStoreFailureFailsClosed(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "idem.db"))
	store := newSQLStore(t, db, idempotency.SQLite, "")
	db.Close()
	var runs atomic.Int64
	h := newMiddleware(t, store, idempotency.Config{}).Handler(counting(&runs))
	rec := send(h, "POST", "/", quoted("k"), "", "")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || runs.Load() != 0 {
		t.Fatalf("store down: %d Retry-After=%q runs=%d", rec.Code, rec.Header().Get("Retry-After"), runs.Load())
	}
	if p := problemOf(t, rec); p.Type != idempotency.ProblemStoreFailed {
		t.Fatal(p.Type)
	}
}
