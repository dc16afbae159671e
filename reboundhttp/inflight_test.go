package reboundhttp_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

func TestStatusErrorClass409(t *testing.T) {
	cases := []struct {
		retryAfter time.Duration
		replayable bool
		want       rebound.Kind
	}{
		{time.Second, true, rebound.KindThrottled},  // an Idempotency-Key server: still in flight
		{0, true, rebound.KindPermanent},            // a real conflict
		{time.Second, false, rebound.KindPermanent}, // never repeat what is not replayable
	}
	for _, c := range cases {
		e := &reboundhttp.StatusError{StatusCode: 409, RetryAfter: c.retryAfter, Replayable: c.replayable}
		got := e.Class()
		if got.Kind != c.want || (got.Kind == rebound.KindThrottled && got.RetryAfter != c.retryAfter) {
			t.Errorf("409, Retry-After %v, replayable %v: %+v, want %v", c.retryAfter, c.replayable, got, c.want)
		}
	}
}

// A keyed request answered "409, Retry-After: 1" (the first request with
// the key still runs) is retried after the server's wait.
func TestInFlight409RetriedAfterRetryAfter(t *testing.T) {
	w, hits := retryAfterWait(t, http.StatusConflict, func(time.Time) string { return "1" })
	// Never sooner than Retry-After; the jittered backoff (1 s ×[0.8, 1.2])
	// may be longer.
	if w < time.Second || w > 1200*time.Millisecond || hits != 2 {
		t.Fatalf("waited %v with %d requests; want [1s, 1.2s] and 2", w, hits)
	}
}

// The same answer to a POST without a key is returned as it is.
func TestInFlight409NotRetriedWithoutKey(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusConflict)
	})
	var retries atomic.Int64
	cfg := fast()
	cfg.Retry.OnRetry = func(rebound.RetryEvent) { retries.Add(1) }
	resp, err := client(t, cfg).Post(s.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 409 || s.hits.Load() != 1 || retries.Load() != 0 {
		t.Fatalf("%s after %d requests, %d retries; want 409 at once", resp.Status, s.hits.Load(), retries.Load())
	}
}
