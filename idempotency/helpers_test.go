package idempotency_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/rebound-go/rebound/idempotency"
	"github.com/rebound-go/rebound/reboundtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// database/sql keeps one opener goroutine per *sql.DB until Close;
		// the tests close theirs, but the driver's may linger briefly.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// newFakeClock is the tests' settable clock; they never sleep to make time pass.
func newFakeClock() *reboundtest.Clock {
	return reboundtest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
}

// storeKind makes a fresh, empty store for one test.
type storeKind struct {
	name string
	new  func(t *testing.T) idempotency.Store
}

var tableSeq atomic.Int64

// storeKinds lists every Store the shared tests run against. PostgreSQL is
// included only when REBOUND_TEST_POSTGRES is set.
func storeKinds() []storeKind {
	return []storeKind{
		{"memory", func(t *testing.T) idempotency.Store { return idempotency.NewMemoryStore() }},
		{"sqlite", func(t *testing.T) idempotency.Store {
			return newSQLStore(t, openSQLite(t, filepath.Join(t.TempDir(), "idem.db")), idempotency.SQLite, "")
		}},
		{"postgres", newPostgresStore},
	}
}

func openSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// Connect now: switching a new file to WAL needs the file to itself and
	// SQLite does not wait for that (no busy handler), so two handles that
	// connect for the first time at once fail with SQLITE_BUSY.
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	return db
}

func newPostgresStore(t *testing.T) idempotency.Store {
	dsn := os.Getenv("REBOUND_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("PostgreSQL tests skipped: set REBOUND_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(20)
	// Each test gets its own table, dropped afterwards.
	table := fmt.Sprintf("idem_test_%d_%d", os.Getpid(), tableSeq.Add(1))
	t.Cleanup(func() {
		ctx := context.Background()
		for _, tb := range []string{table, table + "_meta"} {
			if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+tb); err != nil {
				t.Errorf("dropping %s: %v", tb, err)
			}
		}
		db.Close()
	})
	s := newSQLStore(t, db, idempotency.Postgres, table)
	if err := s.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// forEachStore runs test against every store kind.
func forEachStore(t *testing.T, test func(t *testing.T, store idempotency.Store)) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) { test(t, k.new(t)) })
	}
}

func quoted(key string) string {
	q, ok := idempotency.FormatKey(key)
	if !ok {
		panic("bad test key")
	}
	return q
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// newMiddleware is idempotency.New for a config the test knows is valid.
func newMiddleware(t testing.TB, store idempotency.Store, cfg idempotency.Config) *idempotency.Middleware {
	t.Helper()
	m, err := idempotency.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newSQLStore is idempotency.NewSQLStore for arguments the test knows are valid.
func newSQLStore(t testing.TB, db *sql.DB, dialect idempotency.Dialect, table string) *idempotency.SQLStore {
	t.Helper()
	s, err := idempotency.NewSQLStore(db, dialect, table)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
