package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/checkpoint"
	"github.com/rebound-go/rebound/internal/redact"
	"github.com/rebound-go/rebound/job"
)

// breakerBoard follows the run's per-host breakers and the items each one
// put off, to say on screen why a host's items wait: "host X: open, next
// probe in 42 s, 3 items waiting".
type breakerBoard struct {
	set *rebound.BreakerSet // the run's breakers, keyed by host

	mu      sync.Mutex
	hostOf  map[string]string              // item ID -> its host, for items this run has seen and not finished
	waiting map[string]map[string]struct{} // host -> IDs of its items its breaker put off
}

func newBreakerBoard() *breakerBoard {
	return &breakerBoard{hostOf: map[string]string{}, waiting: map[string]map[string]struct{}{}}
}

// key is the run's job.Config.BreakerKey: the item's host (hostOf), noted
// so that the item's events can be told apart by host.
func (b *breakerBoard) key(it checkpoint.Item) string {
	host := hostOf(it)
	b.mu.Lock()
	b.hostOf[it.ID] = host
	b.mu.Unlock()
	return host
}

// event follows an item: put off by its breaker, it waits for the host;
// started again or finished, it no longer does.
func (b *breakerBoard) event(e job.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	host, ok := b.hostOf[e.ID]
	if !ok {
		return
	}
	if e.Type == job.EventRetry {
		return
	}
	waits := e.Type == job.EventFailed && e.Err != nil && job.DeferGroup(e.Kind, e.Err.Error()) == job.GroupBreakerOpen
	if waits {
		if b.waiting[host] == nil {
			b.waiting[host] = map[string]struct{}{}
		}
		b.waiting[host][e.ID] = struct{}{}
		return
	}
	delete(b.waiting[host], e.ID)
	if e.Type == job.EventDone || e.Type == job.EventDead {
		delete(b.hostOf, e.ID)
	}
}

// hostState is one host whose breaker is not closed.
type hostState struct {
	host      string
	state     rebound.State
	nextProbe time.Duration // until the next probe, while open
	waiting   int
}

// line is how the display shows a host: "host X: open, next probe in 42 s,
// 3 items waiting".
func (h hostState) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "host %s: %s, ", redact.Printable(h.host), h.state)
	if h.state == rebound.StateOpen {
		b.WriteString("next probe in " + probeIn(h.nextProbe))
	} else {
		b.WriteString("probe in flight")
	}
	word := "items"
	if h.waiting == 1 {
		word = "item"
	}
	fmt.Fprintf(&b, ", %d %s waiting", h.waiting, word)
	return b.String()
}

// probeIn writes a wait for a person: "42 s", "1.5 s".
func probeIn(d time.Duration) string {
	if d >= 10*time.Second {
		return fmt.Sprintf("%d s", int64((d+time.Second-1)/time.Second))
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// hosts lists the hosts whose breaker is open or half-open, by name.
func (b *breakerBoard) hosts(now time.Time) []hostState {
	if b == nil || b.set == nil {
		return nil
	}
	var hs []hostState
	b.set.Each(func(host string, br *rebound.Breaker) {
		if s := br.State(); s != rebound.StateClosed {
			h := hostState{host: host, state: s}
			if p := br.NextProbe(); !p.IsZero() {
				h.nextProbe = max(p.Sub(now), 0)
			}
			hs = append(hs, h)
		}
	})
	b.mu.Lock()
	for i := range hs {
		hs[i].waiting = len(b.waiting[hs[i].host])
	}
	b.mu.Unlock()
	slices.SortFunc(hs, func(a, b hostState) int { return strings.Compare(a.host, b.host) })
	return hs
}

// waitingFor is how many items host's breaker has put off.
func (b *breakerBoard) waitingFor(host string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting[host])
}

// summary is the bar's note on a terminal: the first host not closed, and
// how many more there are.
func (b *breakerBoard) summary(now time.Time) string {
	hs := b.hosts(now)
	if len(hs) == 0 {
		return ""
	}
	s := "; " + hs[0].line()
	if len(hs) > 1 {
		s += fmt.Sprintf(" (+%d more hosts)", len(hs)-1)
	}
	return s
}

// writeLines writes a plain line per host not closed, for a display that is
// not a terminal.
func (b *breakerBoard) writeLines(w io.Writer, now time.Time) {
	for _, h := range b.hosts(now) {
		fmt.Fprintf(w, "rebound: %s\n", h.line())
	}
}

// every writes the plain lines every interval until stop is called, so a
// run whose items all wait for a host still says why.
func (b *breakerBoard) every(w io.Writer, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				b.writeLines(w, now)
			}
		}
	})
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}
