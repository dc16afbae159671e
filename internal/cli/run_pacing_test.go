package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]float64{"": 0, "100/s": 100, "100": 100, "600/m": 10, "0.5/s": 0.5, "3600/h": 1, " 60 / min ": 1} {
		if got, err := parseRate(in); err != nil || got != want {
			t.Errorf("parseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x/s", "10/d", "-1/s", "NaN/s", "1e10"} {
		if _, err := parseRate(in); err == nil {
			t.Errorf("parseRate(%q) accepted", in)
		}
	}
}

// --max-per-host bounds one host's requests in flight; a 429 shows in the
// --json pacing event; a bad --rate is a usage error.
func TestRunPacingFlags(t *testing.T) {
	var mu sync.Mutex
	now, most := 0, 0
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		now++
		most = max(most, now)
		mu.Unlock()
		defer func() { mu.Lock(); now--; mu.Unlock() }()
		if n.Add(1) == 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
	}))
	defer srv.Close()
	m := filepath.Join(t.TempDir(), "p.jsonl")
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf(`{"id":"%d","url":"%s/%d"}`, i, srv.URL, i))
	}
	if err := os.WriteFile(m, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cliRun("run", m, "--json", "--concurrency", "8", "--max-per-host", "2", "--rate", "100000/s", "--burst", "10", "--backoff", "1ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if most > 2 {
		t.Errorf("%d requests in flight at once, want at most --max-per-host 2", most)
	}
	var pacing map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		if ev["event"] == "pacing" {
			pacing = ev
		}
	}
	if pacing == nil || pacing["throttled"] != float64(1) || pacing["host"] != srv.URL {
		t.Errorf("pacing event %v, want one for %s with 1 throttled", pacing, srv.URL)
	}
	if code, _, errOut := cliRun("run", m, "--rate", "fast"); code != ExitUsage || !strings.Contains(errOut, "--rate") {
		t.Errorf("--rate fast: exit %d, %s", code, errOut)
	}
	if code, _, errOut := cliRun("run", m, "--max-per-host", "-1"); code != ExitUsage || !strings.Contains(errOut, "MaxPerHost") {
		t.Errorf("--max-per-host -1: exit %d, %s", code, errOut)
	}
}

// --no-pacing runs with fixed concurrency: no pacer, so no pacing event,
// and a 429 holds only its own item; it refuses the pacing flags.
func TestRunNoPacing(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	m := filepath.Join(t.TempDir(), "p.jsonl")
	var lines []string
	for i := range 10 {
		lines = append(lines, fmt.Sprintf(`{"id":"%d","url":"%s/%d"}`, i, srv.URL, i))
	}
	if err := os.WriteFile(m, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cliRun("run", m, "--json", "--no-pacing", "--backoff", "1ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, `"event":"pacing"`) {
		t.Errorf("--no-pacing still paced:\n%s", out)
	}
	if code, _, errOut := cliRun("run", m, "--no-pacing", "--max-per-host", "2"); code != ExitUsage || !strings.Contains(errOut, "--no-pacing") {
		t.Errorf("--no-pacing with --max-per-host: exit %d, %s", code, errOut)
	}
}
