package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

func init() { commands = append(commands, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show the policies at work against a local server that fails on purpose",
		Long: `demo starts an HTTP server on 127.0.0.1 that fails on purpose (a 503 with
Retry-After, a reset connection, an answer slower than the per-attempt timeout,
a 404, then an outage long enough to open the circuit breaker, then recovery)
and calls it through a rebound.Pipeline with a plain net/http client, printing
every attempt, its classification, each wait and each breaker transition.

Waits are scaled down (backoff from 100ms, Retry-After ×0.1, breaker open
first for 500ms, growing to at most 6s while probes fail, per-attempt timeout
300ms) so the demo takes a few seconds; the real defaults are 1s, Retry-After
as sent, open first for 1s growing to 60s, and what your Pipeline says.
A 503 with Retry-After (throttling) never counts against the breaker; the
outage's plain 503s do.

Then a durable batch job: 3,000 POSTs from a JSONL manifest to a flaky API,
checkpointed in SQLite, interrupted a third of the way as Ctrl-C would, and
resumed by a second run that skips what is done. The server counts effects
per Idempotency-Key to show that no item was applied twice.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print one JSON object per event")
	cmd.Flags().BoolVar(&opts.quiet, "quiet", false, "print only the summary")
	cmd.Flags().BoolVar(&opts.fast, "fast", false, "scale the waits down further (for tests)")
	_ = cmd.Flags().MarkHidden("fast")
	return cmd
}

type demoOptions struct {
	json, quiet, fast bool
}

// demoScale holds the demo's shortened times.
type demoScale struct {
	backoff, maxBackoff, timeout time.Duration
	firstOpen, maxOpen           time.Duration // the breaker's first and longest open periods
	retryAfter                   float64       // factor applied to the server's Retry-After
}

// responseError turns a failed response into reboundhttp's classified
// *StatusError (nil for 1xx-3xx); its Retry-After is scaled for the demo.
func responseError(resp *http.Response, scale float64) error {
	err := reboundhttp.CheckResponse(resp)
	var se *reboundhttp.StatusError
	if errors.As(err, &se) {
		se.RetryAfter = time.Duration(float64(se.RetryAfter) * scale)
	}
	return err
}

// demoCall is one scripted call of the demo.
type demoCall struct {
	scenario string
	dflt     string
	script   []string
}

func runDemo(ctx context.Context, w io.Writer, opts demoOptions) error {
	sc := demoScale{backoff: 100 * time.Millisecond, maxBackoff: time.Second, firstOpen: 500 * time.Millisecond, maxOpen: 6 * time.Second,
		timeout: 300 * time.Millisecond, retryAfter: 0.1}
	if opts.fast {
		sc = demoScale{backoff: 5 * time.Millisecond, maxBackoff: 50 * time.Millisecond, firstOpen: 300 * time.Millisecond, maxOpen: time.Second,
			timeout: 300 * time.Millisecond, retryAfter: 0.01}
	}
	p := &demoPrinter{w: w, json: opts.json, quiet: opts.quiet, start: time.Now()}

	srv := &flakyServer{dflt: "ok"}
	ts := httptest.NewUnstartedServer(srv)
	ts.Config.ErrorLog = nil
	ts.Start()
	defer ts.Close()
	// Keep-alives off: each attempt is a fresh connection, so net/http does
	// not silently retry a reset on a reused one and hide it from the demo.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()

	t := &demoTally{}
	halfOpen := make(chan struct{}, 4)
	breaker, err := rebound.NewBreaker(rebound.BreakerConfig{
		Name:             "demo-api",
		FailureThreshold: 3, // failed calls: a call counts once, however many attempts
		FirstOpenFor:     sc.firstOpen,
		OpenFor:          sc.maxOpen,
		OnStateChange: func(name string, from, to rebound.State) {
			t.transition()
			p.emit(demoEvent{Event: "breaker", Message: name, From: from.String(), To: to.String()})
			if to == rebound.StateHalfOpen {
				halfOpen <- struct{}{}
			}
		},
	})
	if err != nil {
		return err
	}
	defer breaker.Stop()

	p.emit(demoEvent{Event: "start", Message: fmt.Sprintf(
		"rebound demo: a flaky HTTP server on %s, called through a rebound.Pipeline "+
			"(waits scaled down: backoff from %s, Retry-After x%g, breaker opens after 3 failed calls for %s, "+
			"x1.2 longer after each failed probe up to %s, per-attempt timeout %s)",
		ts.Listener.Addr(), sc.backoff, sc.retryAfter, sc.firstOpen, sc.maxOpen, sc.timeout)})
	for i, c := range demoCalls {
		if err := ctx.Err(); err != nil {
			return withCode(ExitInterrupted, err)
		}
		n := i + 1
		if n == 10 && breaker.State() == rebound.StateOpen {
			if err := awaitHalfOpen(ctx, p, breaker, halfOpen); err != nil {
				return err
			}
		}
		srv.set(c.dflt, c.script...)
		p.emit(demoEvent{Event: "call", Call: n, Scenario: c.scenario})
		t.call(demoOne(ctx, p, client, ts.URL, n, breaker, sc))
	}
	srv.mu.Lock()
	requests := srv.requests
	srv.mu.Unlock()
	s := t.summary(requests, time.Since(p.start))
	p.emit(demoEvent{Event: "summary", Summary: &s})
	if breaker.State() != rebound.StateClosed {
		return withCode(ExitFailed, errors.New("demo: the breaker did not close again after recovery"))
	}
	items := 3000
	if opts.fast {
		items = 600
	}
	return runBatchDemo(ctx, p, items)
}

// demoCalls is the demo's script: what the server does for each call.
var demoCalls = []demoCall{
	{"healthy", "ok", nil},
	{"503 with Retry-After: 1 (throttled: slows the retry, never counts against the breaker), then healthy", "ok", []string{"503-retry-after"}},
	{"connection reset (RST), then healthy", "ok", []string{"reset"}},
	{"an answer slower than the per-attempt timeout, then healthy", "ok", []string{"slow"}},
	{"404 Not Found: the caller's fault, never retried", "404", nil},
	{"outage begins: every request gets a 503", "503", nil},
	{"outage continues", "503", nil},
	{"outage continues", "503", nil},
	{"server recovered (the breaker does not know yet)", "ok", nil},
	{"healthy", "ok", nil},
	{"healthy", "ok", nil},
	{"healthy", "ok", nil},
}

// awaitHalfOpen lets the breaker's open period end; the transition is
// signalled on halfOpen, not polled.
func awaitHalfOpen(ctx context.Context, p *demoPrinter, breaker *rebound.Breaker, halfOpen <-chan struct{}) error {
	p.emit(demoEvent{Event: "wait", Message: fmt.Sprintf("waiting for the breaker's open period (%s) to end", breaker.OpenFor())})
	for breaker.State() == rebound.StateOpen {
		select {
		case <-halfOpen:
		case <-ctx.Done():
			return withCode(ExitInterrupted, ctx.Err())
		}
	}
	return nil
}

// demoTally adds up the calls' outcomes; breaker transitions arrive from
// timer goroutines, so it locks.
type demoTally struct {
	mu  sync.Mutex
	sum demoSummary
}

func (t *demoTally) transition() {
	t.mu.Lock()
	t.sum.Transitions++
	t.mu.Unlock()
}

// call counts one call's outcome, as demoOne reports it.
func (t *demoTally) call(outcome string, attempts, rejected int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sum.Calls++
	t.sum.Attempts += attempts
	t.sum.Rejected += rejected
	switch {
	case outcome == "ok" && attempts == 1:
		t.sum.FirstTry++
	case outcome == "ok":
		t.sum.AfterRetries++
	case outcome == "fallback":
		t.sum.Fallback++
	default:
		t.sum.Failed++
	}
}

// summary is the tally so far, with the server's request count and the time.
func (t *demoTally) summary(requests int, elapsed time.Duration) demoSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sum.ServerRequests = requests
	t.sum.Seconds = elapsed.Seconds()
	return t.sum
}

// demoOne makes call n through a fresh Pipeline sharing the breaker, and
// reports its outcome ("ok", "fallback", "failed"), the attempts it took and
// how many of them the breaker rejected.
func demoOne(ctx context.Context, p *demoPrinter, client *http.Client, base string, n int, breaker *rebound.Breaker, sc demoScale) (outcome string, attempts, rejected int) {
	url := fmt.Sprintf("%s/items/%d", base, n)
	pl := rebound.Pipeline{
		Retry: rebound.Retry{
			Name:    fmt.Sprintf("GET /items/%d", n),
			Backoff: rebound.Backoff{Initial: sc.backoff, Max: sc.maxBackoff},
			OnRetry: func(e rebound.RetryEvent) {
				p.emit(demoEvent{Event: "retry", Call: n, Attempt: e.Attempt, Kind: e.Class.Kind.String(), Reason: e.Class.Reason,
					WaitMS: float64(e.Wait) / float64(time.Millisecond), RetryAfterMS: float64(e.Class.RetryAfter) / float64(time.Millisecond)})
			},
		},
		Breaker: breaker,
		Timeout: sc.timeout,
		// Degrade only when the breaker refused: serve the last good answer.
		Fallback: func(ctx context.Context, err error) error {
			if errors.Is(err, rebound.ErrOpen) {
				outcome = "fallback"
				return nil
			}
			return err
		},
	}
	err := pl.Do(ctx, func(ctx context.Context) error {
		attempts++
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return rebound.Permanent(err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if err == nil {
				err = responseError(resp, sc.retryAfter)
			}
		}
		ev := demoEvent{Event: "attempt", Call: n, Attempt: attempts}
		if resp != nil {
			ev.Status = resp.StatusCode
		}
		if err != nil {
			c := rebound.Classify(err)
			ev.Kind, ev.Reason, ev.Error = c.Kind.String(), c.Reason, shortErr(err)
		}
		p.emit(ev)
		return err
	})
	var re *rebound.RetryError
	if errors.As(err, &re) && errors.Is(err, rebound.ErrOpen) || outcome == "fallback" {
		// The attempt the breaker refused never reached fn.
		attempts++
		rejected = 1
	}
	switch {
	case outcome == "fallback":
		p.emit(demoEvent{Event: "result", Call: n, Outcome: "served by the fallback", Reason: "circuit open",
			Message: fmt.Sprintf("attempt %d was refused at once by the open breaker (no request sent); the last good answer was served instead", attempts)})
	case err == nil:
		outcome = "ok"
		msg := "after 1 attempt"
		if attempts > 1 {
			msg = fmt.Sprintf("after %d attempts", attempts)
		}
		p.emit(demoEvent{Event: "result", Call: n, Outcome: "ok", Message: msg})
	default:
		outcome = "failed"
		ev := demoEvent{Event: "result", Call: n, Outcome: "failed", Error: shortErr(err), Message: shortErr(err)}
		if re != nil {
			ev.Reason = re.Reason
		}
		p.emit(ev)
	}
	return outcome, attempts, rejected
}

// shortErr drops net/http's "Get \"url\": " prefix from an attempt's error.
func shortErr(err error) string {
	s := err.Error()
	var se *reboundhttp.StatusError
	if errors.As(err, &se) {
		// The demo's URLs are all the same server's: the status says it.
		s = strings.Replace(s, se.Error(), "HTTP "+se.Status, 1)
	}
	if i := strings.Index(s, "\": "); i >= 0 && strings.HasPrefix(s, "Get \"") {
		return s[i+3:]
	}
	return s
}
