package cli

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/job"
)

// batchServer is a deduplicating, flaky API: 4% of requests get a 503 with
// Retry-After, 2% a reset connection; the first request with an
// Idempotency-Key applies its effect, repeats are replays.
type batchServer struct {
	mu       sync.Mutex
	rng      *rand.Rand
	effects  map[string]bool
	replays  int
	requests int
	failures int
}

func (s *batchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	roll := s.rng.IntN(100)
	if roll < 6 {
		s.failures++
	}
	key := r.Header.Get("Idempotency-Key")
	if roll >= 6 {
		if s.effects[key] {
			s.replays++
		}
		s.effects[key] = true
	}
	s.mu.Unlock()
	switch {
	case roll < 4:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	case roll < 6:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // close with RST
				}
				c.Close()
				return
			}
		}
		http.Error(w, "reset", http.StatusBadGateway)
	default:
		w.WriteHeader(http.StatusCreated)
	}
}

// runBatchDemo is the second half of the demo: a durable batch job of a few
// thousand POSTs against the flaky API, checkpointed in SQLite, interrupted
// a third of the way (as Ctrl-C would), and resumed by a second run that
// skips what is done; the server's effect count proves nothing ran twice.
func runBatchDemo(ctx context.Context, p *demoPrinter, items int) error {
	srv := &batchServer{rng: rand.New(rand.NewPCG(7, 11)), effects: map[string]bool{}}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = nil
	ts.Start()
	defer ts.Close()

	dir, err := os.MkdirTemp("", "rebound-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	manifest := filepath.Join(dir, "orders.jsonl")
	f, err := os.OpenFile(manifest, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	for i := range items {
		fmt.Fprintf(f, `{"id":"order-%d","method":"POST","url":"%s/orders","body":{"order":%d}}`+"\n", i, ts.URL, i)
	}
	if err := f.Close(); err != nil {
		return err
	}
	statePath := filepath.Join(dir, "orders.db")
	p.emit(demoEvent{Event: "batch", Message: fmt.Sprintf(
		"batch: %d POSTs from a JSONL manifest to a flaky API (4%% 503, 2%% resets), 8 at a time, progress in SQLite (%s)", items, statePath)})

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	runOnce := func(ctx context.Context, stopAfter int64) (job.Summary, error) {
		st, err := sqlite.Open(statePath, checkpoint.Config{})
		if err != nil {
			return job.Summary{}, err
		}
		defer st.Close()
		if _, err := job.LoadManifest(ctx, st, "orders", manifest); err != nil {
			return job.Summary{}, err
		}
		runCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		var done atomic.Int64
		bs, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 20}, 0)
		if err != nil {
			return job.Summary{}, err
		}
		return job.Run(runCtx, job.Config{
			Job: "orders", Store: st, Concurrency: 8, Breakers: bs,
			Retry: rebound.Retry{Backoff: rebound.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}},
			OnEvent: func(e job.Event) {
				if e.Type == job.EventDone && done.Add(1) == stopAfter {
					cancel() // the interruption: as Ctrl-C would
				}
			},
		}, job.HTTPHandler(client, dir))
	}

	first, err := runOnce(ctx, int64(items/3))
	if !errors.Is(err, job.ErrInterrupted) {
		return fmt.Errorf("batch demo: first run: %v", err)
	}
	p.emit(demoEvent{Event: "batch", Message: fmt.Sprintf(
		"batch: run 1 interrupted after %d items (%d retries); progress saved: %d done, %d to go",
		first.Done, first.Retries, first.Stats.Done, first.Stats.Items()-first.Stats.Done-first.Stats.Dead)})
	second, err := runOnce(ctx, -1)
	if err != nil {
		return fmt.Errorf("batch demo: resumed run: %v", err)
	}
	p.emit(demoEvent{Event: "batch", Message: fmt.Sprintf(
		"batch: run 2 resumed: skipped %d done items, finished %d more (%d retries) in %s",
		first.Stats.Done, second.Done, second.Retries, second.Elapsed.Round(time.Millisecond))})
	srv.mu.Lock()
	effects, replays, requests, failures := len(srv.effects), srv.replays, srv.requests, srv.failures
	srv.mu.Unlock()
	p.emit(demoEvent{Event: "batch-summary", Message: fmt.Sprintf(
		"batch summary: %d items done, %d dead; the server saw %d requests (%d failed on purpose) and applied %d effects: "+
			"each item exactly once, %d replays absorbed by the Idempotency-Key",
		second.Stats.Done, second.Stats.Dead, requests, failures, effects, replays)})
	if second.Stats.Done != int64(items) || effects != items {
		return withCode(ExitFailed, fmt.Errorf("batch demo: %d done and %d effects, want %d", second.Stats.Done, effects, items))
	}
	return nil
}
