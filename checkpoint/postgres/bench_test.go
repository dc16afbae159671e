package postgres

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/job"
)

// benchItems is the job size per benchmark iteration; REBOUND_BENCH_ITEMS
// overrides it.
func benchItems() int {
	if n, err := strconv.Atoi(os.Getenv("REBOUND_BENCH_ITEMS")); err == nil && n > 0 {
		return n
	}
	return 5000
}

// BenchmarkWorkersHTTP runs one job of GETs against a loopback server that
// answers 200 at once, shared by 1, 2 and 4 workers on one PostgreSQL (each
// worker with its own Store, i.e. its own connection pool, as separate
// processes would have), and the same job with one worker on SQLite, and
// reports items/s for the whole job.
func BenchmarkWorkersHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	n := benchItems()
	dir := b.TempDir()
	manifest := filepath.Join(dir, "m.jsonl")
	f, err := os.Create(manifest)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		fmt.Fprintf(f, `{"id":"item-%d","url":"%s/items/%d"}`+"\n", i, srv.URL, i)
	}
	f.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	ctx := context.Background()

	// run loads the job, then times only the run. (b.Loop cannot be used:
	// it wants the timer running between iterations.)
	run := func(b *testing.B, stores []checkpoint.Store, exclusive bool) {
		if _, err := job.LoadManifest(ctx, stores[0], "bench", manifest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var done int64
		for i, st := range stores {
			wg.Go(func() {
				sum, err := job.Run(ctx, job.Config{Job: "bench", Store: st, Concurrency: 16, Exclusive: exclusive,
					Worker: fmt.Sprintf("w%d", i)}, job.HTTPHandler(client, dir))
				if err != nil {
					b.Error(err)
				}
				mu.Lock()
				done += sum.Done
				mu.Unlock()
			})
		}
		wg.Wait()
		b.StopTimer()
		if done != int64(n) {
			b.Fatalf("done %d of %d", done, n)
		}
		for _, st := range stores {
			st.Close()
		}
	}
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("postgres-%dworkers", workers), func(b *testing.B) {
			b.StopTimer()
			for range b.N {
				dsn := testDSN(b)
				var stores []checkpoint.Store
				for range workers {
					st, err := Open(ctx, dsn, checkpoint.Options{})
					if err != nil {
						b.Fatal(err)
					}
					stores = append(stores, st)
				}
				run(b, stores, false)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
	files := 0 // b.Run calls the function again with a larger b.N
	b.Run("sqlite-1worker", func(b *testing.B) {
		b.StopTimer()
		for range b.N {
			files++
			st, err := checkpoint.OpenSQLite(filepath.Join(dir, fmt.Sprintf("s%d.db", files)), checkpoint.Options{})
			if err != nil {
				b.Fatal(err)
			}
			run(b, []checkpoint.Store{st}, true)
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
	})
}
