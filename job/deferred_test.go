package job

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
	"github.com/rebound-go/rebound/reboundtest"
)

// Items put off for their host keep a reason a status display can count by
// group: one text per host for a breaker's refusals (not one per item, as
// the refusal's "next probe in" made it), and a throttled prefix for an item
// whose host asked for a long wait. Neither is ever dead.
func TestDeferredReasonsGroup(t *testing.T) {
	clock := reboundtest.NewClock(time.Time{})
	ctx := context.Background()
	st := memory.New(checkpoint.Config{Clock: clock})
	var throttle bool
	h := func(ctx context.Context, t *Task) error {
		if throttle {
			return rebound.Throttled(errors.New("429 Too Many Requests"), time.Minute)
		}
		return nil
	}
	r, err := newRunner(Config{Job: "j", Store: st, Clock: clock, Breakers: tripped(t, clock, "https://api.example"),
		BreakerKey: func(checkpoint.Item) string { return "https://api.example" }}, h)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for i := range 3 {
		it := checkpoint.Item{ID: string(rune('a' + i)), Attempts: 1}
		res, unsent := r.runItem(ctx, func(error) {}, ctx, it, "https://api.example", &rebound.PacePermit{})
		if !unsent || res.State != checkpoint.Failed || res.Err != "deferred: circuit breaker open for https://api.example" {
			t.Fatalf("refused item: unsent %v, %v %q", unsent, res.State, res.Err)
		}
		if g := DeferGroup(res.ErrKind, res.Err); g != GroupBreakerOpen {
			t.Errorf("group %q, want %q", g, GroupBreakerOpen)
		}
		reasons = append(reasons, res.Err)
	}
	if reasons[0] != reasons[1] || reasons[1] != reasons[2] {
		t.Errorf("one host's refusals differ: %q", reasons)
	}

	throttle = true
	r.cfg.Breakers = nil
	itemCtx, stop := context.WithCancelCause(ctx)
	res, _ := r.runItem(itemCtx, stop, ctx, checkpoint.Item{ID: "t", Attempts: 1}, "https://api.example", &rebound.PacePermit{})
	stop(nil)
	if res.State != checkpoint.Failed || DeferGroup(res.ErrKind, res.Err) != GroupThrottled {
		t.Fatalf("throttled item: %v %q (%s), want failed in the throttled group", res.State, res.Err, res.ErrKind)
	}
	for _, tc := range []struct{ kind, err, want string }{
		{"transient", "reboundhttp: POST https://x/1: 503 Service Unavailable", ""},
		{"throttled", "reboundhttp: POST https://x/1: 429 Too Many Requests", ""}, // may be dead: attempts ran out
		{"transient", "circuit breaker https://x open: next probe in 41s", GroupBreakerOpen},
		{"throttled", "not sent: waiting out a throttle of https://x: 429", GroupThrottled},
	} {
		if g := DeferGroup(tc.kind, tc.err); g != tc.want {
			t.Errorf("DeferGroup(%q, %q) = %q, want %q", tc.kind, tc.err, g, tc.want)
		}
	}
}

// A failed probe does not make its item the next probe too: due a poll
// after the items the breaker refused unsent, it leaves the next probe to
// them, so probing a down host every few seconds spreads over the items
// instead of using up the first one's attempts.
func TestFailedProbeLeavesTheNextProbeToAnotherItem(t *testing.T) {
	clock := reboundtest.NewClock(time.Time{})
	ctx := context.Background()
	st := memory.New(checkpoint.Config{Clock: clock})
	bs := tripped(t, clock, "h")
	h := func(ctx context.Context, t *Task) error { return rebound.Transient(errors.New("503")) }
	r, err := newRunner(Config{Job: "j", Store: st, Clock: clock, Breakers: bs, PollInterval: time.Second,
		BreakerKey: func(checkpoint.Item) string { return "h" }}, h)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute) // half-open: the next item is the probe
	probe, unsent := r.runItem(ctx, func(error) {}, ctx, checkpoint.Item{ID: "1", Attempts: 1}, "h", &rebound.PacePermit{})
	if unsent || probe.State != checkpoint.Failed || probe.Attempts != 1 {
		t.Fatalf("probe: unsent %v, %v after %d attempts", unsent, probe.State, probe.Attempts)
	}
	other, unsent := r.runItem(ctx, func(error) {}, ctx, checkpoint.Item{ID: "2", Attempts: 1}, "h", &rebound.PacePermit{})
	if !unsent || other.State != checkpoint.Failed {
		t.Fatalf("refused item: unsent %v, %v", unsent, other.State)
	}
	until := bs.Get("h").NextProbe()
	if !other.NextAt.Equal(until) || !probe.NextAt.Equal(until.Add(time.Second)) {
		t.Errorf("refused item due %v, failed probe due %v; want the probe time %v and a poll after it", other.NextAt, probe.NextAt, until)
	}
}
