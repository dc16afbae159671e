package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestDemoJSON runs the demo end to end (a real loopback server, real
// sockets) and checks that the story it tells happened: a throttled retry
// after a 503, a reset classified transient, a per-attempt timeout, a 404
// not retried, the breaker opening, refusing calls, and closing again.
func TestDemoJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	code := Main([]string{"demo", "--json", "--fast"}, strings.NewReader(""), &out, &errOut)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %s\nstdout:\n%s", code, errOut.String(), out.String())
	}
	var events []demoEvent
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var e demoEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q is not a JSON event: %v", sc.Text(), err)
		}
		events = append(events, e)
	}
	has := func(what string, match func(e demoEvent) bool) {
		t.Helper()
		for _, e := range events {
			if match(e) {
				return
			}
		}
		t.Errorf("no event: %s", what)
	}
	has("retry after a 503 with Retry-After", func(e demoEvent) bool {
		return e.Event == "retry" && e.Kind == "throttled" && e.RetryAfterMS > 0 && e.WaitMS >= e.RetryAfterMS
	})
	has("a reset classified transient", func(e demoEvent) bool {
		return e.Event == "attempt" && e.Kind == "transient" && e.Reason == "connection reset"
	})
	has("a per-attempt timeout", func(e demoEvent) bool {
		return e.Event == "attempt" && e.Kind == "transient" && e.Reason == "timeout"
	})
	has("a 404 classified permanent and not retried", func(e demoEvent) bool {
		return e.Event == "result" && e.Call == 5 && e.Outcome == "failed" && e.Reason == "not retryable"
	})
	has("breaker opened", func(e demoEvent) bool { return e.Event == "breaker" && e.From == "closed" && e.To == "open" })
	has("breaker half-open", func(e demoEvent) bool { return e.Event == "breaker" && e.To == "half-open" })
	has("breaker closed again", func(e demoEvent) bool {
		return e.Event == "breaker" && e.From == "half-open" && e.To == "closed"
	})
	has("a call served by the fallback", func(e demoEvent) bool { return e.Event == "result" && e.Reason == "circuit open" })

	var last demoEvent
	for _, e := range events {
		if e.Event == "summary" {
			last = e
		}
	}
	if last.Summary == nil {
		t.Fatal("no summary event")
	}
	has("the batch resumed after the interruption", func(e demoEvent) bool {
		return e.Event == "batch" && strings.Contains(e.Message, "run 2 resumed")
	})
	if end := events[len(events)-1]; end.Event != "batch-summary" || !strings.Contains(end.Message, "600 items done, 0 dead") {
		t.Errorf("last event %+v, want the batch summary", end)
	}
	s := last.Summary
	if s.Calls != 12 || s.Rejected == 0 || s.AfterRetries < 3 || s.Transitions < 3 || s.ServerRequests >= s.Attempts {
		t.Errorf("summary %+v", *s)
	}
	for i := 10; i <= 12; i++ {
		has("success after recovery", func(e demoEvent) bool { return e.Event == "result" && e.Call == i && e.Outcome == "ok" })
	}
}

func TestDemoTextQuiet(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"demo", "--quiet", "--fast"}, strings.NewReader(""), &out, &errOut); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "summary: 12 calls") ||
		!strings.Contains(lines[1], "batch summary: 600 items done, 0 dead") ||
		!strings.Contains(lines[1], "applied 600 effects") {
		t.Errorf("quiet output %q, want only the two summary lines", out.String())
	}
}

func TestDemoRejectsArgs(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main([]string{"demo", "extra"}, strings.NewReader(""), &out, &errOut); code != ExitUsage {
		t.Errorf("exit %d for an extra argument, want %d", code, ExitUsage)
	}
}
