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
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
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
	run := func(b *testing.B, stores []checkpoint.Store) {
		if _, err := job.LoadManifest(ctx, stores[0], "bench", manifest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var done int64
		for i, st := range stores {
			wg.Go(func() {
				sum, err := job.Run(ctx, job.Config{Job: "bench", Store: st, Concurrency: 16,
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
					st, err := Open(ctx, dsn, checkpoint.Config{})
					if err != nil {
						b.Fatal(err)
					}
					stores = append(stores, st)
				}
				run(b, stores)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
	files := 0 // b.Run calls the function again with a larger b.N
	b.Run("sqlite-1worker", func(b *testing.B) {
		b.StopTimer()
		for range b.N {
			files++
			st, err := sqlite.Open(filepath.Join(dir, fmt.Sprintf("s%d.db", files)), checkpoint.Config{})
			if err != nil {
				b.Fatal(err)
			}
			run(b, []checkpoint.Store{st})
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
	})
}

// BenchmarkStore measures the store alone, without HTTP: 16 goroutines
// lease 32 items at a time and complete each item with its own Complete
// call; "flush" also waits for each result to be durable (Flush), as the
// runner does, "async" flushes once at the end. "postgres-4stores" spreads
// the 16 goroutines over 4 Stores (4 pools, 4 committers: 4 workers).
// Items/s is the figure; the same loop on SQLite is the baseline.
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	for _, store := range []string{"postgres", "postgres-4stores", "sqlite"} {
		for _, mode := range []string{"flush", "async"} {
			b.Run(store+"/"+mode, func(b *testing.B) {
				var stores []checkpoint.Store
				switch store {
				case "postgres", "postgres-4stores":
					dsn := testDSN(b)
					k := 1
					if store == "postgres-4stores" {
						k = 4
					}
					for range k {
						s, err := Open(ctx, dsn, checkpoint.Config{})
						if err != nil {
							b.Fatal(err)
						}
						stores = append(stores, s)
					}
				default:
					s, err := sqlite.Open(filepath.Join(b.TempDir(), "b.db"), checkpoint.Config{})
					if err != nil {
						b.Fatal(err)
					}
					stores = append(stores, s)
				}
				s := stores[0]
				defer func() {
					for _, s := range stores {
						s.Close()
					}
				}()
				if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{}); err != nil {
					b.Fatal(err)
				}
				items := make([]checkpoint.Item, 0, 1000)
				for i := 0; i < b.N; i += len(items) {
					items = items[:0]
					for k := i; k < b.N && k < i+1000; k++ {
						items = append(items, checkpoint.Item{ID: fmt.Sprintf("item-%09d", k), Payload: []byte(`{"url":"http://example.com/x"}`)})
					}
					if err := s.AddItems(ctx, "j", items); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range 16 {
					s := stores[w%len(stores)]
					wg.Go(func() {
						for {
							got, err := s.Lease(ctx, "j", fmt.Sprint("w", w), 32, time.Hour)
							if err != nil || len(got) == 0 {
								if err != nil {
									b.Error(err)
								}
								return
							}
							for _, it := range got {
								if err := s.Complete(ctx, []checkpoint.Result{{Job: "j", ID: it.ID, Lease: it.Lease, State: checkpoint.Done}}); err != nil {
									b.Error(err)
									return
								}
								if mode == "flush" {
									if err := s.Flush(ctx); err != nil {
										b.Error(err)
										return
									}
								}
							}
						}
					})
				}
				wg.Wait()
				for _, s := range stores {
					if err := s.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
				if got, _ := s.Stats(ctx, "j"); got.Done != int64(b.N) {
					b.Fatalf("%d done, want %d", got.Done, b.N)
				}
			})
		}
	}
}

// unfinishedBenchItems is the job size of BenchmarkUnfinished.
const unfinishedBenchItems = 100_000

// BenchmarkUnfinished is checkpoint's BenchmarkUnfinished on PostgreSQL: a
// job of 100,000 items, all Done but three Failed ones due in an hour;
// "stats" counts the job, "unfinished" probes items_due. Every worker of a
// job polls it while the job's last retries wait. The items are finished
// with one UPDATE and then vacuumed, as autovacuum would have done in the
// time a job takes to get there.
func BenchmarkUnfinished(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, testDSN(b), checkpoint.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{}); err != nil {
		b.Fatal(err)
	}
	items := make([]checkpoint.Item, 0, 10_000)
	for i := 0; i < unfinishedBenchItems; i += len(items) {
		items = items[:0]
		for k := i; k < unfinishedBenchItems && k < i+cap(items); k++ {
			items = append(items, checkpoint.Item{ID: fmt.Sprintf("item-%09d", k), Payload: []byte(`{"url":"http://example.com/x"}`)})
		}
		if err := s.AddItems(ctx, "j", items); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	if _, err := s.pool.Exec(ctx, "UPDATE items SET state = 3, attempts = 1, updated = $1", now.UnixNano()); err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "UPDATE items SET state = 4, due = $1 WHERE id IN ('item-000000007', 'item-000050000', 'item-000099999')",
		now.Add(time.Hour).UnixNano()); err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE items"); err != nil {
		b.Fatal(err)
	}
	b.Run("stats", func(b *testing.B) {
		for b.Loop() {
			st, err := s.Stats(ctx, "j")
			if err != nil {
				b.Fatal(err)
			}
			if st.Pending+st.Leased+st.Failed == 0 {
				b.Fatalf("stats %+v: want 3 failed", st)
			}
		}
	})
	b.Run("unfinished", func(b *testing.B) {
		for b.Loop() {
			left, err := s.Unfinished(ctx, "j")
			if err != nil {
				b.Fatal(err)
			}
			if !left {
				b.Fatal("Unfinished = false with 3 failed items")
			}
		}
	})
}
