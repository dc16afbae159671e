package pacing

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/rebound-go/rebound/reboundhttp"
)

// OutageConfig sets an outage run: Callers goroutines, each a loop of GETs
// with Pause between calls, against a server that answers 503 for Outage and
// then recovers. The run ends when every caller has had a success after the
// outage, or MaxRecovery after its end.
type OutageConfig struct {
	Callers     int
	Outage      time.Duration
	Pause       time.Duration
	MaxRecovery time.Duration
}

// OutageResult is what an outage run measured.
type OutageResult struct {
	// OutageLoad is the requests per second the server received during
	// the outage.
	OutageLoad float64
	// First, Median and Last are the times from the end of the outage to
	// the first success of the first, the median and the last caller; -1
	// when that caller had none within MaxRecovery.
	First, Median, Last time.Duration
	// Recovered counts the callers that had a success.
	Recovered int
}

// Caller kinds for RunOutage.
const (
	CallerNetHTTP     = "net/http"            // plain http.Client, no retry
	CallerFailsafe    = "failsafe adaptive"   // plain http.Client under one shared adaptive limiter
	CallerReboundHTTP = "reboundhttp default" // reboundhttp.NewClient(reboundhttp.Config{}), shared
)

// RunOutage runs cfg.Callers callers of the given kind against a fresh
// outage server.
func RunOutage(ctx context.Context, kind string, cfg OutageConfig) (OutageResult, error) {
	srv := NewOutage(cfg.Outage)
	defer srv.Close()
	var do func(ctx context.Context) bool
	plain := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Callers}, Timeout: 30 * time.Second}
	defer plain.CloseIdleConnections()
	get := func(ctx context.Context, c *http.Client) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ping", nil)
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	switch kind {
	case CallerNetHTTP:
		do = func(ctx context.Context) bool { return get(ctx, plain) }
	case CallerFailsafe:
		lim := adaptivelimiter.NewBuilder[*http.Response]().WithLimits(1, uint(cfg.Callers), uint(min(20, cfg.Callers))).Build()
		do = func(ctx context.Context) bool {
			p, err := lim.AcquirePermit(ctx)
			if err != nil {
				return false
			}
			ok := get(ctx, plain)
			p.Record()
			return ok
		}
	case CallerReboundHTTP:
		c, err := reboundhttp.NewClient(reboundhttp.Config{})
		if err != nil {
			return OutageResult{}, err
		}
		defer c.CloseIdleConnections()
		do = func(ctx context.Context) bool { return get(ctx, c) }
	default:
		panic("pacing: unknown caller kind " + kind)
	}

	end := srv.Start()
	ctx, cancel := context.WithDeadline(ctx, end.Add(cfg.MaxRecovery))
	defer cancel()
	var mu sync.Mutex
	var firsts []time.Duration
	var wg sync.WaitGroup
	for range cfg.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if do(ctx) {
					mu.Lock()
					firsts = append(firsts, time.Since(end))
					if len(firsts) == cfg.Callers {
						cancel()
					}
					mu.Unlock()
					return
				}
				t := time.NewTimer(cfg.Pause)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
		}()
	}
	wg.Wait()
	res := OutageResult{OutageLoad: float64(srv.during.Load()) / cfg.Outage.Seconds(), First: -1, Median: -1, Last: -1, Recovered: len(firsts)}
	slices.Sort(firsts)
	if len(firsts) > 0 {
		res.First = firsts[0]
	}
	if len(firsts) > cfg.Callers/2 {
		res.Median = firsts[cfg.Callers/2]
	}
	if len(firsts) == cfg.Callers {
		res.Last = firsts[len(firsts)-1]
	}
	return res, nil
}
