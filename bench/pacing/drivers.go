package pacing

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
)

// Result is one batch run: what a driver did to a server.
type Result struct {
	// Items is the batch size; Done those the client reports done (for the
	// CLI, from its summary; for the Go drivers, a 2xx received).
	Items, Done int
	// Elapsed is the wall time of the run (the CLI process's, start-up
	// included); Capped says the run was stopped at its time cap.
	Elapsed time.Duration
	Capped  bool
	// Applied95 is when 95 % of the items had been applied (their first
	// effect on the server), from the start of the run; -1 if never.
	Applied95 time.Duration
	// Server is the server's view at the end.
	Server Counts
	// Note is anything worth a footnote (exit status, errors).
	Note string
}

// Manifest writes a JSONL manifest of n POSTs to base/items/{i} in dir and
// returns its path.
func Manifest(dir, base string, n int) (string, error) {
	path := filepath.Join(dir, "items.jsonl")
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, `{"id":"item-%d","method":"POST","url":"%s/items/%d","body":{"n":%d}}`+"\n", i, base, i, i)
	}
	return path, os.WriteFile(path, b.Bytes(), 0o600)
}

// BuildCLI builds the rebound CLI from the module at root into dir and
// returns the binary's path.
func BuildCLI(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "rebound")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rebound")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/rebound: %v\n%s", err, out)
	}
	return bin, nil
}

// RunCLI runs `bin run MANIFEST --quiet --json args...` for n POSTs to srv,
// with a fresh state in dir, and stops it with SIGINT at timeout (then kills
// it 15 s later if it is still there).
func RunCLI(ctx context.Context, bin, dir string, srv *Server, n int, timeout time.Duration, args ...string) (Result, error) {
	manifest, err := Manifest(dir, srv.URL, n)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"run", manifest, "--quiet", "--json", "--state", filepath.Join(dir, "state.db")}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 15 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{}, err
	}
	res := Result{Items: n}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var e struct {
			Event string `json:"event"`
			Done  int    `json:"done"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event == "summary" {
			res.Done = e.Done
		}
	}
	werr := cmd.Wait()
	res.Elapsed = time.Since(start)
	res.Capped = ctx.Err() != nil
	res.Server = srv.Counts()
	res.Applied95 = res.Server.AppliedBy(start, n, 0.95)
	var ee *exec.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &ee):
		res.Note = "exit " + strconv.Itoa(ee.ExitCode())
	default:
		return res, fmt.Errorf("rebound run: %v\n%s", werr, stderr.Bytes())
	}
	return res, nil
}

// FailsafeConfig sets the failsafe-go driver: workers goroutines (the fixed
// concurrency), each sending its items through one shared adaptive limiter
// (limits 1..workers, initial min(20, workers)) with plain net/http, and
// retrying like the CLI's defaults: Attempts in all, backoff from Backoff
// doubling with ×[0.8, 1.2] jitter up to 30 s, Retry-After honoured.
type FailsafeConfig struct {
	Workers     int
	Attempts    int
	Backoff     time.Duration
	ReadTimeout time.Duration
	// Deadline stops the run: no new attempt starts after it.
	Deadline time.Duration
}

// RunFailsafe sends n POSTs to srv as FailsafeConfig says. Every item gets
// an Idempotency-Key, the same on each of its attempts. The limiter is
// failsafe-go's adaptivelimiter as its executor uses it: every completed
// attempt is recorded (Permit.Record; it judges latency, not status), an
// attempt that failed without an answer is dropped.
func RunFailsafe(ctx context.Context, srv *Server, n int, cfg FailsafeConfig) Result {
	lim := adaptivelimiter.NewBuilder[*http.Response]().
		WithLimits(1, uint(cfg.Workers), uint(min(20, cfg.Workers))).Build()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Workers, ResponseHeaderTimeout: cfg.ReadTimeout}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	items := make(chan int)
	var done sync.WaitGroup
	var mu sync.Mutex
	res := Result{Items: n}
	start := time.Now()
	for range cfg.Workers {
		done.Add(1)
		go func() {
			defer done.Done()
			for i := range items {
				if sendItem(ctx, client, lim, srv.URL, i, cfg) {
					mu.Lock()
					res.Done++
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case items <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(items)
	done.Wait()
	res.Elapsed = time.Since(start)
	res.Capped = ctx.Err() != nil && res.Done < n
	res.Server = srv.Counts()
	res.Applied95 = res.Server.AppliedBy(start, n, 0.95)
	return res
}

// sendItem sends item i until it succeeds, fails for good or runs out of
// attempts or time; it reports success.
func sendItem(ctx context.Context, client *http.Client, lim adaptivelimiter.AdaptiveLimiter[*http.Response], base string, i int, cfg FailsafeConfig) bool {
	key := fmt.Sprintf("fs-%d-%d", i, rand.Uint64())
	body := []byte(fmt.Sprintf(`{"n":%d}`, i))
	wait := cfg.Backoff
	for attempt := 1; attempt <= cfg.Attempts; attempt++ {
		permit, err := lim.AcquirePermit(ctx)
		if err != nil {
			return false
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/items/%d", base, i), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		var retryAfter time.Duration
		if err != nil {
			permit.Drop()
		} else {
			permit.Record()
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				return true
			case resp.StatusCode == 429 || resp.StatusCode == 503 || resp.StatusCode == 409 || resp.StatusCode >= 500 && resp.StatusCode != 501:
				if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
					retryAfter = time.Duration(s) * time.Second
				}
			default:
				return false
			}
		}
		if attempt == cfg.Attempts {
			return false
		}
		d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		d = max(d, retryAfter)
		wait = min(2*wait, 30*time.Second)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
	return false
}
