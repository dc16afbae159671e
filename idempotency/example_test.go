package idempotency_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/rebound-go/rebound/idempotency"
)

// A POST handler with an effect, wrapped so that a retried request with the
// same Idempotency-Key gets the first response instead of a second order.
func Example() {
	orders := 0
	create := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		orders++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"order":%d}`, orders)
	})
	m, err := idempotency.New(idempotency.NewMemoryStore(), idempotency.Config{
		// Real servers scope keys to the authenticated client.
		Principal: func(r *http.Request) string { return r.Header.Get("X-Client-ID") },
	})
	if err != nil {
		panic(err) // a *rebound.ConfigError: a mistake in the code above
	}
	h := m.Handler(create)

	for range 2 { // the client sends, loses the answer, and retries
		req := httptest.NewRequest("POST", "/orders", strings.NewReader(`{"item":"book"}`))
		req.Header.Set("X-Client-ID", "client-42")
		req.Header.Set("Idempotency-Key", `"4f1c9a52-6a0e-4a57-9a5f-0e5b7c1d2e3f"`)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Body.String(), "replayed:", rec.Header().Get("Idempotent-Replayed") == "true")
	}
	fmt.Println("orders created:", orders)
	// Output:
	// 201 {"order":1} replayed: false
	// 201 {"order":1} replayed: true
	// orders created: 1
}

// The errors a client can get, as RFC 9457 problem details.
func ExampleMiddleware_Handler_errors() {
	m, err := idempotency.New(idempotency.NewMemoryStore(), idempotency.Config{})
	if err != nil {
		panic(err)
	}
	h := m.Handler(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok")
		}))
	try := func(key, body string) {
		req := httptest.NewRequest("POST", "/pay", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(strings.TrimSpace(fmt.Sprint(rec.Code, " ", rec.Header().Get("Content-Type"), " ", rec.Header().Get("Idempotent-Replayed"))))
	}
	try("", "a")     // no key
	try(`"k1"`, "a") // first use
	try(`"k1"`, "b") // same key, different body
	try(`"k1`, "a")  // not a Structured Field String
	try(`"k1"`, "a") // the retry: replayed
	// Output:
	// 400 application/problem+json
	// 200 text/plain
	// 422 application/problem+json
	// 400 application/problem+json
	// 200 text/plain true
}

func ExampleFormatKey() {
	v, _ := idempotency.FormatKey(`order-7 "retry"`)
	fmt.Println(v)
	k, err := idempotency.ParseKey(v, 0)
	fmt.Println(k, err)
	// Output:
	// "order-7 \"retry\""
	// order-7 "retry" <nil>
}
