package checkpoint_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
)

// BenchmarkComplete measures the store's share of a runner's work: b.N items
// leased by 8 workers, 32 at a time, and completed, then flushed. "each"
// hands every result over in its own Complete call (what independent worker
// goroutines do, the case group commit is for); "batch" hands over one
// Complete per lease. Items/s is the figure to compare: the runner wants
// SQLite at ≥ 0.9× memory once its own per-item work is added.
func BenchmarkComplete(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) checkpoint.Store
	}{
		{"memory", func(b *testing.B) checkpoint.Store { return memory.New(checkpoint.Config{}) }},
		{"sqlite", func(b *testing.B) checkpoint.Store {
			s, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"), checkpoint.Config{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, st := range stores {
		for _, mode := range []string{"each", "batch"} {
			b.Run(st.name+"/"+mode, func(b *testing.B) {
				s := st.open(b)
				defer s.Close()
				fillJob(b, s, b.N)
				b.ReportAllocs()
				b.ResetTimer()
				runWorkers(b, s, mode == "batch")
				if err := s.Flush(ctx); err != nil {
					b.Fatal(err)
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

// fillJob opens job "j" in s and adds n small items, 10,000 per AddItems.
func fillJob(b *testing.B, s checkpoint.Store, n int) {
	b.Helper()
	if _, err := s.OpenJob(ctx, "j", checkpoint.JobMeta{}); err != nil {
		b.Fatal(err)
	}
	items := make([]checkpoint.Item, 0, 10_000)
	for i := 0; i < n; i += len(items) {
		items = items[:0]
		for k := i; k < n && k < i+cap(items); k++ {
			items = append(items, checkpoint.Item{ID: fmt.Sprintf("item-%09d", k), Payload: []byte(`{"url":"http://example.com/x"}`)})
		}
		if err := s.AddItems(ctx, "j", items); err != nil {
			b.Fatal(err)
		}
	}
}

func runWorkers(b *testing.B, s checkpoint.Store, batch bool) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("w%d", w)
			rs := make([]checkpoint.Result, 0, 32)
			for {
				got, err := s.Lease(ctx, "j", worker, 32, time.Hour)
				if err != nil {
					b.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				rs = rs[:0]
				for _, it := range got {
					r := checkpoint.Result{Job: "j", ID: it.ID, Lease: it.Lease, State: checkpoint.Done}
					if batch {
						rs = append(rs, r)
					} else if err := s.Complete(ctx, []checkpoint.Result{r}); err != nil {
						b.Error(err)
						return
					}
				}
				if batch {
					if err := s.Complete(ctx, rs); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkSQLiteRowUpdate is the floor under any SQLite store design that
// writes an item's row once per outcome: one minimal UPDATE by rowid (three
// columns, the partial index entry removed), 16 per transaction, straight
// through database/sql and modernc.org/sqlite with nothing of ours around it.
// ns/op is per row. The store itself writes each item twice (lease, outcome);
// compare with BenchmarkComplete and job's BenchmarkRunHTTP cpu-µs/item.
func BenchmarkSQLiteRowUpdate(b *testing.B) {
	path := filepath.Join(b.TempDir(), "floor.db")
	s, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		b.Fatal(err)
	}
	fillJob(b, s, b.N)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	upd, err := db.Prepare("UPDATE items SET state = 3, due = 0, updated = ?1 WHERE rowid = ?2")
	if err != nil {
		b.Fatal(err)
	}
	defer upd.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i += 16 {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		st := tx.Stmt(upd)
		for k := i; k < i+16 && k < b.N; k++ {
			if _, err := st.Exec(int64(k), int64(k+1)); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// unfinishedBenchItems is the job size of BenchmarkUnfinished.
const unfinishedBenchItems = 1_000_000

// BenchmarkUnfinished compares the two ways to learn whether a job has work
// left, on a SQLite job of a million items of which all but three are Done
// and those three are Failed, due in an hour: a job whose last retries wait
// for a breaker, where the runner polls every PollInterval. "stats" counts
// the job (what the runner polled before), "unfinished" probes items_due.
// The store is built once per run of the benchmark (measured: 10 s on a
// 2-core machine), so run it alone:
//
//	go test -run '^$' -bench BenchmarkUnfinished ./checkpoint/
func BenchmarkUnfinished(b *testing.B) {
	path := filepath.Join(b.TempDir(), "unfinished.db")
	s, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		b.Fatal(err)
	}
	fillJob(b, s, unfinishedBenchItems)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	// Finishing a million items through Lease and Complete would take most
	// of the setup; the end state is the same rows and index entries.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	if _, err := db.Exec("UPDATE items SET state = 3, attempts = 1, updated = ?", now.UnixNano()); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec("UPDATE items SET state = 4, due = ? WHERE id IN ('item-000000007', 'item-000500000', 'item-000999999')",
		now.Add(time.Hour).UnixNano()); err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	s, err = sqlite.Open(path, checkpoint.Config{SkipQuickCheck: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
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
