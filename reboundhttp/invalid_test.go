package reboundhttp_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// A request net/http refuses to send (a header value with CR, LF or NUL, a
// bad header name, a bad method) fails at once as permanent: not retried,
// never counted against the host's breaker, which stays closed for the
// host's good requests.
func TestInvalidRequestIsPermanentAndSparesTheBreaker(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int64) { io.WriteString(w, "ok") })
	retries := 0
	cfg := fast()
	cfg.Retry.OnRetry = func(rebound.RetryEvent) { retries++ }
	c := client(t, cfg)
	bad := []func(*http.Request){
		func(r *http.Request) { r.Header.Set("X-Token", "a\r\nInjected: yes") },
		func(r *http.Request) { r.Header["X-Nul"] = []string{"a\x00b"} },
		func(r *http.Request) { r.Header["X-Del"] = []string{"a\x7fb"} },
		func(r *http.Request) { r.Header["Bad Name"] = []string{"v"} },
		func(r *http.Request) { r.Method = "GE T" },
	}
	for round := 0; round < 2; round++ { // 10 failures: twice the breaker's threshold
		for i, mutate := range bad {
			req, _ := http.NewRequest("GET", s.URL+"/x?token=secret", nil)
			if round == 1 {
				req, _ = http.NewRequest("POST", s.URL+"/x?token=secret", strings.NewReader("body"))
			}
			mutate(req)
			_, err := c.Do(req)
			if !errors.Is(err, reboundhttp.ErrInvalidRequest) {
				t.Fatalf("case %d: err %v, want ErrInvalidRequest", i, err)
			}
			if k := rebound.Classify(err).Kind; k != rebound.KindPermanent {
				t.Fatalf("case %d: %v is %v, want permanent", i, err, k)
			}
			// The *url.Error around it is net/http's, with the URL as given.
			if msg := errors.Unwrap(err).Error(); strings.Contains(msg, "secret") || strings.Contains(msg, "Injected") {
				t.Fatalf("case %d: secret in %q", i, msg)
			}
		}
	}
	if retries != 0 || s.hits.Load() != 0 {
		t.Fatalf("%d retries, %d requests reached the server; want none", retries, s.hits.Load())
	}
	resp, err := c.Get(s.URL)
	if err != nil {
		t.Fatalf("a good request after the bad ones: %v (the breaker counted them)", err)
	}
	readAll(t, resp)
	// Tab and bytes above 0x7f are valid in a field value (obs-text).
	req, _ := http.NewRequest("GET", s.URL, nil)
	req.Header.Set("X-Ok", "a\tb é")
	if err := reboundhttp.ValidateRequest(req); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
}

// The checks every request and every answer go through cost nothing when
// all is well: they sit on the hot path of every successful call.
func TestRequestChecksAllocateNothing(t *testing.T) {
	req, _ := http.NewRequest("POST", "https://h/p?q=1", strings.NewReader("b"))
	req.Header.Set("Authorization", "Bearer x")
	req.Header.Set("Idempotency-Key", "k")
	resp := &http.Response{StatusCode: 200, Request: req, Header: http.Header{}}
	if n := testing.AllocsPerRun(100, func() {
		if reboundhttp.ValidateRequest(req) != nil || reboundhttp.UnfollowedRedirect(req, resp) != nil {
			t.Fatal("a valid request or answer refused")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per request", n)
	}
}
