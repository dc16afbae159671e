package job

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
)

// benchItems is the job size per benchmark iteration; REBOUND_BENCH_ITEMS
// overrides it (BENCHMARKS.md uses 100000).
func benchItems() int {
	if n, err := strconv.Atoi(os.Getenv("REBOUND_BENCH_ITEMS")); err == nil && n > 0 {
		return n
	}
	return 5000
}

// BenchmarkRunHTTP runs a whole job of GETs against a loopback server that
// answers 200 at once, with the in-memory store and with SQLite, and reports
// items/s: the cost of durable checkpoints is the gap between the two.
func BenchmarkRunHTTP(b *testing.B) {
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

	stores := []struct {
		name string
		open func() checkpoint.Store
	}{
		{"memory", func() checkpoint.Store { return memory.New(checkpoint.Config{}) }},
		{"sqlite", func() checkpoint.Store {
			// A fresh file each time: -count reruns must not find a finished job.
			st, err := sqlite.Open(filepath.Join(b.TempDir(), "state.db"), checkpoint.Config{})
			if err != nil {
				b.Fatal(err)
			}
			return st
		}},
	}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			ctx := context.Background()
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				st := s.open()
				if _, err := LoadManifest(ctx, st, "bench", manifest); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				cpu0 := processCPU()
				sum, err := Run(ctx, Config{Job: "bench", Store: st, Concurrency: benchConc()}, HTTPHandler(client, dir))
				if err != nil || sum.Done != int64(n) {
					b.Fatalf("run: %+v %v", sum, err)
				}
				st.Close()
				cpu += processCPU() - cpu0
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
			// CPU per item (client, server and store together) is steadier
			// than items/s on a shared machine, and shows where the store's
			// cost goes when the run is not CPU-bound.
			b.ReportMetric(float64(cpu.Microseconds())/float64(n*b.N), "cpu-µs/item")
		})
	}
}

// benchConc is the runner's concurrency; REBOUND_BENCH_CONC overrides 16.
func benchConc() int {
	if n, err := strconv.Atoi(os.Getenv("REBOUND_BENCH_CONC")); err == nil && n > 0 {
		return n
	}
	return 16
}
