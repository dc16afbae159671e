package idempotency

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem type URIs used in the application/problem+json (RFC 9457) error
// bodies. Each points at its own documentation below, which is what a client
// that follows the link reads.
const (
	// ProblemKeyMissing (400): the method requires an Idempotency-Key header
	// and the request had none. Resend it with a new key.
	ProblemKeyMissing = "https://pkg.go.dev/github.com/rebound-go/rebound/idempotency#ProblemKeyMissing"
	// ProblemKeyInvalid (400): the Idempotency-Key header is not one
	// Structured Field String of printable ASCII, is sent more than once,
	// or is longer than the server accepts. Resend with one valid key.
	ProblemKeyInvalid = "https://pkg.go.dev/github.com/rebound-go/rebound/idempotency#ProblemKeyInvalid"
	// ProblemKeyReused (422): the key was already used with a different
	// request (method, path, query or body). Use a new key for a new request.
	ProblemKeyReused = "https://pkg.go.dev/github.com/rebound-go/rebound/idempotency#ProblemKeyReused"
	// ProblemInFlight (409, with Retry-After): a request with this key is
	// still being processed. Retry later with the same key to get its
	// response.
	ProblemInFlight = "https://pkg.go.dev/github.com/rebound-go/rebound/idempotency#ProblemInFlight"
	// ProblemNotStored (409): a request with this key was processed, but
	// its response could not be stored (too large, the store failed, or
	// the server failed while sending it), so it cannot be replayed. Do
	// not resend with this key; check the resource's state instead.
	ProblemNotStored = "https://pkg.go.dev/github.com/rebound-go/rebound/idempotency#ProblemNotStored"
	// ProblemBodyTooLarge (413): the request body is larger than the server
	// reads to fingerprint an idempotent request.
	ProblemBodyTooLarge = "https://pkg.go.dev/github.com/rebound-go/rebound/idempotency#ProblemBodyTooLarge"
	// ProblemStoreFailed (503, with Retry-After): the server could not
	// reach its idempotency store, so the request was not processed. Retry
	// with the same key.
	ProblemStoreFailed = "https://pkg.go.dev/github.com/rebound-go/rebound/idempotency#ProblemStoreFailed"
	// ProblemStoreFull (503, with Retry-After): the server's idempotency
	// store has no room while the requests it holds are still running, so
	// the request was not processed. Retry with the same key.
	ProblemStoreFull       = "https://pkg.go.dev/github.com/rebound-go/rebound/idempotency#ProblemStoreFull"
	problemContentType     = "application/problem+json"
	retryAfterInFlight     = "1"
	retryAfterStoreFailure = "1"
)

// Problem is an RFC 9457 problem details object, the body of every error
// response the middleware writes itself.
type Problem struct {
	Type   string `json:"type"`   // one of the Problem* URIs, or "about:blank"
	Title  string `json:"title"`  // a short human-readable summary
	Status int    `json:"status"` // the HTTP status code of the response
	Detail string `json:"detail"` // what happened and what to do; never echoes what the client sent
}

// writeProblem writes p as application/problem+json. The detail never
// contains the key or any request header value, so nothing a client sent
// is echoed back or logged.
func writeProblem(w http.ResponseWriter, p Problem, retryAfter string) {
	body, err := json.Marshal(p)
	if err != nil { // cannot happen with string and int fields
		body = []byte(`{"status":` + strconv.Itoa(p.Status) + `}`)
	}
	h := w.Header()
	h.Set("Content-Type", problemContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}

var (
	problemMissing = Problem{ProblemKeyMissing, "Idempotency-Key is missing", http.StatusBadRequest,
		"This operation is idempotent and requires an Idempotency-Key request header."}
	// One type, one title (RFC 9457 §3.1.3); the detail says which rule broke.
	problemTooLong = Problem{ProblemKeyInvalid, "Idempotency-Key is invalid", http.StatusBadRequest,
		"The Idempotency-Key header is longer than this server accepts."}
	problemInvalid = Problem{ProblemKeyInvalid, "Idempotency-Key is invalid", http.StatusBadRequest,
		"The Idempotency-Key header must be one Structured Field String of printable ASCII, such as \"8e03978e-40d5-43e8-bc93-6894a57f9324\"."}
	problemReused = Problem{ProblemKeyReused, "Idempotency-Key is already used", http.StatusUnprocessableEntity,
		"This Idempotency-Key was used with a different request (method, path, query or body). Use a new key for a new request."}
	problemInFlight = Problem{ProblemInFlight, "A request is outstanding for this Idempotency-Key", http.StatusConflict,
		"A request with this Idempotency-Key is still being processed. Retry later to receive its response."}
	problemNotStored = Problem{ProblemNotStored, "The response for this Idempotency-Key was not stored", http.StatusConflict,
		"A request with this Idempotency-Key was processed, but its response could not be stored and cannot be replayed. Do not resend it with this key; check the resource's state instead."}
	problemBodyTooLarge = Problem{ProblemBodyTooLarge, "Request body is too large", http.StatusRequestEntityTooLarge,
		"The request body is larger than this server accepts for idempotent requests."}
	problemStoreFull = Problem{ProblemStoreFull, "Idempotency store full", http.StatusServiceUnavailable,
		"The server is holding as many requests in progress as it can track, so the request was not processed. Retry with the same key."}
	problemStore = Problem{ProblemStoreFailed, "Idempotency store unavailable", http.StatusServiceUnavailable,
		"The server could not check the Idempotency-Key, so the request was not processed. Retry with the same key."}
)
