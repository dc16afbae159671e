package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/rebound-go/rebound/reboundhttp"
)

// The HTTP comparison: a GET of a 1 KiB body on loopback, on the success
// path, through a plain net/http client (the baseline) and through each
// library's fault-tolerant client, configured like ours as far as it goes
// (retries, a breaker where the library has one). Each client gets a fresh
// transport so that connection pools do not mix.
//
//	go test -run '^$' -bench BenchmarkHTTPGet1KiB -benchtime 20000x -count 5 .

var httpBody = strings.Repeat("x", 1024)

func httpServer(tb testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, httpBody)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

func plainTransport() *http.Transport {
	return http.DefaultTransport.(*http.Transport).Clone()
}

// httpClients returns one client per library; close releases their pools.
func httpClients() (names []string, clients []*http.Client, closeAll func()) {
	return httpClientsOver(func() http.RoundTripper { return plainTransport() }, true)
}

// httpClientsOver builds the clients over transports from base; ownTransport
// says whether reboundhttp builds its own (NewClient) or wraps base.
func httpClientsOver(base func() http.RoundTripper, ownTransport bool) (names []string, clients []*http.Client, closeAll func()) {
	add := func(name string, c *http.Client) {
		names = append(names, name)
		clients = append(clients, c)
	}
	add("nethttp", &http.Client{Transport: base()})
	if ownTransport {
		c, _ := reboundhttp.NewClient(reboundhttp.Config{}) // the zero Config is valid
		add("reboundhttp", c)
	} else {
		tr, _ := reboundhttp.NewTransport(base(), reboundhttp.Config{})
		add("reboundhttp", &http.Client{Transport: tr})
		// Without the body stall timer, which the others do not have.
		tr, _ = reboundhttp.NewTransport(base(), reboundhttp.Config{StallTimeout: -1})
		add("reboundhttp-nostall", &http.Client{Transport: tr})
	}

	rc := retryablehttp.NewClient()
	rc.Logger = nil
	rc.HTTPClient = &http.Client{Transport: base()}
	add("retryablehttp", rc.StandardClient())

	breaker := circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(func(r *http.Response, err error) bool { return err != nil || r.StatusCode >= 500 }).
		WithFailureThreshold(5).WithDelay(60 * time.Second).Build()
	add("failsafehttp", &http.Client{Transport: failsafehttp.NewRoundTripper(base(),
		failsafehttp.NewRetryPolicyBuilder().Build(), breaker)})
	// The same with a per-attempt timeout policy, failsafe-go's way to bound
	// an attempt as our header and stall timeouts do.
	add("failsafehttp+timeout", &http.Client{Transport: failsafehttp.NewRoundTripper(base(),
		failsafehttp.NewRetryPolicyBuilder().Build(), breaker, timeout.New[*http.Response](30*time.Second))})

	return names, clients, func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
		rc.HTTPClient.CloseIdleConnections()
	}
}

func httpGet(tb testing.TB, c *http.Client, req *http.Request) {
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != 1024 || resp.StatusCode != 200 {
		tb.Fatalf("read %d bytes, status %d", n, resp.StatusCode)
	}
}

// BenchmarkHTTPGet1KiB also reports cpu-ns/op: the process's user+system
// CPU time per request (client and server, as both run here), which time
// spent descheduled by other load on a shared machine does not inflate.
func BenchmarkHTTPGet1KiB(b *testing.B) {
	srv := httpServer(b)
	names, clients, closeAll := httpClients()
	defer closeAll()
	for i, c := range clients {
		b.Run(names[i], func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				req, _ := http.NewRequest("GET", srv.URL, nil)
				httpGet(b, c, req)
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkHTTPOverhead measures what each library adds per request, free of
// network noise: every client sits on the same in-memory RoundTripper that
// answers a 1 KiB body at once. reboundhttp wraps it as it would any base of
// yours (with its body stall timer, which its own transport does not need).
//
//	go test -run '^$' -bench BenchmarkHTTPOverhead -count 5 .
func BenchmarkHTTPOverhead(b *testing.B) {
	names, clients, _ := httpClientsOver(func() http.RoundTripper { return memTransport{} }, false)
	for i, c := range clients {
		b.Run(names[i], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest("GET", "http://example.com/x", nil)
				httpGet(b, c, req)
			}
		})
	}
}

// memTransport answers every request with 200 and a 1 KiB body from memory.
type memTransport struct{}

func (memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Status: "200 OK", ContentLength: 1024, Header: http.Header{},
		Body: io.NopCloser(strings.NewReader(httpBody)), Request: req}, nil
}

// TestHTTPGoroutinesPerRequest counts the goroutines alive while 16
// requests with a context deadline wait for their response headers, per
// library, with and without a Client.Timeout as well: whatever a library
// starts per request shows up 16 times.
func TestHTTPGoroutinesPerRequest(t *testing.T) {
	for _, d := range []time.Duration{0, time.Minute} {
		t.Run("Client.Timeout="+d.String(), func(t *testing.T) { goroutinesPerRequest(t, d) })
	}
}

func goroutinesPerRequest(t *testing.T, clientTimeout time.Duration) {
	names, clients, closeAll := httpClients()
	defer closeAll()
	counts := map[string]int{}
	for i, c := range clients {
		c.Timeout = clientTimeout
		arrived := make(chan struct{}, 16)
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			<-release
			io.WriteString(w, httpBody)
		}))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
				httpGet(t, c, req)
			}()
		}
		for range 16 {
			<-arrived
		}
		counts[names[i]] = runtime.NumGoroutine()
		close(release)
		wg.Wait()
		cancel()
		c.CloseIdleConnections()
		srv.Close()
	}
	base := counts["nethttp"]
	for _, name := range names {
		t.Logf("%-20s %4d goroutines with 16 requests in flight (%+d vs net/http)", name, counts[name], counts[name]-base)
	}
	// With a Client.Timeout, net/http itself starts two goroutines per
	// request for any RoundTripper that is not its own *http.Transport (a
	// timer goroutine in Client, and one watching the legacy Request.Cancel
	// channel it sets): every wrapper pays them. Ours must add nothing more.
	limit := base
	if clientTimeout > 0 {
		limit = counts[names[2]] // the best other wrapper
		for _, name := range names[3:] {
			limit = min(limit, counts[name])
		}
	}
	if counts["reboundhttp"] > limit {
		t.Errorf("reboundhttp: %d goroutines, want at most %d", counts["reboundhttp"], limit)
	}
}
