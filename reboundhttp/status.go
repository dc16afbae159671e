package reboundhttp

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rebound-go/rebound"
	"github.com/rebound-go/rebound/internal/redact"
)

// MaxBodySnippet is the most of a response body a StatusError keeps.
const MaxBodySnippet = 1 << 10

// maxDrain is the most of a discarded response body read so that its
// connection can be reused; a longer body costs its connection instead.
const maxDrain = 64 << 10

// ErrNotReplayable is matched (errors.Is) by the error of a request that
// failed and was not retried because sending it again was not safe: it may
// have reached the server and is neither idempotent nor carries an
// Idempotency-Key, or its body cannot be rewound (Request.GetBody is nil).
var ErrNotReplayable = errors.New("reboundhttp: request not replayable")

// StatusError is an HTTP response judged a failure: between attempts for a
// retryable status, and for the caller when Config.ErrorOnStatus is set. It
// implements rebound.Classed, so every rebound policy understands it.
//
// It holds no header values, and its URL has no query or userinfo, so it is
// safe to log. Error() never includes Body, which is the server's text.
type StatusError struct {
	// Method is the request's method.
	Method string
	// URL is the request's URL as scheme://host/path, without userinfo,
	// query or fragment.
	URL string
	// StatusCode is the response's status code, e.g. 503.
	StatusCode int
	// Status is the response's status line, e.g. "503 Service Unavailable",
	// with any control character, bidi control or invalid UTF-8 the server
	// put into its reason phrase escaped (\x1b), so that it is safe to print.
	Status string
	// RetryAfter is the server's Retry-After (seconds or HTTP-date), clamped
	// to rebound.MaxRetryAfter; 0 when absent, in the past, or garbage.
	RetryAfter time.Duration
	// Body is at most MaxBodySnippet bytes of the response body, when they
	// were read (the response was discarded, or ErrorOnStatus is set).
	Body []byte
	// Replayable says whether the request was safe to send again; it decides
	// whether a 500 is retryable.
	Replayable bool

	resp *http.Response // kept for the caller while retries may still return it
}

// NewStatusError describes resp, the response to a request that was (or was
// not) replayable, at time now (which Retry-After dates are measured from).
// It reads at most MaxBodySnippet bytes of resp.Body into Body and neither
// closes nor drains it. It never panics on what a server sent.
func NewStatusError(resp *http.Response, replayable bool, now time.Time) *StatusError {
	e := newStatusError(resp, replayable, now)
	if resp.Body != nil {
		e.Body, _ = readSnippet(resp.Body)
	}
	return e
}

func newStatusError(resp *http.Response, replayable bool, now time.Time) *StatusError {
	e := &StatusError{StatusCode: resp.StatusCode, Status: redact.Printable(resp.Status), Replayable: replayable}
	if req := resp.Request; req != nil {
		e.Method = req.Method
		e.URL = RedactURL(req.URL)
	}
	if e.Method == "" {
		e.Method = http.MethodGet
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		e.RetryAfter, _ = rebound.ParseRetryAfter(v, now)
	}
	return e
}

// readSnippet reads at most MaxBodySnippet bytes of r.
func readSnippet(r io.Reader) ([]byte, error) {
	buf := make([]byte, MaxBodySnippet)
	n, err := io.ReadFull(r, buf)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return buf[:n:n], err
}

// Error says what failed: "reboundhttp: GET https://host/path: 503 Service
// Unavailable (Retry-After 2s)".
func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("reboundhttp: ")
	b.WriteString(e.Method)
	if e.URL != "" {
		b.WriteString(" " + e.URL)
	}
	b.WriteString(": ")
	if e.Status != "" {
		b.WriteString(e.Status)
	} else {
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (Retry-After " + e.RetryAfter.String() + ")")
	}
	return b.String()
}

// Class judges the status with rebound.ClassifyStatus: 408, 502, 504
// transient; 429 throttled; 503 throttled with a Retry-After, else
// transient; 500 transient when Replayable; any other status permanent,
// with one exception: a 409 Conflict with a Retry-After to a replayable
// request is throttled. That is how a server that deduplicates by
// Idempotency-Key (the IETF draft, and this module's idempotency
// middleware) says that the first request with this key is still running:
// a retry after the wait gets that request's answer replayed. A 409
// without Retry-After stays permanent.
func (e *StatusError) Class() rebound.Class {
	if e.StatusCode == http.StatusConflict && e.RetryAfter > 0 && e.Replayable {
		return rebound.Class{Kind: rebound.KindThrottled, RetryAfter: e.RetryAfter, Reason: "http 409 (in flight)"}
	}
	return rebound.ClassifyStatus(e.StatusCode, e.Replayable, e.RetryAfter)
}

// RedactURL returns u as scheme://host/path: no userinfo, query or
// fragment, where tokens and passwords live. Use it for any URL that goes
// into a log line or an error. An opaque URL (mailto:x) shows only its
// scheme; nil gives "".
func RedactURL(u *url.URL) string { return redact.URL(u) }

// notReplayableError is the failure of a request that was not retried
// because sending it again was not safe.
type notReplayableError struct {
	method, url, why string
	err              error
}

func (e *notReplayableError) Error() string {
	return "reboundhttp: " + e.method + " " + e.url + " not retried: " + e.why + ": " + e.err.Error()
}

func (e *notReplayableError) Unwrap() error { return e.err }

func (e *notReplayableError) Is(target error) bool { return target == ErrNotReplayable }

func (e *notReplayableError) Class() rebound.Class {
	return rebound.Class{Kind: rebound.KindPermanent, Reason: "not replayable"}
}

// drain reads up to maxDrain bytes of body and closes it, so that the
// connection goes back to the pool when the rest was short.
func drain(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxDrain)
	_ = body.Close()
}
