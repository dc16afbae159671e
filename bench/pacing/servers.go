// Package pacing measures issue 13's targets: servers on loopback whose
// capacity the client is not told (a rate-limited API, one that announces its
// limit in headers, a degraded one behind the idempotency middleware, one
// that is down and then recovers) and drivers that send work to them: the
// real CLI (`rebound run`, driven with os/exec, as a user meets it), plain
// net/http under failsafe-go's adaptive limiter, and reboundhttp callers.
//
// Everything is bounded in count and in time, and stops by itself. The
// figures are timings on a loaded machine: the command in cmd/pacing prints
// them; the tests here check only what is not a timing (every item applied,
// none applied twice).
package pacing

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rebound-go/rebound/idempotency"
)

// Counts are a server's tallies. Requests counts every request that reached
// the handler, Throttled those answered 429, Effects the times an item's
// effect ran (a replay from the idempotency store is not one).
type Counts struct {
	Requests, Throttled, Effects int64
	// Applied is the number of distinct items whose effect ran at least
	// once; Twice those whose effect ran more than once.
	Applied, Twice int
	// LastApply is when the last effect ran (zero if none).
	LastApply time.Time
	// firsts are the times of each item's first effect, in order.
	firsts []time.Time
}

// AppliedBy returns when the first share (0..1] of n items had been
// applied, counted from start; -1 if they never were.
func (c Counts) AppliedBy(start time.Time, n int, share float64) time.Duration {
	k := int(math.Ceil(share * float64(n)))
	if k < 1 || k > len(c.firsts) {
		return -1
	}
	return c.firsts[k-1].Sub(start)
}

// Server is a loopback HTTP server with a hidden capacity. POST
// /items/{id} applies item id's effect (counted once per call of the
// handler behind the limiter or the idempotency middleware).
type Server struct {
	URL string
	srv *httptest.Server

	requests, throttled, effects atomic.Int64

	mu        sync.Mutex
	applied   map[string]int
	lastApply time.Time
	firsts    []time.Time
}

func newServer(h func(s *Server) http.Handler) *Server {
	s := &Server{applied: make(map[string]int)}
	s.srv = httptest.NewUnstartedServer(h(s))
	s.srv.Config.ReadHeaderTimeout = 10 * time.Second
	s.srv.Start()
	s.URL = s.srv.URL
	return s
}

// Close stops the server and closes its connections.
func (s *Server) Close() { s.srv.CloseClientConnections(); s.srv.Close() }

// Counts returns the tallies so far.
func (s *Server) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Counts{Requests: s.requests.Load(), Throttled: s.throttled.Load(), Effects: s.effects.Load(),
		Applied: len(s.applied), LastApply: s.lastApply, firsts: slices.Clone(s.firsts)}
	for _, n := range s.applied {
		if n > 1 {
			c.Twice++
		}
	}
	return c
}

// apply runs item's effect: the side effect that must happen once.
func (s *Server) apply(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/items/")
	s.effects.Add(1)
	s.mu.Lock()
	s.applied[id]++
	s.lastApply = time.Now()
	if s.applied[id] == 1 {
		s.firsts = append(s.firsts, s.lastApply)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"item":%q}`, id)
}

func (s *Server) throttle(w http.ResponseWriter, retryAfter int) {
	s.throttled.Add(1)
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	http.Error(w, "slow down", http.StatusTooManyRequests)
}

// bucket is the server's hidden token bucket (the server side of the
// experiment, not a client limiter).
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func (b *bucket) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last.IsZero() {
		b.tokens, b.last = b.burst, now
	}
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// RateLimited serves rate req/s with a burst of burst (a token bucket) and
// answers 429 with Retry-After: 1 beyond it, announcing nothing.
func RateLimited(rate, burst int) *Server {
	b := &bucket{rate: float64(rate), burst: float64(burst)}
	return newServer(func(s *Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			if !b.allow(time.Now()) {
				s.throttle(w, 1)
				return
			}
			s.apply(w, r)
		})
	})
}

// Announced serves quota requests per fixed 1-second window and says so on
// every response: the IETF fields (RateLimit-Policy: "default";q=quota;w=1
// and RateLimit: "default";r=remaining;t=seconds-to-reset) and the common
// X-RateLimit-Limit, -Remaining and -Reset (seconds until the window resets,
// as a delta). Beyond the quota it answers 429 with Retry-After: the seconds
// left in the window (at least 1).
func Announced(quota int) *Server {
	var mu sync.Mutex
	var window time.Time
	var used int
	return newServer(func(s *Server) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			now := time.Now()
			mu.Lock()
			if now.Sub(window) >= time.Second {
				window, used = now, 0
			}
			used++
			over := used > quota
			remaining := max(quota-used, 0)
			reset := int(math.Ceil(window.Add(time.Second).Sub(now).Seconds()))
			mu.Unlock()
			reset = max(reset, 1)
			h := w.Header()
			h.Set("RateLimit-Policy", fmt.Sprintf(`"default";q=%d;w=1`, quota))
			h.Set("RateLimit", fmt.Sprintf(`"default";r=%d;t=%d`, remaining, reset))
			h.Set("X-RateLimit-Limit", strconv.Itoa(quota))
			h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
			h.Set("X-RateLimit-Reset", strconv.Itoa(reset))
			if over {
				s.throttle(w, reset)
				return
			}
			s.apply(w, r)
		})
	})
}

// Fault kinds of the degraded server, in the order Degraded draws them.
const (
	Fault503   = iota // 503 Service Unavailable, no Retry-After
	Fault500          // 500 Internal Server Error
	Fault429          // 429 with Retry-After: 1
	FaultReset        // the connection is reset before anything is done
	FaultSlow         // the answer comes after Slow (beyond the client's read timeout); the effect is applied then
	FaultLost         // the effect is applied and stored, then the connection is reset instead of the answer
	numFaults
)

// DegradedConfig sets the degraded server.
type DegradedConfig struct {
	// FailShare is the share of requests that fail, spread evenly over the
	// six fault kinds; 0.5 in the target.
	FailShare float64
	// Slow is how long a slow answer takes; keep it above the client's read
	// timeout.
	Slow time.Duration
	// Seed makes the draws repeatable.
	Seed uint64
}

// Degraded is an API in front of which half the requests fail (cfg): 503,
// 500, 429, resets, slow answers, and responses lost after the effect was
// applied. The effect is behind the idempotency middleware (memory store), so
// a retry with the same Idempotency-Key is answered from the store; Counts
// tells whether an item's effect ever ran twice all the same.
func Degraded(cfg DegradedConfig) *Server {
	var rmu sync.Mutex
	rng := rand.New(rand.NewPCG(cfg.Seed, 13))
	draw := func() int {
		rmu.Lock()
		defer rmu.Unlock()
		if rng.Float64() >= cfg.FailShare {
			return -1
		}
		return rng.IntN(numFaults)
	}
	m, err := idempotency.New(idempotency.NewMemoryStore(), idempotency.Config{Principal: idempotency.SharedScope})
	if err != nil {
		panic(err) // a valid config
	}
	return newServer(func(s *Server) http.Handler {
		effect := m.Handler(http.HandlerFunc(s.apply))
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.requests.Add(1)
			switch draw() {
			case Fault503:
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
			case Fault500:
				http.Error(w, "internal error", http.StatusInternalServerError)
			case Fault429:
				s.throttle(w, 1)
			case FaultReset:
				reset(w)
			case FaultSlow:
				t := time.NewTimer(cfg.Slow)
				defer t.Stop()
				select {
				case <-t.C:
				case <-r.Context().Done():
					// The client gave up; the work goes on, as a real
					// server's would (the handler's context is its own).
					<-t.C
				}
				effect.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
			case FaultLost:
				effect.ServeHTTP(&discard{h: http.Header{}}, r)
				reset(w)
			default:
				effect.ServeHTTP(w, r)
			}
		})
	})
}

// discard is a ResponseWriter that throws the response away.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// reset closes the request's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("pacing: the ResponseWriter cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Outage answers every request 503 for the first outage after Start, then
// 200. It counts requests during and after the outage.
type Outage struct {
	URL    string
	srv    *httptest.Server
	outage time.Duration
	start  atomic.Pointer[time.Time]

	during, after atomic.Int64
}

// NewOutage starts an outage server; the outage begins at Start.
func NewOutage(outage time.Duration) *Outage {
	o := &Outage{outage: outage}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := o.start.Load()
		if st == nil || time.Since(*st) < o.outage {
			o.during.Add(1)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		o.after.Add(1)
		w.Write([]byte("ok"))
	}))
	o.URL = o.srv.URL
	return o
}

// Start begins the outage now and returns when it will end.
func (o *Outage) Start() time.Time {
	now := time.Now()
	o.start.Store(&now)
	return now.Add(o.outage)
}

// Close stops the server.
func (o *Outage) Close() { o.srv.CloseClientConnections(); o.srv.Close() }
