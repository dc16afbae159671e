package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

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
