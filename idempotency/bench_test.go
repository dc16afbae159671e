package idempotency_test

import (
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rebound-go/rebound/idempotency"
)

// BenchmarkMiddleware compares a bare handler with the middleware's first
// request (claim + store) and replay, on the memory and SQLite stores, all
// in one run so the ratios to "bare" are meaningful:
//
//	go test -run '^$' -bench Middleware -benchtime 2000x ./idempotency
func BenchmarkMiddleware(b *testing.B) {
	const body = `{"item":"book","qty":1}`
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"order":1}`)
	})
	run := func(b *testing.B, h http.Handler, key func(i int) string) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			req := httptest.NewRequest("POST", "/orders", strings.NewReader(body))
			if key != nil {
				req.Header.Set(idempotency.HeaderKey, key(i))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, inner, nil) })

	stores := []struct {
		name string
		new  func(b *testing.B) idempotency.Store
	}{
		{"memory", func(b *testing.B) idempotency.Store { return idempotency.NewMemoryStore() }},
		{"sqlite", func(b *testing.B) idempotency.Store {
			return newSQLStore(b, openSQLite(b, filepath.Join(b.TempDir(), "idem.db")), idempotency.SQLite, "")
		}},
		// synchronous=NORMAL: in WAL mode a commit no longer waits for
		// fsync; a power cut (not a process crash) may lose the last
		// commits. Shown to price the fsync of the default.
		{"sqlite-sync-normal", func(b *testing.B) idempotency.Store {
			db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "idem.db")+
				"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return newSQLStore(b, db, idempotency.SQLite, "")
		}},
	}
	for _, s := range stores {
		b.Run(s.name+"/first", func(b *testing.B) {
			h := newMiddleware(b, s.new(b), idempotency.Config{PruneInterval: -1}).Handler(inner)
			run(b, h, func(i int) string { return `"k` + strconv.Itoa(i) + `"` })
		})
		b.Run(s.name+"/replay", func(b *testing.B) {
			h := newMiddleware(b, s.new(b), idempotency.Config{PruneInterval: -1}).Handler(inner)
			run(b, h, func(int) string { return `"same"` })
		})
	}
}
