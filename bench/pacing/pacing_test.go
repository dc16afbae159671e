package pacing

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// These tests check what is not a timing: the servers behave as their docs
// say, and under the degraded server every item is applied, none twice.
// They are small and bounded; the timings are cmd/pacing's.

func post(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestRateLimitedThrottlesBeyondBurst(t *testing.T) {
	srv := RateLimited(1, 3)
	defer srv.Close()
	var throttled int
	for i := range 20 {
		resp := post(t, srv.URL+"/items/x")
		switch {
		case i < 3 && resp.StatusCode != http.StatusCreated:
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		case resp.StatusCode == http.StatusTooManyRequests:
			throttled++
			if ra := resp.Header.Get("Retry-After"); ra != "1" {
				t.Fatalf("429 with Retry-After %q, want 1", ra)
			}
		}
	}
	if c := srv.Counts(); throttled == 0 || c.Throttled != int64(throttled) || c.Requests != 20 {
		t.Fatalf("throttled %d, counts %+v", throttled, c)
	}
}

func TestAnnouncedSaysItsLimit(t *testing.T) {
	srv := Announced(5)
	defer srv.Close()
	var throttled int
	for range 40 {
		resp := post(t, srv.URL+"/items/x")
		h := resp.Header
		if h.Get("RateLimit-Policy") != `"default";q=5;w=1` || h.Get("X-RateLimit-Limit") != "5" ||
			!strings.HasPrefix(h.Get("RateLimit"), `"default";r=`) || h.Get("X-RateLimit-Remaining") == "" || h.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("headers %v", h)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			throttled++
			if h.Get("X-RateLimit-Remaining") != "0" || !strings.Contains(h.Get("RateLimit"), ";r=0;") || h.Get("Retry-After") == "" {
				t.Fatalf("429 headers %v", h)
			}
		}
	}
	if throttled == 0 {
		t.Fatal("40 requests, none beyond a quota of 5 per second")
	}
}

// degraded is a small degraded server: half the requests fail, slow answers
// take 400 ms.
func degraded() *Server {
	return Degraded(DegradedConfig{FailShare: 0.5, Slow: 400 * time.Millisecond, Seed: 7})
}

func TestDegradedFailsafeAppliesEachItemOnce(t *testing.T) {
	srv := degraded()
	defer srv.Close()
	const n = 60
	res := RunFailsafe(context.Background(), srv, n, FailsafeConfig{
		Workers: 8, Attempts: 30, Backoff: 10 * time.Millisecond, ReadTimeout: 150 * time.Millisecond, Deadline: time.Minute})
	c := srv.Counts()
	if res.Done != n || c.Applied != n || c.Twice != 0 {
		t.Fatalf("done %d, applied %d, applied twice %d of %d (%d requests, %d effects)", res.Done, c.Applied, c.Twice, n, c.Requests, c.Effects)
	}
	if c.Requests <= n {
		t.Fatalf("%d requests for %d items: the faults did not happen", c.Requests, n)
	}
}

// The real CLI against the degraded server: every item done and applied,
// none applied twice (its Idempotency-Key is the same on every attempt, and
// the middleware answers retries from its store).
func TestDegradedCLIAppliesEachItemOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLI")
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/rebound-go/rebound").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, err := BuildCLI(context.Background(), strings.TrimSpace(string(root)), dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := degraded()
	defer srv.Close()
	const n = 40
	res, err := RunCLI(context.Background(), bin, dir, srv, n, time.Minute,
		"--attempts", "30", "--backoff", "10ms", "--max-backoff", "50ms", "--read-timeout", "150ms",
		"--breaker-failures", "100000")
	if err != nil {
		t.Fatal(err)
	}
	c := srv.Counts()
	if res.Note != "" || res.Done != n || c.Applied != n || c.Twice != 0 {
		t.Fatalf("%s: done %d, applied %d, applied twice %d of %d (%d requests, %d effects)", res.Note, res.Done, c.Applied, c.Twice, n, c.Requests, c.Effects)
	}
}

func TestOutageCallersRecover(t *testing.T) {
	r, err := RunOutage(context.Background(), CallerNetHTTP, OutageConfig{
		Callers: 10, Outage: 200 * time.Millisecond, Pause: 20 * time.Millisecond, MaxRecovery: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Recovered != 10 || r.OutageLoad == 0 || r.Last < 0 {
		t.Fatalf("%+v", r)
	}
}

// The applied-twice count the tests rely on does see an effect run twice.
func TestCountsSeeAnEffectAppliedTwice(t *testing.T) {
	srv := RateLimited(1000, 1000)
	defer srv.Close()
	start := time.Now()
	post(t, srv.URL+"/items/a")
	post(t, srv.URL+"/items/a")
	post(t, srv.URL+"/items/b")
	c := srv.Counts()
	if c.Applied != 2 || c.Twice != 1 || c.Effects != 3 {
		t.Fatalf("%+v", c)
	}
	// Two distinct items applied: all of 2 were, all of 3 never.
	if c.AppliedBy(start, 2, 1) < 0 || c.AppliedBy(start, 3, 1) != -1 {
		t.Fatalf("AppliedBy: %v, %v", c.AppliedBy(start, 2, 1), c.AppliedBy(start, 3, 1))
	}
}
