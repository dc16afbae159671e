package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// breakerManifest writes a manifest of n items to a server whose first
// request fails with a 503 (no Retry-After: a failure, not throttling) and
// whose others succeed.
func breakerManifest(t *testing.T, n int) (manifest, host string) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"id":"%d","url":"%s/%d"}`, i, srv.URL, i))
	}
	manifest = filepath.Join(t.TempDir(), "b.jsonl")
	if err := os.WriteFile(manifest, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return manifest, srv.URL
}

// The host whose breaker holds its items is named in the --json events:
// the breaker's state, when it probes next (next_probe_ms) and how many
// items wait for it; the items it put off say so.
func TestRunJSONBreakerEvents(t *testing.T) {
	m, host := breakerManifest(t, 5)
	code, out, errOut := cliRun("run", m, "--json", "--concurrency", "1", "--breaker-failures", "1", "--breaker-open", "200ms", "--backoff", "0")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var opened, halfOpen, closed, deferred bool
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		switch {
		case e["event"] == "breaker" && e["host"] != host:
			t.Errorf("breaker event for %v, want %s", e["host"], host)
		case e["event"] == "breaker" && e["state"] == "open":
			ms, ok := e["next_probe_ms"].(float64)
			if _, has := e["items_waiting"]; !ok || ms < 0 || ms > 200 || !has {
				t.Errorf("open breaker event %v: want next_probe_ms within the first open period (200 ms) and items_waiting", e)
			}
			opened = true
		case e["event"] == "breaker" && e["state"] == "half-open":
			if n, _ := e["items_waiting"].(float64); n < 1 {
				t.Errorf("half-open breaker event %v: want the items it put off waiting", e)
			}
			halfOpen = true
		case e["event"] == "breaker" && e["state"] == "closed":
			if _, has := e["next_probe_ms"]; has {
				t.Errorf("closed breaker event %v has a next probe", e)
			}
			closed = true
		case e["event"] == "failed":
			if e["error"] != "deferred: circuit breaker open for "+host {
				t.Errorf("deferred item %v: want the breaker named as the reason", e)
			}
			deferred = true
		}
	}
	if !opened || !halfOpen || !closed || !deferred {
		t.Errorf("events: opened %v, half-open %v, closed %v, an item deferred %v; want all:\n%s", opened, halfOpen, closed, deferred, out)
	}
}

// Not on a terminal, the run writes a plain line when a host's breaker
// opens ("host X: open, next probe in 0.2 s, 0 items waiting") and when it
// closes.
func TestRunPlainBreakerLines(t *testing.T) {
	m, host := breakerManifest(t, 5)
	code, _, errOut := cliRun("run", m, "--concurrency", "1", "--breaker-failures", "1", "--breaker-open", "200ms", "--backoff", "0")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	open := regexp.MustCompile(`(?m)^rebound: host ` + regexp.QuoteMeta(host) + `: open, next probe in 0\.[0-2] s, \d+ items? waiting$`)
	if !open.MatchString(errOut) || !strings.Contains(errOut, "rebound: host "+host+": closed, its items go on\n") {
		t.Errorf("stderr lacks the host's open and closed lines:\n%s", errOut)
	}
}

// The lines and the terminal's note read as the issue asks.
func TestHostStateLine(t *testing.T) {
	for _, tc := range []struct {
		h    hostState
		want string
	}{
		{hostState{host: "https://x", state: 1, nextProbe: 41200e6, waiting: 3}, "host https://x: open, next probe in 42 s, 3 items waiting"},
		{hostState{host: "https://x", state: 1, nextProbe: 1500e6, waiting: 1}, "host https://x: open, next probe in 1.5 s, 1 item waiting"},
		{hostState{host: "https://x", state: 2, waiting: 0}, "host https://x: half-open, probe in flight, 0 items waiting"},
	} {
		if got := tc.h.line(); got != tc.want {
			t.Errorf("line %q, want %q", got, tc.want)
		}
	}
}
