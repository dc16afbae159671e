package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rebound-go/rebound"
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

Waits are scaled down (backoff from 100ms, Retry-After ×0.1, breaker open 2s,
per-attempt timeout 300ms) so the demo takes a few seconds; the real defaults
are 1s, Retry-After as sent, 60s and what your Pipeline says.

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
	backoff, maxBackoff, openFor, timeout time.Duration
	retryAfter                            float64 // factor applied to the server's Retry-After
}

// demoEvent is one line of the demo's output (one JSON object with --json).
type demoEvent struct {
	T        float64 `json:"t"` // seconds since the demo began
	Event    string  `json:"event"`
	Call     int     `json:"call,omitempty"`
	Scenario string  `json:"scenario,omitempty"`
	Attempt  int     `json:"attempt,omitempty"`
	Status   int     `json:"status,omitempty"`
	Kind     string  `json:"kind,omitempty"`
	Reason   string  `json:"reason,omitempty"`
	WaitMS   float64 `json:"wait_ms,omitempty"`
	// RetryAfterMS is the server's Retry-After as the demo scaled it.
	RetryAfterMS float64      `json:"retry_after_ms,omitempty"`
	Outcome      string       `json:"outcome,omitempty"`
	Error        string       `json:"error,omitempty"`
	From         string       `json:"from,omitempty"`
	To           string       `json:"to,omitempty"`
	Message      string       `json:"message,omitempty"`
	Summary      *demoSummary `json:"summary,omitempty"`
}

// demoSummary totals the run.
type demoSummary struct {
	Calls          int     `json:"calls"`
	FirstTry       int     `json:"ok_first_try"`
	AfterRetries   int     `json:"ok_after_retries"`
	Fallback       int     `json:"served_by_fallback"`
	Failed         int     `json:"failed"`
	Attempts       int     `json:"attempts"`
	ServerRequests int     `json:"server_requests"`
	Rejected       int     `json:"rejected_by_breaker"`
	Transitions    int     `json:"breaker_transitions"`
	Seconds        float64 `json:"seconds"`
}

// demoPrinter writes events as text or JSON; breaker transitions arrive
// from timer goroutines, so it locks.
type demoPrinter struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	quiet bool
	start time.Time
}

func (p *demoPrinter) emit(e demoEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.T = time.Since(p.start).Seconds()
	if p.quiet && e.Event != "summary" && e.Event != "batch-summary" {
		return
	}
	if p.json {
		b, _ := json.Marshal(e)
		fmt.Fprintf(p.w, "%s\n", b)
		return
	}
	prefix := fmt.Sprintf("[%6.3fs] ", e.T)
	if e.Call > 0 {
		prefix += fmt.Sprintf("call %-2d ", e.Call)
	}
	var line string
	switch e.Event {
	case "start":
		line = e.Message
	case "call":
		line = "-- " + e.Scenario
	case "attempt":
		if e.Kind == "" {
			line = fmt.Sprintf("attempt %d: HTTP %d OK", e.Attempt, e.Status)
		} else {
			line = fmt.Sprintf("attempt %d: %s -> %s (%s)", e.Attempt, e.Error, e.Kind, e.Reason)
		}
	case "retry":
		line = fmt.Sprintf("waiting %s before attempt %d", fmtMS(e.WaitMS), e.Attempt+1)
		if e.RetryAfterMS > 0 {
			line += fmt.Sprintf(" (throttled: no sooner than the server's Retry-After, scaled to %s)", fmtMS(e.RetryAfterMS))
		}
	case "result":
		line = fmt.Sprintf("=> %s", e.Outcome)
		if e.Message != "" {
			line += ": " + e.Message
		}
	case "breaker":
		line = fmt.Sprintf("** breaker %s: %s -> %s", e.Message, e.From, e.To)
	case "wait":
		line = e.Message
	case "summary":
		s := e.Summary
		line = fmt.Sprintf("summary: %d calls: %d ok at once, %d ok after retries, %d served by the fallback, %d failed; "+
			"%d attempts, %d requests reached the server, %d rejected by the open breaker, %d breaker transitions, %.1fs",
			s.Calls, s.FirstTry, s.AfterRetries, s.Fallback, s.Failed, s.Attempts, s.ServerRequests, s.Rejected, s.Transitions, s.Seconds)
	default:
		line = e.Message
	}
	fmt.Fprintln(p.w, prefix+line)
}

func fmtMS(ms float64) string {
	return time.Duration(ms * float64(time.Millisecond)).Round(time.Millisecond).String()
}

// flakyServer answers each request with the next scripted behaviour, or the
// default one when the script is empty.
type flakyServer struct {
	mu       sync.Mutex
	script   []string
	dflt     string
	requests int
}

func (s *flakyServer) set(dflt string, script ...string) {
	s.mu.Lock()
	s.dflt, s.script = dflt, script
	s.mu.Unlock()
}

func (s *flakyServer) next() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if len(s.script) > 0 {
		b := s.script[0]
		s.script = s.script[1:]
		return b
	}
	return s.dflt
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch s.next() {
	case "503-retry-after":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	case "503":
		http.Error(w, "down", http.StatusServiceUnavailable)
	case "404":
		http.Error(w, "no such item", http.StatusNotFound)
	case "reset":
		// Close with SO_LINGER 0: the kernel sends a RST, the client reads
		// "connection reset by peer".
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		conn.Close()
	case "slow":
		// Answer long after the client's per-attempt timeout (or when it hangs up).
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		fmt.Fprintln(w, "late")
	default:
		fmt.Fprintln(w, "ok")
	}
}

// statusError is a response the demo's client treats as a failure; it knows
// its class (ClassifyStatus), so the pipeline's Classify honours it.
type statusError struct {
	code  int
	class rebound.Class
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d %s", e.code, http.StatusText(e.code))
}
func (e *statusError) Class() rebound.Class { return e.class }

// responseError turns a failed response into a classified error: nil for
// 1xx-3xx; the Retry-After header is parsed, then scaled for the demo.
func responseError(resp *http.Response, scale float64) error {
	if resp.StatusCode < 400 {
		return nil
	}
	ra, _ := rebound.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	ra = time.Duration(float64(ra) * scale)
	return &statusError{resp.StatusCode, rebound.ClassifyStatus(resp.StatusCode, rebound.IdempotentMethod(resp.Request.Method), ra)}
}

// demoCall is one scripted call of the demo.
type demoCall struct {
	scenario string
	dflt     string
	script   []string
}

func runDemo(ctx context.Context, w io.Writer, opts demoOptions) error {
	sc := demoScale{backoff: 100 * time.Millisecond, maxBackoff: time.Second, openFor: 2 * time.Second, timeout: 300 * time.Millisecond, retryAfter: 0.1}
	if opts.fast {
		sc = demoScale{backoff: 5 * time.Millisecond, maxBackoff: 50 * time.Millisecond, openFor: 300 * time.Millisecond, timeout: 300 * time.Millisecond, retryAfter: 0.01}
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

	var sum demoSummary
	var sumMu sync.Mutex
	halfOpen := make(chan struct{}, 4)
	breaker, err := rebound.NewBreaker(rebound.BreakerConfig{
		Name:             "demo-api",
		FailureThreshold: 3, // failed calls: a call counts once, however many attempts
		OpenFor:          sc.openFor,
		OnStateChange: func(name string, from, to rebound.State) {
			sumMu.Lock()
			sum.Transitions++
			sumMu.Unlock()
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
			"(waits scaled down: backoff from %s, Retry-After x%g, breaker opens after 3 failed calls for %s, per-attempt timeout %s)",
		ts.Listener.Addr(), sc.backoff, sc.retryAfter, sc.openFor, sc.timeout)})

	calls := []demoCall{
		{"healthy", "ok", nil},
		{"503 with Retry-After: 1, then healthy", "ok", []string{"503-retry-after"}},
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
	for i, c := range calls {
		if err := ctx.Err(); err != nil {
			return withCode(ExitInterrupted, err)
		}
		n := i + 1
		if n == 10 && breaker.State() == rebound.StateOpen {
			// Let the open period end; the transition is signalled, not polled.
			p.emit(demoEvent{Event: "wait", Message: fmt.Sprintf("waiting for the breaker's open period (%s) to end", sc.openFor)})
			for breaker.State() == rebound.StateOpen {
				select {
				case <-halfOpen:
				case <-ctx.Done():
					return withCode(ExitInterrupted, ctx.Err())
				}
			}
		}
		srv.set(c.dflt, c.script...)
		p.emit(demoEvent{Event: "call", Call: n, Scenario: c.scenario})
		outcome, attempts, rejected := demoOne(ctx, p, client, ts.URL, n, breaker, sc)
		sum.Calls++
		sum.Attempts += attempts
		sum.Rejected += rejected
		switch {
		case outcome == "ok" && attempts == 1:
			sum.FirstTry++
		case outcome == "ok":
			sum.AfterRetries++
		case outcome == "fallback":
			sum.Fallback++
		default:
			sum.Failed++
		}
	}
	srv.mu.Lock()
	sum.ServerRequests = srv.requests
	srv.mu.Unlock()
	sumMu.Lock()
	sum.Seconds = time.Since(p.start).Seconds()
	s := sum
	sumMu.Unlock()
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
		ev := demoEvent{Event: "result", Call: n, Outcome: "failed", Error: err.Error(), Message: err.Error()}
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
	if i := strings.Index(s, "\": "); i >= 0 && strings.HasPrefix(s, "Get \"") {
		return s[i+3:]
	}
	return s
}
