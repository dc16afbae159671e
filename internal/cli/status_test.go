package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/sqlite"
	"github.com/rebound-go/rebound/job"
)

// status shows items put off for their host (a breaker open, a throttle) as
// deferred, with a count per reason, never among the errors or as dead;
// the rest of the failed items wait after a failure.
func TestStatusGroupsDeferredItems(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	st, err := sqlite.Open(path, checkpoint.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "f"}); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		defer_    bool
		state     checkpoint.ItemState
		kind, err string
	}
	var outcomes []outcome
	add := func(n int, o outcome) {
		for range n {
			outcomes = append(outcomes, o)
		}
	}
	later := time.Now().Add(time.Hour)
	add(4, outcome{true, checkpoint.Failed, "transient", "deferred: circuit breaker open for https://a.example"})
	add(2, outcome{true, checkpoint.Failed, "transient", "deferred: circuit breaker open for https://b.example"})
	// What an earlier version stored: the refusal's own text, one per item.
	add(1, outcome{true, checkpoint.Failed, "transient", "circuit breaker https://c.example open: next probe in 41.2s"})
	add(3, outcome{false, checkpoint.Failed, "throttled", "deferred: throttled: reboundhttp: POST https://a.example/x: 429 Too Many Requests (Retry-After 30s)"})
	add(2, outcome{false, checkpoint.Failed, "transient", "reboundhttp: POST https://a.example/x: 503 Service Unavailable"})
	add(1, outcome{false, checkpoint.Dead, "throttled", "reboundhttp: POST https://a.example/x: 429 Too Many Requests"})
	add(1, outcome{false, checkpoint.Done, "", ""})
	var items []checkpoint.Item
	for i := range outcomes {
		items = append(items, checkpoint.Item{ID: fmt.Sprint(i), Payload: []byte("{}")})
	}
	if err := st.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
	leased, err := st.Lease(ctx, "j", "w", len(items), time.Minute)
	if err != nil || len(leased) != len(items) {
		t.Fatalf("lease: %d items, %v", len(leased), err)
	}
	for i, it := range leased {
		o := outcomes[i]
		if o.defer_ {
			err = st.Defer(ctx, "j", it.ID, it.Lease, later, o.err, o.kind)
		} else {
			next := time.Time{}
			if o.state == checkpoint.Failed {
				next = later
			}
			err = st.Complete(ctx, []checkpoint.Result{{Job: "j", ID: it.ID, Lease: it.Lease, State: o.state, Err: o.err, ErrKind: o.kind, NextAt: next}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := cliRun("status", "--state", path, "--job", "j")
	t.Log("\n" + out)
	if code != ExitOK {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"deferred, will retry     12", "  breaker open           7",
		"      https://a.example  4", "      https://b.example  2", "      https://c.example  1",
		"  throttled              3", "  after a failure        2", "dead                     1"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	errs := out[strings.Index(out, "most common errors"):]
	if strings.Contains(errs, "circuit breaker") || strings.Contains(errs, "deferred") || !strings.Contains(errs, "503") {
		t.Errorf("deferred items among the errors, or a failure missing:\n%s", out)
	}

	code, out, _ = cliRun("status", "--state", path, "--job", "j", "--json")
	var v struct {
		Failed    int64            `json:"failed"`
		Deferred  deferredCounts   `json:"deferred"`
		TopErrors []map[string]any `json:"top_errors"`
		DeadItems []map[string]any `json:"dead_items"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != ExitOK || err != nil {
		t.Fatalf("status --json: exit %d, %v: %s", code, err, out)
	}
	if v.Failed != 12 || v.Deferred.BreakerOpen != 7 || v.Deferred.Throttled != 3 || v.Deferred.Other != 2 ||
		fmt.Sprint(v.Deferred.BreakerHosts) != "map[https://a.example:4 https://b.example:2 https://c.example:1]" {
		t.Errorf("status --json: failed %d, deferred %v; want 12 = 7 breaker open + 3 throttled + 2 after a failure", v.Failed, v.Deferred)
	}
	for _, e := range v.TopErrors {
		if job.DeferGroup(fmt.Sprint(e["kind"]), fmt.Sprint(e["error"])) != "" {
			t.Errorf("a deferral among top_errors: %v", e)
		}
	}
	if len(v.DeadItems) != 1 {
		t.Errorf("dead items %v, want the one 429 that ran out of attempts", v.DeadItems)
	}
}

func TestBreakerHost(t *testing.T) {
	for reason, want := range map[string]string{
		"deferred: circuit breaker open for https://a.example":           "https://a.example",
		"deferred: circuit breaker open":                                 "",
		"circuit breaker https://b.example open: next probe in 41.2s":    "https://b.example",
		"circuit breaker https://b.example half-open: probe in progress": "https://b.example",
		"circuit breaker open: next probe in 1s":                         "",
		"circuit breaker half-open: probe in progress":                   "",
	} {
		if got := breakerHost(reason); got != want {
			t.Errorf("breakerHost(%q) = %q, want %q", reason, got, want)
		}
	}
}
