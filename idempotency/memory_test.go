package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound/idempotency"
)

// Finding 19 of issue 11: unauthenticated clients sending new keys must
// not grow a MemoryStore without limit. With a small bound it stays
// within it; the oldest completed records go first, the newest are still
// replayed.
func TestMemoryStoreStaysBoundedUnderManyKeys(t *testing.T) {
	store := &idempotency.MemoryStore{MaxRecords: 50}
	var runs atomic.Int64
	h := newMiddleware(t, store, idempotency.Config{}).Handler(counting(&runs))
	for i := range 1000 {
		if rec := send(h, "POST", "/", quoted(fmt.Sprint("k", i)), "", ""); rec.Code != http.StatusCreated {
			t.Fatalf("request %d: %d %s", i, rec.Code, rec.Body)
		}
		if n := store.Len(); n > 50 {
			t.Fatalf("after %d keys the store holds %d records, bound 50", i+1, n)
		}
	}
	if rec := send(h, "POST", "/", quoted("k999"), "", ""); rec.Header().Get(idempotency.HeaderReplayed) != "true" {
		t.Fatal("the newest record was evicted")
	}
	if rec := send(h, "POST", "/", quoted("k0"), "", ""); rec.Header().Get(idempotency.HeaderReplayed) != "" || runs.Load() != 1001 {
		t.Fatalf("the oldest record is still there: replayed=%q runs=%d", rec.Header().Get(idempotency.HeaderReplayed), runs.Load())
	}
}

func TestMemoryStoreBytesBound(t *testing.T) {
	const maxBytes = 64 << 10
	store := &idempotency.MemoryStore{MaxBytes: maxBytes}
	body := strings.Repeat("x", 1000)
	h := newMiddleware(t, store, idempotency.Config{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(body))
	}))
	for i := range 1000 {
		send(h, "POST", "/", quoted(fmt.Sprint("k", i)), "", "")
		if n := store.Size(); n > maxBytes {
			t.Fatalf("after %d keys the store takes %d bytes, bound %d", i+1, n, maxBytes)
		}
	}
	if n := store.Len(); n >= 1000 || n == 0 {
		t.Fatalf("store holds %d records", n)
	}
	if rec := send(h, "POST", "/", quoted("k999"), "", ""); rec.Header().Get(idempotency.HeaderReplayed) != "true" || rec.Body.String() != body {
		t.Fatal("the newest response was not replayed")
	}
}

// Records of requests in flight are never evicted: when they alone fill
// the store, a new key gets 503 ProblemStoreFull with Retry-After and its
// handler does not run; the running requests complete and are replayed.
func TestMemoryStoreFullOfInFlight(t *testing.T) {
	store := &idempotency.MemoryStore{MaxRecords: 3}
	var runs atomic.Int64
	started := make(chan struct{}, 3)
	release := make(chan struct{})
	h := newMiddleware(t, store, idempotency.Config{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		if strings.HasPrefix(r.URL.Path, "/slow") {
			started <- struct{}{}
			<-release
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "run %d", n)
	}))
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() { send(h, "POST", "/slow", quoted(fmt.Sprint("slow", i)), "", "") })
	}
	for range 3 {
		<-started
	}
	rec := send(h, "POST", "/fast", quoted("new"), "", "")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || runs.Load() != 3 {
		t.Fatalf("new key with the store full of requests in flight: %d Retry-After=%q runs=%d", rec.Code, rec.Header().Get("Retry-After"), runs.Load())
	}
	if p := problemOf(t, rec); p.Type != idempotency.ProblemStoreFull {
		t.Fatalf("problem %q", p.Type)
	}
	close(release)
	wg.Wait()
	for i := range 3 {
		if rec := send(h, "POST", "/slow", quoted(fmt.Sprint("slow", i)), "", ""); rec.Header().Get(idempotency.HeaderReplayed) != "true" {
			t.Fatalf("slow%d: %d, not replayed: an in-flight record was lost", i, rec.Code)
		}
	}
	// Now completed records can make room.
	if rec := send(h, "POST", "/fast", quoted("new"), "", ""); rec.Code != http.StatusCreated || store.Len() != 3 {
		t.Fatalf("after the requests finished: %d, %d records", rec.Code, store.Len())
	}
}

// An in-flight record whose lock timed out was abandoned (its process
// died): it may make room, a live one may not.
func TestMemoryStoreEvictsAbandonedInFlight(t *testing.T) {
	store := &idempotency.MemoryStore{MaxRecords: 1}
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	claim := func(key string, at time.Time) error {
		_, err := store.Claim(ctx, idempotency.ClaimRequest{Key: key, Fingerprint: "fp", Token: key, Now: at,
			LockedUntil: at.Add(time.Minute), ExpiresAt: at.Add(time.Hour)})
		return err
	}
	if err := claim("a", now); err != nil {
		t.Fatal(err)
	}
	if err := claim("b", now.Add(time.Minute-1)); !errors.Is(err, idempotency.ErrStoreFull) {
		t.Fatalf("claim while a is live: %v, want ErrStoreFull", err)
	}
	if err := claim("b", now.Add(time.Minute)); err != nil {
		t.Fatalf("claim after a's lock timed out: %v", err)
	}
}

// A response larger than the whole store is not kept, but the fact that
// the request ran is: the retry gets ProblemNotStored, not a second run.
func TestMemoryStoreResponseLargerThanBound(t *testing.T) {
	store := &idempotency.MemoryStore{MaxBytes: 4096}
	var runs atomic.Int64
	h := newMiddleware(t, store, idempotency.Config{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Write([]byte(strings.Repeat("x", 8192)))
	}))
	if rec := send(h, "POST", "/", quoted("big"), "", ""); rec.Body.Len() != 8192 {
		t.Fatalf("first client got %d bytes", rec.Body.Len())
	}
	rec := send(h, "POST", "/", quoted("big"), "", "")
	if rec.Code != http.StatusConflict || runs.Load() != 1 || store.Size() > 4096 {
		t.Fatalf("retry: %d, runs %d, size %d", rec.Code, runs.Load(), store.Size())
	}
	if p := problemOf(t, rec); p.Type != idempotency.ProblemNotStored {
		t.Fatal(p.Type)
	}
}
