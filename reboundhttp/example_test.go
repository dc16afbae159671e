package reboundhttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/reboundhttp"
)

// A drop-in client: the zero Config gives the mission's timeouts, retries,
// per-host breakers and retry budget. Here the server fails twice with 503
// before answering; the caller sees only the answer.
func ExampleNewClient() {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close()

	// Create the client once and reuse it: its breakers and budget live in it.
	client, err := reboundhttp.NewClient(reboundhttp.Config{
		Retry: rebound.Retry{Backoff: rebound.NoDelay}, // only so the example runs at once
	})
	if err != nil {
		fmt.Println("config:", err) // a *rebound.ConfigError
		return
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), "after", calls.Load(), "attempts")
	// Output: 200 hello after 3 attempts
}

// Wrapping an existing Transport keeps its settings (proxy, TLS, pools) and
// adds the retries, breakers and body stall timeout on top.
func ExampleNewTransport() {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	base := &http.Transport{MaxIdleConnsPerHost: 4}
	tr, err := reboundhttp.NewTransport(base, reboundhttp.Config{
		Retry: rebound.Retry{Backoff: rebound.NoDelay},
	})
	if err != nil {
		fmt.Println("config:", err)
		return
	}
	client := &http.Client{Transport: tr}
	defer base.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after", calls.Load(), "attempts")
	// Output: 200 OK after 2 attempts
}

// A POST is retried only when it never reached the server, or when it
// carries an Idempotency-Key that the server uses to deduplicate. Every
// retry carries the same key.
func ExampleSetIdempotencyKey() {
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if len(keys) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()

	client, _ := reboundhttp.NewClient(reboundhttp.Config{Retry: rebound.Retry{Backoff: rebound.NoDelay}}) // a valid Config
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(context.Background(), "POST", srv.URL+"/payments", strings.NewReader(`{"amount":10}`))
	key := reboundhttp.SetIdempotencyKey(req)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status, len(keys), "attempts, same key:", keys[0] == key && keys[1] == key)
	// Output: 201 Created 2 attempts, same key: true
}

// Update reads a resource, changes it and writes it back with If-Match, so
// a change made by someone else in between is never overwritten: the write
// fails with ErrPreconditionFailed instead, and the caller decides whether
// to read again and redo its change.
func ExampleUpdate() {
	var (
		mu      sync.Mutex
		body    = `{"stock":10}`
		version = 1
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		etag := fmt.Sprintf(`"v%d"`, version)
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("ETag", etag)
			io.WriteString(w, body)
		case http.MethodPut:
			if r.Header.Get("If-Match") != etag {
				w.WriteHeader(http.StatusPreconditionFailed)
				return
			}
			b, _ := io.ReadAll(r.Body)
			body, version = string(b), version+1
			w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, version))
		}
	}))
	defer srv.Close()

	client, _ := reboundhttp.NewClient(reboundhttp.Config{}) // the zero Config is valid
	defer client.CloseIdleConnections()
	take := func(n int) func([]byte) ([]byte, error) {
		return func(cur []byte) ([]byte, error) {
			var v struct{ Stock int }
			if err := json.Unmarshal(cur, &v); err != nil {
				return nil, err
			}
			return json.Marshal(map[string]int{"stock": v.Stock - n})
		}
	}
	etag, err := reboundhttp.Update(context.Background(), client, srv.URL, reboundhttp.UpdateOptions{}, take(3))
	fmt.Println(etag, err, body)

	// Someone else writes between our read and our write: ours is refused.
	_, err = reboundhttp.Update(context.Background(), client, srv.URL, reboundhttp.UpdateOptions{}, func(cur []byte) ([]byte, error) {
		mu.Lock()
		body, version = `{"stock":0}`, version+1
		mu.Unlock()
		return take(1)(cur)
	})
	fmt.Println(errors.Is(err, reboundhttp.ErrPreconditionFailed), body)
	// Output:
	// "v2" <nil> {"stock":7}
	// true {"stock":0}
}

// A POST answered 302 is not re-sent as a GET whose 200 would pass for the
// POST's success: the call fails with a permanent *RedirectError. The same
// policy serves a client of your own through CheckRedirect.
func ExampleRedirectPolicy() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			http.Redirect(w, r, "/done?token=secret", http.StatusFound)
			return
		}
		io.WriteString(w, "a page, not the order")
	}))
	defer srv.Close()

	client, _ := reboundhttp.NewClient(reboundhttp.Config{}) // the zero Config is valid
	defer client.CloseIdleConnections()
	_, err := client.Post(srv.URL+"/orders", "application/json", strings.NewReader(`{"item":1}`))
	var re *reboundhttp.RedirectError
	if errors.As(err, &re) {
		fmt.Println(re.StatusCode, strings.TrimPrefix(re.Location, srv.URL), rebound.Classify(err).Kind)
		fmt.Println(re.Reason)
	}

	mine := &http.Client{CheckRedirect: reboundhttp.CheckRedirect}
	defer mine.CloseIdleConnections()
	_, err = mine.Post(srv.URL+"/orders", "application/json", strings.NewReader(`{"item":1}`))
	fmt.Println(errors.Is(err, reboundhttp.ErrRedirect))
	// Output:
	// 302 /done permanent
	// net/http would re-send POST as GET without its body, and its answer is not the POST's
	// true
}
