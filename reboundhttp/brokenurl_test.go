package reboundhttp_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// The review's example, through the public API only: with the default
// attempts and breaker, one GET of a broken URL used to open its host's
// breaker, and the host's healthy endpoint was refused for 60 s. The
// breaker counts a call once (rebound.Breaker.AllowRetry), so it is served.
func TestHealthyEndpointOfHostWithBrokenURL(t *testing.T) {
	var broken atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			broken.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	c := reboundhttp.NewClient(reboundhttp.Config{Retry: rebound.Retry{Backoff: rebound.NoDelay}})

	resp, err := c.Get(srv.URL + "/broken")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || broken.Load() != 5 {
		t.Fatalf("broken URL: status %d after %d requests, want 503 after all 5 attempts", resp.StatusCode, broken.Load())
	}
	resp, err = c.Get(srv.URL + "/ok")
	if err != nil {
		t.Fatalf("healthy endpoint refused after the broken call gave up: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthy endpoint: status %d", resp.StatusCode)
	}
}
