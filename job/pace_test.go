package job

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/checkpoint/memory"
)

// perHost counts the items in flight per key and remembers the most.
type perHost struct {
	mu      sync.Mutex
	now     map[string]int
	highest map[string]int
}

func (p *perHost) enter(k string) func() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.now == nil {
		p.now, p.highest = map[string]int{}, map[string]int{}
	}
	p.now[k]++
	p.highest[k] = max(p.highest[k], p.now[k])
	return func() {
		p.mu.Lock()
		p.now[k]--
		p.mu.Unlock()
	}
}

func hostOfID(it checkpoint.Item) string { return it.ID[:1] }

// MaxPerHost bounds each host's items in flight, whatever Concurrency is.
func TestMaxPerHostBoundsEachHost(t *testing.T) {
	st := memory.New(checkpoint.Config{})
	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("a%02d", i), fmt.Sprintf("b%02d", i))
	}
	addJob(t, st, ids...)
	var ph perHost
	sum, err := Run(context.Background(), Config{Job: "j", Store: st, Concurrency: 8, MaxPerHost: 2,
		BreakerKey: hostOfID, Retry: fastRetry()}, func(_ context.Context, task *Task) error {
		defer ph.enter(task.ID[:1])()
		time.Sleep(200 * time.Microsecond) // lets items overlap; nothing is timed
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Stats.Done != 80 {
		t.Fatalf("%+v", sum.Stats)
	}
	for k, n := range ph.highest {
		if n > 2 {
			t.Errorf("host %s had %d items in flight, want at most MaxPerHost 2", k, n)
		}
	}
}

// A full bulkhead puts the item off unsent: it spends no attempt.
func TestBulkheadPutsItemsOffUnsent(t *testing.T) {
	st := &writeCounter{Store: memory.New(checkpoint.Config{})}
	var ids []string
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("a%02d", i))
	}
	addJob(t, st, ids...)
	var throttledEvents atomic.Int64
	release := make(chan struct{})
	var entered atomic.Int64
	sum, err := Run(context.Background(), Config{Job: "j", Store: st, Concurrency: 4, MaxPerHost: 1,
		MaxWaitingPerHost: -1, BreakerKey: hostOfID, Retry: fastRetry(), MaxAttempts: 1, PollInterval: time.Millisecond,
		OnEvent: func(e Event) {
			if e.Type == EventFailed && e.Kind == "throttled" {
				if throttledEvents.Add(1) == 1 {
					close(release)
				}
			}
		}}, func(_ context.Context, task *Task) error {
		if entered.Add(1) == 1 {
			<-release // hold the host's one slot until an item was refused
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// MaxAttempts 1: an item charged for its refusal would be dead.
	if sum.Stats.Done != 12 || sum.Stats.Dead != 0 {
		t.Fatalf("%+v, want all 12 done with one attempt each", sum.Stats)
	}
	if st.defers.Load() == 0 {
		t.Error("no item was put off by the full bulkhead")
	}
}

// A server that announces its quota is spent for an hour is not sent the
// host's other items: they are put off unsent until the reset, with no
// attempt spent and no 429 drawn.
func TestAnnouncedLimitPutsTheHostOff(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", "3600")
	}))
	defer srv.Close()
	st := memory.New(checkpoint.Config{})
	ctx := context.Background()
	if _, err := st.OpenJob(ctx, "j", checkpoint.JobMeta{Fingerprint: "x"}); err != nil {
		t.Fatal(err)
	}
	var items []checkpoint.Item
	for i := range 4 {
		items = append(items, checkpoint.Item{ID: fmt.Sprint(i), Payload: []byte(`{"url":"` + srv.URL + `/` + fmt.Sprint(i) + `"}`)})
	}
	if err := st.AddItems(ctx, "j", items); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var putOff atomic.Int64
	sum, err := Run(runCtx, Config{Job: "j", Store: st, Concurrency: 1, BreakerKey: hostKey, Retry: fastRetry(),
		OnEvent: func(e Event) {
			if e.Type == EventFailed && e.Kind == "throttled" && putOff.Add(1) == 3 {
				cancel()
			}
		}}, HTTPHandler(srv.Client(), ""))
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("%v (%+v)", err, sum)
	}
	if n := hits.Load(); n != 1 || sum.Done != 1 {
		t.Errorf("%d requests, %d done; want 1 and 1: the others wait for the announced reset", n, sum.Done)
	}
	// 'rebound status' counts them as deferred for throttling, not as errors.
	waiting := 0
	for i := range 4 {
		it, err := st.Item(ctx, "j", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		if it.State == checkpoint.Failed {
			waiting++
			if g := DeferGroup(it.ErrKind, it.Err); g != GroupThrottled {
				t.Errorf("item %s put off with %q: group %q, want %q", it.ID, it.Err, g, GroupThrottled)
			}
		}
	}
	if waiting == 0 {
		t.Error("no item waits for the announced reset")
	}
}
