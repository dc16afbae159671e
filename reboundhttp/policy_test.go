package reboundhttp_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// A user rule retries a 404 on GET (an object store that is eventually
// consistent), which the default rules answer at once.
func TestClassifyRetries404OnGet(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n < 3 {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		io.WriteString(w, "found")
	})
	cfg := fast()
	cfg.Classify = func(resp *http.Response, err error) rebound.Class {
		if resp != nil && resp.StatusCode == http.StatusNotFound && resp.Request.Method == http.MethodGet {
			return rebound.Class{Kind: rebound.KindTransient, Reason: "not there yet"}
		}
		return reboundhttp.DefaultClassify(resp, err)
	}
	resp, err := client(t, cfg).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 200 || got != "found" || s.hits.Load() != 3 {
		t.Fatalf("%d %q after %d requests, want 200 after 3", resp.StatusCode, got, s.hits.Load())
	}
	// Without the rule, the 404 is the answer.
	s.hits.Store(0)
	resp, err = client(t, fast()).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || s.hits.Load() != 1 {
		t.Fatalf("default rules: %d after %d requests, want the 404 at once", resp.StatusCode, s.hits.Load())
	}
}

// A user rule refuses to retry a 503, and the breaker hears the same
// verdict: a permanent answer does not count against the host.
func TestClassifyRefusesToRetry503(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	cfg := fast()
	cfg.Breaker.FailureThreshold = 1
	cfg.Classify = func(resp *http.Response, err error) rebound.Class {
		if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
			return rebound.Class{Kind: rebound.KindPermanent, Reason: "maintenance: do not insist"}
		}
		return reboundhttp.DefaultClassify(resp, err)
	}
	c := client(t, cfg)
	for i := range 3 {
		resp, err := c.Get(s.URL)
		if err != nil {
			t.Fatalf("call %d: %v (the breaker opened?)", i, err)
		}
		err = reboundhttp.CheckResponse(resp)
		var se *reboundhttp.StatusError
		if !errors.As(err, &se) || se.StatusCode != 503 {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := s.hits.Load(); n != 3 {
		t.Fatalf("%d requests for 3 calls, want no retry", n)
	}
}

// Classify judges transport errors too: a refused connection judged
// permanent is not retried.
func TestClassifySeesErrors(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {})
	url := s.URL
	s.Close()
	var seen atomic.Int64
	cfg := fast()
	cfg.Classify = func(resp *http.Response, err error) rebound.Class {
		if err != nil {
			seen.Add(1)
			return rebound.Class{Kind: rebound.KindPermanent, Reason: "no retry"}
		}
		return reboundhttp.DefaultClassify(resp, err)
	}
	_, err := client(t, cfg).Get(url)
	var re *rebound.RetryError
	if err == nil || (errors.As(err, &re) && re.Attempts != 1) || seen.Load() != 1 {
		t.Fatalf("err %v, classifier asked %d times; want one attempt", err, seen.Load())
	}
}

// Retry.Classify would be a second verdict that the breaker never hears.
func TestRetryClassifyRefused(t *testing.T) {
	cfg := fast()
	cfg.Retry.Classify = rebound.Classify
	var ce *rebound.ConfigError
	if err := cfg.Validate(); !errors.As(err, &ce) {
		t.Fatalf("Validate: %v, want a *rebound.ConfigError", err)
	}
}

// PrepareRetry re-signs each retry, on a copy: the caller's request keeps
// its own header, and the first attempt is not prepared.
func TestPrepareRetry(t *testing.T) {
	var sigs []string
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		body, _ := io.ReadAll(r.Body)
		sigs = append(sigs, r.Header.Get("X-Signature")+"/"+string(body))
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	cfg := fast()
	var attempts []int
	cfg.PrepareRetry = func(req *http.Request, attempt int) error {
		attempts = append(attempts, attempt)
		req.Header.Set("X-Signature", fmt.Sprint("sig-", attempt))
		return nil
	}
	req, _ := http.NewRequest("PUT", s.URL, strings.NewReader("data"))
	req.Header.Set("X-Signature", "sig-1")
	resp, err := client(t, cfg).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := strings.Join(sigs, " "); got != "sig-1/data sig-2/data sig-3/data" {
		t.Fatalf("server saw %q", got)
	}
	if fmt.Sprint(attempts) != "[2 3]" || req.Header.Get("X-Signature") != "sig-1" {
		t.Fatalf("prepared attempts %v, caller's header %q", attempts, req.Header.Get("X-Signature"))
	}

	// Its error ends the call, permanent, and the retry is not sent.
	s.hits.Store(0)
	sigs = nil
	boom := errors.New("token refresh failed")
	cfg.PrepareRetry = func(*http.Request, int) error { return boom }
	_, err = client(t, cfg).Get(s.URL)
	if !errors.Is(err, boom) || s.hits.Load() != 1 {
		t.Fatalf("err %v after %d requests; want the hook's error after 1", err, s.hits.Load())
	}
}

// BreakerFor gives each host its own settings (a strict set for one host,
// a lenient one for the others), and shares breakers: two clients that use
// the same sets agree that a host is down.
func TestBreakerForPerHostSettings(t *testing.T) {
	down := func(w http.ResponseWriter, r *http.Request, n int64) { w.WriteHeader(http.StatusServiceUnavailable) }
	strictSrv, lenientSrv := newServer(t, down), newServer(t, down)
	strictHost := strings.TrimPrefix(strictSrv.URL, "http://")
	strict, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	lenient, err := rebound.NewBreakerSet(rebound.BreakerConfig{FailureThreshold: 100}, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fast()
	cfg.Retry.MaxAttempts = 1
	cfg.BreakerFor = func(host string) *rebound.Breaker {
		if host == strictHost {
			return strict.Get(host)
		}
		return lenient.Get(host)
	}
	a, b := client(t, cfg), client(t, cfg)
	for _, c := range []*http.Client{a, b} {
		for _, u := range []string{strictSrv.URL, lenientSrv.URL} {
			resp, err := c.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	if _, err := a.Get(strictSrv.URL); !errors.Is(err, rebound.ErrOpen) {
		t.Fatalf("strict host: %v, want its breaker open after 2 failures across both clients", err)
	}
	resp, err := a.Get(lenientSrv.URL)
	if err != nil {
		t.Fatalf("lenient host: %v, want its 503 (threshold 100)", err)
	}
	resp.Body.Close()
	if strictSrv.hits.Load() != 2 || lenientSrv.hits.Load() != 3 {
		t.Fatalf("%d and %d requests", strictSrv.hits.Load(), lenientSrv.hits.Load())
	}
	n := 0
	must(reboundhttp.NewTransport(nil, cfg)).Breakers(func(string, *rebound.Breaker) { n++ })
	if n != 0 {
		t.Fatalf("Breakers lists %d breakers it does not keep", n)
	}
}

// The base client: the same timeouts and redirect policy, one attempt, no
// breaker; invalid requests refused unsent.
func TestBaseClient(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	c := must(reboundhttp.NewBaseClient(reboundhttp.Config{}))
	defer c.CloseIdleConnections()
	for range 6 {
		resp, err := c.Get(s.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := s.hits.Load(); n != 6 {
		t.Fatalf("%d requests for 6 calls, want one each and no breaker", n)
	}
	req, _ := http.NewRequest("POST", s.URL+"/redirect", strings.NewReader("x"))
	if _, err := c.Do(req); !errors.Is(err, reboundhttp.ErrRedirect) {
		t.Fatalf("POST redirected by 302: %v, want ErrRedirect", err)
	}
	req, _ = http.NewRequest("GET", s.URL, nil)
	req.Header.Set("X-Bad", "a\r\nb")
	n := s.hits.Load()
	if _, err := c.Do(req); !errors.Is(err, reboundhttp.ErrInvalidRequest) || s.hits.Load() != n {
		t.Fatalf("invalid header: %v", err)
	}
	var ce *rebound.ConfigError
	if bad, err := reboundhttp.NewBaseClient(reboundhttp.Config{MaxIdleConnsPerHost: -1}); bad != nil || !errors.As(err, &ce) {
		t.Fatalf("invalid config: %v, %v", bad, err)
	}
}

// CheckResponse's snippet holds none of the request's credentials, even from
// a server that echoes them, and nothing a terminal would obey.
func TestCheckResponseSnippetSanitised(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "bad: "+r.Header.Get("Authorization")+" "+r.URL.RawQuery+" \x1b[2J")
	})
	req, _ := http.NewRequest("GET", s.URL+"/x?api_key=query-secret-1", nil)
	req.Header.Set("Authorization", "Bearer header-secret-2")
	resp, err := client(t, fast()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	err = reboundhttp.CheckResponse(resp)
	var se *reboundhttp.StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || se.Class().Kind != rebound.KindPermanent {
		t.Fatalf("err %v", err)
	}
	body := string(se.Body)
	if strings.Contains(body, "secret") || strings.Contains(body, "\x1b") || !strings.HasPrefix(body, "bad: ") {
		t.Fatalf("snippet %q", body)
	}
}

// Whatever the verdict, a request that is not replayable (a POST without an
// Idempotency-Key) is never sent twice: its answer is returned.
func TestClassifyCannotReplayPost(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.WriteHeader(http.StatusNotFound)
	})
	cfg := fast()
	cfg.Classify = func(resp *http.Response, err error) rebound.Class {
		return rebound.Class{Kind: rebound.KindTransient, Reason: "retry everything"}
	}
	resp, err := client(t, cfg).Post(s.URL, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || s.hits.Load() != 1 {
		t.Fatalf("%d after %d requests, want the 404 after 1", resp.StatusCode, s.hits.Load())
	}
}
